"""Structure-first chunking: headings first, then length, cut at sentence ends with overlap."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.kb.models import Chunk, Section

# Bump when chunking changes, so that ingestion re-embeds unchanged documents.
CHUNKER_VERSION = 3

# A piece ends after Chinese or English sentence punctuation (optionally followed by closing
# quotes/brackets), or at a line break. English '.' only counts before whitespace, so 1.5 and
# URLs stay whole, and not after a list number.
_SENTENCE_END = re.compile(
    # not the "1." / "12." that numbers a list item at the start of a line
    r"(?:[。！？；!?;]|(?<!^\d)(?<!^\d\d)\.(?=\s))[”’\"')）」』]*|\n",
    re.MULTILINE,
)


def split_sentences(text: str) -> list[str]:
    """Split into sentence-sized pieces; joining the pieces gives back the text."""
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        if end > start:
            piece = text[start:end]
            if pieces and not piece.strip():
                pieces[-1] += piece  # a bare line break belongs to the sentence before it
            else:
                pieces.append(piece)
            start = end
    if start < len(text):
        pieces.append(text[start:])
    return [p for p in pieces if p.strip()]


def _hard_split(piece: str, max_chars: int) -> list[str]:
    return [piece[i : i + max_chars] for i in range(0, len(piece), max_chars)]


def chunk_text(text: str, max_chars: int, overlap_chars: int) -> list[str]:
    """Pack sentences into chunks of at most ``max_chars``; each chunk after the first
    starts with the last sentences (up to ``overlap_chars``) of the one before."""
    text = text.strip()
    if len(text) <= max_chars:
        return [text] if text else []
    sentences: list[str] = []
    for piece in split_sentences(text):
        sentences.extend(_hard_split(piece, max_chars) if len(piece) > max_chars else [piece])

    chunks: list[str] = []
    current: list[str] = []
    size = 0
    fresh = 0  # sentences in `current` that are not overlap
    for sentence in sentences:
        if current and size + len(sentence) > max_chars and fresh:
            chunks.append("".join(current).strip())
            overlap: list[str] = []
            kept = 0
            for previous in reversed(current):
                if kept + len(previous) > overlap_chars:
                    break
                overlap.insert(0, previous)
                kept += len(previous)
            if kept + len(sentence) > max_chars:
                overlap, kept = [], 0
            current, size, fresh = overlap, kept, 0
        current.append(sentence)
        size += len(sentence)
        fresh += 1
    if fresh:
        chunks.append("".join(current).strip())
    return [c for c in chunks if c]


def chunk_sections(sections: Sequence[Section], max_chars: int, overlap_chars: int) -> list[Chunk]:
    """Chunk every section; chunks never cross a heading."""
    chunks: list[Chunk] = []
    for section in sections:
        for text in chunk_text(section.text, max_chars, overlap_chars):
            chunks.append(Chunk(index=len(chunks), headings=section.headings, text=text))
    return chunks
