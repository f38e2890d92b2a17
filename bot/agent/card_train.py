"""Fitting the card match model (``gradguide train-cards``): cards in, ``card_data/`` out.

The training questions are the cards' own texts, each asked twice:

1. with only that text left out: the best card should be its own (a right match, unless
   another card wins — then it is a wrong one);
2. with its whole card left out: whatever card wins is wrong — what happens when a graduate
   asks something no card covers, the case a card answer must not take.

A logistic regression over the features of ``bot.agent.card_match`` is fitted to these. Its
probability ranks matches; the threshold is calibrated on the development answer sets
(``tests/eval/answers.jsonl`` and ``answers_holdout.jsonl``): each question is answered once
with every matching card accepted and once by the documents alone, and the threshold is the
one at which "card above it, documents below" answers the most questions correctly (the
highest such threshold on a tie: a card must earn its place). Reproducible: the same cards,
encoder and development sets give the same model. Needs scikit-learn
(``pip install 'gradguide[train]'``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

from bot.agent.agent import Agent
from bot.agent.card_match import (
    FEATURES,
    CardMatcher,
    MatchModel,
    VectorStore,
    card_texts,
    text_key,
)
from bot.agent.evaluation import AnswerItem, run_item
from bot.components.embeddings import Embedder
from bot.kb.cards import CARD_LIST, Card
from bot.kb.service import KnowledgeBase
from bot.settings import Settings

DEV_SETS = ("answers.jsonl", "answers_holdout.jsonl")


def cards_digest(cards: Sequence[Card]) -> str:
    """What the shipped vectors and model were fitted to."""
    sha = hashlib.sha256()
    for card in sorted(cards, key=lambda c: c.id):
        sha.update(card.id.encode())
        for text in card_texts(card):
            sha.update(text.encode())
    return sha.hexdigest()[:16]


def training_examples(matcher: CardMatcher) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    rows: list[tuple[float, ...]] = []
    labels: list[int] = []
    owners = matcher._owners
    matrix = matcher._matrix
    texts = matcher._texts
    for start in range(0, len(texts), 256):
        block = matrix[start : start + 256] @ matrix.T
        for offset, sims in enumerate(block):
            row = start + offset
            own = owners[row]
            alone = np.zeros(len(texts), dtype=np.bool_)
            alone[row] = True
            found = matcher.features(texts[row], sims, alone)
            if found is not None:
                rows.append(found[2])
                labels.append(int(found[0] == own))
            found = matcher.features(texts[row], sims, owners == own)
            if found is not None:
                rows.append(found[2])
                labels.append(0)
    return np.array(rows, dtype=np.float64), np.array(labels, dtype=np.int64)


def fit(cards: Sequence[Card], embedder: Embedder) -> tuple[MatchModel, CardMatcher]:
    placeholder = MatchModel(coef=(0.0,) * len(FEATURES), intercept=0.0, threshold=1.0, meta={})
    store = VectorStore.empty()  # encodes each text once; the second matcher reuses them
    matcher = CardMatcher(cards, embedder, placeholder, store)
    x, y = training_examples(matcher)
    regression = LogisticRegression(C=1.0, max_iter=2000)
    regression.fit(x, y)
    model = MatchModel(
        coef=tuple(round(float(c), 6) for c in regression.coef_[0]),
        intercept=round(float(regression.intercept_[0]), 6),
        threshold=1.0,  # set by ``calibrate``
        meta={
            "embedder": embedder.key,
            "cards": len(cards),
            "cards_sha256": cards_digest(cards),
            "examples": len(y),
            "right_matches": int(y.sum()),
            "features": list(FEATURES),
        },
    )
    return model, CardMatcher(cards, embedder, model, store)


def save(model: MatchModel, matcher: CardMatcher, path: Path, files_sha256: str) -> None:
    """Write the artefact ``bot.agent.card_match.read_artefact`` reads; ``files_sha256``:
    the digest of the card files the cards were read from."""
    model = dataclasses.replace(model, meta={**model.meta, "files_sha256": files_sha256})
    header: dict[str, Any] = {
        "coef": list(model.coef),
        "intercept": model.intercept,
        "threshold": model.threshold,
        "meta": model.meta,
    }
    keys = [text_key(t) for t in matcher._texts]
    unique = dict(zip(keys, matcher._matrix, strict=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        np.savez_compressed(
            handle,
            header=np.array(json.dumps(header, ensure_ascii=False)),
            keys=np.array(list(unique)),
            vectors=np.stack(list(unique.values())).astype(np.float16),
            cards=np.frombuffer(CARD_LIST.dump_json(matcher.cards), dtype=np.uint8),
        )


def calibrate(
    kb: KnowledgeBase, settings: Settings, matcher: CardMatcher, items: Sequence[AnswerItem]
) -> tuple[float, list[dict[str, Any]]]:
    """The lowest threshold that answers the most development questions correctly, and a
    row per candidate threshold (for the report)."""
    documents_only = Agent(kb, settings.model_copy(update={"answer_cards": False}))
    fitted = matcher.model
    matcher.model = dataclasses.replace(fitted, threshold=0.0)
    every_card = Agent(kb, settings, cards=matcher)
    pairs = [(run_item(documents_only, item), run_item(every_card, item)) for item in items]
    matcher.model = fitted
    rows: list[dict[str, Any]] = []
    best = (-1, 1.0)
    for threshold in [round(0.05 * i, 2) for i in range(20, 1, -1)]:
        correct = 0
        used = 0
        for plain, carded in pairs:
            use = carded.reply.composer in ("card", "calculator")
            use = use and carded.reply.confidence >= threshold
            used += use
            correct += (carded if use else plain).correct
        rows.append({"threshold": threshold, "correct": correct, "cards": used})
        # from 1.0 down: a tie goes to the lower threshold, because a card is a vetted,
        # direct answer and the development set cannot tell the two paths apart there
        if correct >= best[0]:
            best = (correct, threshold)
    return best[1], rows
