"""Fitting the lead ranker (``gradguide train-lead``): cards in, ``lead_data/lead.json`` out.

The training pairs are (question → the sentence that answers it) from the answer cards: every
card's standard question and variants, in the language of each document its evidence quotes,
are asked of the knowledge base; when retrieval finds that document, the composer measures
all its sentences (``ExtractiveComposer.measure``) and the sentences carrying the quote are the
positives. A logistic regression over ``bot.agent.lead_rank.FEATURES`` is fitted to them.

The report compares, on the cards held out (every fifth card, by id), how often the learned
model and the former hand-set weights put a quoted sentence first; then the model is refitted
on every card. Reproducible: the same cards and documents give the same model. Needs
scikit-learn (``pip install 'gradguide[train]'``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize

from bot.agent.compose import ExtractiveComposer
from bot.agent.evaluation import AnswerItem, has_facts
from bot.agent.lead_rank import FEATURES, Candidate, HandWeights, LeadModel
from bot.kb.cards import Card, comparable
from bot.kb.models import Lang
from bot.kb.service import KnowledgeBase
from bot.prompts import Messages

SEARCH_K = 8


@dataclass
class Group:
    """One question asked of one document: its sentences' features and which carry the quote."""

    card: str
    question: str
    features: list[Candidate]
    positive: list[bool]


def _bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1)}


def carries(sentence: str, quote: str) -> bool:
    """The sentence is (or contains, or is most of) the quoted evidence."""
    s, q = comparable(sentence), comparable(quote)
    if not s or not q:
        return False
    if q in s or (len(s) >= 8 and s in q):
        return True
    quoted = _bigrams(q)
    return bool(quoted) and len(quoted & _bigrams(s)) / len(quoted) >= 0.7


def groups(kb: KnowledgeBase, cards: Sequence[Card]) -> list[Group]:
    composer = ExtractiveComposer(kb.retriever, Messages.load(), _UNFITTED)
    languages: dict[str, Lang] = {d: doc.meta.lang for d, doc in kb.retriever.documents().items()}
    found: list[Group] = []
    for card in cards:
        for evidence in card.evidence:
            lang = languages.get(evidence.doc)
            if lang is None:
                continue
            asked = [card.question.zh if lang == "zh" else card.question.en]
            asked += card.variants.zh if lang == "zh" else card.variants.en
            for question in asked:
                hits = [
                    h
                    for h in kb.retriever.search(question, k=SEARCH_K, lang=lang)
                    if h.doc_id == evidence.doc
                ]
                if not hits:
                    continue  # the composer never sees this document for this question
                measured = composer.measure(question, hits)
                positive = [
                    carries(sentence, evidence.quote) for _, _, sentence, _ in measured.candidates
                ]
                if any(positive):
                    found.append(
                        Group(card.id, question, [c[0] for c in measured.candidates], positive)
                    )
    return found


DEV_SETS = (
    "answers.jsonl",
    "answers_holdout.jsonl",
    "answers_blind_1.jsonl",
    "answers_blind_2.jsonl",
    "answers_blind_3.jsonl",
    "answers_blind_4.jsonl",
    "answers_blind_5.jsonl",
)
"""Development answer sets (no longer blind: their failures were read): a question whose
opening paragraph must carry ``lead`` key facts teaches which sentence should open."""

ITEM_WEIGHT = 20.0
"""A graduate's question weighs this many card variants: a few hundred of them against
thousands of variants that were written beside the documents and so paraphrase the quoted
sentence (they overrate retrieval rank and word overlap against a document's structure)."""


def item_groups(kb: KnowledgeBase, items: Sequence[AnswerItem]) -> list[Group]:
    """(question → the sentences carrying its lead key facts) from one-turn development
    items, asked of the document retrieval ranks first in the question's language."""
    composer = ExtractiveComposer(kb.retriever, Messages.load(), _UNFITTED)
    found: list[Group] = []
    for item in items:
        if item.expect != "answer" or not item.lead or len(item.turns) != 1:
            continue
        lead = [item.key_facts[i] for i in item.lead if i < len(item.key_facts)]
        question = item.turns[0]
        hits = kb.retriever.search(question, k=SEARCH_K, lang=item.lang, lang_only=True)
        if not hits or not lead:
            continue
        measured = composer.measure(question, hits)
        positive = [has_facts(sentence, lead[:1]) for _, _, sentence, _ in measured.candidates]
        if any(positive) and not all(positive):
            found.append(
                Group(f"item:{item.id}", question, [c[0] for c in measured.candidates], positive)
            )
    return found


