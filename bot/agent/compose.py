"""The default composer: an answer built only from retrieved sentences, no LLM.

Shape: the sentence that answers first, then up to three supporting points, then the
sources (title, document number, dates) and a next step taken from the cited document's
own "what to do" section. Every sentence in the answer is quoted from a cited passage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, ClassVar

from bot.agent.guardrails import is_planted
from bot.agent.lead_rank import Candidate, LeadScorer, is_yes_no, rules
from bot.agent.models import Citation
from bot.agent.yes_no import opening, verdict
from bot.kb.chunking import split_sentences
from bot.kb.index import ChunkRecord
from bot.kb.lexical import EN_STOP_WORDS
from bot.kb.models import Lang
from bot.kb.regions import region_name
from bot.kb.retriever import Hit, Retriever
from bot.prompts import Messages

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_WORD = re.compile(r"[a-z0-9]+")
# Every document ends with a "怎么办 / 去哪里办" ("What to do / where to go") section: the
# next step. Other sections may ask "……怎么办" too; they are answers, not next steps.
_NEXT_STEP_HEADING = re.compile(
    r"(?:^|> )(?:怎么办\s*/\s*去哪里办|what to do\s*/\s*where to go)\s*$", re.IGNORECASE
)
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")
_FACT = re.compile(
    r"\d|[一二三四五六七八九十百千万两]+(?:个月|日|天|年|倍|元|条)|\b(?:one|two|three|six|twelve)\b"
)
_TABLE_ROW = re.compile(r"^[^—]{1,40}：.* — ")  # "header：cell — header：cell" (see below)

_NUM = r"(?:\d+|[一二三四五六七八九十两半]+)"
_EN_DURATION = (
    r"\b\d+\s*(?:to|-|–)\s*\d+\s*(?:months|years)\b|\b\d+\s*(?:months?|years?|days?|weeks?)\b"
    r"|\b(?:one|two|three|six|twelve) (?:months?|years?)\b"
)
# What kind of answer a question asks for, and what such an answer looks like: "多久" is
# answered by a duration, "什么时候" by a date, "哪些人" by who qualifies.
ANSWER_TYPES: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = tuple(
    (re.compile(question, re.IGNORECASE), re.compile(answer, re.IGNORECASE))
    for question, answer in (
        (
            r"多久|多长时间|多长|几个月|几年|期限|how long(?! (?:is|are|was|were)\b)"
            r"|how many (?:months|years|days)",
            rf"{_NUM}\s*(?:个月|年|日|天|周)|{_EN_DURATION}",
        ),
        (
            # "How long is the service?" asks how long it lasts: a window dated from an
            # event ("within 2 years of completing it", "2 years after it ends") does not say
            r"\bhow long (?:is|are|was|were)\b",
            rf"(?<!within )(?:{_EN_DURATION})(?!\s+(?:after|of|ago|later|before)\b)",
        ),
        (
            r"什么时候|何时|截止|到什么时候|哪天|几号|\bwhen\b|deadline|\buntil\b",
            r"\d{4}\s*年|\d{1,2}\s*月\s*\d{1,2}\s*日|\d{4}-\d{2}-\d{2}|月底|截至|截止"
            r"|\b(?:january|february|march|april|may|june|july|august|september|october"
            r"|november|december)\b",
        ),
        (
            r"多少钱|多少|金额|标准|how much|amount|\bpay\b",
            r"\d+(?:\.\d+)?\s*(?:元|万|%|倍)|[一二两三]倍|yuan|rmb|%|double|twice|\btimes\b",
        ),
        (
            r"哪些人|什么人|谁可以|谁能|对象|资格|条件|符合|\bwho\b|eligib|qualif",
            r"对象|条件|符合|困难|家庭|包括|面向|eligib|open to|families|must be|who (?:are|have)",
        ),
        (
            r"哪里|在哪|去哪|哪个网站|什么平台|\bwhere\b|website|online",
            r"[a-z0-9-]+\.(?:cn|com|org)|网站|平台|窗口|热线|website|platform|hotline|online",
        ),
        (
            r"怎么办|咋办|怎么操作|怎么处理|怎么弄|如何|what (?:should|can) i do|how (?:do|can|to)",
            r"应当|可以|立即|及时|拨打|报警|申请|提交|办理|联系|\bshould\b|\bcall\b|contact"
            r"|\bapply\b|\breport\b",
        ),
    )
)


def answer_types(question: str) -> list[re.Pattern[str]]:
    """The answer shapes the question asks for (several for a two-part question)."""
    return [answer for asks, answer in ANSWER_TYPES if asks.search(question)]


Scored = tuple[float, int, str, Hit]
"""A sentence as the composer ranks it: (lead score, document order, sentence, its hit)."""


def part_leads(
    best: Scored, candidates: list[Scored], wanted: list[re.Pattern[str]]
) -> list[Scored]:
    """The opening sentences. A question in parts ("how long is the service and where do I
    apply?") asks for several kinds of answer; each gets a lead: the best-scored sentence
    that has it (a sentence may answer several parts), after the ranker's best sentence,
    in document order. So does a one-part question whose best sentence lacks the kind of
    answer it asks for ("And what about pay?" — "… at least 80 %"); a question asking for
    no particular kind has one lead, the ranker's best sentence."""
    leads = [best]
    for shape in wanted:
        having = [c for c in candidates if shape.search(c[2])]
        if having and not any(shape.search(c[2]) for c in leads):
            leads.append(max(having, key=lambda c: (c[0], -c[1])))
    return [best, *sorted(leads[1:], key=lambda c: c[1])]


def also_answering(leads: list[Scored], sentences: list[Scored], alone: float) -> list[Scored]:
    """The leads, and the best other sentence that answers by itself too (its score at or
    above ``alone``: the ranker's ``answers_alone``), in document order after the first:
    a rule and its case ("试用期最长不得超过六个月" and "三年以上固定期限的，不得超过六个月"),
    or a rule and its exception. ``sentences`` holds the prose sentences only: a table row
    or a list item comes whole in the points below."""
    also = [c for c in sentences if c not in leads and c[0] >= alone]
    if not also:
        return leads
    second = max(also, key=lambda c: (c[0], -c[1]))
    return [leads[0], *sorted([*leads[1:], second], key=lambda c: c[1])]


@dataclass
class Composed:
    text: str
    citations: list[Citation]
    suggestions: list[str]


def overlap_terms(text: str) -> set[str]:
    """Cheap overlap terms: CJK bigrams and English content words."""
    lowered = text.lower()
    terms = {w for w in _WORD.findall(lowered) if len(w) > 2 and w not in EN_STOP_WORDS}
    for run in re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff]+", lowered):
        terms.update(run[i : i + 2] for i in range(len(run) - 1))
    return terms


