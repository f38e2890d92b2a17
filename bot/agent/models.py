"""What the agent takes and returns: a serialisable conversation and a structured reply."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from bot.kb.models import Lang


class Intent(StrEnum):
    POLICY = "policy"
    RIGHTS = "rights"
    PROCEDURE = "procedure"
    GREETING = "greeting"
    OUT_OF_SCOPE = "out_of_scope"
    HANDOFF_REQUEST = "handoff_request"
    CRISIS = "crisis"
    UNCLEAR = "unclear"


class HandoffReason(StrEnum):
    REQUESTED = "requested"
    LOW_CONFIDENCE = "low_confidence"
    SENSITIVE = "sensitive"
    CRISIS = "crisis"
    REPEATED_FAILURE = "repeated_failure"


class Citation(BaseModel):
    doc_id: str
    title: str
    authority: str
    doc_number: str | None = None
    issued: dt.date
    effective_from: dt.date
    expires: dt.date | None = None
    source_url: str | None = None
    heading: str
    excerpt: str


class Reply(BaseModel):
    text: str
    lang: Lang
    intent: Intent
    citations: list[Citation] = Field(default_factory=list)
    confidence: float = 0.0
    handoff: bool = False
    handoff_reason: HandoffReason | None = None
    suggestions: list[str] = Field(default_factory=list)
    latency_ms: float = 0.0
    composer: Literal["extractive", "llm", "curated", "card", "calculator", "none"] = "none"
    """What wrote the text: the extractive composer, the LLM, an approved curated answer
    (``bot.agent.curated``), an answer card or a rights calculator
    (``bot.agent.card_answer``), or a fixed message."""
    summary: str = ""
    """One line for a counsellor: what the graduate asked, redacted."""
    signals: list[str] = Field(default_factory=list)
    """What the message check found (``bot.agent.guard.Label`` values), the class acted on
    first: ``["violence", "ordinary"]`` for a threat told inside a wage question. Shown on
    the counsellor's card."""


class Turn(BaseModel):
    role: Literal["user", "bot"]
    text: str
    intent: Intent | None = None
    doc_ids: list[str] = Field(default_factory=list)
    query: str | None = None
    """For a user turn: the standalone question the agent searched for."""


class Conversation(BaseModel):
    """Everything the agent needs between turns; stored as JSON by the channels."""

    id: str = "local"
    lang: Lang | None = None
    """Set by /lang; otherwise each reply follows the language of the message."""
    region: str | None = None
    turns: list[Turn] = Field(default_factory=list)
    low_confidence_streak: int = 0
    negative_rating_streak: int = 0
    pending_card: str | None = None
    """A card whose calculator asked the graduate for a number (the next message may give it)."""

    def last_user_query(self) -> str | None:
        for turn in reversed(self.turns):
            if turn.role == "user" and turn.query:
                return turn.query
        return None

    def reset(self) -> None:
        """/reset: forget the dialogue, keep the graduate's settings."""
        self.turns.clear()
        self.low_confidence_streak = 0
        self.negative_rating_streak = 0
        self.pending_card = None
