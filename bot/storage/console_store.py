"""``ConsoleStore``: what the web console reads and writes besides the tickets.

Accounts, sessions, failed logins, the console's audit log, canned replies, curated answers,
and the analytics queries. It shares the ``Store``'s database, clock and transactions; the
ticket operations themselves stay in ``Store`` (the console relays like the Telegram topic).

Graduate data: curated answers keep a question pattern and an answer, both redacted before
they are written, and a ``ticket_id`` that becomes NULL when the ticket is deleted
(``Store.forget_user``). Ticket attachments (the Telegram file ids of what a graduate sent
while a ticket was open, with file name and caption) are deleted with the ticket by
``Store.forget_user`` and after the retention period by ``Store.delete_transcripts_older_than``.
No other table here holds a graduate's data.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.errors import StorageError
from bot.privacy import redact
from bot.storage.models import (
    CannedReplyRow,
    CuratedAnswerRow,
    FeedbackRow,
    TicketAttachmentRow,
    TicketRow,
    TurnRow,
    WebAccountRow,
    WebAuditRow,
    WebLoginAttemptRow,
    WebSessionRow,
)
from bot.storage.records import Ticket, UnansweredQuestion
from bot.storage.sql import json, record, records, rowcount, upsert
from bot.storage.store import Store

_ANSWER = aliased(TurnRow, name="answer")

WebRole = Literal["counsellor", "admin"]
CuratedStatus = Literal["proposed", "approved", "rejected"]
AttachmentKind = Literal[
    "photo", "document", "voice", "video", "audio", "sticker", "animation", "video_note"
]

MAX_TEXT = 4000


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    username: str
    display_name: str
    role: WebRole
    password_hash: str
    telegram_id: int | None
    active: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class WebSession:
    token_hash: str
    account_id: int
    csrf_token: str
    created_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    account_id: int | None
    actor: str
    action: str
    target: str | None
    data: dict[str, Any]
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class CannedReply:
    id: int
    title: str
    text: str
    lang: str
    created_by: int | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class CuratedAnswer:
    id: int
    question: str
    answer: str
    lang: str
    doc_id: str
    ticket_id: int | None
    status: str
    proposed_by: int | None
    decided_by: int | None
    created_at: dt.datetime
    decided_at: dt.datetime | None
    card: str | None = None
    """Once approved: the answer card as JSON (``bot.kb.cards.CuratedCard``)."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file a graduate sent while a ticket was open; the bytes stay in Telegram."""

    id: int
    ticket_id: int
    conversation_id: int
    kind: str
    chat_id: int
    message_id: int
    file_id: str
    file_unique_id: str
    file_name: str | None
    mime_type: str | None
    file_size: int | None
    caption: str | None
    created_at: dt.datetime


@dataclass
class DayFigures:
    day: dt.date
    questions: int = 0
    answered: int = 0
    handed_off: int = 0


@dataclass
class Analytics:
    """The console's analytics for ``since <= created_at < until`` (days in ``tz``)."""

    since: dt.datetime
    until: dt.datetime
    days: list[DayFigures]
    ratings: dict[int, int]
    """1..5 → how many ticket ratings."""
    thumbs_up: int
    thumbs_down: int
    median_first_response_s: float | None
    topics: list[tuple[str, int]]
    """Intents of the bot's answers (policy, rights, procedure, …), most frequent first."""
    by_lang: dict[str, int] = field(default_factory=dict)
    """Graduate messages per language."""

    @property
    def questions(self) -> int:
        return sum(d.questions for d in self.days)

    @property
    def answered(self) -> int:
        return sum(d.answered for d in self.days)

    @property
    def handed_off(self) -> int:
        return sum(d.handed_off for d in self.days)


class ConsoleStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def now(self) -> dt.datetime:
        return self.store.now()

    # --- accounts --------------------------------------------------------------------

    async def add_account(
        self,
        username: str,
        display_name: str,
        role: WebRole,
        password_hash: str,
        *,
        telegram_id: int | None = None,
    ) -> Account:
        statement = (
            insert(WebAccountRow)
            .values(
                username=username.strip().lower(),
                display_name=display_name.strip() or username,
                role=role,
                password_hash=password_hash,
                telegram_id=telegram_id,
                active=True,
                created_at=self.now(),
            )
            .returning(WebAccountRow)
        )
        try:
            async with self.store.transaction() as s:
                return record(Account, (await s.execute(statement)).scalar_one())
        except IntegrityError as exc:
            raise StorageError(
                f"an account named {username!r} (or with that Telegram id) already exists"
            ) from exc

    async def set_password(self, username: str, password_hash: str) -> bool:
        """A new password; every session of the account ends."""
        async with self.store.transaction() as s:
            account = await self._by_username(s, username)
            if account is None:
                return False
            await s.execute(
                update(WebAccountRow)
                .where(WebAccountRow.id == account.id)
                .values(password_hash=password_hash, active=True)
            )
            await s.execute(delete(WebSessionRow).where(WebSessionRow.account_id == account.id))
            return True

    async def set_active(self, username: str, active: bool) -> bool:
        """Enable or disable an account (a disabled one cannot log in, and every session of
        it ends); False when there is no such account."""
        async with self.store.transaction() as s:
            account = await self._by_username(s, username)
            if account is None:
                return False
            await s.execute(
                update(WebAccountRow).where(WebAccountRow.id == account.id).values(active=active)
            )
            if not active:
                await s.execute(delete(WebSessionRow).where(WebSessionRow.account_id == account.id))
            return True

    async def _by_username(self, s: AsyncSession, username: str) -> WebAccountRow | None:
        query = select(WebAccountRow).where(WebAccountRow.username == username.strip().lower())
        return (await s.execute(query)).scalar_one_or_none()

    async def account_by_username(self, username: str) -> Account | None:
        async with self.store.transaction() as s:
            row = await self._by_username(s, username)
            return None if row is None else record(Account, row)

    async def accounts(self) -> list[Account]:
        async with self.store.transaction() as s:
            rows = (
                await s.execute(select(WebAccountRow).order_by(WebAccountRow.username))
            ).scalars()
            return records(Account, rows)

    async def mark_login(self, account_id: int) -> None:
        async with self.store.transaction() as s:
            await s.execute(
                update(WebAccountRow)
                .where(WebAccountRow.id == account_id)
                .values(last_login_at=self.now())
            )

    # --- sessions --------------------------------------------------------------------

    async def add_session(
        self, token_hash: str, account_id: int, csrf_token: str, lifetime: dt.timedelta
    ) -> WebSession:
        now = self.now()
        statement = (
            insert(WebSessionRow)
            .values(
                token_hash=token_hash,
                account_id=account_id,
                csrf_token=csrf_token,
                created_at=now,
                expires_at=now + lifetime,
            )
            .returning(WebSessionRow)
        )
        async with self.store.transaction() as s:
            await s.execute(delete(WebSessionRow).where(WebSessionRow.expires_at <= now))
            return record(WebSession, (await s.execute(statement)).scalar_one())

    async def session(self, token_hash: str) -> tuple[WebSession, Account] | None:
        """The live session with this token and its (active) account."""
        query = (
            select(WebSessionRow, WebAccountRow)
            .join(WebAccountRow, WebAccountRow.id == WebSessionRow.account_id)
            .where(
                WebSessionRow.token_hash == token_hash,
                WebSessionRow.expires_at > self.now(),
                WebAccountRow.active.is_(True),
            )
        )
        async with self.store.transaction() as s:
            row = (await s.execute(query)).one_or_none()
            if row is None:
                return None
            return record(WebSession, row[0]), record(Account, row[1])

    async def end_session(self, token_hash: str) -> bool:
        async with self.store.transaction() as s:
            result = await s.execute(
                delete(WebSessionRow).where(WebSessionRow.token_hash == token_hash)
            )
            return rowcount(result) == 1

    # --- login rate limit ------------------------------------------------------------

    async def login_failures(self, keys: list[str], since: dt.datetime) -> int:
        """The most failures recorded under any of ``keys`` since ``since``."""
        most = 0
        async with self.store.transaction() as s:
            for key in keys:
                query = select(func.count(WebLoginAttemptRow.id)).where(
                    WebLoginAttemptRow.key == key, WebLoginAttemptRow.created_at >= since
                )
                most = max(most, int((await s.execute(query)).scalar_one()))
        return most

    async def add_login_failure(self, keys: list[str]) -> None:
        now = self.now()
        async with self.store.transaction() as s:
            for key in keys:
                await s.execute(insert(WebLoginAttemptRow).values(key=key[:160], created_at=now))

    async def clear_login_failures(self, key: str, before: dt.datetime | None = None) -> None:
        async with self.store.transaction() as s:
            statement = delete(WebLoginAttemptRow).where(WebLoginAttemptRow.key == key)
            await s.execute(statement)
            if before is not None:
                await s.execute(
                    delete(WebLoginAttemptRow).where(WebLoginAttemptRow.created_at < before)
                )

    # --- audit log -------------------------------------------------------------------

    async def audit(
        self,
        account: Account | None,
        action: str,
        target: str | None = None,
        data: dict[str, Any] | None = None,
        *,
        actor: str | None = None,
    ) -> int:
        """Record one console action (``actor`` defaults to ``role:username``)."""
        name = actor or (f"{account.role}:{account.username}" if account else "anonymous")
        statement = (
            insert(WebAuditRow)
            .values(
                account_id=account.id if account else None,
                actor=name[:64],
                action=action,
                target=None if target is None else target[:200],
                data=json(data or {}),
                created_at=self.now(),
            )
            .returning(WebAuditRow.id)
        )
        async with self.store.transaction() as s:
            return int((await s.execute(statement)).scalar_one())

    async def audit_log(self, limit: int = 200) -> list[AuditEntry]:
        query = select(WebAuditRow).order_by(WebAuditRow.created_at.desc(), WebAuditRow.id.desc())
        async with self.store.transaction() as s:
            return records(AuditEntry, (await s.execute(query.limit(limit))).scalars())

    # --- closed tickets ----------------------------------------------------------------

    async def closed_tickets(
        self,
        since: dt.datetime,
        *,
        text: str = "",
        category: str = "",
        rating: int | None = None,
        limit: int = 200,
    ) -> list[Ticket]:
        """Resolved and cancelled tickets closed since ``since``, newest first; ``text`` is
        looked for in the summary (case-insensitive), ``category`` and ``rating`` filter."""
        query = (
            select(TicketRow)
            .where(
                TicketRow.status.in_(("resolved", "cancelled")),
                func.coalesce(TicketRow.resolved_at, TicketRow.created_at) >= since,
            )
            .order_by(
                func.coalesce(TicketRow.resolved_at, TicketRow.created_at).desc(),
                TicketRow.id.desc(),
            )
        )
        if text.strip():
            pattern = "%" + text.strip().replace("%", r"\%").replace("_", r"\_") + "%"
            query = query.where(TicketRow.summary.ilike(pattern, escape="\\"))
        if category:
            query = query.where(TicketRow.category == category)
        if rating is not None:
            query = query.where(TicketRow.rating == rating)
        async with self.store.transaction() as s:
            return records(Ticket, (await s.execute(query.limit(limit))).scalars())

    # --- answers that need a better one ----------------------------------------------

    async def weak_answers(
        self, since: dt.datetime, below: float, limit: int = 500
    ) -> list[UnansweredQuestion]:
        """Questions the bot answered but not well, since ``since``, newest first: answers
        a graduate rated 👎 (reason ``thumbs_down``) and answers given with a confidence
        under ``below`` (``weak_answer``; a handoff or a crisis is not an answer). Each is the
        graduate's message before that answer, as stored (redacted)."""
        asked = (
            select(TurnRow.text)
            .where(
                TurnRow.conversation_id == _ANSWER.conversation_id,
                TurnRow.role == "graduate",
                TurnRow.id < _ANSWER.id,
            )
            .order_by(TurnRow.id.desc())
            .limit(1)
            .correlate(_ANSWER)
            .scalar_subquery()
        )
        disliked = (
            select(
                FeedbackRow.id,
                _ANSWER.conversation_id,
                asked,
                _ANSWER.lang,
                _ANSWER.confidence,
                FeedbackRow.created_at,
            )
            .join(_ANSWER, _ANSWER.id == FeedbackRow.turn_id)
            .where(
                FeedbackRow.kind == "thumb",
                FeedbackRow.value < 0,
                FeedbackRow.created_at >= since,
            )
        )
        doubtful = select(
            _ANSWER.id,
            _ANSWER.conversation_id,
            asked,
            _ANSWER.lang,
            _ANSWER.confidence,
            _ANSWER.created_at,
        ).where(
            _ANSWER.role == "bot",
            _ANSWER.created_at >= since,
            _ANSWER.handoff.is_(False),
            _ANSWER.confidence.is_not(None),
            _ANSWER.confidence < below,
            _ANSWER.intent.in_(("policy", "rights", "procedure")),
        )
        found: list[UnansweredQuestion] = []
        async with self.store.transaction() as s:
            for reason, query in (("thumbs_down", disliked), ("weak_answer", doubtful)):
                for row_id, _, question, lang, confidence, at in await s.execute(query):
                    if question:
                        found.append(
                            UnansweredQuestion(row_id, None, question, lang, confidence, reason, at)
                        )
        found.sort(key=lambda q: q.created_at, reverse=True)
        return found[:limit]

    # --- canned replies --------------------------------------------------------------

    async def add_canned(self, title: str, text: str, lang: str, created_by: int | None) -> int:
        statement = (
            insert(CannedReplyRow)
            .values(
                title=title.strip()[:200],
                text=text.strip()[:MAX_TEXT],
                lang="en" if lang == "en" else "zh",
                created_by=created_by,
                created_at=self.now(),
            )
            .returning(CannedReplyRow.id)
        )
        async with self.store.transaction() as s:
            return int((await s.execute(statement)).scalar_one())

    async def canned(self) -> list[CannedReply]:
        query = select(CannedReplyRow).order_by(CannedReplyRow.lang, CannedReplyRow.title)
        async with self.store.transaction() as s:
            return records(CannedReply, (await s.execute(query)).scalars())

    async def get_canned(self, canned_id: int) -> CannedReply | None:
        async with self.store.transaction() as s:
            row = await s.get(CannedReplyRow, canned_id)
            return None if row is None else record(CannedReply, row)

    async def delete_canned(self, canned_id: int) -> bool:
        async with self.store.transaction() as s:
            result = await s.execute(delete(CannedReplyRow).where(CannedReplyRow.id == canned_id))
            return rowcount(result) == 1

    # --- curated answers -------------------------------------------------------------

    async def propose_curated(
        self,
        question: str,
        answer: str,
        lang: str,
        doc_id: str,
        *,
        ticket_id: int | None,
        proposed_by: int | None,
    ) -> int:
        statement = (
            insert(CuratedAnswerRow)
            .values(
                question=redact(question.strip())[:MAX_TEXT],
                answer=redact(answer.strip())[:MAX_TEXT],
                lang="en" if lang == "en" else "zh",
                doc_id=doc_id,
                ticket_id=ticket_id,
                status="proposed",
                proposed_by=proposed_by,
                created_at=self.now(),
            )
            .returning(CuratedAnswerRow.id)
        )
        async with self.store.transaction() as s:
            return int((await s.execute(statement)).scalar_one())

    async def curated(self, status: CuratedStatus | None = None) -> list[CuratedAnswer]:
        query = select(CuratedAnswerRow).order_by(
            CuratedAnswerRow.created_at.desc(), CuratedAnswerRow.id.desc()
        )
        if status is not None:
            query = query.where(CuratedAnswerRow.status == status)
        async with self.store.transaction() as s:
            return records(CuratedAnswer, (await s.execute(query)).scalars())

    async def approved_cards(self) -> list[tuple[int, str]]:
        """The approved answers' cards as stored (JSON), by proposal number; an answer
        approved before answers became cards has none and is left out (the console lists
        it for completion)."""
        return [(c.id, c.card) for c in await self.curated("approved") if c.card]

    async def get_curated(self, curated_id: int) -> CuratedAnswer | None:
        async with self.store.transaction() as s:
            row = await s.get(CuratedAnswerRow, curated_id)
            return None if row is None else record(CuratedAnswer, row)

    async def decide_curated(
        self,
        curated_id: int,
        status: Literal["approved", "rejected"],
        decided_by: int,
        *,
        question: str | None = None,
        doc_id: str | None = None,
        answer: str | None = None,
        card: str | None = None,
    ) -> bool:
        """Approve (with the answer card built from it: ``card``, JSON, redacted by the
        caller, and optionally an edited question pattern, answer or document) or reject a
        proposal; an approved answer can later be withdrawn (rejected), or approved again
        with a completed card. Edited texts are redacted as they are stored."""
        values: dict[str, Any] = {
            "status": status,
            "decided_by": decided_by,
            "decided_at": self.now(),
        }
        if question:
            values["question"] = redact(question.strip())[:MAX_TEXT]
        if doc_id:
            values["doc_id"] = doc_id
        if answer and answer.strip():
            values["answer"] = redact(answer.strip())[:MAX_TEXT]
        if card is not None:
            values["card"] = card
        # approving an approved answer edits it (and completes one approved before
        # answers became cards); rejecting one withdraws it
        allowed = ["proposed", "approved"]
        statement = (
            update(CuratedAnswerRow)
            .where(CuratedAnswerRow.id == curated_id, CuratedAnswerRow.status.in_(allowed))
            .values(**values)
        )
        async with self.store.transaction() as s:
            return rowcount(await s.execute(statement)) == 1

    # --- the graduates' attachments ----------------------------------------------------

    async def add_attachment(
        self,
        ticket_id: int,
        conversation_id: int,
        kind: AttachmentKind,
        *,
        chat_id: int,
        message_id: int,
        file_id: str,
        file_unique_id: str,
        file_name: str | None = None,
        mime_type: str | None = None,
        file_size: int | None = None,
        caption: str | None = None,
    ) -> int | None:
        """Record the file of one graduate message; None if that message was recorded
        already (a replayed update)."""
        statement = (
            upsert(self.store.db.dialect, TicketAttachmentRow)
            .values(
                ticket_id=ticket_id,
                conversation_id=conversation_id,
                kind=kind,
                chat_id=chat_id,
                message_id=message_id,
                file_id=file_id,
                file_unique_id=file_unique_id[:128],
                file_name=None if file_name is None else file_name[:255],
                mime_type=None if mime_type is None else mime_type[:255],
                file_size=file_size,
                caption=caption,
                created_at=self.now(),
            )
            .on_conflict_do_nothing(index_elements=["chat_id", "message_id"])
            .returning(TicketAttachmentRow.id)
        )
        async with self.store.transaction() as s:
            added = (await s.execute(statement)).scalar_one_or_none()
            return None if added is None else int(added)

    async def attachments(self, ticket_id: int) -> list[Attachment]:
        query = (
            select(TicketAttachmentRow)
            .where(TicketAttachmentRow.ticket_id == ticket_id)
            .order_by(TicketAttachmentRow.created_at, TicketAttachmentRow.id)
        )
        async with self.store.transaction() as s:
            return records(Attachment, (await s.execute(query)).scalars())

    async def get_attachment(self, attachment_id: int) -> Attachment | None:
        async with self.store.transaction() as s:
            row = await s.get(TicketAttachmentRow, attachment_id)
            return None if row is None else record(Attachment, row)

    # --- analytics -------------------------------------------------------------------

    async def analytics(self, since: dt.datetime, until: dt.datetime, tz: str) -> Analytics:
        zone = ZoneInfo(tz)
        first = since.astimezone(zone).date()
        last = (until - dt.timedelta(microseconds=1)).astimezone(zone).date()
        days = {
            first + dt.timedelta(days=n): DayFigures(first + dt.timedelta(days=n))
            for n in range((last - first).days + 1)
        }

        def day_of(moment: dt.datetime) -> DayFigures | None:
            return days.get(moment.astimezone(zone).date())

        window_turns = (TurnRow.created_at >= since, TurnRow.created_at < until)
        async with self.store.transaction() as s:
            turns = await s.execute(
                select(
                    TurnRow.role, TurnRow.created_at, TurnRow.handoff, TurnRow.intent, TurnRow.lang
                ).where(*window_turns, TurnRow.role.in_(["graduate", "bot"]))
            )
            topics: Counter[str] = Counter()
            by_lang: Counter[str] = Counter()
            for role, created, handoff, intent, lang in turns:
                figures = day_of(created)
                if role == "graduate":
                    by_lang[lang or "?"] += 1
                    if figures:
                        figures.questions += 1
                elif not handoff and intent != "unclear":
                    if figures:
                        figures.answered += 1
                    if intent:
                        topics[intent] += 1
            tickets = await s.execute(
                select(TicketRow.created_at, TicketRow.first_response_at).where(
                    TicketRow.created_at >= since, TicketRow.created_at < until
                )
            )
            waits: list[float] = []
            for created, first_response in tickets:
                figures = day_of(created)
                if figures:
                    figures.handed_off += 1
                if first_response is not None:
                    waits.append((first_response - created).total_seconds())
            feedback = await s.execute(
                select(FeedbackRow.kind, FeedbackRow.value).where(
                    FeedbackRow.created_at >= since, FeedbackRow.created_at < until
                )
            )
            ratings = dict.fromkeys(range(1, 6), 0)
            up = down = 0
            for kind, value in feedback:
                if kind == "rating" and value in ratings:
                    ratings[value] += 1
                elif kind == "thumb":
                    up += value > 0
                    down += value < 0
        return Analytics(
            since=since,
            until=until,
            days=list(days.values()),
            ratings=ratings,
            thumbs_up=up,
            thumbs_down=down,
            median_first_response_s=statistics.median(waits) if waits else None,
            topics=topics.most_common(8),
            by_lang=dict(by_lang.most_common()),
        )
