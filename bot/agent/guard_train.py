"""Fitting the message check (``gradguide train-guard``): data in, ``guard.npz`` out.

Reproducible: the same data, encoder and settings give the same model (the optimiser is
deterministic; the training set is read in file order). Needs scikit-learn
(``pip install 'gradguide[train]'``); the fitted model needs only numpy.

1. Read the training files (``train_*.jsonl``) and the development set (``dev.jsonl``).
2. Features: the sparse character / word / pinyin n-grams seen in at least ``min_df``
   training messages, each message's set scaled to unit length; and the encoder's sentence
   embedding, scaled by ``dense_scale``.
3. A multinomial logistic regression with balanced class weights.
4. Thresholds on the development set, recall first: the crisis threshold is the highest
   that still catches every crisis of the development set (times ``crisis_margin``, for
   phrasings beyond it); each other class's threshold minimises misses plus
   ``false_alarm_cost`` × false alarms; whether a crisis also carries a question (the
   counsellor's card) minimises ``also_miss_cost`` × missed questions plus false hints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from bot.agent.guard import (
    CRISIS,
    DECISION_ORDER,
    LABELS,
    SENTENCE_CLASSES,
    Encode,
    Guard,
    GuardWeights,
    Label,
    Pinyin,
    Scores,
    clauses,
    feature_names,
    lexicon,
    syllable_inventory,
    to_pinyin,
)
from bot.agent.guard_eval import Example, classify_all, read_examples
from bot.errors import ConfigError


@dataclass
class TrainConfig:
    c: float = 6.0
    """Inverse regularisation strength of the regression."""
    min_df: int = 2
    dense_scale: float = 1.0
    crisis_margin: float = 0.90
    """The crisis threshold is the development set's weakest crisis score times this: fresh
    blind sets have held crises up to ~8 % below it (blind_16's threatened warehouse keeper,
    0.291 against 0.3095), and a missed crisis costs more than a false alarm."""
    false_alarm_cost: float = 3.0
    use_embeddings: bool = True
    pinyin_every: int = 3
    """Every n-th Chinese training message is also learnt as typed in pinyin (a graduate
    without a Chinese keyboard): the words and the encoder's view of pinyin text."""
    balanced: bool = False
    """Weigh the classes equally (else by how often they occur in the training data)."""
    also_miss_cost: float = 2.0
    """For "a crisis that also carries a question" (the card's second line): a question the
    counsellor is not told about costs this many false hints. Few development crises carry
    one, so at equal costs the threshold would never show it."""


class EmbeddingCache:
    """Sentence embeddings of training texts, kept on disk by text hash (re-fitting with
    other settings does not re-encode).

    New rows are encoded in batches of similar length (less padding) and written to disk
    only by ``save()``: writing the whole file after every single new text made a fresh
    training run spend most of its eight minutes compressing the same rows again."""

    def __init__(self, encode: Encode, path: Path | None) -> None:
        self._encode = encode
        self._path = path
        self._rows: dict[str, NDArray[np.float32]] = {}
        self._dirty = False
        if path is not None and path.exists():
            with np.load(path, allow_pickle=False) as data:
                keys = [str(k) for k in data["keys"]]
                self._rows = dict(zip(keys, data["vectors"], strict=True))

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def __call__(self, texts: list[str]) -> NDArray[np.float32]:
        missing = sorted({t for t in texts if self.key(t) not in self._rows}, key=len)
        for start in range(0, len(missing), 64):
            batch = missing[start : start + 64]
            for text, vector in zip(batch, self._encode(batch), strict=True):
                self._rows[self.key(text)] = np.asarray(vector, dtype=np.float32)
        self._dirty = self._dirty or bool(missing)
        return np.stack([self._rows[self.key(t)] for t in texts])

    def save(self) -> None:
        """Write the rows to disk (when any were added since loading)."""
        if not self._dirty or self._path is None or not self._rows:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        partial = self._path.with_suffix(f".{os.getpid()}.tmp")
        with partial.open("wb") as handle:
            np.savez(
                handle,
                keys=np.array(list(self._rows)),
                vectors=np.stack(list(self._rows.values())),
            )
        partial.replace(self._path)
        self._dirty = False


@dataclass
class Fitted:
    guard: Guard
    weights: GuardWeights
    report: dict[str, Any] = field(default_factory=dict)


def pinyin_renderings(examples: Sequence[Example], every: int) -> list[Example]:
    """Chinese messages rewritten in toneless pinyin, one in ``every``, in file order."""
    chinese = [e for e in examples if e.lang == "zh"]
    out = []
    for example in chinese[::every] if every else []:
        out.append(
            dataclasses.replace(example, text=to_pinyin(example.text), lang="pinyin", source="")
        )
    return out


