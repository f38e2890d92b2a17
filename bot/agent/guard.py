"""The message check that runs before retrieval: a classifier fitted to labelled messages.

Every message a graduate sends is classified into one of eight classes (``Label``): three
kinds of crisis (self-harm, violence, being confined or coerced), a request for a person, a
request to do something illegal, a question outside graduate employment, an attempt to change
the bot (prompt injection), or an ordinary message. The agent acts on the class; crises come
first.

The model is a multinomial logistic regression over three groups of features, fitted by
``gradguide train-guard`` (``bot.agent.guard_train``) to ``tests/eval/guard/train_*.jsonl``
and shipped as ``guard_data/guard.npz``:

- character n-grams of the normalised text (Chinese 1–3-grams; English words, word pairs
  and the 3–5-grams inside words, so typos still share most features);
- the toneless pinyin of the message (syllables and syllable pairs), so homophone slang
  (紫砂 = 自杀 = "zisha") and messages typed in pinyin meet the characters they stand for;
- the sentence embedding of the bundled encoder (multilingual USE), for meaning that shares
  no words with the training messages.

A long message is also read sentence by sentence, by a second model of n-grams only (cheap:
no encoder call per sentence), so that a crisis or a request in the fourth sentence of a wage
story is not averaged away: for the classes a single sentence can decide
(``SENTENCE_CLASSES``), a sentence passing its own threshold decides. The sentence model is
fitted to the sentences of the training messages: a sentence-sized message keeps its label;
in a longer crisis (or request) message the sentence the message model finds most like it
carries the label, and the others are ordinary.

Thresholds are chosen on the development set, recall first (a missed crisis costs far more
than a false alarm), and stored with the model. A short lexicon of explicit words (suicide,
weapons, being locked in) is a second signal: it can raise a crisis the model scored low,
never lower one.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bot.components.embeddings import Embedder, UseM3Embedder
from bot.errors import ConfigError
from bot.settings import Settings

MODEL_PATH = Path(__file__).resolve().parent / "guard_data" / "guard.npz"


class Label(StrEnum):
    SELF_HARM = "self_harm"
    VIOLENCE = "violence"
    CONFINED = "confined"
    HUMAN = "human"
    ILLEGAL = "illegal"
    OUT_OF_SCOPE = "out_of_scope"
    INJECTION = "injection"
    ORDINARY = "ordinary"


LABELS: tuple[Label, ...] = tuple(Label)
CRISIS: frozenset[Label] = frozenset({Label.SELF_HARM, Label.VIOLENCE, Label.CONFINED})
DECISION_ORDER: tuple[Label, ...] = (
    Label.HUMAN,
    Label.ILLEGAL,
    Label.INJECTION,
    Label.OUT_OF_SCOPE,
)
"""After a crisis, the order in which the other classes are checked against their
thresholds (a request for a person wins over everything but a crisis)."""

Encode = Callable[[list[str]], NDArray[np.float32]]
"""Sentence embeddings, one unit-length row per text."""


# -- text → features ----------------------------------------------------------------------

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_CONTENT = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fffA-Za-z]")
_LATIN_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;…\n~～])|(?<=[.])\s+")
_CLAUSE_END = re.compile(
    r"(?<=[。！？!?；;…\n~～，,：:])|(?<=[.])\s+"
    r"|(?<=[\u3400-\u4dbf\u4e00-\u9fff])\s+(?=[\u3400-\u4dbf\u4e00-\u9fff])"
)
"""Clause ends: punctuation, and a space between Chinese words — typed on a phone, a
Chinese message often has spaces instead of commas ("我已经决定月底结束自己了 走之前想问问…")."""


def normalise(text: str) -> str:
    """NFKC (full-width letters and digits to ASCII), lower case, digits as ``0``, one
    space between words."""
    folded = unicodedata.normalize("NFKC", text).lower()
    folded = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    return _SPACE.sub(" ", _DIGITS.sub("0", folded)).strip()


def sentences(text: str, min_chars: int = 4) -> list[str]:
    """The message cut at sentence ends; pieces shorter than ``min_chars`` join the next."""
    return _pieces(_SENTENCE_END, text, min_chars)


def clauses(text: str, min_chars: int = 6) -> list[str]:
    """The message cut at sentence ends and commas (a Chinese sentence often runs on with
    commas: "…家里也指望我，我觉得活着没意思，不如死了算了。")."""
    return _pieces(_CLAUSE_END, text, min_chars)


def _pieces(boundary: re.Pattern[str], text: str, min_chars: int) -> list[str]:
    pieces = [p.strip() for p in boundary.split(text) if p and p.strip()]
    merged: list[str] = []
    carry = ""
    for piece in pieces:
        carry = f"{carry}{piece}" if _CJK.search(piece) else f"{carry} {piece}".strip()
        if len(carry) >= min_chars:
            merged.append(carry)
            carry = ""
    if carry:
        if merged:
            merged[-1] = f"{merged[-1]}{carry}"
        else:
            merged.append(carry)
    return merged


class Pinyin:
    """Toneless pinyin of Chinese characters, and Latin words read as pinyin when a message
    is typed in it ("wo bu xiang huo le", "xiang zisha")."""

    def __init__(self, syllables: Iterable[str]) -> None:
        self.syllables = frozenset(syllables)
        self._longest = max((len(s) for s in self.syllables), default=0)

    def of_chinese(self, run: str) -> list[str]:
        return _lazy_pinyin(run)

    def split(self, word: str) -> list[str] | None:
        """``word`` as the fewest pinyin syllables, or None if it is not pinyin."""
        best: list[list[str] | None] = [None] * (len(word) + 1)
        best[0] = []
        for end in range(1, len(word) + 1):
            for start in range(max(0, end - self._longest), end):
                head = best[start]
                if head is None or word[start:end] not in self.syllables:
                    continue
                candidate = [*head, word[start:end]]
                current = best[end]
                if current is None or len(candidate) < len(current):
                    best[end] = candidate
        return best[len(word)]


PINYIN_TABLE = Path(__file__).resolve().parent / "guard_data" / "pinyin.txt"
"""One toneless reading per line for every character :data:`_CJK_RUN` matches, in code-point
order (written by :func:`write_pinyin_table`; reading it takes milliseconds, importing
pypinyin 0.2 s of every new process)."""
_PINYIN_BLOCKS = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF))


@lru_cache(maxsize=1)
def _pinyin_table() -> tuple[str, ...]:
    return tuple(PINYIN_TABLE.read_text(encoding="utf-8").split("\n"))


def _table_index(ch: str) -> int:
    point, before = ord(ch), 0
    for first, last in _PINYIN_BLOCKS:
        if first <= point <= last:
            return before + point - first
        before += last - first + 1
    return -1


@lru_cache(maxsize=4096)
def _pinyin_of(ch: str) -> str:
    index = _table_index(ch)
    if index < 0:
        return pypinyin_of(ch)
    return _pinyin_table()[index]


def pypinyin_of(ch: str) -> str:
    """pypinyin's toneless reading of one character (the table's source)."""
    from pypinyin import Style, lazy_pinyin  # imported on first use: ~0.2 s

    return str(lazy_pinyin(ch, style=Style.NORMAL)[0])


def write_pinyin_table(path: Path = PINYIN_TABLE) -> int:
    """Write the table :func:`_pinyin_of` reads from pypinyin; how many characters."""
    readings = [
        pypinyin_of(chr(point))
        for first, last in _PINYIN_BLOCKS
        for point in range(first, last + 1)
    ]
    path.write_text("\n".join(readings), encoding="utf-8")
    return len(readings)


def _lazy_pinyin(run: str) -> list[str]:
    """Character by character (a phrase dictionary would guess readings of slang, and the
    point is that homophones meet): 紫砂 and 自杀 both read ``zi sha``."""
    return [_pinyin_of(ch) for ch in run]


def to_pinyin(text: str) -> str:
    """``text`` with its Chinese written in toneless pinyin, a space between syllables."""
    spelled = _CJK_RUN.sub(lambda m: " " + " ".join(_lazy_pinyin(m.group(0))) + " ", text)
    return " ".join(spelled.split())


def syllable_inventory() -> list[str]:
    """Every toneless syllable pypinyin knows (for training; stored with the model)."""
    from pypinyin.constants import PINYIN_DICT

    found: set[str] = set()
    for readings in PINYIN_DICT.values():
        for reading in readings.split(","):
            plain = unicodedata.normalize("NFKD", reading)
            plain = "".join(c for c in plain if c.isascii() and c.isalpha()).lower()
            if plain:
                found.add(plain.replace("v", "u"))
    return sorted(found)


def feature_names(text: str, pinyin: Pinyin) -> set[str]:
    """The sparse features of one text (a set: presence, not counts)."""
    norm = normalise(text)
    names: set[str] = set()
    syllables: list[str] = []
    for run in _CJK_RUN.findall(norm):
        padded = f"^{run}$"
        for n in (1, 2, 3):
            for i in range(len(padded) - n + 1):
                gram = padded[i : i + n]
                if gram not in ("^", "$"):
                    names.add(f"c:{gram}")
        syllables.extend(pinyin.of_chinese(run))
        syllables.append("|")
    words = _LATIN_WORD.findall(norm)
    split = [pinyin.split(w) for w in words]
    as_pinyin = len(words) >= 2 and sum(s is not None for s in split) >= 0.6 * len(words)
    for i, word in enumerate(words):
        names.add(f"w:{word}")
        if i:
            names.add(f"w2:{words[i - 1]}_{word}")
        padded = f"<{word}>"
        for n in (3, 4, 5):
            for j in range(len(padded) - n + 1):
                names.add(f"g:{padded[j : j + n]}")
        pieces = split[i]
        if as_pinyin and pieces is not None:
            syllables.extend(pieces)
    for other in re.findall(r"[^\w\s]", norm):
        if ord(other) > 0x2000:  # emoji and symbols say something; ASCII punctuation not
            names.add(f"s:{other}")
    for i, syllable in enumerate(syllables):
        if syllable == "|":
            continue
        names.add(f"p:{syllable}")
        if i and syllables[i - 1] != "|":
            names.add(f"p2:{syllables[i - 1]}_{syllable}")
    return names


# -- the lexicon: a second, high-precision signal ----------------------------------------

_LEXICON: dict[Label, re.Pattern[str]] = {
    Label.SELF_HARM: re.compile(
        r"自杀|自尽|轻生|寻死|割腕|跳楼(?!价|(?:大)?甩卖)|上吊|烧炭|遗书|安眠药.{0,6}(?:多少|几|片|颗|攒)"
        r"|不想活|活不下去|(?<![到得])想死(?!磕|.{0,2}(?:了吧|啊哈)|的心都有)|结束(?:自己的)?生命"
        r"|结束(?:掉)?(?:我)?自己(?=了|吧|算了|[，,。！!？?\s]|$)"
        r"|suicid|kill(?:ing)? my ?self|end(?:ing)? my (?:own )?life"
        r"|want(?:ed)? to die(?! (?:of|from) (?:embarrassment|shame|laughter|boredom))"
        r"|unalive|(?<![a-z])kms(?![a-z])|self[- ]?harm|cut(?:ting)? myself"
        r"|致死量|bleed(?:ing)? out|lethal dose|sewer ?slide"
        r"|(?:想|要|去|准备|打算)紫砂(?!壶)(?!.{0,8}(?:开玩笑|玩笑|🤣|😂))",
        re.IGNORECASE,
    ),
    Label.VIOLENCE: re.compile(
        r"拿刀|持刀|砍(?:死|伤)?我|捅(?:死|伤)?我"
        r"|(?:被|挨)(?:他们?|老板|领导)?(?:打(?!了?(?:低|高|回|入|成|上|下|压|折|分|卡|击|电话|款|钱|工|针))"
        r"|揍|殴打)"
        r"|(?<!说)打(?:了|伤)我|要(?:弄|打|砍|捅)死(?=我|你|他|她|人|[，。！!？?\s]|$)"
        r"|(?:踢|扇|掐)(?:了)?我|动手打|拿(?:着)?(?:棍子?|棒子?|铁棍|钢管|砖头)|打进(?:了)?医院"
        r"|\b(?:knife|gun|stab(?:bed)?)\b|beat(?:s|en)? me|(?:hit|kicked|punched|slapped) me"
        r"|\bbeat(?:s|en)? (?:(?:me|us|him|her|them|two|three|some|one|of|a|few|coworkers?)\s+)"
        r"{1,4}up\b"
        r"|threaten(?:ed|ing)? to (?:kill|hurt|beat)",
        re.IGNORECASE,
    ),
    Label.CONFINED: re.compile(
        r"缅北|妙瓦底|电诈园区|(?:不让|不准|不许)(?:我们?)?(?:走|离开|出去|出门)|出不去|被(?:关|锁|囚禁|控制|卖)"
        r"|(?<!算)(?<!算不算)限制(?:了)?(?:我的?)?人身自由|护照.{0,4}(?:被)?(?:收|扣|拿)走"
        r"|won'?t let (?:me|us) (?:leave|go)|locked (?:me |us )?in|held (?:me )?(?:against|captive)"
        r"|took (?:my|our) passports?.{0,30}(?:leave|go|out)",
        re.IGNORECASE,
    ),
}
_HUMAN_LEXICON = re.compile(
    r"^/human\b|转人工|人工客服|找人工|真人(?:客服|老师)|(?:找|要|换)(?:个|一个)?活人"
    r"|有没有(?:个)?活人|(?:你|这)是(?:不是)?活人|\bis (?:there )?any(?:one|body) real\b"
    r"|\bare you (?:a )?real\b"
    r"|(?:想|要|请|能不能|可以|可不可以)找(?:个|一个|一位)?(?:老师|辅导员|顾问)"
    r"(?:帮|聊|谈|问|咨询|沟通)"
    r"|\b(?:talk|speak) (?:to|with) (?:a |an )?(?:real |actual |live )?"
    r"(?:human|person|counsell?or)\b",
    re.IGNORECASE,
)


INJECTION_LEXICON = re.compile(
    r"忽略.{0,8}(?:指令|指示|提示|规则|设定|要求)|无视.{0,8}(?:指令|指示|提示|规则|设定)"
    r"|(?:系统|system)\s*(?:提示|prompt)|提示词|开发者模式|越狱"
    r"|\bignore (?:all |any )?(?:of )?(?:the |your )?(?:previous|prior|above|earlier)\b"
    r"|\bdisregard (?:all |any )?(?:the |your )?(?:previous|prior|above)\b"
    r"|\byou are now\b|\bjailbreak|\bdeveloper mode\b|扮演|假装你是"
    r"|\bpretend (?:to be|you(?:'re| are))\b|\bact as (?:if you|my|an? (?:ai|assistant|bot))"
    r"|\b(?:reveal|show|print|repeat) (?:me )?(?:your|the) (?:prompt|instructions|rules)",
    re.IGNORECASE,
)
"""Explicit attempts to change or read the bot's instructions (also used on documents:
``bot.agent.guardrails.is_planted``)."""


def lexicon(text: str) -> set[Label]:
    """Classes named by explicit words in ``text`` (high precision, low recall)."""
    found = {label for label, pattern in _LEXICON.items() if pattern.search(text)}
    if _HUMAN_LEXICON.search(text.strip()):
        found.add(Label.HUMAN)
    if INJECTION_LEXICON.search(text):
        found.add(Label.INJECTION)
    return found


# -- the model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What the check decided about one message."""

    label: Label
    """The class whose response comes first."""
    scores: Mapping[Label, float]
    """The model's probability for every class (sentence maxima where they apply)."""
    also: tuple[Label, ...] = ()
    """Other classes above their thresholds (a crisis inside a wage question: ordinary)."""
    lexicon: frozenset[Label] = field(default_factory=frozenset)
    """Classes the lexicon named."""

    @property
    def crisis(self) -> bool:
        return self.label in CRISIS

    def labels(self) -> list[str]:
        """The decided class first, then the others: what a counsellor's card shows."""
        return [self.label.value, *(a.value for a in self.also)]


