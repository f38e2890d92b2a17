"""The training commands (``gradguide train-guard``, ``train-cards``, ``train-lead``) and the
message-check report tables they and ``bench/guard.py`` print. The fitting code needs the
``train`` extra (scikit-learn) and is imported only when a command runs."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from rich.console import Console
from rich.table import Table

from bot.agent import card_match, lead_rank
from bot.agent.evaluation import AnswerItem, load_items
from bot.agent.guard import LABELS, MODEL_PATH, PINYIN_TABLE, write_pinyin_table
from bot.agent.guard_eval import GuardReport, confusion_rows
from bot.components.embeddings import UseM3Embedder
from bot.errors import ConfigError
from bot.kb.cards import Card, files_digest, load_cards
from bot.kb.service import KnowledgeBase
from bot.settings import Settings


def guard_tables(report: GuardReport, title: str) -> list[Table]:
    """A message-check report as tables (also printed by bench/guard.py): the headline
    figures overall and per language, then the confusion matrix."""
    figures = Table(title=title)
    names = ("crisis R", "kind", "human R", "human P", "declined", "illegal R", "scope R")
    more = ("injection R", "false crisis/handoff", "false decline")
    for column in ("group", "n", *names, *more):
        figures.add_column(column, justify="left" if column == "group" else "right")
    groups = [("all", report)] + [
        (lang, report.subset(lang)) for lang in ("zh", "en", "mixed", "pinyin")
    ]
    for name, part in groups:
        if not part.outcomes:
            continue
        s = part.summary()
        values = (
            s["crisis_recall"],
            s["crisis_kind_accuracy"],
            s["human_recall"],
            s["human_precision"],
            s["declined"],
            s["illegal_recall"],
            s["out_of_scope_recall"],
            s["injection_recall"],
            s["false_crisis_or_handoff"],
            s["false_decline"],
        )
        cells = ["—" if v != v else f"{v:.3f}" for v in values]  # NaN: no such messages
        figures.add_row(name, str(len(part.outcomes)), *cells)
    matrix = Table(title="Confusion (rows: truth, columns: decided)")
    matrix.add_column("truth")
    for label in LABELS:
        matrix.add_column(label.value.replace("_", " "), justify="right")
    for row in confusion_rows(report):
        matrix.add_row(*row)
    return [figures, matrix]


def _trainer(name: str) -> ModuleType:
    """``bot.agent.<name>``, which needs the training extra."""
    try:
        return importlib.import_module(f"bot.agent.{name}")
    except ImportError as exc:
        raise ConfigError(
            f"training needs scikit-learn: pip install 'gradguide[train]' ({exc})"
        ) from exc


def _training_inputs(
    settings: Settings, err: Console, dev_sets: Sequence[str]
) -> tuple[list[Card], list[AnswerItem]] | None:
    """The answer cards (``None`` after printing their errors) and the development items."""
    cards, errors = load_cards(settings.knowledge_dir)
    for error in errors:
        err.print(str(error), markup=False, highlight=False)
    if errors:
        return None
    eval_dir = Path(__file__).resolve().parent.parent / "tests" / "eval"
    return cards, [item for name in dev_sets for item in load_items(eval_dir / name)]


@contextmanager
def _fresh_kb(settings: Settings, prefix: str) -> Iterator[tuple[KnowledgeBase, Settings]]:
    """The knowledge folder ingested into a throw-away embedded index (training never
    touches the running one)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        local = settings.model_copy(update={"data_dir": Path(tmp), "chroma_url": None})
        kb = KnowledgeBase.open(local)
        kb.ingest([local.knowledge_dir])
        yield kb, local


def train_cards(args: argparse.Namespace, settings: Settings, out: Console, err: Console) -> int:
    """Fit the card match model on the cards, calibrate its threshold on the development
    answer sets over a fresh index of the knowledge folder, and write ``card_data/``."""
    card_train = _trainer("card_train")
    inputs = _training_inputs(settings, err, card_train.DEV_SETS)
    if inputs is None:
        return 1
    cards, items = inputs
    with _fresh_kb(settings, "gg-train-cards-") as (kb, local):
        model, matcher = card_train.fit(cards, kb.embedder)
        threshold, rows = card_train.calibrate(kb, local, matcher, items)
    model = dataclasses.replace(model, threshold=threshold)
    grid = Table(title=f"Card threshold on {len(items)} development questions")
    for column in ("threshold", "answered correctly", "by a card"):
        grid.add_column(column, justify="right")
    for row in rows:
        grid.add_row(f"{row['threshold']:.2f}", str(row["correct"]), str(row["cards"]))
    out.print(grid)
    out.print(f"{len(cards)} cards; match model {model.meta}; threshold {threshold}")
    if not args.check:
        card_train.save(
            model, matcher, card_match.ARTEFACT, files_digest(settings.knowledge_dir / "cards")
        )
        out.print(f"wrote {card_match.ARTEFACT}")
    return 0


def train_lead(args: argparse.Namespace, settings: Settings, out: Console, err: Console) -> int:
    """Fit the lead ranker on the answer cards over a fresh index of the knowledge folder
    and write ``lead_data/lead.json``."""
    lead_train = _trainer("lead_train")
    inputs = _training_inputs(settings, err, lead_train.DEV_SETS)
    if inputs is None:
        return 1
    cards, items = inputs
    with _fresh_kb(settings, "gg-train-lead-") as (kb, _):
        model, report = lead_train.fit(kb, cards, items)
    grid = Table(title="Lead sentence ranked first (held out: every fifth card and item)")
    for column in ("held out", "questions", "learned model", "former hand weights"):
        grid.add_column(column, justify="right")
    grid.add_row(
        "card and item questions",
        str(report["held_out_questions"]),
        f"{report['held_out_top1_learned']:.3f}",
        f"{report['held_out_top1_hand_weights']:.3f}",
    )
    grid.add_row(
        "development items only",
        str(report["held_out_items"]),
        f"{report['held_out_items_top1_learned']:.3f}",
        f"{report['held_out_items_top1_hand_weights']:.3f}",
    )
    out.print(grid)
    out.print(f"weights: {dict(zip(model.to_json()['features'], model.weights, strict=True))}")
    if not args.check:
        model.save(lead_rank.ARTEFACT)
        out.print(f"wrote {lead_rank.ARTEFACT}")
    return 0


def train_guard(args: argparse.Namespace, settings: Settings, out: Console) -> int:
    guard_train = _trainer("guard_train")
    encoder = UseM3Embedder(settings.data_dir / "cache")
    cache = guard_train.EmbeddingCache(
        encoder.embed_documents, settings.data_dir / "cache" / "guard-embeddings.npz"
    )
    target = None if args.check else (args.out or MODEL_PATH)
    fitted = guard_train.train(args.data or guard_train.DATA_DIR, target, cache)
    cache.save()  # the next fit (other settings, new data) re-encodes only new texts
    meta = fitted.weights.meta
    out.print(f"trained on {meta['data']} (sha256 {meta['data_sha256']})")
    out.print(f"thresholds: {fitted.weights.thresholds}")
    for table in guard_tables(fitted.report["dev"], "Message check — development set"):
        out.print(table)
    if target is not None:
        out.print(f"wrote {target}")
    if target == MODEL_PATH:
        out.print(f"wrote {PINYIN_TABLE} ({write_pinyin_table()} characters)")
    return 0
