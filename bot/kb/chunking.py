"""Structure-first chunking: headings first, then length, cut at sentence ends with overlap."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.kb.models import Chunk, Section

# Bump when chunking changes, so that ingestion re-embeds unchanged documents.
CHUNKER_VERSION = 4

# A piece ends after Chinese or English sentence punctuation (optionally followed by closing
# quotes/brackets), or at a line break. A semicolon joins the parts of one rule ("……的，试用期
# 不得超过一个月；……的，不得超过二个月"), so it does not end a piece. English '.' only counts
# before whitespace, so 1.5 and URLs stay whole; not after a list number ("1."), nor after an
# abbreviation ("No. 7", "Art. 19", "e.g. a").
_SENTENCE_END = re.compile(
    r"(?:[。！？!?]|(?<!^\d)(?<!^\d\d)(?<!\bNo)(?<!\bno)(?<!\bArt)(?<!\bart)(?<!\bArts)"
    r"(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)(?<!\bcf)(?<!\bpara)(?<!\bNos)\.(?=\s))[”’\"')）」』]*|\n",
    re.MULTILINE,
)
_TABLE_LINE = re.compile(r"^\s*\|")


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
    for piece in _with_whole_tables(split_sentences(text), max_chars):
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


def _with_whole_tables(pieces: list[str], max_chars: int) -> list[str]:
    """A table's rows as one piece, so no chunk holds half a table; a table longer than a
    chunk is cut between rows, and every part starts again with the header and its rule
    line (a row is only understood with its header)."""
    out: list[str] = []
    table: list[str] = []

    def flush() -> None:
        if not table:
            return
        head = table[:2] if len(table) > 2 else []
        part = list(table)
        if sum(map(len, part)) <= max_chars or not head:
            out.append("".join(part))
        else:
            budget = max_chars - sum(map(len, head))
            current: list[str] = []
            for row in table[2:]:
                if current and sum(map(len, current)) + len(row) > budget:
                    out.append("".join(head + current))
                    current = []
                current.append(row)
            if current:
                out.append("".join(head + current))
        table.clear()

    for piece in pieces:
        if _TABLE_LINE.match(piece):
            table.append(piece)
            continue
        flush()
        out.append(piece)
    flush()
    return out


def chunk_sections(sections: Sequence[Section], max_chars: int, overlap_chars: int) -> list[Chunk]:
    """Chunk every section; chunks never cross a heading."""
    chunks: list[Chunk] = []
    for section in sections:
        for text in chunk_text(section.text, max_chars, overlap_chars):
            chunks.append(Chunk(index=len(chunks), headings=section.headings, text=text))
    return chunks
