"""The ticket use cases without any channel: what each one changes, who hears what, and
what it answers when it cannot act — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.handoff import outcomes as out
from bot.handoff.collecting import CollectingFrontEnd
from bot.handoff.models import Actor, Counsellor, Relayed, Source
from bot.handoff.service import HandoffService, Swept
from bot.settings import Settings
from bot.storage.console_store import ConsoleStore
from bot.storage.store import Store, Ticket
from tests.storage.conftest import FakeClock, new_graduate

WANG = Counsellor(111, "王老师", Actor.counsellor(111))
"""A counsellor working in Telegram (listed in the settings)."""
ZHAO = Counsellor(222, "赵老师", Actor.counsellor(222))


def settings(tmp_path: Path, *, names_visible: bool = False) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        counsellor_ids=[WANG.id, ZHAO.id],
        counsellor_names_visible=names_visible,
    )


def service_for(
    store: Store, tmp_path: Path, **options: bool
) -> tuple[HandoffService, CollectingFrontEnd]:
    front = CollectingFrontEnd(store)
    return HandoffService(settings(tmp_path, **options), store, front), front


async def ticket_for(store: Store, telegram_id: int = 9001, *, draft: str | None = None) -> Ticket:
    user_id, conversation_id = await new_graduate(store, telegram_id)
    ticket, _ = await store.open_ticket(
        conversation_id, user_id, "rights", "high", "requested", "欠薪", draft, [], []
    )
    return ticket


async def test_a_claim_assigns_the_ticket_and_tells_desk_and_graduate(
    store: Store, tmp_path: Path
) -> None:
    service, front = service_for(store, tmp_path)
    ticket = await ticket_for(store)
    claimed = await service.claim(ticket.id, WANG)
    assert isinstance(claimed, out.Claimed)
    assert claimed.ticket.status == "assigned" and claimed.ticket.assignee_telegram_id == WANG.id
    assert front.keys("counsellors") == ["grp_claimed"]
    assert front.said[0].notice.params == {"name": "王老师"}
    assert front.keys("graduate") == ["tg_counsellor_joined"]
    assert (await store.load_conversation(ticket.user_id)).owner == "assigned"


async def test_a_second_claim_names_who_holds_the_ticket(store: Store, tmp_path: Path) -> None:
    service, front = service_for(store, tmp_path)
    ticket = await ticket_for(store)
    await service.claim(ticket.id, WANG)
    again = await service.claim(ticket.id, ZHAO)
    assert isinstance(again, out.AlreadyClaimed) and again.by == "王老师"
    assert front.keys("graduate") == ["tg_counsellor_joined"]  # told once


async def test_of_two_claims_at_once_exactly_one_wins(store: Store, tmp_path: Path) -> None:
    service, front = service_for(store, tmp_path)
    ticket = await ticket_for(store)
    first, second = await asyncio.gather(
        service.claim(ticket.id, WANG), service.claim(ticket.id, ZHAO)
    )
    outcomes = sorted([first, second], key=lambda o: isinstance(o, out.AlreadyClaimed))
    assert isinstance(outcomes[0], out.Claimed)
    assert isinstance(outcomes[1], out.AlreadyClaimed)
    holder = outcomes[0].ticket.assignee_telegram_id
    assert outcomes[1].by == ("王老师" if holder == WANG.id else "赵老师")
    assert front.keys("graduate") == ["tg_counsellor_joined"]


async def test_a_reply_claims_a_queued_ticket_and_is_recorded_once(
    store: Store, tmp_path: Path
) -> None:
    service, _ = service_for(store, tmp_path)
    ticket = await ticket_for(store)
    source = Source(-100, 7)
    sent = await service.reply(ticket.id, "试用期最长六个月。", source, WANG)
    assert isinstance(sent, out.Delivered) and sent.relayed is Relayed.SENT
    again = await service.reply(ticket.id, "试用期最长六个月。", source, WANG)
    assert isinstance(again, out.Delivered) and again.relayed is Relayed.ALREADY
    turns = await store.recent_turns(ticket.conversation_id, 10)
    assert [t.text for t in turns if t.role == "counsellor"] == ["试用期最长六个月。"]
    fresh = await store.get_ticket(ticket.id)
    assert fresh is not None and fresh.status == "assigned" and fresh.first_response_at is not None
    assert await service.reply(ticket.id, "  ", Source(-100, 8), WANG) == out.Empty()


async def test_nothing_reaches_the_graduate_of_a_closed_ticket(
    store: Store, tmp_path: Path
) -> None:
    service, front = service_for(store, tmp_path)
    ticket = await ticket_for(store, draft="草稿")
    assert isinstance(await service.resolve(ticket.id, WANG), out.Resolved)
    said = len(front.said)
    assert await service.reply(ticket.id, "还在吗", Source(-100, 9), WANG) == out.Closed(ticket.id)
    assert await service.send_draft(ticket.id, WANG) == out.Closed(ticket.id)
    assert await service.claim(ticket.id, WANG) == out.Closed(ticket.id)
    assert await service.resolve(ticket.id, WANG) == out.Closed(ticket.id)
    assert len(front.said) == said and front.replies == [] and front.answers == []


async def test_the_draft_is_sent_once_with_its_trail(store: Store, tmp_path: Path) -> None:
    service, front = service_for(store, tmp_path)
    ticket = await ticket_for(store, draft="试用期工资不得低于约定工资的百分之八十。")
    sent = await service.send_draft(ticket.id, ZHAO)
    assert isinstance(sent, out.Delivered) and sent.relayed is Relayed.SENT
    again = await service.send_draft(ticket.id, WANG)
    assert isinstance(again, out.Delivered) and again.relayed is Relayed.ALREADY
    assert front.answers == [(ticket.id, "试用期工资不得低于约定工资的百分之八十。")]
    events = [(e.kind, e.actor) for e in await store.events(ticket.id)]
    assert events.count(("draft_sent", "counsellor:222")) == 1
    assert front.keys("counsellors") == ["grp_draft_sent"]
    plain = await ticket_for(store, 9002)
    assert await service.send_draft(plain.id, WANG) == out.NoDraft(plain)


async def test_a_transfer_to_a_console_account_tells_the_desk_and_the_graduate(
    store: Store, tmp_path: Path
) -> None:
    service, front = service_for(store, tmp_path)
    account = await ConsoleStore(store).add_account("li", "李老师", "counsellor", "x")
    ticket = await ticket_for(store)
    await service.claim(ticket.id, WANG)
    moved = await service.transfer(ticket.id, str(account.counsellor_id), WANG)
    assert isinstance(moved, out.Transferred) and moved.to is not None
    assert moved.to.name == "李老师" and moved.ticket.assignee_telegram_id == account.counsellor_id
    assert front.keys("counsellors")[-1] == "grp_transferred"
    assert front.said[-2].notice.params == {"name": "李老师"}
    assert front.keys("graduate")[-1] == "tg_transferred"  # anonymous by default
    assert "李老师" not in str(front.said[-1].notice.params)


async def test_the_graduate_hears_the_name_only_when_names_are_visible(
    store: Store, tmp_path: Path
) -> None:
    service, front = service_for(store, tmp_path, names_visible=True)
    await store.get_or_create_user(ZHAO.id, ZHAO.name)  # known since they wrote to the bot
    ticket = await ticket_for(store)
    await service.transfer(ticket.id, ZHAO.id, WANG)
    told = [s for s in front.said if s.to == "graduate"][-1]
    assert told.notice.key == "tg_transferred_named" and told.notice.params == {"name": "赵老师"}


async def test_a_transfer_has_one_rule_for_who_may_receive(store: Store, tmp_path: Path) -> None:
    service, _ = service_for(store, tmp_path)
    ticket = await ticket_for(store)
    await service.claim(ticket.id, WANG)
    for stranger in ("333", "0", "abc", "-5", 333):
        assert await service.transfer(ticket.id, stranger, WANG) == out.UnknownCounsellor(
            str(stranger)
        )
    fresh = await store.get_ticket(ticket.id)
    assert fresh is not None and fresh.assignee_telegram_id == WANG.id
    moved = await service.transfer(ticket.id, "@222", WANG)  # as typed after /transfer
    assert isinstance(moved, out.Transferred) and moved.to is not None
    assert moved.to.id == ZHAO.id and moved.to.name == "222"  # never wrote to the bot: by id
    assert moved.ticket.assignee_telegram_id == ZHAO.id


async def test_back_to_the_queue_and_already_there(store: Store, tmp_path: Path) -> None:
    service, front = service_for(store, tmp_path)
    ticket = await ticket_for(store)
    await service.claim(ticket.id, WANG)
    back = await service.transfer(ticket.id, "queue", WANG)
    assert isinstance(back, out.Transferred) and back.to is None
    assert back.ticket.status == "queued" and back.ticket.assignee_telegram_id is None
    assert front.keys("graduate")[-1] == "tg_requeued"
    assert front.keys("counsellors")[-1] == "grp_released"
    assert isinstance(await service.transfer(ticket.id, None, WANG), out.AlreadyThere)


async def test_resolving_closes_the_thread_and_asks_for_a_rating(
    store: Store, tmp_path: Path
) -> None:
    service, front = service_for(store, tmp_path)
    rated, handed_back = await ticket_for(store, 9001), await ticket_for(store, 9002)
    assert isinstance(await service.resolve(rated.id, WANG), out.Resolved)
    assert isinstance(await service.resolve(handed_back.id, WANG, rate=False), out.Resolved)
    assert front.closed_threads == [rated.id, handed_back.id]
    assert front.ratings_asked == [rated.id]
    assert front.keys("counsellors", rated.id) == ["grp_resolved"]
    assert front.keys("counsellors", handed_back.id) == ["grp_back_to_bot"]
    assert front.keys("graduate", rated.id) == ["tg_resolved"]
    assert (await store.load_conversation(rated.user_id)).owner == "bot"


async def test_the_graduate_cancels_only_their_own_open_ticket(
    store: Store, tmp_path: Path
) -> None:
    service, front = service_for(store, tmp_path)
    mine, theirs = await ticket_for(store, 9001), await ticket_for(store, 9002)
    assert await service.cancel(mine.user_id, theirs.id) == out.NothingOpen()
    cancelled = await service.cancel(mine.user_id)
    assert isinstance(cancelled, out.Cancelled) and cancelled.ticket.id == mine.id
    assert front.keys("counsellors", mine.id) == ["grp_graduate_cancelled"]
    assert front.closed_threads == [mine.id]
    assert await service.cancel(mine.user_id) == out.NothingOpen()
    forgot = await service.cancel(theirs.user_id, forgetting=True)
    assert isinstance(forgot, out.Cancelled)
    assert front.keys("counsellors", theirs.id) == ["grp_graduate_forgot"]


async def test_a_rating_counts_once_from_the_graduate_after_closing(
    store: Store, tmp_path: Path
) -> None:
    service, front = service_for(store, tmp_path)
    ticket = await ticket_for(store)
    assert await service.rate(ticket.user_id, ticket.id, 5) == out.NotRated()  # still open
    await service.resolve(ticket.id, WANG)
    other_user, _ = await new_graduate(store, 9009)
    assert await service.rate(other_user, ticket.id, 1) == out.NotRated()
    assert await service.rate(ticket.user_id, ticket.id, 9) == out.NotRated()
    assert isinstance(await service.rate(ticket.user_id, ticket.id, 4), out.Rated)
    assert await service.rate(ticket.user_id, ticket.id, 1) == out.NotRated()
    assert front.keys("counsellors")[-1] == "grp_rating"
    fresh = await store.get_ticket(ticket.id)
    assert fresh is not None and fresh.rating == 4


async def test_notes_stay_in_the_trail(store: Store, tmp_path: Path) -> None:
    service, front = service_for(store, tmp_path)
    ticket = await ticket_for(store)
    assert await service.note(ticket.id, "  ", WANG) == out.Empty()
    assert isinstance(await service.note(ticket.id, "家长来电，已安抚", WANG), out.NoteSaved)
    await service.resolve(ticket.id, WANG)
    assert isinstance(await service.note(ticket.id, "结案后补记", WANG), out.NoteSaved)
    notes = [e.data["text"] for e in await store.events(ticket.id) if e.kind == "note"]
    assert notes == ["家长来电，已安抚", "结案后补记"]
    assert front.keys("graduate") == ["tg_resolved"]


async def test_the_queue_puts_waiting_and_urgent_tickets_first(
    store: Store, tmp_path: Path, clock: FakeClock
) -> None:
    service, _ = service_for(store, tmp_path)
    old_normal = await ticket_for(store, 9001)
    clock.advance(minutes=5)
    claimed = await ticket_for(store, 9002)
    await service.claim(claimed.id, WANG)
    clock.advance(minutes=5)
    user_id, conversation_id = await new_graduate(store, 9003)
    urgent, _ = await store.open_ticket(
        conversation_id, user_id, "crisis", "urgent", "crisis", "…", None, [], []
    )
    assert [t.id for t in await service.queue()] == [urgent.id, old_normal.id, claimed.id]


async def test_every_transition_happens_while_the_channel_is_down(
    store: Store, tmp_path: Path
) -> None:
    front = CollectingFrontEnd(store, reachable=False)
    service = HandoffService(settings(tmp_path), store, front)
    ticket = await ticket_for(store, draft="草稿")
    assert isinstance(await service.claim(ticket.id, WANG), out.Claimed)
    sent = await service.send_draft(ticket.id, WANG)
    assert isinstance(sent, out.Delivered) and sent.relayed is Relayed.QUEUED
    assert isinstance(await service.resolve(ticket.id, WANG), out.Resolved)
    fresh = await store.get_ticket(ticket.id)
    assert fresh is not None and fresh.status == "resolved"


async def test_a_long_wait_alerts_everyone_once_and_later_offers_the_bot(
    store: Store, tmp_path: Path, clock: FakeClock
) -> None:
    service, front = service_for(store, tmp_path)
    waiting = await ticket_for(store, 9001)
    answered = await ticket_for(store, 9002)
    await service.reply(answered.id, "在的，我来看看。", Source(-100, 1), WANG)
    assert await service.sweep() == Swept()  # not late yet
    clock.advance(minutes=service.settings.sla_remind_minutes + 1)
    assert await service.sweep() == Swept(reminded=[waiting.id])
    assert front.keys("all counsellors") == ["grp_sla_reminder"]
    assert front.keys("graduate", waiting.id) == ["tg_long_wait"]
    assert await service.sweep() == Swept()  # once
    clock.advance(hours=service.settings.sla_giveup_hours)
    assert await service.sweep() == Swept(offered=[waiting.id])
    assert front.keys("graduate", waiting.id) == ["tg_long_wait", "tg_giveup_offer"]
    assert front.keys("graduate", answered.id) == ["tg_counsellor_joined"]


async def test_contact_details_go_on_the_open_ticket_only(store: Store, tmp_path: Path) -> None:
    service, _ = service_for(store, tmp_path)
    user_id, _conversation = await new_graduate(store, 9001)
    assert await service.leave_contact(user_id, "13800000000") == out.NothingOpen()
    ticket = await ticket_for(store, 9001)
    assert await service.leave_contact(user_id, "   ") == out.Empty()
    saved = await service.leave_contact(user_id, " 13800000000 " + "x" * 300)
    assert isinstance(saved, out.ContactSaved) and saved.ticket.id == ticket.id
    fresh = await store.get_ticket(ticket.id)
    assert fresh is not None and fresh.contact == saved.contact and len(saved.contact) == 200