def _sparse_matrix(texts: Sequence[str], vocabulary: dict[str, int], pinyin: Pinyin) -> Any:
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for r, text in enumerate(texts):
        ids = sorted(vocabulary[n] for n in feature_names(text, pinyin) if n in vocabulary)
        for i in ids:
            rows.append(r)
            cols.append(i)
            vals.append(1.0 / np.sqrt(len(ids)))
    return sparse.csr_matrix((vals, (rows, cols)), shape=(len(texts), len(vocabulary)))


def fit(
    train: Sequence[Example],
    dev: Sequence[Example],
    encode: Encode | None,
    config: TrainConfig | None = None,
) -> Fitted:
    config = config or TrainConfig()
    pinyin = Pinyin(syllable_inventory())
    train = [*train, *pinyin_renderings(train, config.pinyin_every)]
    counts: Counter[str] = Counter()
    for example in train:
        counts.update(feature_names(example.text, pinyin))
    terms = sorted(t for t, n in counts.items() if n >= config.min_df)
    vocabulary = {t: i for i, t in enumerate(terms)}
    texts = [e.text for e in train]
    x = _sparse_matrix(texts, vocabulary, pinyin)
    use_dense = config.use_embeddings and encode is not None
    if use_dense:
        assert encode is not None
        dense = encode(texts).astype(np.float64) * config.dense_scale
        x = sparse.hstack([x, sparse.csr_matrix(dense)]).tocsr()
    y = np.array([LABELS.index(e.label) for e in train])
    weighting = "balanced" if config.balanced else None
    model = LogisticRegression(
        C=config.c, max_iter=5000, tol=1e-6, solver="lbfgs", class_weight=weighting
    )
    model.fit(x, y)
    # every class is in the data, so the coefficients have a row per label
    coef = np.asarray(model.coef_, dtype=np.float32).T  # (features, classes)
    weights = GuardWeights(
        vocabulary=vocabulary,
        sparse=coef[: len(vocabulary)],
        dense=coef[len(vocabulary) :] if use_dense else None,
        bias=np.asarray(model.intercept_, dtype=np.float32),
        thresholds={},
        syllables=sorted(pinyin.syllables),
        meta={},
        dense_scale=config.dense_scale,
    )
    guard = Guard(weights, encode if use_dense else None)
    sentence_texts, sentence_labels = sentence_examples(guard, train)
    xs = _sparse_matrix(sentence_texts, vocabulary, pinyin)
    sentence_model = LogisticRegression(
        C=config.c, max_iter=5000, tol=1e-6, solver="lbfgs", class_weight=weighting
    )
    sentence_model.fit(xs, np.array([LABELS.index(label) for label in sentence_labels]))
    weights.sentence_sparse = np.asarray(sentence_model.coef_, dtype=np.float32).T
    weights.sentence_bias = np.asarray(sentence_model.intercept_, dtype=np.float32)
    guard = Guard(weights, encode if use_dense else None)
    weights.thresholds = choose_thresholds(guard, dev, config)
    guard = Guard(weights, encode if use_dense else None)
    return Fitted(guard, weights)


def sentence_examples(guard: Guard, train: Sequence[Example]) -> tuple[list[str], list[Label]]:
    """The sentence model's training data (see ``bot.agent.guard``): a one-sentence message
    keeps its label; in a longer message of a class a sentence can decide, the sentence the
    message model finds most like that class carries it and the others are ordinary; the
    sentences of other messages keep the message's label."""
    texts: list[str] = []
    labels: list[Label] = []
    split = [(example, list(dict.fromkeys(clauses(example.text)))) for example in train]
    # the message model reads every carrier's sentences in one batch (one encoder pass)
    decided = [len(parts) >= 2 and example.label in SENTENCE_CLASSES for example, parts in split]
    batch = [part for (_, parts), d in zip(split, decided, strict=True) if d for part in parts]
    table = guard.probabilities(batch) if batch else np.zeros((0, len(LABELS)))
    start = 0
    for (example, parts), carries in zip(split, decided, strict=True):
        if len(parts) < 2:
            texts.append(example.text)
            labels.append(example.label)
            continue
        if not carries:
            texts.extend(parts)
            labels.extend([example.label] * len(parts))
            continue
        probs = table[start : start + len(parts)]
        start += len(parts)
        columns = (
            [LABELS.index(label) for label in CRISIS]
            if example.label in CRISIS
            else [LABELS.index(example.label)]
        )
        carrier = int(probs[:, columns].sum(axis=1).argmax())
        for i, part in enumerate(parts):
            texts.append(part)
            labels.append(example.label if i == carrier else Label.ORDINARY)
    return texts, labels