def _clean(sentence: str) -> str:
    """Markdown to plain text: bullets and emphasis."""
    text = re.sub(r"^\s*(?:[-*+]|\d+[.)、])\s+", "", sentence.strip())
    return text.replace("**", "").replace("__", "").strip()


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


@lru_cache(maxsize=8192)
def sentences_with_context(text: str) -> tuple[tuple[str, str], ...]:
    """Plain sentences, each with the words that give it context: a table row carries its
    header ("劳动合同期限：一年以上、不满三年 — 试用期上限：不超过二个月"), a list item the
    lead-in sentence before it. Lead-ins themselves ("……如下：") are not answers.

    Cached: every answer reads the sentences of its document's chunks, and a chunk's text
    never changes (a replaced document has new chunks)."""
    result: list[tuple[str, str]] = []
    header: list[str] | None = None
    lead_in = previous = ""
    for piece in split_sentences(text):
        line = piece.strip()
        if line.startswith("|"):
            if _TABLE_RULE.match(line):
                continue
            cells = _cells(line)
            if header is None:
                header = cells
                continue
            if len(header) == len(cells):
                row = " — ".join(f"{h}：{c}" for h, c in zip(header, cells, strict=True))
            else:
                row = " — ".join(cells)
            result.append((row, lead_in))
            continue
        header = None
        sentence = _clean(line)
        if len(sentence) < 4:
            continue
        if sentence.endswith((":", "：")):
            lead_in = sentence
            continue
        if is_planted(sentence):  # an instruction planted in a document is not quoted
            continue
        is_item = bool(re.match(r"^\s*(?:[-*+]|\d+[.)、])\s+", line))
        if is_item:
            # A list with no "……：" lead-in is introduced by the sentence before it.
            result.append((sentence, lead_in or previous))
            continue
        if result and not result[-1][1] and (_is_terse(result[-1][0]) or _ANAPHOR.match(sentence)):
            # "档案不能自己带走。" says what, the next sentence says why and how: one point.
            before = result.pop()[0]
            joiner = (
                "" if _CJK.search(before[-1]) or before.endswith(("。", "！", "？", "；")) else " "
            )
            sentence = before + joiner + sentence
        result.append((sentence, ""))
        lead_in, previous = "", sentence
    return tuple(result)


# "这是《……》第十三条的规定。" only names the source of the sentence before it.
_ANAPHOR = re.compile(r"这是.{0,30}(?:规定|条)|依据是|this is (?:set|laid down) (?:in|by)", re.I)


