"""Telegram updates: claiming them once, leasing their chat, and the hot path's steps
(``begin_update``, ``finish_exchange``, ``end_update``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.base import StoreBase
from bot.storage.hot_path import (
    _FINISH_UPDATE,
    _RELEASE_CHAT,
    _claim_new_update,
    _count_message,
    _graduate,
    _lease,
    _lease_chat,
    _queue,
    _record_answer,
    _release,
)
from bot.storage.models import PROCESSING, ChatLeaseRow, ProcessedUpdateRow
from bot.storage.outbox import SEND_LEASE
from bot.storage.records import Begun, Exchange, NewTurn, Send, Unanswered
from bot.storage.sql import SYNC, rowcount


class _Withheld(Exception):
    """Rolls back ``Store.finish_exchange`` when the bot no longer owns the conversation."""


class UpdatesMixin(StoreBase):
    """The ``Store``'s Telegram updates and chat leases."""

    async def claim_update(
        self,
        update_id: int,
        now: dt.datetime,
        stale_after: dt.timedelta,
        *,
        chat_id: int | None = None,
        session: AsyncSession | None = None,
    ) -> bool:
        """True if this caller should process the update: it is new, or an earlier claim
        is still 'processing' but its worker presumably died: the chat lease it took for
        the update (``lease_chat``, renewed while it works) ran out after the claim, or,
        for an update that never held a chat lease, ``stale_after`` has passed."""
        async with self._tx(session) as s:
            try:
                async with s.begin_nested():
                    await s.execute(
                        insert(ProcessedUpdateRow).values(
                            update_id=update_id,
                            status="processing",
                            claimed_at=now,
                            chat_id=chat_id,
                        )
                    )
                return True
            except IntegrityError:
                pass
            stale = ProcessedUpdateRow.claimed_at <= now - stale_after
            lease_ran_out = (
                await s.execute(
                    select(ChatLeaseRow.expires_at).where(
                        ChatLeaseRow.update_id == update_id, ChatLeaseRow.expires_at <= now
                    )
                )
            ).scalar()
            if lease_ran_out is not None:
                # Compared with the claim's own time, so that of two workers taking over
                # at once only the first wins: its claim is newer than the lease's end.
                stale = or_(stale, ProcessedUpdateRow.claimed_at < lease_ran_out)
            statement = update(ProcessedUpdateRow).where(
                ProcessedUpdateRow.update_id == update_id,
                ProcessedUpdateRow.status == "processing",
                stale,
            )
            return rowcount(await self._dml(s, statement.values(claimed_at=now))) == 1

    async def lease_chat(
        self,
        chat: tuple[int, int],
        update_id: int,
        now: dt.datetime,
        lease: dt.timedelta,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Take the chat (chat id, forum topic id or 0) for this update, unless another
        update holds it and its lease has not run out. Replicas process one update of a
        chat at a time; ``release_chat`` hands it on."""
        statement, values = _lease_chat(self.db.dialect), _lease(chat, update_id, now, lease)
        async with self._tx(session) as s:
            return (await s.execute(statement, values)).scalar_one_or_none() == update_id

    async def release_chat(
        self, chat: tuple[int, int], update_id: int, *, session: AsyncSession | None = None
    ) -> bool:
        async with self._tx(session) as s:
            released = await s.execute(
                _RELEASE_CHAT, _release(chat, update_id), execution_options=SYNC
            )
            return rowcount(released) == 1

    async def begin_update(
        self,
        update_id: int,
        chat: tuple[int, int] | None,
        lease: dt.timedelta,
        *,
        graduate: tuple[int, str | None] | None = None,
        count: bool = False,
        payload: dict[str, Any] | None = None,
    ) -> Begun | None:
        """The first step of a new update, in one transaction: claim it, take its chat
        (``lease_chat``) and, for a graduate's text (``graduate``: their Telegram id and
        name), ``load_graduate`` and, with ``count``, count the message
        (``count_message``). ``payload`` (the update itself, in long polling) is kept until
        the update is done, for ``stranded_updates``.

        None when the update was seen before (a replay, or a retry after a crash): then
        ``claim_update`` decides."""
        now = self.now()
        dialect = self.db.dialect
        claim = {
            "b_update_id": update_id,
            "b_now": now,
            "b_chat_id": chat and chat[0],
            "b_payload": payload,
        }

        def work(connection: Connection) -> Begun | None:
            new = connection.execute(_claim_new_update(dialect), claim).first()
            if new is None:
                return None
            if chat is not None:
                holder = connection.execute(
                    _lease_chat(dialect), _lease(chat, update_id, now, lease)
                )
                if holder.scalar_one_or_none() != update_id:
                    return Begun(ours=False)
            if graduate is None:
                return Begun(ours=True)
            user, conversation = _graduate(connection, graduate[0], graduate[1], now)
            sent = _count_message(connection, user.id, now) if count else 0.0
            return Begun(ours=True, graduate=(user, conversation), sent_last_minute=sent)

        return await self._run(work)

    async def finish_exchange(
        self,
        update_id: int,
        conversation_id: int,
        state: dict[str, Any],
        question: NewTurn,
        answer: NewTurn,
        *,
        chat: tuple[int, int] | None = None,
        unanswered: Unanswered | None = None,
        finish: bool = True,
        sends: Callable[[int], Sequence[Send]] | None = None,
        lease: dt.timedelta = SEND_LEASE,
    ) -> Exchange | None:
        """Mark the update done (unless ``finish`` is False), record the answer
        (``_record_answer``), log the question as ``unanswered`` when given, queue the
        messages that carry the answer (``sends(turn id)``: ``queue``, leased to the caller
        for ``lease``) and hand its ``chat`` on (``release_chat``), in one transaction: the
        answer is durable before the first attempt to send it. None, with nothing written,
        when the bot no longer owns the conversation."""
        now = self.now()

        def work(connection: Connection) -> Exchange:
            if finish:
                connection.execute(_FINISH_UPDATE, {"b_update_id": update_id, "b_now": now})
            turn = _record_answer(connection, conversation_id, state, question, answer, now)
            if turn is None:
                raise _Withheld
            if unanswered is not None:
                connection.execute(unanswered.statement(now))
            queued = _queue(connection, sends(turn), now, now + lease) if sends else []
            if chat is not None:
                connection.execute(_RELEASE_CHAT, _release(chat, update_id))
            return Exchange(turn, tuple(queued))

        try:
            return await self._run(work)
        except _Withheld:
            return None

    async def end_update(
        self, update_id: int, chat: tuple[int, int] | None, *, finish: bool = True
    ) -> None:
        """The last step of an update: mark it done (unless ``finish`` is False: done
        already) and hand its chat on (``release_chat``), in one transaction."""
        now = self.now()

        def work(connection: Connection) -> None:
            if finish:
                connection.execute(_FINISH_UPDATE, {"b_update_id": update_id, "b_now": now})
            if chat is not None:
                connection.execute(_RELEASE_CHAT, _release(chat, update_id))

        if finish or chat is not None:
            await self._run(work)

    async def finish_update(self, update_id: int, *, session: AsyncSession | None = None) -> bool:
        async with self._tx(session) as s:
            done = {"b_update_id": update_id, "b_now": self.now()}
            finished = await s.execute(_FINISH_UPDATE, done, execution_options=SYNC)
            return rowcount(finished) == 1

    async def stranded_updates(
        self,
        now: dt.datetime,
        stale_after: dt.timedelta,
        limit: int = 50,
        *,
        session: AsyncSession | None = None,
    ) -> list[tuple[int, dict[str, Any]]]:
        """Updates still 'processing' whose process presumably died (as ``claim_update``
        sees them: the chat lease the update held ran out, or, without one, ``stale_after``
        passed), with the update kept at ``begin_update`` (long polling), oldest first: to
        process again (``claim_update`` lets one caller take each over)."""
        lease_end = (
            select(func.max(ChatLeaseRow.expires_at))
            .where(ChatLeaseRow.update_id == ProcessedUpdateRow.update_id)
            .correlate(ProcessedUpdateRow)
            .scalar_subquery()
        )
        query = (
            select(ProcessedUpdateRow.update_id, ProcessedUpdateRow.payload)
            .where(
                # the partial index's own condition, as a literal (a bound parameter would
                # not let the planner use the index: a scan of every update kept 2 days)
                PROCESSING,
                ProcessedUpdateRow.payload.is_not(None),
                or_(
                    and_(
                        lease_end.is_not(None),
                        lease_end <= now,
                        ProcessedUpdateRow.claimed_at < lease_end,
                    ),
                    and_(lease_end.is_(None), ProcessedUpdateRow.claimed_at <= now - stale_after),
                ),
            )
            .order_by(ProcessedUpdateRow.claimed_at, ProcessedUpdateRow.update_id)
            .limit(limit)
        )
        async with self._tx(session) as s:
            rows = (await s.execute(query)).all()
        return [(int(update_id), dict(payload)) for update_id, payload in rows if payload]

    async def update_status(
        self, update_id: int, *, session: AsyncSession | None = None
    ) -> str | None:
        """'processing' (claimed, not finished), 'done', or None (never claimed, or pruned):
        what a webhook answers for an update that ``claim_update`` refused."""
        query = select(ProcessedUpdateRow.status).where(ProcessedUpdateRow.update_id == update_id)
        async with self._tx(session) as s:
            return (await s.execute(query)).scalar()

    async def prune_updates(
        self, before: dt.datetime, *, session: AsyncSession | None = None
    ) -> int:
        """Forget finished updates claimed before ``before`` (Telegram keeps undelivered
        updates for 24 hours, so a day or more is a safe horizon)."""
        statement = delete(ProcessedUpdateRow).where(
            ProcessedUpdateRow.status == "done", ProcessedUpdateRow.claimed_at < before
        )
        async with self._tx(session) as s:
            return rowcount(await self._dml(s, statement))