def choose_thresholds(
    guard: Guard, dev: Sequence[Example], config: TrainConfig
) -> dict[str, float]:
    """Recall first for crises; a cost-weighted choice for the others (see module doc)."""
    guard.probabilities([e.text for e in dev])  # one batch through the encoder (cached)
    scored = [(e, guard.scores(e.text)) for e in dev]
    thresholds: dict[str, float] = {}

    def value(label: Label, scores: Scores, part: str) -> float:
        if label in CRISIS:
            return scores.crisis(part)
        return (scores.whole if part == "whole" else scores.sentence)[label]

    def is_(e: Example, label: Label) -> bool:
        return e.label in CRISIS if label in CRISIS else e.label is label

    # 1. a sentence decides alone only above every sentence score of the other classes
    for label in (Label.SELF_HARM, Label.HUMAN, Label.ILLEGAL, Label.INJECTION):
        key = "crisis" if label is Label.SELF_HARM else label.value
        negatives = [
            value(label, s, "sentence") for e, s in scored if not is_(e, label) and s.parts > 1
        ]
        thresholds[f"{key}@sentence"] = round(max(0.5, max(negatives, default=0.5) + 0.001), 4)

    def caught_otherwise(e: Example, s: Scores, label: Label) -> bool:
        key = "crisis" if label in CRISIS else label.value
        named = bool(lexicon(e.text) & CRISIS) if label in CRISIS else False
        return named or value(label, s, "sentence") >= thresholds.get(f"{key}@sentence", 1.0)

    # 2. the crisis threshold: every development crisis is caught
    crisis = [
        s.crisis("whole")
        for e, s in scored
        if e.label in CRISIS and not caught_otherwise(e, s, Label.SELF_HARM)
    ]
    lowest = min(crisis, default=0.5) * config.crisis_margin
    thresholds["crisis"] = math.floor(lowest * 10_000) / 10_000  # at or below every one

    # 3. the other classes: fewest misses + cost × false alarms
    candidates = [round(float(t), 3) for t in np.linspace(0.05, 0.95, 91)]
    for label in DECISION_ORDER:
        best = (float("inf"), 0.5)
        for t in candidates:
            misses = sum(
                1
                for e, s in scored
                if e.label is label and s.whole[label] < t and not caught_otherwise(e, s, label)
            )
            # a crisis is decided before any of these classes (and is caught on dev), so
            # a crisis that also scores high here is no false alarm
            alarms = sum(
                1
                for e, s in scored
                if e.label is not label and e.label not in CRISIS and s.whole[label] >= t
            )
            cost = misses + config.false_alarm_cost * alarms
            if cost < best[0]:
                best = (cost, t)
        thresholds[label.value] = best[1]

    # 4. which crises also carry a question a counsellor should see
    crises = [(e, s) for e, s in scored if e.label in CRISIS]
    best = (float("inf"), 0.5)
    for t in candidates:
        misses = sum(
            1 for e, s in crises if Label.ORDINARY in e.also and s.whole[Label.ORDINARY] < t
        )
        alarms = sum(
            1 for e, s in crises if Label.ORDINARY not in e.also and s.whole[Label.ORDINARY] >= t
        )
        if config.also_miss_cost * misses + alarms < best[0]:
            best = (config.also_miss_cost * misses + alarms, t)
    thresholds["also_ordinary"] = best[1]

    # 5. out of scope without asking the knowledge base: above every in-domain message
    in_domain = [s.whole[Label.OUT_OF_SCOPE] for e, s in scored if e.label is Label.ORDINARY]
    sure = max(in_domain, default=0.5) + 0.001
    thresholds["out_of_scope@sure"] = round(min(max(sure, thresholds["out_of_scope"]), 0.99), 4)
    return thresholds


DATA_DIR = Path(__file__).resolve().parents[2] / "tests" / "eval" / "guard"
"""The labelled messages: ``train_*.jsonl`` (fitting) and ``dev.jsonl`` (thresholds)."""


def data_files(data_dir: Path) -> tuple[list[Path], Path]:
    train = sorted(data_dir.glob("train_*.jsonl"))
    dev = data_dir / "dev.jsonl"
    if not train or not dev.exists():
        raise ConfigError(f"{data_dir}: needs train_*.jsonl and dev.jsonl")
    return train, dev


def _digest(paths: Sequence[Path]) -> str:
    sha = hashlib.sha256()
    for path in paths:
        sha.update(path.name.encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()[:16]


def train(
    data_dir: Path,
    out: Path | None,
    encode: Encode | None,
    config: TrainConfig | None = None,
) -> Fitted:
    """Fit on ``data_dir``, choose the thresholds, measure the development set, and (when
    ``out`` is given) write the model with its provenance and development figures."""
    config = config or TrainConfig()
    train_paths, dev_path = data_files(data_dir)
    train_set = read_examples(train_paths)
    dev_set = read_examples([dev_path])
    fitted = fit(train_set, dev_set, encode, config)
    report = classify_all(fitted.guard, dev_set)
    fitted.weights.meta = {
        "data": {p.name: len(read_examples([p])) for p in [*train_paths, dev_path]},
        "data_sha256": _digest([*train_paths, dev_path]),
        "encoder": "use-m3" if fitted.weights.dense is not None else None,
        "config": dataclasses.asdict(config),
        "dev": {k: round(v, 4) for k, v in report.summary().items()},
    }
    fitted.report = {"dev": report}
    if out is not None:
        fitted.weights.save(out)
    return fitted
