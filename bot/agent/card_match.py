"""Matching a graduate's question to an answer card (``bot.kb.cards``).

Every card's standard question and variants, in both languages, are embedded once; a question
is compared with all of them and each card scores its best text. The best card is accepted
when a small fitted model says it is the card that answers the question: a logistic
regression over three features of that best card,

- ``dense``: the cosine similarity of the question and the card's closest text;
- ``lexical``: the overlap of the question with the card's closest text in words (Dice over
  Chinese character pairs and English words), which tells apart cards the encoder sees as
  one topic ("试用期最长多久" and "试用期工资最低多少");
- ``margin``: how far the best card is ahead of the second (two near-equal cards mean the
  question sits between them).

The model is fitted by ``gradguide train-cards`` (``bot.agent.card_train``) on the cards
themselves, and shipped with the vectors of the bundled cards in ``card_data/``: a card's
text not found there (an admin's new or changed card) is encoded once at start and cached
under the data directory. The model is fitted to one encoder's similarities: with another
embedding model configured, cards are not used (the document path answers) until
``gradguide train-cards`` is run with it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bot.components.embeddings import Embedder
from bot.errors import ConfigError
from bot.kb.cards import CARD_LIST, LANGS, Card, files_digest, is_curated, read_cards
from bot.settings import Settings

logger = logging.getLogger(__name__)

ARTEFACT = Path(__file__).resolve().parent / "card_data" / "cards-use-m3.npz"
FEATURES = ("dense", "lexical", "margin")

_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "i",
        "my",
        "me",
        "is",
        "are",
        "be",
        "to",
        "of",
        "in",
        "on",
        "for",
        "and",
        "or",
        "do",
        "does",
        "can",
        "it",
        "what",
        "how",
    ]
)


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


def lexical_units(text: str) -> frozenset[str]:
    """Chinese character pairs (single characters for a one-character run) and English
    words other than the commonest function words."""
    lowered = text.lower()
    units: set[str] = set()
    for run in _CJK_RUN.findall(lowered):
        if len(run) == 1:
            units.add(run)
        units.update(run[i : i + 2] for i in range(len(run) - 1))
    units.update(w for w in _WORD.findall(lowered) if w not in _STOP)
    return frozenset(units)


def dice(a: frozenset[str], b: frozenset[str]) -> float:
    return 2 * len(a & b) / (len(a) + len(b)) if a and b else 0.0


@dataclass(frozen=True)
class MatchModel:
    """The fitted acceptance model: ``P(right card) = σ(coef · features + intercept)``."""

    coef: tuple[float, ...]
    intercept: float
    threshold: float
    meta: dict[str, Any]

    def probability(self, features: Sequence[float]) -> float:
        z = self.intercept + sum(c * f for c, f in zip(self.coef, features, strict=True))
        return float(1 / (1 + np.exp(-z)))


@dataclass(frozen=True)
class CardMatch:
    card: Card
    probability: float
    features: tuple[float, ...]
    text: str
    """The card's text the question was closest to."""


def card_texts(card: Card) -> list[str]:
    """What a question is compared with: the standard question and variants, both languages."""
    texts: list[str] = []
    for lang in LANGS:
        texts.append(card.question.get(lang))
        texts.extend(card.variants.get(lang))
    return list(dict.fromkeys(texts))


class VectorStore:
    """Card text vectors by text hash: the shipped ones (one float16 matrix), then a cache
    file under the data directory for texts encoded here."""

    def __init__(
        self, keys: Sequence[str], shipped: NDArray[np.float16], cache: Path | None
    ) -> None:
        self._index = {key: i for i, key in enumerate(keys)}
        self._shipped = shipped
        self._cache = cache
        self._cached: dict[str, NDArray[np.float32]] = {}
        if cache is not None and cache.exists():
            try:
                with np.load(cache, allow_pickle=False) as data:
                    rows = zip((str(k) for k in data["keys"]), data["vectors"], strict=True)
                    self._cached = dict(rows)
            except (OSError, KeyError, ValueError):
                self._cached = {}  # a damaged cache is rebuilt

    @classmethod
    def empty(cls) -> VectorStore:
        return cls([], np.zeros((0, 1), dtype=np.float16), None)

    def vectors(self, texts: Sequence[str], embedder: Embedder) -> NDArray[np.float32]:
        known = self._index.keys() | self._cached.keys()
        missing = [t for t in dict.fromkeys(texts) if text_key(t) not in known]
        if missing:
            encoded = np.asarray(embedder.embed_documents(missing), dtype=np.float32)
            for text, row in zip(missing, encoded, strict=True):
                self._cached[text_key(text)] = row
            if self._cache is not None:
                self._cache.parent.mkdir(parents=True, exist_ok=True)
                keys = np.array(list(self._cached))
                with self._cache.open("wb") as handle:
                    np.savez(handle, keys=keys, vectors=np.stack(list(self._cached.values())))
        dim = self._shipped.shape[1] if self._index else len(next(iter(self._cached.values())))
        matrix = np.empty((len(texts), dim), dtype=np.float32)
        for row, text in enumerate(texts):
            key = text_key(text)
            shipped = self._index.get(key)
            matrix[row] = self._shipped[shipped] if shipped is not None else self._cached[key]
        return matrix