def _is_terse(sentence: str) -> bool:
    """A sentence too short to stand alone as a point."""
    return len(sentence) < (14 if _CJK.search(sentence) else 45)


def sentences_of(text: str) -> list[str]:
    return [sentence for sentence, _ in sentences_with_context(text)]


def _score(sentence_terms: frozenset[str], query_terms: dict[str, float]) -> float:
    """IDF-weighted share of the question's terms found in the sentence."""
    total = sum(query_terms.values()) or 1.0
    overlap = sum(w for t, w in query_terms.items() if t in sentence_terms) / total
    return overlap


def citation_for(hit: Hit, excerpt: str) -> Citation:
    meta = hit.doc.meta
    return Citation(
        doc_id=meta.id,
        title=meta.title,
        authority=meta.authority,
        doc_number=meta.doc_number,
        issued=meta.issued,
        effective_from=meta.starts,
        expires=meta.expires,
        source_url=meta.source_url,
        heading=hit.heading,
        excerpt=excerpt,
    )


@dataclass
class Measured:
    """The best document's sentences as the lead ranker sees them: (features, document
    order, sentence, the hit it is quoted from), and the lists they belong to."""

    chunks: list[ChunkRecord]
    candidates: list[tuple[Candidate, int, str, Hit]] = field(default_factory=list)
    lists: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    list_of: dict[str, tuple[str, str]] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    """Each sentence's index in ``candidates``."""


