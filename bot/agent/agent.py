"""The answering agent: a message and the conversation in, a structured ``Reply`` out.

Every message is first classified by the message check (``bot.agent.guard``, a model fitted
to labelled messages). Order of decisions: noise (nothing to read) → crisis (three kinds,
each with its own emergency message and an urgent handoff) → request for a person → prompt
injection (the injected sentences are dropped and the rest is checked again) → greeting →
illegal request → out of scope → retrieval → relevance gate (answer, or "not sure" and, the
second time, a counsellor) → extractive answer, with a handoff added when a rights violation
is happening now. Knows no channel.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
from collections.abc import Sequence
from concurrent.futures import Executor

from bot.agent import guardrails as g
from bot.agent.card_answer import CATEGORY_INTENT as _CATEGORY_INTENT
from bot.agent.card_answer import CardAnswerer
from bot.agent.card_match import CardMatcher, load_matcher
from bot.agent.compose import Composed, ExtractiveComposer, citation_for, overlap_terms
from bot.agent.dates import current, format_date
from bot.agent.guard import Guard, Label, Verdict, build_guard
from bot.agent.lead_rank import lead_scorer
from bot.agent.llm_composer import LlmComposer, LlmUnavailable
from bot.agent.models import Conversation, HandoffReason, Intent, Reply, Turn
from bot.components.llm import build_chat_model
from bot.kb.cards import Card
from bot.kb.chunking import split_sentences
from bot.kb.lexical import expand_pinyin
from bot.kb.models import Lang, detect_lang
from bot.kb.regions import NATIONAL, applies, normalise_region, region_name
from bot.kb.retriever import Hit
from bot.kb.service import KnowledgeBase
from bot.privacy import redact
from bot.prompts import Messages
from bot.settings import Settings

logger = logging.getLogger(__name__)

# A short message that leans on the previous one: "那试用期工资呢", "报完以后下一步干啥",
# "and on national holidays?", "is it paid?".
_FOLLOW_UP_ZH = re.compile(
    r"^(?:那|那么|还有|如果|要是|另外|假如|再问|换成|然后)|以后|之后|接下来|下一步|这个|它"
    r"|[呢]\s*[？?]?\s*$"
)
_FOLLOW_UP_EN = re.compile(
    r"^(?:and|what about|how about|what if|if|also|but|same for|is that|does that|then"
    r"|after that)\b|\b(?:it|this|that|they|them|those|afterwards|next step)\b",
    re.I,
)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_CRISIS_MESSAGES = {
    Label.SELF_HARM: "crisis",
    Label.VIOLENCE: "crisis_violence",
    Label.CONFINED: "crisis_confined",
}
"""The emergency message for each kind of crisis (prompts/messages.yaml)."""


_FULL_WIDTH_ALNUM = {
    code: code - 0xFEE0
    for start, end in ((0xFF10, 0xFF19), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A))
    for code in range(start, end + 1)
}
"""Full-width digits and Latin letters (a Chinese keyboard in full-width mode) → ASCII.
Full-width punctuation stays: it belongs to Chinese text."""


def clean_text(message: str) -> str:
    """The message as the agent reads it: without invisible format characters (zero-width
    spaces copied from web pages split words apart), full-width letters and digits folded
    to ASCII, surrounding space trimmed."""
    text = "".join(ch for ch in message if unicodedata.category(ch) != "Cf")
    return text.translate(_FULL_WIDTH_ALNUM).replace("\u3000", " ").strip()


def is_follow_up(message: str) -> bool:
    if _CJK.search(message):
        return len(_CJK.findall(message)) <= 14 and bool(_FOLLOW_UP_ZH.search(message.strip()))
    return len(message.split()) <= 9 and bool(_FOLLOW_UP_EN.search(message.strip()))


def confidence(query: str, hits: list[Hit]) -> float:
    """How sure we are that the best passage answers the query, in [0, 1]: query-term
    coverage of the passage, dense similarity, and agreement of both retrievers."""
    if not hits:
        return 0.0
    top = hits[0]
    query_terms = overlap_terms(expand_pinyin(query))
    passage_terms = overlap_terms(f"{top.doc.meta.title} {top.heading} {top.text}")
    coverage = len(query_terms & passage_terms) / (len(query_terms) or 1)
    dense = min(1.0, max(0.0, ((top.dense_score or 0.0) - 0.2) / 0.5))
    both = 1.0 if top.dense_rank is not None and top.lexical_rank is not None else 0.0
    return round(0.55 * coverage + 0.35 * dense + 0.10 * both, 3)


class Agent:
    def __init__(
        self,
        kb: KnowledgeBase,
        settings: Settings,
        messages: Messages | None = None,
        guard: Guard | None = None,
        cards: CardMatcher | None = None,
    ) -> None:
        self._kb = kb
        self._guard = guard or build_guard(kb.embedder, settings)
        self._settings = settings
        self._messages = messages or Messages.load()
        lead = lead_scorer(settings.lead_ranker)
        self._composer = ExtractiveComposer(kb.retriever, self._messages, lead)
        self._library = cards
        """The knowledge base's own cards (``knowledge_dir/cards``)."""
        self._matcher = cards
        """The library's cards and the answers approved in the console (``use_curated``)."""
        self._curated: list[Card] = []
        self._cards_loaded = cards is not None
        self._cards_lock = threading.Lock()
        model = build_chat_model(settings)
        self._llm = LlmComposer(model, settings.llm_timeout_s) if model is not None else None

    # -- public -------------------------------------------------------------------------

    def reply(self, conversation: Conversation, message: str) -> Reply:
        started = time.perf_counter()
        text = clean_text(message)
        lang = self._language(conversation, text)
        reply, query = self._decide(conversation, text, lang)
        reply.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        reply.summary = redact(text)[-200:]
        conversation.turns.append(Turn(role="user", text=text, query=query))
        conversation.turns.append(
            Turn(
                role="bot",
                text=reply.text,
                intent=reply.intent,
                doc_ids=[c.doc_id for c in reply.citations],
            )
        )
        del conversation.turns[: -2 * self._settings.conversation_max_turns]
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "reply intent=%s confidence=%.2f handoff=%s latency_ms=%.1f question=%s",
                reply.intent.value,
                reply.confidence,
                reply.handoff_reason,
                reply.latency_ms,
                redact(text)[:120],
            )
        return reply

    def warm_up(self, pool: Executor, per_language: int = 8) -> int:
        """Answer questions made of the knowledge base's own titles (``per_language`` in
        each language) on ``pool``'s threads, before the first graduate's: a fresh
        process answers its first questions slowly (the model's first runs, the vector
        index loaded on first use, the composer's caches), and under load that start
        becomes a queue (measured: p95 1.3 s instead of 0.04 s in
        ``bench/telegram_load.py``). Returns how many were answered."""
        titles: dict[str, list[str]] = {}
        for doc in self._kb.documents():
            titles.setdefault(doc.meta.lang, []).append(doc.meta.title)
        questions = [title for found in titles.values() for title in found[:per_language]]
        return sum(1 for _ in pool.map(lambda q: self.reply(Conversation(), q), questions))

    def record_feedback(self, conversation: Conversation, helpful: bool) -> Reply | None:
        """A 👍/👎 on the last answer; two 👎 in a row hand over to a counsellor."""
        if helpful:
            conversation.negative_rating_streak = 0
            return None
        conversation.negative_rating_streak += 1
        if conversation.negative_rating_streak < 2:
            return None
        conversation.negative_rating_streak = 0
        lang = conversation.lang or self._last_lang(conversation)
        return Reply(
            text=self._messages.get("repeated_failure_handoff", lang),
            lang=lang,
            intent=Intent.HANDOFF_REQUEST,
            handoff=True,
            handoff_reason=HandoffReason.REPEATED_FAILURE,
        )

    # -- decisions -----------------------------------------------------------------------

    def _decide(
        self, conversation: Conversation, text: str, lang: Lang
    ) -> tuple[Reply, str | None]:
        if g.is_noise(text):  # nothing to read: no words, only emoji or keyboard mashing
            return self._special("help", lang, Intent.UNCLEAR), None
        verdict = self._guard.classify(text, earlier=self._earlier(conversation))
        if verdict.crisis:
            return self._crisis(verdict, lang), None
        focus = self._focus(text)
        injected = False
        if verdict.label is Label.INJECTION or Label.INJECTION in verdict.lexicon:
            # The sentences that try to change the bot are dropped; what is left is read
            # again as if it had been sent alone.
            focus = self._guard.without_injection(focus)
            if not focus:
                return self._special("injection", lang, Intent.OUT_OF_SCOPE, signals=verdict), None
            injected = True
            verdict = self._guard.classify(focus, earlier=self._earlier(conversation))
            if verdict.crisis:
                return self._crisis(verdict, lang), None
            if verdict.label is not Label.HUMAN and verdict.label is not Label.ORDINARY:
                return self._special("injection", lang, Intent.OUT_OF_SCOPE, signals=verdict), None
        if verdict.label is Label.HUMAN:
            reply = self._special(
                "handoff_requested",
                lang,
                Intent.HANDOFF_REQUEST,
                HandoffReason.REQUESTED,
                signals=verdict,
            )
            return reply, None
        if g.is_greeting(focus):
            return self._special("greeting", lang, Intent.GREETING), None
        if verdict.label is Label.ILLEGAL:
            return self._special("illegal", lang, Intent.OUT_OF_SCOPE, signals=verdict), None
        if self._guard.surely_out_of_scope(verdict):
            # a refusal given to an in-domain question leaves a graduate with nothing:
            # below this the knowledge base decides (an uploaded document may answer it)
            return self._special("out_of_scope", lang, Intent.OUT_OF_SCOPE, signals=verdict), None

        region = g.mentioned_region(focus) or conversation.region
        query = focus
        previous = conversation.last_user_query()
        search = self._kb.search
        k = self._settings.answer_candidates
        anchored = bool(previous) and is_follow_up(focus)
        first: list[Hit] | None = None
        answerer = self._card_answerer()
        if answerer is not None and not self._names_unknown_programme(focus):
            carded = answerer.resume(conversation, text, lang, region)
            if carded is None and not anchored:
                first = search(focus, k=k, lang=lang, region=region)
                carded = answerer.answer(conversation, focus, lang, region, first)
            if carded is not None:
                conversation.low_confidence_streak = 0
                return self._with_notices(carded, focus, region), focus
        if previous and anchored:
            # A follow-up is not self-contained: anchor it to the topic of the last answer
            # (its document's title, else the last question), then answer with the passage
            # that matches the follow-up itself best.
            query = f"{focus} {self._last_topic(conversation) or previous[-200:]}"
            hits = search(query, k=k, lang=lang, region=region)
            focus_terms = overlap_terms(expand_pinyin(focus))
            if hits:
                # the anchored query picks the document; the follow-up's own words rank its
                # sections (what the composer reads as each section's retrieval rank)
                own = [
                    h
                    for h in search(focus, k=k * 3, lang=lang, region=region)
                    if h.doc_id == hits[0].doc_id
                ]
                seen = {h.chunk_id for h in own}
                hits = own + [h for h in hits if h.chunk_id not in seen]
                lead = max(
                    hits, key=lambda h: len(focus_terms & overlap_terms(f"{h.heading} {h.text}"))
                )
                hits = [lead] + [h for h in hits if h is not lead]
        else:
            hits = first if first is not None else search(query, k=k, lang=lang, region=region)
        score = confidence(query, hits)
        if self._names_unknown_programme(focus):
            score = min(score, self._settings.answer_threshold - 0.01)

        if injected and (not hits or score < self._settings.answer_threshold):
            # what is left of an injection attempt is no question the documents answer
            return self._special("injection", lang, Intent.OUT_OF_SCOPE), query
        if not hits or score < self._settings.answer_threshold:
            if verdict.label is Label.OUT_OF_SCOPE:
                reply = self._special("out_of_scope", lang, Intent.OUT_OF_SCOPE, signals=verdict)
                reply.confidence = score
                return reply, query
            if g.violation_now(focus):
                reply = self._special(
                    "handoff_sensitive", lang, Intent.RIGHTS, HandoffReason.SENSITIVE
                )
                reply.confidence = score
                return reply, query
            conversation.low_confidence_streak += 1
            if conversation.low_confidence_streak >= 2:
                conversation.low_confidence_streak = 0
                reply = self._special(
                    "low_confidence_handoff",
                    lang,
                    Intent.UNCLEAR,
                    HandoffReason.LOW_CONFIDENCE,
                )
            else:
                reply = self._special("low_confidence", lang, Intent.UNCLEAR)
            reply.confidence = score
            return reply, query

        conversation.low_confidence_streak = 0
        if not anchored:
            hits = self._prefer_title(hits, focus)
        hits = self._prefer_language(hits, query, lang, region)
        composed: Composed | None = None
        if self._llm is not None:
            try:
                composed = self._llm_answer(query, hits, lang)
            except LlmUnavailable as exc:
                logger.warning("LLM answer not used, falling back to extractive: %s", exc)
            else:
                if composed is None:  # the model found no answer in the passages
                    conversation.low_confidence_streak += 1
                    reply = self._special("low_confidence", lang, Intent.UNCLEAR)
                    reply.confidence = score
                    return reply, query
        used_llm = composed is not None
        if composed is None:
            # A follow-up's own words pick the sentences; the anchored query the document.
            composed = self._composer.compose(focus, hits, lang)
        category = hits[0].doc.meta.topics[0] if hits[0].doc.meta.topics else ""
        reply = Reply(
            text=composed.text,
            lang=lang,
            intent=_CATEGORY_INTENT.get(category, Intent.POLICY),
            citations=composed.citations,
            confidence=score,
            suggestions=composed.suggestions,
            composer="llm" if used_llm else "extractive",
        )
        return self._with_notices(reply, focus, region), query

    def _with_notices(self, reply: Reply, focus: str, region: str | None) -> Reply:
        """An answer, with the question for the region when the rule varies by place and
        none is known, and a counsellor brought in when a violation is happening now."""
        say = self._messages.get
        parts = [reply.text]
        today = self._kb.clock()
        timing = current(reply.text, today)
        if timing is not None:
            # a document states dates, never "today": open, closed or to come is said now
            status, window = timing
            dates = {
                "today": format_date(today, reply.lang),
                "end": format_date(window.end, reply.lang),
                "start": format_date(window.start or window.end, reply.lang),
                "days": (window.end - today).days,
            }
            parts.append(say(f"date_window_{status.value}", reply.lang, **dates))
        if g.region_dependent(focus) and region is None:
            parts.append(say("ask_region", reply.lang))
        local = region is not None and normalise_region(region) != NATIONAL
        named = local and bool(g.mentioned_region(focus) or g.region_dependent(focus))
        if named and region is not None and not self._has_local_documents(region):
            # asked about a place with no document of its own: say so, never pass another
            # region's figures off as its own (the retriever only offers national ones)
            # on the line above the answer, in its opening paragraph (what is read first)
            name = region_name(region, reply.lang)
            notice = say("region_no_document", reply.lang, region=name)
            parts[0] = f"{notice}\n{parts[0]}"
        if g.violation_now(focus):
            parts.insert(0, say("handoff_sensitive", reply.lang))
            reply.handoff = True
            reply.handoff_reason = HandoffReason.SENSITIVE
        reply.text = "\n\n".join(parts)
        return reply

    def _has_local_documents(self, region: str) -> bool:
        """Whether any document of its own (or of its province) covers ``region``."""
        return any(
            doc.meta.region != NATIONAL and applies(doc.meta.region, region)
            for doc in self._kb.retriever.documents().values()
        )

    def use_curated(self, cards: Sequence[Card]) -> int:
        """Answer from these approved counsellor answers too (``bot.kb.cards.CuratedCard``),
        from now on, through the same matcher as the library's cards; how many are in use
        (none when cards are off or no match model fits the embedding model). Their texts
        are encoded here, once: call it off the event loop."""
        with self._cards_lock:
            self._load_library()
            library = self._library
            if library is None:
                return 0
            if list(cards) != self._curated:  # the refresh job calls it when nothing changed
                self._curated = list(cards)
                self._matcher = library.with_cards(self._curated)
            return len(self._curated)

    def _load_library(self) -> None:
        """Read the library's cards once (with ``_cards_lock`` held)."""
        if not self._cards_loaded:
            self._library = load_matcher(self._kb.embedder, self._settings)
            self._matcher = self._library
            self._cards_loaded = True

    def _card_answerer(self) -> CardAnswerer | None:
        """The answer cards, read on the first question that needs them (a process that
        only relays messages never loads them)."""
        with self._cards_lock:
            self._load_library()
            matcher = self._matcher
        if matcher is None:
            return None
        return CardAnswerer(self._kb, matcher, self._composer, self._messages)

    def _llm_answer(self, question: str, hits: list[Hit], lang: Lang) -> Composed | None:
        """The LLM's answer with checked citations; ``None`` if it says the passages do not
        answer. Raises ``LlmUnavailable`` when the model fails or cites wrongly."""
        assert self._llm is not None
        answer = self._llm.compose(question, hits, lang)
        if answer is None:
            return None
        first_hit = {h.doc_id: h for h in reversed(hits)}
        citations = [
            citation_for(first_hit[doc_id], first_hit[doc_id].text[:200])
            for doc_id in answer.doc_ids
        ]
        return Composed(
            text=self._composer.finish(answer.text, citations, lang),
            citations=citations,
            suggestions=[],
        )

    def _prefer_language(
        self, hits: list[Hit], query: str, lang: Lang, region: str | None
    ) -> list[Hit]:
        """If the best document is in the other language and its translation exists
        (``x-zh`` / ``x-en``), answer from the translation — always: the "only in the other
        language" note is for documents that have none."""
        top = hits[0].doc.meta
        if top.lang == lang:
            return hits
        sibling = re.sub(r"-(zh|en)$", f"-{lang}", top.id)
        documents = self._kb.retriever.documents()
        if sibling == top.id or sibling not in documents:
            return hits
        translated = [
            h
            for h in self._kb.search(
                query,
                k=self._settings.answer_candidates * 3,
                lang=lang,
                lang_only=True,
                region=region,
            )
            if h.doc_id == sibling
        ]
        if not translated:  # none of its chunks ranked: the composer reads it whole anyway
            chunks = self._kb.retriever.doc_chunks(sibling)
            if not chunks:
                return hits
            first = chunks[0]
            translated = [Hit(first.chunk_id, documents[sibling], first.heading, first.text, 0.0)]
        return translated + [h for h in hits if h.doc_id != sibling]

    TITLE_WEIGHT = 0.02  # in fused-score units; measured on tests/eval/answers.jsonl
    TITLE_DOCS = 3
    TITLE_MARGIN = 0.002  # only documents about as relevant as the best one compete

    def _prefer_title(self, hits: list[Hit], question: str) -> list[Hit]:
        """Among the few best documents, the one whose title names what the question is
        about answers it ("事业单位 … 试用期" → the public-institutions document, not the
        civil-service one that mentions public institutions in passing)."""
        terms = self._kb.retriever.weighted_terms(question)
        total = sum(terms.values())
        if not total:
            return hits
        best: dict[str, float] = {}
        for hit in hits:
            close = hit.score >= hits[0].score - self.TITLE_MARGIN
            if close and hit.doc_id not in best and len(best) < self.TITLE_DOCS:
                title = self._kb.retriever.weighted_terms(hit.doc.meta.title)
                share = sum(w for t, w in terms.items() if t in title) / total
                best[hit.doc_id] = hit.score + self.TITLE_WEIGHT * share
        if not best:
            return hits
        winner = max(best, key=lambda doc_id: best[doc_id])
        return [h for h in hits if h.doc_id == winner] + [h for h in hits if h.doc_id != winner]

    def _names_unknown_programme(self, text: str) -> bool:
        """The question names a programme or subsidy that no document mentions: a passage
        about a different programme must not answer it."""
        vocabulary = self._kb.retriever.vocabulary()
        for name in g.programme_names(text):
            words = (
                name.split()
                if name.isascii()
                else ["~" + name[i : i + 2] for i in range(len(name) - 1)]
            )
            if words and any(w not in vocabulary for w in words if len(w) > 2 or w.startswith("~")):
                return True
        return False

    def _last_topic(self, conversation: Conversation) -> str | None:
        documents = self._kb.retriever.documents()
        for turn in reversed(conversation.turns):
            if turn.role == "bot" and turn.doc_ids and turn.doc_ids[0] in documents:
                return documents[turn.doc_ids[0]].meta.title
        return None

    def _special(
        self,
        key: str,
        lang: Lang,
        intent: Intent,
        handoff: HandoffReason | None = None,
        signals: Verdict | None = None,
    ) -> Reply:
        return Reply(
            text=self._messages.get(key, lang),
            lang=lang,
            intent=intent,
            handoff=handoff is not None,
            handoff_reason=handoff,
            confidence=1.0 if intent in (Intent.CRISIS, Intent.HANDOFF_REQUEST) else 0.0,
            signals=signals.labels() if signals is not None else [],
        )

    def _crisis(self, verdict: Verdict, lang: Lang) -> Reply:
        """The emergency message for the kind of crisis, and an urgent handoff; never a
        policy answer."""
        key = _CRISIS_MESSAGES[verdict.label]
        return self._special(key, lang, Intent.CRISIS, HandoffReason.CRISIS, signals=verdict)

    def screen(self, conversation: Conversation, message: str) -> Reply | None:
        """The crisis check alone, for a message that goes to a counsellor instead of the
        agent (a ticket is open): the crisis reply if it is one, else None. A crisis may
        come in any turn, also while the graduate waits for a person."""
        text = clean_text(message)
        verdict = self._guard.classify(text, earlier=self._earlier(conversation))
        if not verdict.crisis:
            return None
        return self._crisis(verdict, self._language(conversation, text))

    @staticmethod
    def _earlier(conversation: Conversation) -> str | None:
        """The graduate's previous message (a short follow-up is read together with it)."""
        for turn in reversed(conversation.turns):
            if turn.role == "user":
                return turn.text
        return None

    def _focus(self, text: str) -> str:
        """Very long messages usually end with the question: keep the last sentence (and
        the one before when the last is very short)."""
        if len(text) <= self._settings.question_focus_chars:
            return text
        sentences = split_sentences(text)
        kept = sentences[-1:]
        if len(sentences) > 1 and len(kept[0].strip()) < 15:
            kept = sentences[-2:]
        return "".join(kept).strip()[-self._settings.question_focus_chars :]

    def _language(self, conversation: Conversation, text: str) -> Lang:
        if conversation.lang is not None:
            return conversation.lang
        if _CJK.search(text) or re.search(r"[A-Za-z]{2,}", text):
            return detect_lang(text)
        return self._last_lang(conversation)

    @staticmethod
    def _last_lang(conversation: Conversation) -> Lang:
        for turn in reversed(conversation.turns):
            if turn.role == "user" and (_CJK.search(turn.text) or re.search("[A-Za-z]", turn.text)):
                return detect_lang(turn.text)
        return "zh"