@dataclass
class GuardWeights:
    """A fitted model as stored: the vocabulary, the weights, the thresholds."""

    vocabulary: dict[str, int]
    sparse: NDArray[np.float32]
    """(len(vocabulary), classes)"""
    dense: NDArray[np.float32] | None
    """(embedding dimension, classes), or None for a model without embeddings"""
    bias: NDArray[np.float32]
    thresholds: dict[str, float]
    """``crisis`` (the crisis classes' summed probability) and one per other class."""
    syllables: list[str]
    meta: dict[str, Any]
    dense_scale: float = 1.0
    sentence_sparse: NDArray[np.float32] | None = None
    """The sentence model: n-gram weights only, (len(vocabulary), classes)."""
    sentence_bias: NDArray[np.float32] | None = None

    def save(self, path: Path) -> None:
        terms = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        header = {
            "labels": [label.value for label in LABELS],
            "thresholds": self.thresholds,
            "dense_scale": self.dense_scale,
            "meta": self.meta,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {
            "vocabulary": np.array(terms, dtype=np.str_),
            "sparse": self.sparse.astype(np.float16),
            "bias": self.bias.astype(np.float32),
            "syllables": np.array(self.syllables, dtype=np.str_),
            "header": np.array(json.dumps(header, ensure_ascii=False)),
        }
        if self.dense is not None:
            arrays["dense"] = self.dense.astype(np.float32)
        if self.sentence_sparse is not None and self.sentence_bias is not None:
            arrays["sentence_sparse"] = self.sentence_sparse.astype(np.float16)
            arrays["sentence_bias"] = self.sentence_bias.astype(np.float32)
        with path.open("wb") as handle:
            np.savez_compressed(handle, **arrays)

    @classmethod
    def load(cls, path: Path) -> GuardWeights:
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                if header["labels"] != [label.value for label in LABELS]:
                    raise ConfigError(f"{path}: the model's classes are not this code's")
                terms = [str(t) for t in data["vocabulary"]]
                return cls(
                    vocabulary={term: i for i, term in enumerate(terms)},
                    sparse=data["sparse"].astype(np.float32),
                    dense=data["dense"].astype(np.float32) if "dense" in data else None,
                    bias=data["bias"].astype(np.float32),
                    thresholds={str(k): float(v) for k, v in header["thresholds"].items()},
                    syllables=[str(s) for s in data["syllables"]],
                    meta=dict(header["meta"]),
                    dense_scale=float(header["dense_scale"]),
                    sentence_sparse=(
                        data["sentence_sparse"].astype(np.float32)
                        if "sentence_sparse" in data
                        else None
                    ),
                    sentence_bias=(
                        data["sentence_bias"].astype(np.float32)
                        if "sentence_bias" in data
                        else None
                    ),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"cannot read the message-check model {path}: {exc}") from exc


SENTENCE_CLASSES: frozenset[Label] = frozenset(
    {*CRISIS, Label.HUMAN, Label.ILLEGAL, Label.INJECTION}
)
"""Classes one sentence of a long message can decide on its own (out of scope cannot: a wage
story that mentions a thesis in passing is still a wage question). Sentences are read by the
sentence model and held to their own thresholds (``<class>@sentence``), set on the
development set so that they add no false alarm there."""


@dataclass(frozen=True)
class Scores:
    """The probabilities for one message: of the whole text (the message model), and the
    highest of its sentences (the sentence model; for the crisis classes, the sentence most
    like a crisis)."""

    whole: Mapping[Label, float]
    sentence: Mapping[Label, float]
    parts: int = 1
    """How many sentences were read (1: the sentence scores are the whole's)."""

    def crisis(self, part: str = "whole") -> float:
        table = self.whole if part == "whole" else self.sentence
        return sum(table[label] for label in CRISIS)


class Guard:
    """Classifies messages with a fitted model. Thread-safe; built once per process."""

    def __init__(self, weights: GuardWeights, encode: Encode | None = None) -> None:
        if weights.dense is not None and encode is None:
            raise ConfigError("this message-check model needs a sentence encoder")
        self.weights = weights
        self._encode = encode if weights.dense is not None else None
        self._pinyin = Pinyin(weights.syllables)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, encode: Encode | None, path: Path = MODEL_PATH) -> Guard:
        return cls(GuardWeights.load(path), encode)

    @property
    def uses_embeddings(self) -> bool:
        return self._encode is not None

    def probabilities(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """The message model's class probabilities, one row per text (columns in
        ``LABELS`` order)."""
        w = self.weights
        logits = self._sparse_logits(texts, w.sparse, w.bias)
        if self._encode is not None and w.dense is not None and texts:
            vectors = self._encode(list(texts)).astype(np.float64)
            logits += (vectors * w.dense_scale) @ w.dense.astype(np.float64)
        return _softmax(logits)

    def sentence_probabilities(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """The sentence model's probabilities (n-grams only: no encoder call per sentence)."""
        w = self.weights
        if w.sentence_sparse is None or w.sentence_bias is None:
            return self.probabilities(texts)
        return _softmax(self._sparse_logits(texts, w.sentence_sparse, w.sentence_bias))

    def _sparse_logits(
        self, texts: Sequence[str], weights: NDArray[np.float32], bias: NDArray[np.float32]
    ) -> NDArray[np.float64]:
        vocabulary = self.weights.vocabulary
        logits = np.tile(bias.astype(np.float64), (len(texts), 1))
        for row, text in enumerate(texts):
            ids = [vocabulary[n] for n in feature_names(text, self._pinyin) if n in vocabulary]
            if ids:
                logits[row] += weights[ids].sum(axis=0) / np.sqrt(len(ids))
        return logits

    MAX_SENTENCES = 60
    """A very long message is read by its first and last 30 clauses."""

    def scores(self, text: str) -> Scores:
        """The whole message's probabilities, and its sentences' highest."""
        whole_row = self.probabilities([text])[0]
        whole = {label: float(whole_row[i]) for i, label in enumerate(LABELS)}
        parts = list(dict.fromkeys(clauses(text)))
        if len(parts) < 2:
            return Scores(whole, whole)
        if len(parts) > self.MAX_SENTENCES:
            half = self.MAX_SENTENCES // 2
            parts = parts[:half] + parts[-half:]
        probs = self.sentence_probabilities(parts)
        crisis_columns = [LABELS.index(label) for label in CRISIS]
        worst = int(probs[:, crisis_columns].sum(axis=1).argmax())
        best = probs.max(axis=0)
        sentence = {
            label: float(probs[worst][i]) if label in CRISIS else float(best[i])
            for i, label in enumerate(LABELS)
        }
        return Scores(whole, sentence, len(parts))

    def above(self, scores: Scores, label: Label) -> bool:
        """``label`` (or, for a crisis kind, any crisis) passes its whole-message threshold
        or, for ``SENTENCE_CLASSES``, its sentence threshold."""
        t = self.weights.thresholds
        key = "crisis" if label in CRISIS else label.value
        if label in CRISIS:
            whole, sentence = scores.crisis("whole"), scores.crisis("sentence")
        else:
            whole, sentence = scores.whole[label], scores.sentence[label]
        if whole >= t.get(key, 1.0):
            return True
        return label in SENTENCE_CLASSES and sentence >= t.get(f"{key}@sentence", 1.0)

    def decide(self, scores: Scores, named: Iterable[Label] = ()) -> Verdict:
        """The class to act on: a crisis when the crisis classes together pass the crisis
        threshold (or the lexicon names one), then the others in ``DECISION_ORDER``."""
        named = frozenset(named)
        table = {
            label: max(scores.whole[label], scores.sentence[label])
            if label in SENTENCE_CLASSES
            else scores.whole[label]
            for label in LABELS
        }
        above = [label for label in DECISION_ORDER if self.above(scores, label)]
        if Label.HUMAN in named and Label.HUMAN not in above:
            above.insert(0, Label.HUMAN)
        if named & CRISIS or self.above(scores, Label.SELF_HARM):
            kinds = named & CRISIS or CRISIS
            label = max(kinds, key=lambda k: table[k])
            also = tuple(above)
            if scores.whole[Label.ORDINARY] >= self.weights.thresholds.get("also_ordinary", 1.0):
                also = (*also, Label.ORDINARY)
            return Verdict(label, table, also, named)
        for label in DECISION_ORDER:
            if label in above:
                return Verdict(label, table, tuple(a for a in above if a is not label), named)
        return Verdict(Label.ORDINARY, table, (), named)

    def surely_out_of_scope(self, verdict: Verdict) -> bool:
        """Out of scope above every in-domain message of the development set
        (``out_of_scope@sure``): refused without asking the knowledge base. Below it the
        knowledge base decides (a confident passage answers, else the bot declines)."""
        sure = self.weights.thresholds.get("out_of_scope@sure", 0.8)
        return (
            verdict.label is Label.OUT_OF_SCOPE
            and verdict.scores.get(Label.OUT_OF_SCOPE, 0.0) >= sure
        )

    MAX_CHARS = 4000
    """A longer message is read by its first and last 2,000 characters."""

    def classify(self, text: str, earlier: str | None = None) -> Verdict:
        """Classify ``text``. ``earlier``: the graduate's previous message, for a short
        follow-up that only means something after it ("他说明天要找人收拾我" after "老板威胁要
        打我"): a crisis read in the two together counts as this message's crisis."""
        if len(text) > self.MAX_CHARS:
            half = self.MAX_CHARS // 2
            text = f"{text[:half]}\n{text[-half:]}"
        parts = sentences(text)
        distinct = list(dict.fromkeys(parts))
        if len(distinct) < len(parts):  # a sentence pasted many times is read once
            text = ("" if _CJK.search(text) else " ").join(distinct)
        named = lexicon(text)
        if len(_CONTENT.findall(text)) < 2 and not named:
            # a letter or an emoji is too little to act on: the agent answers or asks
            return Verdict(Label.ORDINARY, {}, (), frozenset())
        verdict = self.decide(self.scores(text), named)
        if verdict.crisis or not earlier or not is_short(text):
            return verdict
        joined = self.decide(self.scores(f"{earlier}\n{text}"), lexicon(text))
        if joined.crisis:
            own = tuple(a for a in (verdict.label, *verdict.also) if a not in CRISIS)
            return Verdict(joined.label, joined.scores, own, joined.lexicon)
        return verdict

    def without_injection(self, text: str) -> str:
        """``text`` without the sentences that try to change the bot (classified as
        injection, or named by the lexicon)."""
        kept = []
        for sentence in sentences(text, min_chars=1):
            scores = self.scores(sentence)
            if INJECTION_LEXICON.search(sentence) or self.above(scores, Label.INJECTION):
                continue
            kept.append(sentence)
        joiner = "" if _CJK.search(text) else " "
        return joiner.join(kept).strip()


def build_guard(embedder: Embedder, settings: Settings, path: Path = MODEL_PATH) -> Guard:
    """The shipped model, reading embeddings from the knowledge base's encoder when that is
    the bundled one the model was fitted with (one model in memory, and the search that
    follows the check finds the message's vector in its cache), else from its own."""
    weights = GuardWeights.load(path)
    if weights.dense is None:
        return Guard(weights)
    encoder = embedder if isinstance(embedder, UseM3Embedder) else None
    if encoder is None:
        encoder = UseM3Embedder(settings.data_dir / "cache")
    return Guard(weights, encoder.embed_queries)


def _softmax(logits: NDArray[np.float64]) -> NDArray[np.float64]:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs: NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
    return probs


def is_short(text: str) -> bool:
    """A message short enough to lean on the one before it."""
    cjk = len(_CJK.findall(text))
    return cjk <= 20 if cjk else len(text.split()) <= 10
