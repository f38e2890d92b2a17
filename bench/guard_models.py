"""Does another setting of the message check's model rank crises above ordinary messages
better? A development experiment, not a blind measurement.

Usage:
    python bench/guard_models.py [--set tests/eval/guard/blind_13.jsonl]

Fits the message model (whole messages: n-grams, pinyin and the sentence embedding; no
sentence model, no lexicon beyond its crisis words) on ``train_*.jsonl`` in several settings,
chooses the crisis threshold on ``dev.jsonl`` as ``gradguide train-guard`` does (the lowest
development crisis score × 0.95), and prints for ``--set``: crisis recall and false crisis
alarms on ordinary messages at that threshold, and the false alarms a threshold would need to
catch every crisis of the set (how well the model ranks, whatever the threshold).
Needs scikit-learn; encodes the training texts once (cached under ``--cache``).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import sparse
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.agent import guard_train  # noqa: E402
from bot.agent.guard import (  # noqa: E402
    CRISIS,
    LABELS,
    Label,
    Pinyin,
    feature_names,
    lexicon,
    syllable_inventory,
)
from bot.agent.guard_eval import Example, read_examples  # noqa: E402
from bot.components.embeddings import UseM3Embedder  # noqa: E402

DATA = ROOT / "tests" / "eval" / "guard"
SETTINGS = (("C = 6 (shipped)", 6.0, 1.0), ("C = 2", 2.0, 1.0), ("C = 20", 20.0, 1.0))
SETTINGS += (("embedding ×2", 6.0, 2.0), ("embedding ×3", 6.0, 3.0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", type=Path, default=DATA / "blind_13.jsonl")
    parser.add_argument("--cache", type=Path, default=Path("data/cache"))
    args = parser.parse_args()
    encoder = UseM3Embedder(args.cache)
    cache = guard_train.EmbeddingCache(encoder.embed_documents, args.cache / "guard-embeddings.npz")
    train_paths, dev_path = guard_train.data_files(DATA)
    train = read_examples(train_paths)
    train = [*train, *guard_train.pinyin_renderings(train, 3)]
    dev, measured = read_examples([dev_path]), read_examples([args.set])
    pinyin = Pinyin(syllable_inventory())
    counts: Counter[str] = Counter()
    for example in train:
        counts.update(feature_names(example.text, pinyin))
    vocabulary = {t: i for i, t in enumerate(sorted(t for t, n in counts.items() if n >= 2))}

    def features(examples: list[Example], scale: float) -> sparse.csr_matrix:
        texts = [e.text for e in examples]
        grams = guard_train._sparse_matrix(texts, vocabulary, pinyin)
        dense = cache(texts).astype(np.float64) * scale
        return sparse.hstack([grams, sparse.csr_matrix(dense)]).tocsr()

    labels = np.array([LABELS.index(e.label) for e in train])
    crisis_columns = [LABELS.index(label) for label in CRISIS]
    table = Table(title=f"Crisis ranking — {args.set.name} (threshold from dev.jsonl)")
    for column in ("setting", "threshold", "crisis recall", "false alarms", "at recall 1.00"):
        table.add_column(column, justify="right")
    for name, c, scale in SETTINGS:
        model = LogisticRegression(C=c, max_iter=5000, tol=1e-6)
        model.fit(features(train, scale), labels)
        cache.save()
        dev_scores = model.predict_proba(features(dev, scale))[:, crisis_columns].sum(axis=1)
        set_scores = model.predict_proba(features(measured, scale))[:, crisis_columns].sum(axis=1)
        threshold = 0.95 * min(
            s
            for s, e in zip(dev_scores, dev, strict=True)
            if e.label in CRISIS and not lexicon(e.text) & CRISIS
        )
        named = np.array([bool(lexicon(e.text) & CRISIS) for e in measured])
        crisis = np.array([e.label in CRISIS for e in measured])
        ordinary = np.array([e.label is Label.ORDINARY for e in measured])
        flagged = (set_scores >= threshold) | named
        lowest = set_scores[crisis & ~named].min()
        table.add_row(
            name,
            f"{threshold:.3f}",
            f"{flagged[crisis].mean():.3f}",
            f"{flagged[ordinary].mean():.3f}",
            f"{((set_scores >= lowest) | named)[ordinary].mean():.3f}",
        )
    Console(width=120).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
