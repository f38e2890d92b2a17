"""The optional LLM composer: the model writes the answer from the retrieved passages and
cites them by id; the agent checks the citations and falls back to the extractive answer
when the check fails, the model errors or it is too slow."""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.agent.guardrails import is_planted
from bot.errors import ConfigError
from bot.kb.chunking import split_sentences
from bot.kb.models import Lang
from bot.kb.retriever import Hit
from bot.prompts import BUNDLED_PROMPTS_DIR

logger = logging.getLogger(__name__)

_CITED = re.compile(r"\[([a-z0-9][a-z0-9._-]{0,127})\]")
NO_ANSWER = "NO_ANSWER"


@dataclass
class LlmAnswer:
    text: str
    """The answer with citations renumbered [1], [2] … in order of first use."""
    doc_ids: list[str]
    """The cited documents, in the same order."""


class LlmUnavailable(Exception):
    """The model failed, timed out, or its answer did not pass the citation check."""


def _policy_text(text: str) -> str:
    """A passage without the sentences planted in it for the bot (``is_planted``): the
    model sees what the extractive composer would quote, nothing more."""
    return "".join(s for s in split_sentences(text) if not is_planted(s)).strip()


_EN_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
_EN_NUMBERS = {word: value for value, word in enumerate(_EN_WORDS.split(" "))}
_EN_NUMBER = re.compile(r"\b(" + "|".join(_EN_NUMBERS) + r")\b", re.I)
_ZH_DIGITS = {
    "零": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_ZH_NUMBER = re.compile(
    r"([零一二两三四五六七八九十百千]+)(?=个|年|月|天|日|周|倍|元|万|小时|次|岁|%|％|成|名|人)"
)
_DIGITS = re.compile(r"\d+(?:\.\d+)?")


def _zh_value(numeral: str) -> int | None:
    """一 … 九千九百九十九 as a number (``None`` for what is not a plain numeral)."""
    total, digit = 0, 0
    for ch in numeral:
        if ch in _ZH_DIGITS:
            digit = _ZH_DIGITS[ch]
        elif ch in "十百千":
            total += (digit or 1) * {"十": 10, "百": 100, "千": 1000}[ch]
            digit = 0
        else:
            return None
    return total + digit


def figures(text: str) -> set[str]:
    """The numbers a text states, written in digits, English words or Chinese numerals
    (before a unit), as canonical strings: "六个月", "6 months" and "six months" agree."""
    found = {
        m.group().rstrip("0").rstrip(".") if "." in m.group() else str(int(m.group()))
        for m in _DIGITS.finditer(text)
    }
    found |= {str(_EN_NUMBERS[m.group(1).lower()]) for m in _EN_NUMBER.finditer(text)}
    for m in _ZH_NUMBER.finditer(text):
        value = _zh_value(m.group(1))
        if value is not None:
            found.add(str(value))
    return found


class LlmComposer:
    def __init__(
        self, model: Any, timeout_s: float, prompts_dir: Path = BUNDLED_PROMPTS_DIR
    ) -> None:
        path = prompts_dir / "llm.yaml"
        try:
            prompts = yaml.safe_load(path.read_text(encoding="utf-8"))
            self._system, self._user = str(prompts["system"]), str(prompts["user"])
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            raise ConfigError(f"cannot read the LLM prompts in {path}: {exc}") from exc
        self._model = model
        self._timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="llm")

    def compose(self, question: str, hits: list[Hit], lang: Lang) -> LlmAnswer | None:
        """The model's answer, or ``None`` when it says the passages do not answer.

        Raises ``LlmUnavailable`` when the model errors, times out, or cites anything but
        the passages it was given."""
        passages = "\n\n".join(
            f"[{h.doc_id}] {h.doc.meta.title} — {h.heading}\n{_policy_text(h.text)}" for h in hits
        )
        messages = [
            ("system", self._system.format(language="简体中文" if lang == "zh" else "English")),
            ("human", self._user.format(passages=passages, question=question)),
        ]
        future = self._pool.submit(self._model.invoke, messages)
        try:
            response = future.result(timeout=self._timeout_s)
        except FutureTimeout as exc:
            future.cancel()
            raise LlmUnavailable(f"no answer within {self._timeout_s:g} s") from exc
        except Exception as exc:
            raise LlmUnavailable(f"{type(exc).__name__}: {exc}") from exc
        content = response.content if isinstance(response.content, str) else str(response)
        content = content.strip()
        if content.startswith(NO_ANSWER):
            return None
        allowed = {h.doc_id for h in hits}
        cited = list(dict.fromkeys(_CITED.findall(content)))
        if not cited:
            raise LlmUnavailable("the answer cites no passage")
        unknown = [c for c in cited if c not in allowed]
        if unknown:
            raise LlmUnavailable(f"the answer cites passages it was not given: {unknown}")
        grounded = figures(question).union(
            *(figures(f"{h.heading} {_policy_text(h.text)}") for h in hits if h.doc_id in cited)
        )
        invented = figures(_CITED.sub("", content)) - grounded
        if invented:
            raise LlmUnavailable(f"the answer gives figures its sources do not: {sorted(invented)}")
        numbers = {doc_id: index for index, doc_id in enumerate(cited, start=1)}
        text = _CITED.sub(lambda m: f"[{numbers[m.group(1)]}]", content)
        return LlmAnswer(text=text, doc_ids=cited)
