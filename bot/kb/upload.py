"""What a person may say about a document they add: the metadata fields that override its
front matter — the ``gradguide kb ingest`` options and the console's upload form."""

from __future__ import annotations

from bot.kb.models import DocMeta

META_FIELDS: tuple[str, ...] = tuple(DocMeta.model_fields)
"""id, title, lang, authority, doc_number, issued, effective_from, expires, region, topics,
source_url, summary: every field of ``DocMeta``, in its order."""
