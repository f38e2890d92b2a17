"""Answer cards: standard questions with their variants, a vetted direct answer in both
languages, and the evidence it rests on (the 标准问 / 相似问 library of a service desk).

A card file is YAML in ``knowledge/cards/`` (``<topic>.yaml``): a list of cards,

.. code-block:: yaml

    - id: probation-cap-by-term
      question:
        zh: 合同期限不同，试用期最长多久？
        en: How long can probation be for my contract term?
      variants:                     # at least 6 per language
        zh:
          - 一年合同试用期最长几个月
          - 签三年合同试用期能约半年吗
        en:
          - My contract is one year, how long can probation be?
      answer:   # block style: a '?' or ': ' inside {…} breaks YAML
        zh: 合同一年以上不满三年的，试用期最长两个月；……
        en: For a contract of one to three years, probation is at most two months; ...
      evidence:                     # word for word; a table row as its cells joined by " | "
        - doc: probation-zh
          quote: 一年以上、不满三年 | 不超过二个月
        - doc: probation-en
          quote: "..."
      slots: [contract_term]        # optional: inputs the answer depends on
      calculator: probation_cap     # optional: the rights calculator that computes it

Checked when loaded (``load_cards``): ids unique, both languages present, at least
``MIN_VARIANTS`` variants per language, and every evidence quote found word for word in the
cited document's text (spaces, line breaks and Markdown emphasis ignored). A card's validity
follows its documents: the agent uses a card only while the cited documents are in force.

Run ``python -m bot.kb.cards [knowledge-dir]`` to check the cards and list every error.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from bot.kb.loaders import load_file

CalculatorName = Literal[
    "probation_cap",
    "severance",
    "unsigned_contract_double_wage",
    "training_penalty",
    "overtime_pay",
    "probation_wage_floor",
    "arbitration_deadline",
]
MIN_VARIANTS = 6
MAX_DOCUMENT_BYTES = 5 * 2**20
LANGS = ("zh", "en")


class Bilingual(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    zh: str = Field(min_length=2)
    en: str = Field(min_length=2)

    def get(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


class Variants(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zh: list[str] = Field(min_length=MIN_VARIANTS)
    en: list[str] = Field(min_length=MIN_VARIANTS)

    @field_validator("zh", "en")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        cleaned = [str(v).strip() for v in value]
        if any(not v for v in cleaned):
            raise ValueError("a variant is empty")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("a variant is repeated")
        return cleaned

    def get(self, lang: str) -> list[str]:
        return self.zh if lang == "zh" else self.en


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    doc: str = Field(min_length=1)
    quote: str = Field(min_length=4)


class Card(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,127}$")
    question: Bilingual
    variants: Variants
    answer: Bilingual
    evidence: list[Evidence] = Field(min_length=1)
    slots: list[str] = Field(default_factory=list)
    calculator: CalculatorName | None = None
    """A card whose answer is a computation names the calculator that makes it."""

    def docs(self) -> list[str]:
        return list(dict.fromkeys(e.doc for e in self.evidence))


CURATED_PREFIX = "curated-"
"""The id of a card an admin approved in the console: ``curated-<proposal number>``."""


class CuratedVariants(Variants):
    """A counsellor's approved answer comes with the graduates' own phrasings, as many as
    there are (the standard question already matches)."""

    zh: list[str] = Field(default_factory=list)
    en: list[str] = Field(default_factory=list)


class CuratedCard(Card):
    """A counsellor's reply, approved by an admin in the console, as a card: the same
    matcher and answer path as the library's cards, checked the same way (both languages,
    a quote found word for word in a document of the index) but without the library's
    minimum of variants."""

    variants: CuratedVariants = Field(default_factory=CuratedVariants)

    @field_validator("id")
    @classmethod
    def _curated_id(cls, value: str) -> str:
        if not value.startswith(CURATED_PREFIX):
            raise ValueError(f"a curated card's id starts with {CURATED_PREFIX}")
        return value


def is_curated(card: Card) -> bool:
    return card.id.startswith(CURATED_PREFIX)


def check_curated(card: Card, chunks: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """What keeps an approved answer from being served, as (problem, detail): a cited
    document not in the index (``unknown_document``) or a quote no section of it holds word
    for word (``quote_not_found``; the answer path quotes one section)."""
    problems: list[tuple[str, str]] = []
    for item in card.evidence:
        sections = chunks.get(item.doc)
        if not sections:
            problems.append(("unknown_document", item.doc))
            continue
        wanted = comparable(item.quote)
        if not any(wanted in comparable(text) for text in sections):
            problems.append(("quote_not_found", f"{item.doc}: {item.quote[:60]}"))
    return problems


@dataclass(frozen=True)
class CardError:
    """One problem with a card file, said so an admin can find and fix it."""

    path: Path
    card: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.card}: {self.message}"


_MARKUP = re.compile(r"[\s*_`>|#]+")


def comparable(text: str) -> str:
    """Text as compared for evidence: no spaces, line breaks or Markdown markup."""
    return _MARKUP.sub("", text).replace("\u3000", "")


def document_texts(knowledge_dir: Path) -> dict[str, str]:
    """Every Markdown document under ``knowledge_dir`` (cards excluded), by id, as compared."""
    texts: dict[str, str] = {}
    for path in sorted(knowledge_dir.rglob("*.md")):
        if path.name.lower() == "readme.md" or "cards" in path.parts:
            continue
        parsed = load_file(path, max_bytes=MAX_DOCUMENT_BYTES)
        body = "\n".join(s.text for s in parsed.sections)
        texts[parsed.meta.id] = comparable(f"{parsed.meta.title}\n{body}")
    return texts


def read_card_file(path: Path) -> tuple[list[Card], list[CardError]]:
    """The cards of one file, and what is wrong with the others."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster
    try:
        raw: Any = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # a safe loader
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return [], [CardError(path, "-", f"cannot read the file: {exc}")]
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        return [], [CardError(path, "-", "must be a YAML list of cards (lines starting '- id:')")]
    cards: list[Card] = []
    errors: list[CardError] = []
    for number, item in enumerate(raw, 1):
        name = str(item.get("id", f"card {number}")) if isinstance(item, Mapping) else str(number)
        try:
            cards.append(Card.model_validate(item))
        except ValidationError as exc:
            for problem in exc.errors():
                where = ".".join(str(p) for p in problem["loc"]) or "card"
                errors.append(CardError(path, name, f"{where}: {problem['msg']}"))
    return cards, errors


