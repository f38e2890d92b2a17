"""Documents, chunks and their metadata."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.kb.regions import validate_region

Lang = Literal["zh", "en"]

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")


def detect_lang(text: str) -> Lang:
    """The dominant language: Chinese characters against English words (a word ~ 2 chars)."""
    cjk = len(_CJK.findall(text))
    latin = sum(min(len(w), 8) for w in _LATIN_WORD.findall(text)) / 2.5
    return "zh" if cjk >= latin and cjk > 0 else "en"


ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


class Validity(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    NOT_YET_EFFECTIVE = "not yet effective"


class DocMeta(BaseModel):
    """A document's front matter. ``effective_from`` defaults to ``issued``."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    id: str
    title: str = Field(min_length=1)
    lang: Lang
    authority: str = Field(min_length=1)
    doc_number: str | None = None
    issued: dt.date
    effective_from: dt.date | None = None
    expires: dt.date | None = None
    region: str = Field(min_length=1)
    topics: list[str] = Field(default_factory=list)
    source_url: str | None = None
    summary: str = ""

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not ID_PATTERN.match(value):
            raise ValueError("use lowercase letters, digits, '.', '_' or '-' (at most 128)")
        return value

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str) -> str:
        """``national`` or a known province/city, stored as its code (上海市 → shanghai)."""
        return validate_region(value)

    @field_validator("topics", mode="before")
    @classmethod
    def _split_topics(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        if isinstance(value, list):  # YAML reads a topic like 12333 as a number
            return [str(t) if isinstance(t, int | float) else t for t in value]
        return value

    @model_validator(mode="after")
    def _dates_in_order(self) -> DocMeta:
        if self.effective_from is None:
            self.effective_from = self.issued
        if self.expires is not None and self.expires < self.effective_from:
            raise ValueError("expires is before effective_from")
        return self

    @property
    def starts(self) -> dt.date:
        return self.effective_from or self.issued

    def validity(self, today: dt.date) -> Validity:
        if today < self.starts:
            return Validity.NOT_YET_EFFECTIVE
        if self.expires is not None and today > self.expires:
            return Validity.EXPIRED
        return Validity.ACTIVE


REQUIRED_FIELDS: tuple[str, ...] = tuple(
    name for name, info in DocMeta.model_fields.items() if info.is_required()
)


class Section(BaseModel):
    """A run of text under one heading path."""

    headings: list[str]
    text: str


class ParsedDocument(BaseModel):
    """A loaded file: metadata plus structured text, before chunking."""

    meta: DocMeta
    sections: list[Section]
    source: Path
    derived: dict[str, str] = {}
    """Metadata the file did not give, derived from it (title, lang, id)."""

    def content_hash(self, chunking: str = "") -> str:
        """Identifies this content as indexed: metadata, text and how it is chunked."""
        payload = json.dumps(
            {
                "meta": self.meta.model_dump(mode="json"),
                "sections": [s.model_dump() for s in self.sections],
                "chunking": chunking,
            },
            ensure_ascii=False,
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Chunk(BaseModel):
    """One retrievable passage with its heading path."""

    index: int
    headings: list[str]
    text: str

    @property
    def heading_path(self) -> str:
        return " > ".join(self.headings)


class IndexedDocument(BaseModel):
    """A document as the index knows it (from the registry)."""

    meta: DocMeta
    content_hash: str
    version: str
    chunk_count: int
    source: str
    ingested_at: dt.datetime

    def validity(self, today: dt.date) -> Validity:
        return self.meta.validity(today)
