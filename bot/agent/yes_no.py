"""Yes or no first: a yes/no question ("合法吗？", "Can my employer …?") is answered "不可以。" /
"No." before the sentence that says so, when that sentence's polarity settles it.

The verdict is read from the lead sentence: what it rules (不得, 禁止, 应当, 可以, may not,
must, …), against what the question asks (may I, must I, is it legal) and whether the
question is itself negated ("不签合同可以吗"). A small multinomial logit over those
measurements decides yes, no or neither (a hedged "一般……", "It depends"); it is fitted
(``gradguide train-lead``, ``bot.agent.yes_no_train``) on the answer cards, whose vetted
answers open with their verdict and quote the document's sentence. The model ships as
``lead_data/yes_no.json``; without a confident verdict the answer is as before.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bot.agent.lead_rank import is_yes_no
from bot.errors import ConfigError
from bot.kb.models import Lang
from bot.prompts import Messages

ARTEFACT = Path(__file__).resolve().parent / "lead_data" / "yes_no.json"
CLASSES: tuple[str, ...] = ("yes", "no", "neither")
Verdict = Literal["yes", "no"]


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives), re.IGNORECASE)


# The evidence: what the sentence rules. Checked in this order, each match blanked before
# the next ("不可以" is a prohibition, not a permission).
_PROHIBIT = _words(
    r"不得|禁止|严禁|不能|不可以|不允许|无权|不应|不准",
    r"\b(?:may not|must not|shall not|cannot|can't|not allowed|prohibited|forbidden|"
    r"not permitted|banned|no (?:one|employer|unit) may)\b",
)
_INVALID = _words(
    r"无效|违法|非法|不合法|不属于|不是|不算|不构成|不可信|骗局|诈骗",
    r"\b(?:invalid|illegal|unlawful|void|is not|are not|isn't|aren't|does not count|"
    r"not (?:a|an|the) |scam|fraud)\b",
)
_NO_NEED = _words(
    r"不需要|无需|不必|不用|不再|不收|免费|取消",
    r"\b(?:no need|not required|need not|needn't|do(?:es)? not (?:need|have to)|"
    r"free of charge|no longer|abolished|no fee)\b",
)
_PERMIT = _words(
    r"可以|有权|允许|合法|能够|享有|适用|仍|继续",
    r"\b(?:may|can|entitled|has the right|have the right|allowed|eligible|permitted|still|"
    r"lawful|legal)\b",
)
_OBLIGE = _words(
    r"应当|必须|应|须|需要|要求",
    r"\b(?:must|shall|required|has to|have to|should|obliged|needs? to)\b",
)
_HEDGE = _words(
    r"一般|通常|原则上|视情况|具体|以.{1,12}为准|因地|各地|可能|部分",
    r"\b(?:generally|usually|normally|in principle|depends?|may vary|varies|check|some|"
    r"in most|typically|often)\b",
)
_NEGATION = _words(r"不|没有|未|无|非", r"\b(?:not|no|never|none|without)\b|n't\b")

# The question: what it asks, and whether it is negated. "能不能", "可不可以" (A-not-A)
# ask, they do not negate: read as "能", "可以".
_A_NOT_A = re.compile(r"([\u4e00-\u9fff]+?)[不没]\1")
_ASKS_LEGAL = _words(r"合法|违法|犯法|有效|正规", r"\b(?:legal|illegal|lawful|valid|legit)\b")
_ASKS_MAY = _words(
    r"可以|能|允许|让|有权|行不行|行吗",
    r"\b(?:can|could|may|allowed|entitled|ok|okay|let)\b",
)
_ASKS_NEED = _words(
    r"需要|要|必须|得|应该|用不用|还用",
    r"\b(?:need|must|have to|has to|required|should|obliged)\b",
)
_Q_NEGATION = _words(r"不|没|未|别|无", r"\b(?:not|no|without|never)\b|n't\b")

FEATURES: tuple[str, ...] = (
    "prohibit",  # the sentence forbids (不得, may not)
    "invalid",  # … says it is void, illegal, not so (无效, 不是, illegal)
    "no_need",  # … says it is not needed (不需要, no need)
    "permit",  # … permits (可以, may, entitled)
    "oblige",  # … obliges (应当, must)
    "hedge",  # … hedges (一般, usually, depends)
    "negation",  # … has another negation
    "asks_legal",  # the question asks whether it is legal or valid
    "asks_may",  # … whether it may be done
    "asks_need",  # … whether it must be done
    "question_negated",  # the question is itself negated ("不签合同可以吗")
    "negated_x_prohibit",
    "negated_x_oblige",
    "negated_x_permit",
    "negated_x_no_need",
    "may_x_oblige",  # "can they pay less?" against "must pay at least"
    "need_x_oblige",
    "need_x_permit",
    "legal_x_permit",
)


def _count(pattern: re.Pattern[str], text: str) -> tuple[float, str]:
    """Whether ``pattern`` occurs, and the text with its matches blanked."""
    found = pattern.search(text) is not None
    return float(found), pattern.sub(" ", text) if found else text


def features(question: str, sentence: str) -> list[float]:
    text = sentence.lower()
    prohibit, text = _count(_PROHIBIT, text)
    no_need, text = _count(_NO_NEED, text)
    invalid, text = _count(_INVALID, text)
    hedge, text = _count(_HEDGE, text)
    oblige, text = _count(_OBLIGE, text)
    permit, text = _count(_PERMIT, text)
    negation = float(_NEGATION.search(text) is not None)
    asked = _A_NOT_A.sub(r"\1", question.lower())
    legal, asked = _count(_ASKS_LEGAL, asked)
    need, asked_rest = _count(_ASKS_NEED, asked)
    may, asked_rest = _count(_ASKS_MAY, asked_rest)
    negated = float(_Q_NEGATION.search(asked_rest) is not None)
    return [
        prohibit,
        invalid,
        no_need,
        permit,
        oblige,
        hedge,
        negation,
        legal,
        may,
        need,
        negated,
        negated * prohibit,
        negated * oblige,
        negated * permit,
        negated * no_need,
        may * oblige,
        need * oblige,
        need * permit,
        legal * permit,
    ]


def kind(question: str) -> str:
    """What the question asks, for the verdict's wording: ``legal``, ``may``, ``need`` or
    ``is`` (anything else: "有加分吗", "Is it true?")."""
    asked = _A_NOT_A.sub(r"\1", question.lower())
    if _ASKS_LEGAL.search(asked):
        return "legal"
    if _ASKS_MAY.search(asked):  # "要再延长三个月，能这样吗" asks may, not need
        return "may"
    if _ASKS_NEED.search(asked):
        return "need"
    return "is"


@dataclass(frozen=True)
class YesNoModel:
    """A multinomial logit over ``FEATURES``: one weight row (and bias) per class of
    ``CLASSES``; a verdict only when its probability reaches ``threshold``."""

    weights: tuple[tuple[float, ...], ...]
    biases: tuple[float, ...]
    threshold: float = 0.6
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.weights) != len(CLASSES) or any(len(w) != len(FEATURES) for w in self.weights):
            raise ConfigError("yes/no model does not fit its features: run `gradguide train-lead`")

    def probabilities(self, question: str, sentence: str) -> dict[str, float]:
        x = features(question, sentence)
        logits = [
            b + sum(w * v for w, v in zip(row, x, strict=True))
            for row, b in zip(self.weights, self.biases, strict=True)
        ]
        top = max(logits)
        exps = [math.exp(z - top) for z in logits]
        total = sum(exps)
        return {c: e / total for c, e in zip(CLASSES, exps, strict=True)}

    def verdict(self, question: str, sentence: str) -> Verdict | None:
        """``yes`` or ``no`` when ``question`` is a yes/no question and ``sentence`` settles
        it confidently; else None."""
        if not is_yes_no(question):
            return None
        p = self.probabilities(question, sentence)
        best = max(CLASSES, key=lambda c: p[c])
        if best == "yes" and p[best] >= self.threshold:
            return "yes"
        if best == "no" and p[best] >= self.threshold:
            return "no"
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": list(CLASSES),
            "features": list(FEATURES),
            "weights": [[round(w, 6) for w in row] for row in self.weights],
            "biases": [round(b, 6) for b in self.biases],
            "threshold": self.threshold,
            "meta": dict(self.meta),
        }

    def save(self, path: Path = ARTEFACT) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_json(), ensure_ascii=False, indent=1, sort_keys=True)
        path.write_text(text + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = ARTEFACT) -> YesNoModel:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if list(data["features"]) != list(FEATURES) or list(data["classes"]) != list(CLASSES):
                raise ConfigError(f"{path}: fitted to other features: run `gradguide train-lead`")
            return cls(
                weights=tuple(tuple(float(w) for w in row) for row in data["weights"]),
                biases=tuple(float(b) for b in data["biases"]),
                threshold=float(data["threshold"]),
                meta=data.get("meta", {}),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: unreadable yes/no model ({exc})") from exc


def opening(verdict: Verdict, question: str, lang: Lang, messages: Messages) -> str:
    """The verdict's words ("不可以。", "No."), worded for what the question asks."""
    return messages.get(f"yes_no_{kind(question)}_{verdict}", lang)