class ExtractiveComposer:
    LIST_LIMIT: ClassVar[dict[str, int]] = {"zh": 260, "en": 500}
    MAX_POINTS = 3  # the issue: the direct answer, then 1–3 supporting points
    TYPE_BONUS = 0.25  # support: a sentence with a kind of answer still missing comes first
    BUDGET: ClassVar[dict[str, int]] = {"zh": 520, "en": 900}

    def __init__(self, retriever: Retriever, messages: Messages, lead: LeadScorer) -> None:
        self._retriever = retriever
        self._messages = messages
        self._lead = lead
        self._term_cache: dict[str, frozenset[str]] = {}

    def _sentence_terms(self, sentence: str) -> frozenset[str]:
        """A sentence's corpus terms; documents change rarely, so they are cached."""
        terms = self._term_cache.get(sentence)
        if terms is None:
            if len(self._term_cache) > 50_000:
                self._term_cache.clear()
            terms = frozenset(self._retriever.weighted_terms(sentence))
            self._term_cache[sentence] = terms
        return terms

    def measure(self, query: str, hits: list[Hit]) -> Measured:
        """Every sentence of the best document, measured for the lead ranker. Every
        section competes, so the answer does not depend on which of the document's chunks
        retrieval happened to rank first."""
        primary = hits[0]
        doc_id = primary.doc_id
        same_doc = [h for h in hits if h.doc_id == doc_id][:3]
        query_terms = self._retriever.weighted_terms(query)
        wanted = answer_types(query)
        yes_no = is_yes_no(query)
        terms_of = self._sentence_terms

        chunks = self._retriever.doc_chunks(doc_id)
        rank_of = {h.chunk_id: rank for rank, h in enumerate(same_doc)}
        section_start: dict[str, str] = {}
        section_rank: dict[str, int] = {}
        for chunk in chunks:
            section_start.setdefault(chunk.heading, chunk.chunk_id)
            if chunk.chunk_id in rank_of:
                best = section_rank.get(chunk.heading, rank_of[chunk.chunk_id])
                section_rank[chunk.heading] = min(best, rank_of[chunk.chunk_id])
        measured = Measured(chunks=chunks)

        def candidate(
            sentence: str, lead_in: str, heading_terms: frozenset[str], position: int, **kw: Any
        ) -> Candidate:
            own = terms_of(sentence)
            around = heading_terms | (terms_of(lead_in) if lead_in else frozenset())
            return Candidate(
                own=_score(own, query_terms),
                context=_score(own | around, query_terms),
                heading=_score(heading_terms, query_terms),
                fact=bool(_FACT.search(sentence)),
                position=position,
                shape=any(shape.search(sentence) for shape in wanted),
                asks_shape=bool(wanted),
                length=len(sentence),
                yes_no=yes_no,
                modal=rules(sentence),
                list_item=bool(lead_in),
                **kw,
            )

        for chunk in chunks:
            if _NEXT_STEP_HEADING.search(chunk.heading):
                continue
            rank = rank_of.get(chunk.chunk_id)
            hit = (
                same_doc[rank]
                if rank is not None
                else Hit(
                    chunk_id=chunk.chunk_id,
                    doc=primary.doc,
                    heading=chunk.heading,
                    text=chunk.text,
                    score=0.0,
                )
            )
            heading_terms = terms_of(chunk.heading.split(" > ")[-1])
            at_start = section_start[chunk.heading] == chunk.chunk_id
            for position, (sentence, lead_in) in enumerate(sentences_with_context(chunk.text)):
                if sentence in measured.seen:
                    # chunks overlap: a sentence counts as found by the best-ranked chunk
                    # that holds it, not by whichever comes first in the document
                    at = measured.seen[sentence]
                    features, order, text, found = measured.candidates[at]
                    if rank is not None and (
                        features.retrieved_rank is None or rank < features.retrieved_rank
                    ):
                        better = replace(
                            features, retrieved_rank=rank, chunk_dense=hit.dense_score or 0.0
                        )
                        measured.candidates[at] = (better, order, text, found)
                    continue
                measured.seen[sentence] = len(measured.candidates)
                if lead_in:
                    measured.lists.setdefault((chunk.chunk_id, lead_in), []).append(sentence)
                    measured.list_of[sentence] = (chunk.chunk_id, lead_in)
                features = candidate(
                    sentence,
                    lead_in,
                    heading_terms,
                    position,
                    opening=position == 0 and at_start,
                    retrieved_rank=rank,
                    section_rank=section_rank.get(chunk.heading),
                    chunk_dense=hit.dense_score or 0.0,
                    table_row=_TABLE_ROW.search(sentence) is not None,
                )
                measured.candidates.append((features, len(measured.candidates), sentence, hit))
        if not measured.candidates:  # the best chunk was a "what to do" section: quote it
            heading_terms = terms_of(primary.heading.split(" > ")[-1])
            for i, sentence in enumerate(sentences_of(primary.text)):
                features = candidate(
                    sentence,
                    "",
                    heading_terms,
                    i,
                    opening=i == 0,
                    retrieved_rank=0,
                    section_rank=0,
                    chunk_dense=primary.dense_score or 0.0,
                    table_row=False,
                )
                measured.candidates.append((features, i, sentence, primary))
        best_own = max((c[0].own for c in measured.candidates), default=0.0)
        best_context = max((c[0].context for c in measured.candidates), default=0.0)
        sentences = [c[2] for c in measured.candidates]
        dense = (
            self._retriever.similarities(query, sentences)
            if self._lead.reads_similarity
            else [0.0] * len(sentences)
        )
        measured.candidates = [
            (
                replace(
                    f,
                    best_own=best_own,
                    best_context=best_context,
                    sentence_dense=similarity,
                ),
                order,
                sentence,
                hit,
            )
            for (f, order, sentence, hit), similarity in zip(
                measured.candidates, dense, strict=True
            )
        ]
        return measured

    def compose(self, query: str, hits: list[Hit], lang: Lang) -> Composed:
        primary = hits[0]
        wanted = answer_types(query)
        measured = self.measure(query, hits)
        chunks, lists, list_of = measured.chunks, measured.lists, measured.list_of
        candidates = [
            (self._lead.score(features), order, sentence, hit)
            for features, order, sentence, hit in measured.candidates
        ]
        # The sentence the lead scorer ranks first answers; the next best sentences of
        # the document support it, in document order.
        # A question in parts has a lead for each part (``_part_leads``).
        best = max(candidates, key=lambda c: (c[0], -c[1]))
        leads = part_leads(best, candidates, wanted)
        if self._lead.answers_alone is not None:
            prose = [
                scored
                for scored, (features, *_) in zip(candidates, measured.candidates, strict=True)
                if not (features.table_row or features.list_item)
            ]
            leads = also_answering(leads, prose, self._lead.answers_alone)
        direct, more = leads[0], leads[1:]
        support = self._support(leads, candidates, wanted, lang)
        # The answer introduces a list (steps, eligible groups): the list comes with it.
        chunk_text = direct[3].text
        at = chunk_text.find(direct[2])
        following = chunk_text[at + len(direct[2]) : at + len(direct[2]) + 80] if at >= 0 else ""
        introduced = next(
            (
                items
                for (chunk_id, lead_in), items in lists.items()
                if chunk_id == direct[3].chunk_id
                and (lead_in == direct[2] or (following and lead_in in following))
            ),
            None,
        )
        if introduced:
            first_item = next(c for c in candidates if c[2] == introduced[0])
            if first_item not in support:
                support = [*support[: self.MAX_POINTS - 1], first_item]
        support.sort(key=lambda c: c[1])
        direct, support = self._whole_lists(direct, support, lists, list_of, lang)
        support = [c for c in support if c[2] not in {m[2] for m in more}]

        cited_hits = [direct[3]] + [c[3] for c in [*more, *support] if c[3] is not direct[3]]
        citations: list[Citation] = []
        seen: set[str] = set()
        for hit in cited_hits:
            if hit.doc_id in seen:
                continue
            seen.add(hit.doc_id)
            excerpt = (
                direct[2]
                if hit is direct[3]
                else next(c[2] for c in [*more, *support] if c[3] is hit)
            )
            citations.append(citation_for(hit, excerpt))

        parts: list[str] = []
        if primary.doc.meta.lang != lang:
            parts.append(self._messages.get("other_language_source", lang))
        # A yes/no question the lead sentence settles is answered yes or no first.
        settled = verdict(query, direct[2])
        said = [opening(settled, query, lang, self._messages)] if settled else []
        parts.append((" " if lang == "en" else "").join([*said, *(c[2] for c in [direct, *more])]))
        if support:
            parts.append("\n".join(f"• {c[2]}" for c in support))
        return Composed(
            text=self.finish("\n\n".join(parts), citations, lang),
            citations=citations,
            suggestions=self._suggestions(chunks, primary.heading),
        )

    def _support(
        self,
        leads: list[tuple[float, int, str, Hit]],
        candidates: list[tuple[float, int, str, Hit]],
        wanted: list[re.Pattern[str]],
        lang: Lang,
    ) -> list[tuple[float, int, str, Hit]]:
        """The best-scoring sentences support the leads; while a kind of answer the
        question asks for is still missing, a sentence that has it comes first."""
        missing = [shape for shape in wanted if not any(shape.search(c[2]) for c in leads)]
        budget = self.BUDGET[lang]
        used = sum(len(c[2]) for c in leads)
        # A point must score something: 0.05 on the hand weights' scale, and never more
        # than a tenth of the lead's score (the learned ranker's probabilities fall
        # steeply after its first sentence, and below 0.05 for a weakly matched document)
        floor = min(0.05, 0.1 * leads[0][0])
        pool = [c for c in candidates if c not in leads and c[0] > floor]
        support: list[tuple[float, int, str, Hit]] = []
        while pool and len(support) < self.MAX_POINTS:
            gains = [
                c[0] + (self.TYPE_BONUS if any(m.search(c[2]) for m in missing) else 0.0)
                for c in pool
            ]
            best = pool.pop(max(range(len(pool)), key=lambda i: (gains[i], -pool[i][1])))
            if used + len(best[2]) > budget:
                continue
            support.append(best)
            used += len(best[2])
            missing = [shape for shape in missing if not shape.search(best[2])]
        return support

    def _whole_lists(
        self,
        direct: tuple[float, int, str, Hit],
        support: list[tuple[float, int, str, Hit]],
        lists: dict[tuple[str, str], list[str]],
        list_of: dict[str, tuple[str, str]],
        lang: Lang,
    ) -> tuple[tuple[float, int, str, Hit], list[tuple[float, int, str, Hit]]]:
        """A chosen list item stands for its whole list when the list is short: "who can
        apply" is answered by all the groups, with the sentence that introduces them."""
        limit = self.LIST_LIMIT[lang]
        separator = "；" if lang == "zh" else "; "
        done: set[tuple[str, str]] = set()
        result: list[tuple[float, int, str, Hit]] = []
        for cand in [direct, *support]:
            key = list_of.get(cand[2])
            if key is None:
                result.append(cand)
                continue
            if key in done:
                continue
            lead_in, items = key[1], lists[key]
            if lang == "en" and lead_in:
                lead_in += " "
            joined = lead_in + separator.join(i.rstrip("；;。.") for i in items)
            if len(items) > 1 and len(joined) <= limit:
                result.append((cand[0], cand[1], joined + ("。" if lang == "zh" else "."), cand[3]))
                done.add(key)
            else:
                result.append(cand)
        # A sentence now shown as a list's introduction is not repeated on its own.
        intros = {key[1] for key in done}
        kept = [c for c in result if c[2] not in intros or list_of.get(c[2]) in done]
        return kept[0], kept[1:]

    def finish(self, body: str, citations: list[Citation], lang: Lang) -> str:
        """The answer body, then the sources line and the first cited document's next step."""
        parts = [body, self._sources_line(citations, lang)]
        next_step = self._next_step(self._retriever.doc_chunks(citations[0].doc_id))
        if next_step:
            label = self._messages.get("next_step_label", lang)
            parts.append(f"{label}{'：' if lang == 'zh' else ': '}{next_step}")
        return "\n\n".join(p for p in parts if p)

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
                name = region_name(region, lang)
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