@dataclass(frozen=True)
class Artefact:
    """What ``gradguide train-cards`` writes: the match model, the vectors of the card texts
    (by text hash), and the cards themselves with the hash of the files they came from."""

    model: MatchModel
    keys: list[str]
    vectors: NDArray[np.float16]
    cards_json: bytes
    files_sha256: str


def read_artefact(path: Path) -> Artefact | None:
    """The trained artefact, or None if the file is absent."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            keys = [str(k) for k in data["keys"]]
            vectors = np.asarray(data["vectors"], dtype=np.float16)
            cards_json = data["cards"].tobytes() if "cards" in data else b"[]"
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"cannot read the card model {path}: {exc}") from exc
    model = MatchModel(
        coef=tuple(float(c) for c in header["coef"]),
        intercept=float(header["intercept"]),
        threshold=float(header["threshold"]),
        meta=dict(header.get("meta", {})),
    )
    return Artefact(model, keys, vectors, cards_json, str(model.meta.get("files_sha256", "")))


class CardMatcher:
    """The cards in memory with their text vectors. Read-only after construction, so
    thread-safe."""

    def __init__(
        self,
        cards: Sequence[Card],
        embedder: Embedder,
        model: MatchModel,
        store: VectorStore,
    ) -> None:
        self.cards = list(cards)
        self.model = model
        self._embedder = embedder
        self._store = store
        owners: list[int] = []
        texts: list[str] = []
        for number, card in enumerate(self.cards):
            for text in card_texts(card):
                owners.append(number)
                texts.append(text)
        self._texts = texts
        self._owners = np.array(owners, dtype=np.int64)
        self._matrix = (
            store.vectors(texts, embedder) if texts else np.zeros((0, 1), dtype=np.float32)
        )
        self._by_id = {card.id: card for card in self.cards}
        self._curated = np.array([is_curated(card) for card in self.cards], dtype=np.bool_)
        self._topics = [frozenset(topic_of(d) for d in card.docs()) for card in self.cards]

    def __len__(self) -> int:
        return len(self.cards)

    def with_cards(self, extra: Sequence[Card]) -> CardMatcher:
        """A matcher over these cards and ``extra`` (the answers approved in the console):
        the same model, and only texts not seen before are encoded (once, then cached)."""
        return CardMatcher([*self.cards, *extra], self._embedder, self.model, self._store)

    def covers(self, topic: str) -> bool:
        """Some card rests on a document of ``topic`` (an id without its language suffix)."""
        return any(topic in topics for topics in self._topics)

    def get(self, card_id: str) -> Card | None:
        return self._by_id.get(card_id)

    def features(
        self,
        question: str,
        similarities: NDArray[np.float32],
        exclude: NDArray[np.bool_] | None = None,
        computes: Callable[[Card], bool] | None = None,
    ) -> tuple[int, int, tuple[float, ...]] | None:
        """(best card, its closest text, features) for ``similarities`` of one question with
        every card text (``exclude``: texts to leave out, for fitting). ``computes``: whether
        a card's calculator computes from the graduate's numbers; when the best card's does,
        cards with the same calculator do not count against it in ``margin`` (they answer
        with the same computed number: "工作4个月被辞退补偿多少" and "经济补偿怎么算" are
        one answer to "干了4个月，月薪6000，补偿多少")."""
        sims = similarities if exclude is None else np.where(exclude, -2.0, similarities)
        best = np.full(len(self.cards), -2.0, dtype=np.float32)
        np.maximum.at(best, self._owners, sims)
        order = np.argsort(-best)
        if len(order) == 0 or best[order[0]] <= -2.0:
            return None
        top = int(order[0])
        closest = self._closest(top, sims)
        calculator = self.cards[top].calculator
        if calculator is not None and (computes is None or not computes(self.cards[top])):
            calculator = None
        second = 0.0
        for other in (int(o) for o in order[1:]):
            if best[other] <= -2.0:
                break
            if calculator is not None and self.cards[other].calculator == calculator:
                continue  # the same calculation answers either
            if (self._curated[top] or self._curated[other]) and float(
                self._matrix[closest] @ self._matrix[self._closest(other, sims)]
            ) >= self.DUPLICATE:
                continue  # an approved answer to a question a library card also asks
            second = float(best[other])
            break
        rows = np.flatnonzero((self._owners == top) & (sims > -2.0))
        units = lexical_units(question)
        lexical = max(dice(units, lexical_units(self._texts[r])) for r in rows)
        dense = float(best[top])
        return top, closest, (dense, lexical, dense - second)

    DUPLICATE = 0.9
    """Two cards' closest texts at least this similar ask the same question. When one of
    them is an approved curated answer, the other does not count against it in ``margin``
    (an admin approved an answer to a question the library also covers: it is no sign that
    the question sits between two topics)."""

    def _closest(self, card: int, sims: NDArray[np.float32]) -> int:
        """The text of ``card`` most similar to the question."""
        rows = np.flatnonzero((self._owners == card) & (sims > -2.0))
        return int(rows[np.argmax(sims[rows])])

    def similarities(self, vector: NDArray[np.float32]) -> NDArray[np.float32]:
        sims: NDArray[np.float32] = self._matrix @ vector.reshape(-1).astype(np.float32)
        return sims

    def match(
        self,
        question: str,
        topics: Collection[str] | None = None,
        computes: Callable[[Card], bool] | None = None,
    ) -> CardMatch | None:
        """The card that answers ``question``, if the model accepts the best one.
        ``topics``: only the library's cards resting on these documents (ids without their
        language suffix: the documents retrieval ranked first for the question) compete;
        the answers approved in the console always do (an admin approved the answer for
        the question, whichever document retrieval prefers for it). ``computes``: see
        ``features``."""
        if not self.cards:
            return None
        exclude = None
        if topics is not None:
            wanted = set(topics)
            allowed = np.array(
                [bool(self._curated[i] or self._topics[i] & wanted) for i in range(len(self.cards))]
            )
            if not allowed.any():
                return None
            exclude = ~allowed[self._owners]
        vector = np.asarray(self._embedder.embed_query(question), dtype=np.float32)
        found = self.features(question, self.similarities(vector), exclude, computes)
        if found is None:
            return None
        top, closest, features = found
        probability = self.model.probability(features)
        if probability < self.model.threshold:
            return None
        return CardMatch(self.cards[top], probability, features, self._texts[closest])


def topic_of(doc_id: str) -> str:
    """A document id without its language suffix: ``probation-zh`` → ``probation``."""
    for suffix in ("-zh", "-en"):
        if doc_id.endswith(suffix):
            return doc_id[: -len(suffix)]
    return doc_id


def load_matcher(
    embedder: Embedder, settings: Settings, artefact: Path = ARTEFACT
) -> CardMatcher | None:
    """The cards of ``settings.knowledge_dir/cards`` ready to match (none, in a knowledge
    base without card files: the console's approved answers are added to it), or None when
    cards are off or no match model fits this embedding model. When the card files
    are the ones the artefact was trained on, their parsed copy in it is used (no YAML to
    read: a new process is ready in a few milliseconds); otherwise the files are read, a
    file with errors is reported in the log and its good cards are used, and texts the
    artefact has no vector for are encoded and cached under the data directory. A damaged
    artefact is reported in the log and every question is answered from the documents."""
    folder = settings.knowledge_dir / "cards"
    if not settings.answer_cards:
        return None
    try:
        trained = read_artefact(artefact)
    except ConfigError as exc:  # a damaged file: answer from the documents, say why
        logger.error("answer cards not used: %s", exc)
        return None
    if trained is None or trained.model.meta.get("embedder") != embedder.key:
        return None
    cards: list[Card] = []
    if any(folder.glob("*.yaml")):
        if trained.files_sha256 == files_digest(folder):
            cards = CARD_LIST.validate_json(trained.cards_json)
        else:
            cards, errors = read_cards(folder)
            for error in errors:
                logger.warning("answer card not used: %s", error)
    cache = settings.data_dir / "cache" / f"cards-{embedder.key}.npz"
    store = VectorStore(trained.keys, trained.vectors, cache)
    return CardMatcher(cards, embedder, trained.model, store)
