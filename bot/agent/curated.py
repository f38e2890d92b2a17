"""Curated answers: a counsellor's reply, approved by an admin, becomes an answer card
(``bot.kb.cards.CuratedCard``): the standard question and the answer in both languages, the
graduates' phrasings as variants, and the sentence of a document it rests on, quoted word for
word. The agent matches and answers it exactly as it does the library's cards
(``Agent.use_curated``), while its document is in the index and in force.

The proposal and its card live in the database (``ConsoleStore``); whoever owns the database
(the web console, the Telegram bot, the terminal) gives the agent the approved cards at
start-up and after each change.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from bot.kb.cards import CURATED_PREFIX, LANGS, CuratedCard, check_curated
from bot.privacy import redact

logger = logging.getLogger(__name__)

Problem = tuple[str, str]
"""(what is wrong, detail): ``missing`` (a field), ``unknown_document``, ``quote_not_found``,
``invalid`` (the validator's message)."""


@dataclass(frozen=True)
class CardForm:
    """What an admin approves: both languages of the question and the answer, the
    graduates' other phrasings (one per line), and the evidence."""

    question: Mapping[str, str]
    answer: Mapping[str, str]
    doc_id: str
    quote: str
    variants: Mapping[str, Sequence[str]] = field(default_factory=dict)


def _lines(texts: Iterable[str]) -> list[str]:
    kept = [redact(t.strip()) for t in texts if t and t.strip()]
    return list(dict.fromkeys(kept))


def build_card(
    number: int, form: CardForm, chunks: Mapping[str, Sequence[str]]
) -> CuratedCard | list[Problem]:
    """Proposal ``number`` as a card, every text redacted, or everything that is wrong with
    the form at once. ``chunks``: the index's documents, as their sections' texts."""
    problems: list[Problem] = []
    for name, values in (("question", form.question), ("answer", form.answer)):
        for lang in LANGS:
            if not (values.get(lang) or "").strip():
                problems.append(("missing", f"{name}.{lang}"))
    if not form.doc_id.strip():
        problems.append(("missing", "doc_id"))
    if len(form.quote.strip()) < 4:
        problems.append(("missing", "quote"))
    if problems:
        return problems
    question = {lang: redact(form.question[lang].strip()) for lang in LANGS}
    data = {
        "id": f"{CURATED_PREFIX}{number}",
        "question": question,
        "answer": {lang: redact(form.answer[lang].strip()) for lang in LANGS},
        "variants": {
            lang: [v for v in _lines(form.variants.get(lang, ())) if v != question[lang]]
            for lang in LANGS
        },
        "evidence": [{"doc": form.doc_id.strip(), "quote": form.quote.strip()}],
    }
    try:
        card = CuratedCard.model_validate(data)
    except ValidationError as exc:
        return [
            ("invalid", f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}") for e in exc.errors()
        ]
    found = check_curated(card, chunks)
    return found if found else card


def parse_cards(rows: Sequence[tuple[int, str]]) -> list[CuratedCard]:
    """The approved cards as stored; one that no longer parses is logged and left out."""
    cards: list[CuratedCard] = []
    for number, text in rows:
        try:
            cards.append(CuratedCard.model_validate_json(text))
        except ValidationError as exc:  # also malformed JSON
            logger.error("curated answer %d not used: %s", number, exc)
    return cards


_GREETING = re.compile(
    r"^\s*(?:(?:[\u4e00-\u9fff]{0,4}(?:同学|老师|先生|女士))?\s*(?:你好|您好|早上好|下午好|晚上好)"
    r"|(?:hi|hello|hey|dear)\b[^,，.!！\n]{0,30}"
    r"|[\u4e00-\u9fff]{1,4}同学)\s*[，,。.!！~～:：]*\s*",
    re.IGNORECASE,
)
_SIGN_OFF = re.compile(
    r"(?:\n|^|(?<=[。.!！]))\s*(?:[—-]+\s*)?"
    r"(?:祝(?:好|顺利|你[^\n]{0,8})|(?:best|kind) regards|cheers|[\u4e00-\u9fff]{1,3}老师|thanks)"
    r"[^\n]{0,20}\s*$",
    re.IGNORECASE,
)


def impersonal(text: str, names: Iterable[str] = ()) -> str:
    """A counsellor's reply to one graduate as an answer for everyone: the greeting and
    sign-off gone, the people's names removed, personal data redacted. What is left is for
    an admin to read and edit before it is approved."""
    out = text.strip()
    for _ in range(2):  # "张同学你好！" then a second "你好"
        out = _GREETING.sub("", out, count=1).strip()
    out = _SIGN_OFF.sub("", out).strip()
    for name in sorted(
        {n.strip() for n in names if n and len(n.strip()) >= 2}, key=len, reverse=True
    ):
        out = out.replace(name, "")
    return redact(out).strip()
