"""The default composer: an answer built only from retrieved sentences, no LLM.

Shape: the sentence that answers first, then up to three supporting points, then the
sources (title, document number, dates) and a next step taken from the cited document's
own "what to do" section. Every sentence in the answer is quoted from a cited passage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.agent.models import Citation
from bot.kb.chunking import split_sentences
from bot.kb.index import ChunkRecord
from bot.kb.lexical import EN_STOP_WORDS
from bot.kb.models import Lang
from bot.kb.regions import REGIONS
from bot.kb.retriever import Hit, Retriever
from bot.prompts import Messages

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_WORD = re.compile(r"[a-z0-9]+")
_NEXT_STEP_HEADING = re.compile(r"怎么办|去哪里|what to do|where to go", re.IGNORECASE)
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")
_FACT = re.compile(
    r"\d|[一二三四五六七八九十百千万两]+(?:个月|日|天|年|倍|元|条)|\b(?:one|two|three|six|twelve)\b"
)
_REGION_NAMES = {code: name for name, code in REGIONS.items()}


@dataclass
class Composed:
    text: str
    citations: list[Citation]
    suggestions: list[str]


def _terms(text: str) -> set[str]:
    """Cheap overlap terms: CJK bigrams and English content words."""
    lowered = text.lower()
    terms = {w for w in _WORD.findall(lowered) if len(w) > 2 and w not in EN_STOP_WORDS}
    for run in re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff]+", lowered):
        terms.update(run[i : i + 2] for i in range(len(run) - 1))
    return terms


def _clean(sentence: str) -> str:
    """Markdown to plain text: bullets, emphasis and table pipes."""
    text = sentence.strip()
    if _TABLE_RULE.match(text):
        return ""
    text = re.sub(r"^\s*(?:[-*+]|\d+[.)、])\s+", "", text)
    text = text.replace("**", "").replace("__", "")
    if text.startswith("|"):
        cells = [c.strip() for c in text.strip("|").split("|") if c.strip()]
        text = " — ".join(cells)
    return text.strip()


def sentences_of(text: str) -> list[str]:
    """Plain sentences; table header rows (no figure in them) are dropped."""
    cleaned = (_clean(p) for p in split_sentences(text))
    return [
        s
        for s in cleaned
        if len(s) >= 4
        and not s.endswith((":", "："))  # a lead-in to a list or table, not an answer
        and (" — " not in s or _FACT.search(s))
    ]


def _score(sentence: str, query_terms: set[str], position: int, section_start: bool) -> float:
    terms = _terms(sentence)
    overlap = len(terms & query_terms) / (len(query_terms) or 1)
    has_fact = 0.08 if _FACT.search(sentence) else 0.0
    table_row = -0.06 if " — " in sentence else 0.0
    opening = 0.1 if position == 0 and section_start else 0.0
    return overlap + has_fact + table_row + opening - 0.02 * position


class ExtractiveComposer:
    def __init__(self, retriever: Retriever, messages: Messages) -> None:
        self._retriever = retriever
        self._messages = messages

    def compose(self, query: str, hits: list[Hit], lang: Lang) -> Composed:
        primary = hits[0]
        doc_id = primary.doc_id
        same_doc = [h for h in hits if h.doc_id == doc_id][:2]
        query_terms = _terms(query)

        chunks = self._retriever.doc_chunks(doc_id)
        candidates: list[tuple[float, int, str, Hit]] = []
        order = 0
        seen_sentences: set[str] = set()
        for rank, hit in enumerate(same_doc):
            if _NEXT_STEP_HEADING.search(hit.heading):
                continue
            # A chunk that continues a section: read the section's opening chunk too, since
            # documents put the direct answer first.
            opening = next((c for c in chunks if c.heading == hit.heading), None)
            texts = [hit.text]
            if opening is not None and opening.chunk_id != hit.chunk_id:
                texts.insert(0, opening.text)
            for index, text in enumerate(texts):
                at_section_start = index == 0 and (opening is None or texts[0] == opening.text)
                for position, sentence in enumerate(sentences_of(text)):
                    if sentence in seen_sentences:
                        continue
                    seen_sentences.add(sentence)
                    score = _score(sentence, query_terms, position, at_section_start)
                    candidates.append((score - 0.15 * rank, order, sentence, hit))
                    order += 1
        if not candidates:  # the best chunk was a "what to do" section: quote it
            candidates = [
                (_score(s, query_terms, i, True), i, s, primary)
                for i, s in enumerate(sentences_of(primary.text))
            ]
        # Documents are written answer-first, so a chunk's opening sentence gets a bonus;
        # otherwise the sentence that matches the question best answers it.
        direct = max(candidates, key=lambda c: (c[0], -c[1]))

        budget = 420 if lang == "zh" else 700
        support: list[tuple[float, int, str, Hit]] = []
        used = len(direct[2])
        for cand in sorted(candidates, key=lambda c: -c[0]):
            if cand[2] == direct[2] or cand[0] <= 0.05 or len(support) == 3:
                continue
            if used + len(cand[2]) > budget:
                continue
            support.append(cand)
            used += len(cand[2])
        support.sort(key=lambda c: c[1])

        cited_hits = [direct[3]] + [c[3] for c in support if c[3] is not direct[3]]
        citations: list[Citation] = []
        seen: set[str] = set()
        for hit in cited_hits:
            if hit.doc_id in seen:
                continue
            seen.add(hit.doc_id)
            meta = hit.doc.meta
            citations.append(
                Citation(
                    doc_id=meta.id,
                    title=meta.title,
                    authority=meta.authority,
                    doc_number=meta.doc_number,
                    issued=meta.issued,
                    effective_from=meta.starts,
                    expires=meta.expires,
                    source_url=meta.source_url,
                    heading=hit.heading,
                    excerpt=direct[2]
                    if hit is direct[3]
                    else next(c[2] for c in support if c[3] is hit),
                )
            )

        next_step = self._next_step(chunks)
        parts: list[str] = []
        if primary.doc.meta.lang != lang:
            parts.append(self._messages.get("other_language_source", lang))
        parts.append(direct[2])
        if support:
            parts.append("\n".join(f"• {c[2]}" for c in support))
        parts.append(self._sources_line(citations, lang))
        if next_step:
            label = self._messages.get("next_step_label", lang)
            parts.append(f"{label}{'：' if lang == 'zh' else ': '}{next_step}")
        return Composed(
            text="\n\n".join(p for p in parts if p),
            citations=citations,
            suggestions=self._suggestions(chunks, primary.heading),
        )

    def _sources_line(self, citations: list[Citation], lang: Lang) -> str:
        label = self._messages.get("sources_label", lang)
        items = []
        for c in citations:
            details = [c.doc_number] if c.doc_number else []
            details.append(
                self._messages.get("effective_label", lang, date=c.effective_from.isoformat())
            )
            if c.expires:
                details.append(
                    self._messages.get("expires_label", lang, date=c.expires.isoformat())
                )
            meta = self._retriever.documents().get(c.doc_id)
            if meta is not None and meta.meta.region != "national":
                region = meta.meta.region
                name = _REGION_NAMES.get(region, region) if lang == "zh" else region.title()
                details.append(self._messages.get("region_label", lang, region=name))
            if lang == "zh":
                items.append(f"《{c.title}》（{c.authority}；{'；'.join(details)}）")
            else:
                items.append(f"{c.title} ({c.authority}; {'; '.join(details)})")
        separator = "：" if lang == "zh" else ": "
        return f"{label}{separator}" + ("；".join(items) if lang == "zh" else "; ".join(items))

    @staticmethod
    def _next_step(chunks: list[ChunkRecord]) -> str:
        for chunk in chunks:
            if _NEXT_STEP_HEADING.search(chunk.heading):
                steps = sentences_of(chunk.text)[:2]
                return " ".join(steps)
        return ""

    @staticmethod
    def _suggestions(chunks: list[ChunkRecord], current: str) -> list[str]:
        seen: list[str] = []
        for chunk in chunks:
            heading = chunk.heading.split(" > ")[-1]
            if (
                chunk.heading != current
                and not _NEXT_STEP_HEADING.search(heading)
                and heading not in seen
                and len(chunk.heading.split(" > ")) > 1
            ):
                seen.append(heading)
        return seen[:3]