def files_digest(folder: Path) -> str:
    """What the card files say, as one hash (a changed, added or removed file changes it)."""
    sha = hashlib.sha256()
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        sha.update(path.name.encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()[:16]


CARD_LIST = TypeAdapter(list[Card])
"""The cards as JSON (the trained artefact keeps them so a process need not parse YAML)."""


def read_cards(folder: Path) -> tuple[list[Card], list[CardError]]:
    """The cards of every ``*.yaml`` file in ``folder`` (the first of a repeated id), without
    checking their quotes against the documents (``load_cards`` does)."""
    cards: dict[str, Card] = {}
    errors: list[CardError] = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        found, problems = read_card_file(path)
        errors.extend(problems)
        for card in found:
            cards.setdefault(card.id, card)
    return list(cards.values()), errors


def check_cards(
    cards: Sequence[tuple[Path, Card]], documents: Mapping[str, str]
) -> list[CardError]:
    """Ids unique; every evidence quote is in the document it cites."""
    errors: list[CardError] = []
    seen: dict[str, Path] = {}
    for path, card in cards:
        if card.id in seen:
            errors.append(CardError(path, card.id, f"id already used in {seen[card.id]}"))
        seen.setdefault(card.id, path)
        for item in card.evidence:
            text = documents.get(item.doc)
            if text is None:
                errors.append(CardError(path, card.id, f"cites unknown document {item.doc}"))
            elif comparable(item.quote) not in text:
                errors.append(
                    CardError(path, card.id, f"quote not found in {item.doc}: {item.quote[:60]}")
                )
    return errors


def load_cards(knowledge_dir: Path) -> tuple[list[Card], list[CardError]]:
    """All the cards in ``knowledge_dir/cards``, checked against the documents beside them."""
    folder = knowledge_dir / "cards"
    located: list[tuple[Path, Card]] = []
    errors: list[CardError] = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        cards, problems = read_card_file(path)
        located.extend((path, card) for card in cards)
        errors.extend(problems)
    errors.extend(check_cards(located, document_texts(knowledge_dir)))
    return [card for _, card in located], errors


def main(argv: Sequence[str]) -> int:
    knowledge_dir = Path(argv[0]) if argv else Path("knowledge")
    cards, errors = load_cards(knowledge_dir)
    for error in errors:
        print(error)
    print(f"{len(cards)} cards read, {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
