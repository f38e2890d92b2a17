"""Answering from a card: the card's direct answer (or a rights calculator's number) first,
then the sentence of the document it rests on, the sources and the next step.

A card is used only while every document it cites is in the index and in force, and a card
resting on a regional document only when the graduate named or set that region. A card with
a calculator computes from the graduate's numbers (this message and the earlier ones); when
one is missing, the bot gives the card's rule, asks for it, and computes with the answer
(``Conversation.pending_card``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bot.agent.calculators import Computed, run
from bot.agent.card_match import CardMatcher, topic_of
from bot.agent.compose import ExtractiveComposer, citation_for
from bot.agent.models import Citation, Conversation, Intent, Reply
from bot.agent.quantities import extract
from bot.kb.cards import Card, Evidence, comparable, is_curated
from bot.kb.models import IndexedDocument, Lang, Validity
from bot.kb.retriever import Hit
from bot.kb.service import KnowledgeBase
from bot.prompts import Messages

CATEGORY_INTENT = {
    "rights": Intent.RIGHTS,
    "remedy": Intent.RIGHTS,
    "procedure": Intent.PROCEDURE,
}


@dataclass(frozen=True)
class _Grounded:
    """A card's evidence item, its document, and the indexed section that holds the quote."""

    evidence: Evidence
    doc: IndexedDocument
    hit: Hit


class CardAnswerer:
    RELATED = 3
    TOP_DOCUMENTS = 3
    """Cards compete when they rest on one of the first retrieved passages' documents
    (retrieval finds the right document in its first three 97.6 % of the time on the
    tuned set: bench/retrieval.py), and only when the first-ranked document has cards of
    its own: a question retrieval sends to a document no card covers (a newly uploaded
    notice) is answered from that document, not by a card on a neighbouring topic. The
    answers approved in the console compete always (``CardMatcher.match``)."""

    def __init__(
        self,
        kb: KnowledgeBase,
        matcher: CardMatcher,
        composer: ExtractiveComposer,
        messages: Messages,
    ) -> None:
        self._kb = kb
        self.matcher = matcher
        self._composer = composer
        self._messages = messages

    def answer(
        self,
        conversation: Conversation,
        text: str,
        lang: Lang,
        region: str | None,
        hits: Sequence[Hit],
    ) -> Reply | None:
        """The reply from the card that answers ``text``, if one matches and may be used:
        only cards resting on the documents retrieval ranked first (``hits``) compete."""
        if not hits:
            return None
        topics = {topic_of(h.doc_id) for h in hits[: self.TOP_DOCUMENTS]}
        if not self.matcher.covers(topic_of(hits[0].doc_id)):
            topics = set()  # only the answers approved in the console compete
        earlier = _earlier(conversation)

        def computes(card: Card) -> bool:
            return card.calculator is not None and isinstance(
                run(card.calculator, text, lang, earlier, messages=self._messages), Computed
            )

        match = self.matcher.match(text, topics, computes)
        if match is None:
            return None
        return self.answer_with(conversation, match.card, text, lang, region, match.probability)

    def resume(
        self, conversation: Conversation, text: str, lang: Lang, region: str | None
    ) -> Reply | None:
        """The calculation a card asked numbers for, when this message gives numbers; None
        (and the question dropped) when it does not — the graduate moved on."""
        pending = conversation.pending_card
        conversation.pending_card = None
        card = self.matcher.get(pending) if pending else None
        if card is None or card.calculator is None or not extract(text):
            return None
        return self.answer_with(conversation, card, text, lang, region)

    # -- composing ----------------------------------------------------------------------

    def _usable(self, card: Card, region: str | None) -> list[_Grounded]:
        """The card's evidence with the section holding each quote, or nothing when a
        cited document is absent, not in force, another region's, or no longer says it."""
        documents = self._kb.retriever.documents()
        found: list[_Grounded] = []
        for item in card.evidence:
            doc = documents.get(item.doc)
            if doc is None or self._kb.validity(doc) is not Validity.ACTIVE:
                return []
            if doc.meta.region != "national" and doc.meta.region != region:
                return []
            wanted = comparable(item.quote)
            chunks = self._kb.retriever.doc_chunks(doc.meta.id)
            holder = next((c for c in chunks if wanted in comparable(c.text)), None)
            if holder is None:
                return []
            found.append(
                _Grounded(item, doc, Hit(holder.chunk_id, doc, holder.heading, holder.text, 0.0))
            )
        return found

    def answer_with(
        self,
        conversation: Conversation,
        card: Card,
        text: str,
        lang: Lang,
        region: str | None,
        confidence: float = 1.0,
    ) -> Reply | None:
        """``card``'s reply to ``text``, or None when the card may not be used (see
        ``_usable``)."""
        usable = self._usable(card, region)
        if not usable:
            return None
        same = [g for g in usable if g.doc.meta.lang == lang] or usable
        parts: list[str] = []
        composer: Literal["card", "calculator", "curated"] = (
            "curated" if is_curated(card) else "card"
        )
        if card.calculator is not None:
            outcome = run(
                card.calculator, text, lang, _earlier(conversation), messages=self._messages
            )
            composer = "calculator"
            if isinstance(outcome, Computed):
                parts.append(outcome.text)
            else:
                parts.extend([card.answer.get(lang), outcome.question])
                conversation.pending_card = card.id
        else:
            parts.append(card.answer.get(lang))
        quote = same[0].evidence.quote
        parts.append(self._messages.get("card_evidence", lang, quote=quote))
        citations = self._citations(same)
        topics = same[0].doc.meta.topics
        category = topics[0] if topics else ""
        return Reply(
            text=self._composer.finish("\n\n".join(parts), citations, lang),
            lang=lang,
            intent=CATEGORY_INTENT.get(category, Intent.POLICY),
            citations=citations,
            confidence=round(confidence, 3),
            suggestions=self._related(card, lang),
            composer=composer,
        )

    def _related(self, card: Card, lang: Lang) -> list[str]:
        """The standard questions of up to ``RELATED`` other cards on the same documents."""
        topics = {topic_of(d) for d in card.docs()}
        related = [
            other.question.get(lang)
            for other in self.matcher.cards
            if other.id != card.id and topics & {topic_of(d) for d in other.docs()}
        ]
        return related[: self.RELATED]

    @staticmethod
    def _citations(evidence: Sequence[_Grounded]) -> list[Citation]:
        """One citation per document, at the section holding the quoted sentence."""
        citations: list[Citation] = []
        seen: set[str] = set()
        for grounded in evidence:
            if grounded.doc.meta.id not in seen:
                seen.add(grounded.doc.meta.id)
                citations.append(citation_for(grounded.hit, grounded.evidence.quote))
        return citations


def _earlier(conversation: Conversation) -> list[str]:
    """The graduate's earlier messages, newest first (where a calculator also looks for its
    numbers)."""
    return [t.text for t in reversed(conversation.turns) if t.role == "user"]
