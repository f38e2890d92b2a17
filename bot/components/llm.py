"""The optional chat model, through langchain's ``init_chat_model``.

``GRADGUIDE_LLM=openai:<model>`` talks to any OpenAI-compatible server (``OPENAI_BASE_URL``,
e.g. a self-hosted Qwen behind vLLM); ``ollama:<model>`` to an Ollama server. Unset: no
LLM, and answers are composed from the retrieved passages.
"""

from __future__ import annotations

from typing import Any

from bot.errors import ConfigError
from bot.settings import Settings


def build_chat_model(settings: Settings) -> Any | None:
    """The configured chat model, or ``None`` when ``GRADGUIDE_LLM`` is unset."""
    if not settings.llm:
        return None
    provider, _, model = settings.llm.partition(":")
    if not model or provider not in ("openai", "ollama"):
        raise ConfigError(f"GRADGUIDE_LLM={settings.llm!r}: use openai:<model> or ollama:<model>")
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as exc:  # pragma: no cover - depends on an optional extra
        raise ConfigError("GRADGUIDE_LLM needs `pip install 'gradguide[llm]'`") from exc
    options: dict[str, Any] = {"temperature": 0.0}
    if provider == "openai":
        options.update(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key or "not-needed",
            timeout=settings.llm_timeout_s,
            max_retries=0,
        )
    else:
        options.update(base_url=settings.ollama_base_url)
    try:
        return init_chat_model(model, model_provider=provider, **options)
    except ImportError as exc:  # pragma: no cover - depends on an optional extra
        raise ConfigError(f"GRADGUIDE_LLM={settings.llm!r}: {exc}") from exc
