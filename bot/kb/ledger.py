"""The ledger: what the knowledge base remembers about a document beyond its file.

A document's file alone does not always say what the index holds: a PDF ingested with
``--id --title …`` needs that metadata again at every rebuild, and an admin's change made in
the console (Expire) is no part of any file. Each document id has one ``LedgerEntry``:

* ``source`` — the file it was last ingested from (resolved path), the one ``kb rebuild``
  re-reads for it. A different file with the same id replaces it only when asked
  (``kb ingest --replace``, the console's Replace); otherwise it is refused with an
  ``IdTakenError`` that names this document and its source.
* ``metadata`` — the metadata given at ingest (the ``kb ingest`` options, the console's upload
  form), applied over the file's own front matter each time the source is read again.
* ``overrides`` — an admin's changes (expire, region, title …), applied over both on every
  (re)index until the admin clears them. They outlive a removal of the document, so a
  document that an admin expired and then removed does not come back in force when a rebuild
  reads its file in the knowledge folder again.

The entries live in the knowledge base's own store, a Chroma collection next to the index
(``gg-ledger``, one per store, not per embedding model: a new model rebuilds from it), so every
process that shares the index (the bot, the console, ``gradguide kb``) shares the ledger, and
it lasts as long as the index does. ``KnowledgeIndex`` writes it under the same exclusive lock
as the registry.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from bot.errors import DuplicateIdError, MetadataError
from bot.kb.models import DocMeta, IndexedDocument, ParsedDocument
from bot.prompts import Messages

LEDGER_COLLECTION = "gg-ledger"

OVERRIDABLE: tuple[str, ...] = tuple(name for name in DocMeta.model_fields if name != "id")
"""The fields an admin may change on a document (every metadata field but its id)."""


class LedgerEntry(BaseModel):
    doc_id: str
    source: str | None = None
    """The resolved path of the file last ingested for this id; None once it is removed."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """The metadata given at ingest (JSON values), over the file's own."""
    overrides: dict[str, Any] = Field(default_factory=dict)
    """An admin's changes (JSON values), over both, on every (re)index."""

    def dump(self) -> str:
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, sort_keys=True)

    @classmethod
    def load(cls, text: str) -> LedgerEntry:
        return cls.model_validate(json.loads(text))


class Conflict(BaseModel):
    """The document a file's id already belongs to (a different source)."""

    doc_id: str
    title: str
    source: str

    @classmethod
    def of(cls, doc: IndexedDocument) -> Conflict:
        return cls(doc_id=doc.meta.id, title=doc.meta.title, source=doc.source)


class IdTakenError(DuplicateIdError):
    """A file claims the id of a document that came from another file, and replacing it was
    not asked for."""

    def __init__(self, path: Any, conflict: Conflict) -> None:
        super().__init__(path, both_languages("kb_id_taken", **conflict.model_dump()))
        self.conflict = conflict


def both_languages(key: str, **values: object) -> str:
    """A catalogue message as "zh / en", for a reason that reaches people through the
    command line, the console and Telegram alike (none passes its reader's language here)."""
    messages = Messages.load()
    return f"{messages.get(key, 'zh', **values)} / {messages.get(key, 'en', **values)}"


class OverrideStatus(StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    NOT_FOUND = "not found"
    NO_SOURCE = "no source"
    """The document's file is gone: it cannot be indexed again, so nothing is changed."""
    INVALID = "invalid"
    FAILED = "failed"


@dataclass(frozen=True)
class OverrideOutcome:
    status: OverrideStatus
    document: IndexedDocument | None = None
    reason: str | None = None


def json_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata as JSON values (dates as ISO text); empty values are left out."""
    result: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, dt.date):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        result[name] = json.loads(json.dumps(value, ensure_ascii=False, default=str))
    return result


def apply_overrides(parsed: ParsedDocument, overrides: Mapping[str, Any]) -> ParsedDocument:
    """The document with an admin's changes over its metadata. An expiry before the day the
    document takes effect moves that day back to the expiry (it was never in force).

    Raises ``MetadataError`` (naming the field) when the changes do not make valid metadata.
    """
    if not overrides:
        return parsed
    fields = parsed.meta.model_dump(mode="json")
    fields.update({k: v for k, v in overrides.items() if k in OVERRIDABLE})
    if "expires" in overrides and "effective_from" not in overrides and fields.get("expires"):
        starts = fields.get("effective_from") or fields.get("issued")
        if starts and str(starts) > str(fields["expires"]):
            fields["effective_from"] = fields["expires"]
    try:
        meta = DocMeta.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "overrides"
        raise MetadataError(
            parsed.source, where, f"an admin's change is invalid: {first['msg']}"
        ) from exc
    return parsed.model_copy(update={"meta": meta})
