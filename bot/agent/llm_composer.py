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

from bot.errors import ConfigError
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
            f"[{h.doc_id}] {h.doc.meta.title} — {h.heading}\n{h.text}" for h in hits
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
        numbers = {doc_id: index for index, doc_id in enumerate(cited, start=1)}
        text = _CITED.sub(lambda m: f"[{numbers[m.group(1)]}]", content)
        return LlmAnswer(text=text, doc_ids=cited)
