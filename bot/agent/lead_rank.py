"""Which sentence of a document answers the question: a learned ranker.

The extractive composer collects every sentence of the best document (with the words that
give it context: its heading, a list's lead-in, a table's header) and asks this model how
likely each one is the sentence that answers. The features are measurements, the weights
are fitted (``gradguide train-lead``, ``bot.agent.lead_train``) on the answer cards: each
card's questions and variants, asked of the document its evidence quotes, should pick the
quoted sentence. The model ships as ``lead_data/lead.json`` (a few hundred bytes).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from bot.errors import ConfigError

ARTEFACT = Path(__file__).resolve().parent / "lead_data" / "lead.json"

FEATURES: tuple[str, ...] = (
    "own",  # IDF-weighted share of the question's terms in the sentence
    "context",  # … in the sentence with its heading and lead-in
    "own_vs_best",  # ``own`` over the document's best ``own`` (1: no sentence matches more)
    "context_vs_best",  # idem for ``context``
    "heading",  # … in the section heading
    "fact",  # the sentence carries a figure (a number, a duration, an amount)
    "opening",  # the first sentence of its section (documents answer first)
    "position",  # how far into its chunk (0 first … 1 tenth or later)
    "shape",  # shaped like the answer the question asks for ("多久" → a duration)
    "no_shape",  # the question asks for a shape and the sentence has none
    "section_retrieved",  # retrieval's best rank of a chunk of the sentence's section (1 first)
    "chunk_dense",  # the encoder's similarity of the question and the sentence's chunk
    "table_row",  # a table row read with its header
    "list_item",  # an item of a list (with its lead-in)
    "length",  # log length of the sentence
    "modal_for_yes_no",  # a yes/no question and a sentence that rules (不得, must, may)
    "sentence_dense",  # the encoder's similarity of the question and the sentence itself
)

_YES_NO = re.compile(
    r"(?:吗|么|是否|能不能|可不可以|可以不|行不行|算不算|合不合法|合法不|有没有|会不会)"
    r"[？?。!！\s]*$|合法吗|违法吗|能不能|可不可以|要不要|算不算|合不合法|^(?:is|are|can|could|do|does|did|may|must|should|will|would|"
    r"has|have)\b|\b(?:is (?:it|that|this) (?:legal|allowed|ok|okay))\b",
    re.IGNORECASE,
)
_MODAL = re.compile(
    r"不得|不能|不可以|不应|应当|必须|可以|有权|无权|禁止|违法|合法|无效|"
    r"\b(?:must|may|may not|cannot|can't|can|shall|not allowed|illegal|unlawful|invalid|"
    r"entitled|has the right|have the right)\b",
    re.IGNORECASE,
)


def is_yes_no(question: str) -> bool:
    """A question answered by yes or no ("合法吗？", "Can they do that?")."""
    return bool(_YES_NO.search(question.strip()))


def rules(sentence: str) -> bool:
    """The sentence says what may, must or may not be done."""
    return bool(_MODAL.search(sentence))


@dataclass(frozen=True)
class Candidate:
    """What the ranker sees of one sentence (measured by the composer)."""

    own: float
    context: float
    heading: float
    fact: bool
    opening: bool
    position: int
    shape: bool
    asks_shape: bool
    retrieved_rank: int | None
    """Not a feature: chunk boundaries are arbitrary, and with it the model learnt to prefer
    whatever sentence opens the best-ranked chunk over the sentence that opens the section
    (measured: "How long can probation last?" led with an example). The section's rank is."""
    section_rank: int | None
    chunk_dense: float
    table_row: bool
    list_item: bool
    length: int
    yes_no: bool
    modal: bool
    best_own: float = 0.0
    """The highest ``own`` among the document's sentences (set once all are measured)."""
    best_context: float = 0.0
    sentence_dense: float = 0.0

    def vector(self) -> list[float]:
        return [
            self.own,
            self.context,
            self.own / self.best_own if self.best_own else 0.0,
            self.context / self.best_context if self.best_context else 0.0,
            self.heading,
            float(self.fact),
            float(self.opening),
            min(self.position, 10) / 10,
            float(self.shape),
            float(self.asks_shape and not self.shape),
            0.0 if self.section_rank is None else 1.0 / (1 + self.section_rank),
            self.chunk_dense,
            float(self.table_row),
            float(self.list_item),
            math.log1p(self.length) / 6,
            float(self.yes_no and self.modal),
            self.sentence_dense,
        ]


class LeadScorer(Protocol):
    reads_similarity: ClassVar[bool]
    """Whether ``score`` reads ``Candidate.sentence_dense`` (the composer embeds the
    document's sentences only for a scorer that does)."""

    answers_alone: ClassVar[float | None]
    """The score at which a sentence answers the question by itself (a probability of 0.5
    for the learned ranker); None for a scale that says nothing of the kind."""

    def score(self, candidate: Candidate) -> float: ...


class HandWeights:
    """The composer's hand-set weights (measured on tests/eval/answers.jsonl): word overlap,
    with the sentence's context and heading, a figure, a section's opening sentence, an
    earlier position and the answer shape the question asks for."""

    reads_similarity: ClassVar[bool] = False
    answers_alone: ClassVar[float | None] = None

    def score(self, candidate: Candidate) -> float:
        c = candidate
        score = 0.4 * c.own + 0.6 * c.context + 0.3 * c.heading
        score += (0.08 if c.fact else 0.0) + (0.1 if c.opening else 0.0) - 0.02 * c.position
        return score + (0.25 if c.shape else 0.0)


def lead_scorer(kind: str) -> LeadScorer:
    """``hand`` or ``learned`` (the shipped ``lead_data/lead.json``)."""
    return LeadModel.load() if kind == "learned" else HandWeights()


@dataclass(frozen=True)
class LeadModel:
    """A linear model over ``FEATURES``: ``score`` is the probability that the sentence
    answers the question."""

    weights: tuple[float, ...]
    bias: float
    meta: Mapping[str, Any] = field(default_factory=dict)
    reads_similarity: ClassVar[bool] = True
    answers_alone: ClassVar[float | None] = 0.5

    def __post_init__(self) -> None:
        if len(self.weights) != len(FEATURES):
            raise ConfigError(
                f"lead model has {len(self.weights)} weights for {len(FEATURES)} features: "
                "run `gradguide train-lead`"
            )

    def score(self, candidate: Candidate) -> float:
        logit = self.bias + sum(
            w * x for w, x in zip(self.weights, candidate.vector(), strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit))))

    def to_json(self) -> dict[str, Any]:
        return {
            "features": list(FEATURES),
            "weights": [round(w, 6) for w in self.weights],
            "bias": round(self.bias, 6),
            "meta": dict(self.meta),
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_json(), ensure_ascii=False, indent=1, sort_keys=True)
        path.write_text(text + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = ARTEFACT) -> LeadModel:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if list(data["features"]) != list(FEATURES):
                raise ConfigError(
                    f"{path}: fitted to other features ({data['features']}): "
                    "run `gradguide train-lead`"
                )
            return cls(
                weights=tuple(float(w) for w in data["weights"]),
                bias=float(data["bias"]),
                meta=data.get("meta", {}),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: unreadable lead model ({exc})") from exc