_UNFITTED = LeadModel(weights=(0.0,) * len(FEATURES), bias=0.0)


def hand_score(c: Candidate) -> float:
    """The composer's hand-set weights (for the report's comparison)."""
    return HandWeights().score(c)


def _held_out(card_id: str) -> bool:
    return int(hashlib.sha1(card_id.encode()).hexdigest(), 16) % 5 == 0


def _fit(train: Sequence[Group], l2: float = 1.0) -> LeadModel:
    """A conditional logit: within each question, a softmax over its document's sentences,
    fitted so the sentences carrying the answer get the probability (what "ranked first"
    needs; a per-sentence regression spends itself on the easy negatives). An
    ``ITEM_WEIGHT`` for development items; L2 regularisation ``l2``. The bias does not
    change a ranking: it is set so a question's best sentence scores about 0.5."""
    xs = [np.array([c.vector() for c in g.features], dtype=np.float64) for g in train]
    ys = [np.array(g.positive, dtype=np.bool_) for g in train]
    weights = np.array([ITEM_WEIGHT if g.card.startswith("item:") else 1.0 for g in train])
    weights = weights / weights.sum()
    x_all = np.vstack(xs)
    bounds = np.cumsum([0] + [len(x) for x in xs])
    pos_all = np.concatenate(ys)

    def loss(w: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        logits = x_all @ w
        total = 0.0
        grad = l2 * w / len(train)
        for i in range(len(xs)):
            z = logits[bounds[i] : bounds[i + 1]]
            top = z.max()
            p = np.exp(z - top)
            all_sum = p.sum()
            pos = pos_all[bounds[i] : bounds[i + 1]]
            pos_sum = p[pos].sum()
            total -= weights[i] * (np.log(pos_sum) - np.log(all_sum))
            block = x_all[bounds[i] : bounds[i + 1]]
            expected_all = (p / all_sum) @ block
            expected_pos = (p[pos] / pos_sum) @ block[pos]
            grad -= weights[i] * (expected_pos - expected_all)
        return total + 0.5 * l2 * float(w @ w) / len(train), grad

    result = minimize(loss, np.zeros(len(FEATURES)), jac=True, method="L-BFGS-B")
    w = result.x
    best = np.array([float((x @ w).max()) for x in xs])
    return LeadModel(
        weights=tuple(round(float(v), 6) for v in w),
        bias=round(-float(np.median(best)), 6),
    )


def top1(found: Sequence[Group], score: Any) -> float:
    """Share of questions whose best-scored sentence carries the quote (first on a tie)."""
    right = 0
    for group in found:
        scores = [score(c) for c in group.features]
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        right += group.positive[best]
    return right / len(found) if found else float("nan")


def fit(
    kb: KnowledgeBase, cards: Sequence[Card], items: Sequence[AnswerItem]
) -> tuple[LeadModel, dict[str, Any]]:
    """The model fitted on every card and development item, and the held-out comparison
    (every fifth card and item held out, by id)."""
    found = groups(kb, cards) + item_groups(kb, items)
    train = [g for g in found if not _held_out(g.card)]
    test = [g for g in found if _held_out(g.card)]
    test_items = [g for g in test if g.card.startswith("item:")]
    held = _fit(train)
    report = {
        "questions": len(found),
        "held_out_questions": len(test),
        "held_out_top1_learned": round(top1(test, held.score), 4),
        "held_out_top1_hand_weights": round(top1(test, hand_score), 4),
        "held_out_items": len(test_items),
        "held_out_items_top1_learned": round(top1(test_items, held.score), 4),
        "held_out_items_top1_hand_weights": round(top1(test_items, hand_score), 4),
    }
    final = _fit(found)
    meta = {**report, "cards": len(cards), "train_top1": round(top1(found, final.score), 4)}
    return LeadModel(final.weights, final.bias, meta), report
