"""The ticket use cases without any channel: what each one changes, who hears what, and
what it answers when it cannot act — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.handoff import outcomes as out
from bot.handoff.collecting import CollectingFrontEnd
from bot.handoff.models import Counsellor, Relayed, Source
from bot.handoff.service import HandoffService, Swept
from bot.settings import Settings
from bot.storage.console_store import ConsoleStore
from bot.storage.store import Store, Ticket
from tests.storage.conftest import FakeClock, new_graduate

WANG_TELEGRAM, ZHAO_TELEGRAM = 111, 222
"""Counsellors working in Telegram (listed in the settings)."""


async def people(service: HandoffService) -> tuple[Counsellor, Counsellor]:
    """王老师 and 赵老师 as they act from the Telegram group."""
    directory = service.directory
    return (
        await directory.telegram(WANG_TELEGRAM, "王老师"),
        await directory.telegram(ZHAO_TELEGRAM, "赵老师"),
    )


def settings(tmp_path: Path, *, names_visible: bool = False) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        counsellor_ids=[WANG_TELEGRAM, ZHAO_TELEGRAM],
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
    wang, _ = await people(service)
    ticket = await ticket_for(store)
    claimed = await service.claim(ticket.id, wang)
    assert isinstance(claimed, out.Claimed)
    assert claimed.ticket.status == "assigned" and claimed.ticket.assignee_id == wang.id
    assert front.keys("counsellors") == ["grp_claimed"]
    assert front.said[0].notice.params == {"name": "王老师"}
    assert front.keys("graduate") == ["tg_counsellor_joined"]
    assert (await store.load_conversation(ticket.user_id)).owner == "assigned"


async def test_a_second_claim_names_who_holds_the_ticket(store: Store, tmp_path: Path) -> None:
    service, front = service_for(store, tmp_path)
    wang, zhao = await people(service)
    ticket = await ticket_for(store)
    await service.claim(ticket.id, wang)
    again = await service.claim(ticket.id, zhao)
    assert isinstance(again, out.AlreadyClaimed) and again.by == "王老师"
    assert front.keys("graduate") == ["tg_counsellor_joined"]  # told once


async def test_of_two_claims_at_once_exactly_one_wins(store: Store, tmp_path: Path) -> None:
    service, front = service_for(store, tmp_path)
    wang, zhao = await people(service)
    ticket = await ticket_for(store)
    first, second = await asyncio.gather(
        service.claim(ticket.id, wang), service.claim(ticket.id, zhao)
    )
    outcomes = sorted([first, second], key=lambda o: isinstance(o, out.AlreadyClaimed))
    assert isinstance(outcomes[0], out.Claimed)
    assert isinstance(outcomes[1], out.AlreadyClaimed)
    holder = outcomes[0].ticket.assignee_id
    assert outcomes[1].by == ("王老师" if holder == wang.id else "赵老师")
    assert front.keys("graduate") == ["tg_counsellor_joined"]


async def test_a_reply_claims_a_queued_ticket_and_is_recorded_once(
    store: Store, tmp_path: Path
) -> None:
    service, _ = service_for(store, tmp_path)
    wang, _ = await people(service)
    ticket = await ticket_for(store)
    source = Source(-100, 7)
    sent = await service.reply(ticket.id, "试用期最长六个月。", source, wang)
    assert isinstance(sent, out.Delivered) and sent.relayed is Relayed.SENT
    again = await service.reply(ticket.id, "试用期最长六个月。", source, wang)
    assert isinstance(again, out.Delivered) and again.relayed is Relayed.ALREADY
    turns = await store.recent_turns(ticket.conversation_id, 10)
    assert [t.text for t in turns if t.role == "counsellor"] == ["试用期最长六个月。"]
    fresh = await store.get_ticket(ticket.id)
    assert fresh is not None and fresh.status == "assigned" and fresh.first_response_at is not None
    assert await service.reply(ticket.id, "  ", Source(-100, 8), wang) == out.Empty()


async def test_nothing_reaches_the_graduate_of_a_closed_ticket(
    store: Store, tmp_path: Path
) -> None:
    service, front = service_for(store, tmp_path)
    wang, _ = await people(service)
    ticket = await ticket_for(store, draft="草稿")
    assert isinstance(await service.resolve(ticket.id, wang), out.Resolved)
    said = len(front.said)
    assert await service.reply(ticket.id, "还在吗", Source(-100, 9), wang) == out.Closed(ticket.id)
    assert await service.send_draft(ticket.id, wang) == out.Closed(ticket.id)
    assert await service.claim(ticket.id, wang) == out.Closed(ticket.id)
    assert await service.resolve(ticket.id, wang) == out.Closed(ticket.id)
    assert len(front.said) == said and front.replies == [] and front.answers == []


async def test_the_draft_is_sent_once_with_its_trail(store: Store, tmp_path: Path) -> None:
    service, front = service_for(store, tmp_path)
    wang, zhao = await people(service)
    ticket = await ticket_for(store, draft="试用期工资不得低于约定工资的百分之八十。")
    sent = await service.send_draft(ticket.id, zhao)
    assert isinstance(sent, out.Delivered) and sent.relayed is Relayed.SENT
    again = await service.send_draft(ticket.id, wang)
    assert isinstance(again, out.Delivered) and again.relayed is Relayed.ALREADY
    assert front.answers == [(ticket.id, "试用期工资不得低于约定工资的百分之八十。")]
    events = [(e.kind, e.actor) for e in await store.events(ticket.id)]
    assert events.count(("draft_sent", "counsellor:222")) == 1
    assert front.keys("counsellors") == ["grp_draft_sent"]
    plain = await ticket_for(store, 9002)
    assert await service.send_draft(plain.id, wang) == out.NoDraft(plain)


async def test_a_transfer_to_a_console_account_tells_the_desk_and_the_graduate(
    store: Store, tmp_path: Path
) -> None:
    service, front = service_for(store, tmp_path)
    wang, _ = await people(service)
    account = await ConsoleStore(store).add_account("li", "李老师", "counsellor", "x")
    ticket = await ticket_for(store)
    await service.claim(ticket.id, wang)
    li = await service.directory.account(account)
    moved = await service.transfer(ticket.id, li.id, wang)  # as the console's form sends it
    assert isinstance(moved, out.Transferred) and moved.to is not None
    assert moved.to.name == "李老师" and moved.ticket.assignee_id == li.id
    assert front.keys("counsellors")[-1] == "grp_transferred"
    assert front.said[-2].notice.params == {"name": "李老师"}
    assert front.keys("graduate")[-1] == "tg_transferred"  # anonymous by default
    assert "李老师" not in str(front.said[-1].notice.params)


async def test_the_graduate_hears_the_name_only_when_names_are_visible(
    store: Store, tmp_path: Path
) -> None:
    service, front = service_for(store, tmp_path, names_visible=True)
    wang, zhao = await people(service)  # 赵老师 is known since they wrote to the group
    ticket = await ticket_for(store)
    await service.transfer(ticket.id, zhao.id, wang)
    told = [s for s in front.said if s.to == "graduate"][-1]
    assert told.notice.key == "tg_transferred_named" and told.notice.params == {"name": "赵老师"}


async def test_a_transfer_has_one_rule_for_who_may_receive(store: Store, tmp_path: Path) -> None:
    service, _ = service_for(store, tmp_path)
    wang = await service.directory.telegram(WANG_TELEGRAM, "王老师")
    ticket = await ticket_for(store)
    await service.claim(ticket.id, wang)
    for stranger in ("333", "0", "abc", "-5", 333):
        assert await service.transfer(ticket.id, stranger, wang) == out.UnknownCounsellor(
            str(stranger)
        )
    fresh = await store.get_ticket(ticket.id)
    assert fresh is not None and fresh.assignee_id == wang.id
    moved = await service.transfer(ticket.id, "@222", wang)  # as typed after /transfer
    assert isinstance(moved, out.Transferred) and moved.to is not None
    assert moved.to.telegram_id == 222 and moved.to.name == "222"  # never wrote: by id
    assert moved.ticket.assignee_id == moved.to.id


async def test_back_to_the_queue_and_already_there(store: Store, tmp_path: Path) -> None:
    service, front = service_for(store, tmp_path)
    wang, _ = await people(service)
    ticket = await ticket_for(store)
    await service.claim(ticket.id, wang)
    back = await service.transfer(ticket.id, "queue", wang)
    assert isinstance(back, out.Transferred) and back.to is None
    assert back.ticket.status == "queued" and back.ticket.assignee_id is None
    assert front.keys("graduate")[-1] == "tg_requeued"
    assert front.keys("counsellors")[-1] == "grp_released"
    assert isinstance(await service.transfer(ticket.id, None, wang), out.AlreadyThere)


async def test_resolving_closes_the_thread_and_asks_for_a_rating(
    store: Store, tmp_path: Path
) -> None:
    service, front = service_for(store, tmp_path)
    wang, _ = await people(service)
    rated, handed_back = await ticket_for(store, 9001), await ticket_for(store, 9002)
    assert isinstance(await service.resolve(rated.id, wang), out.Resolved)
    assert isinstance(await service.resolve(handed_back.id, wang, rate=False), out.Resolved)
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
    wang, _ = await people(service)
    ticket = await ticket_for(store)
    assert await service.rate(ticket.user_id, ticket.id, 5) == out.NotRated()  # still open
    await service.resolve(ticket.id, wang)
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
    wang, _ = await people(service)
    ticket = await ticket_for(store)
    assert await service.note(ticket.id, "  ", wang) == out.Empty()
    assert isinstance(await service.note(ticket.id, "家长来电，已安抚", wang), out.NoteSaved)
    await service.resolve(ticket.id, wang)
    assert isinstance(await service.note(ticket.id, "结案后补记", wang), out.NoteSaved)
    notes = [e.data["text"] for e in await store.events(ticket.id) if e.kind == "note"]
    assert notes == ["家长来电，已安抚", "结案后补记"]
    assert front.keys("graduate") == ["tg_resolved"]


async def test_the_queue_puts_waiting_and_urgent_tickets_first(
    store: Store, tmp_path: Path, clock: FakeClock
) -> None:
    service, _ = service_for(store, tmp_path)
    wang, _ = await people(service)
    old_normal = await ticket_for(store, 9001)
    clock.advance(minutes=5)
    claimed = await ticket_for(store, 9002)
    await service.claim(claimed.id, wang)
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
    wang, _ = await people(service)
    ticket = await ticket_for(store, draft="草稿")
    assert isinstance(await service.claim(ticket.id, wang), out.Claimed)
    sent = await service.send_draft(ticket.id, wang)
    assert isinstance(sent, out.Delivered) and sent.relayed is Relayed.QUEUED
    assert isinstance(await service.resolve(ticket.id, wang), out.Resolved)
    fresh = await store.get_ticket(ticket.id)
    assert fresh is not None and fresh.status == "resolved"


async def test_a_long_wait_alerts_everyone_once_and_later_offers_the_bot(
    store: Store, tmp_path: Path, clock: FakeClock
) -> None:
    service, front = service_for(store, tmp_path)
    wang, _ = await people(service)
    waiting = await ticket_for(store, 9001)
    answered = await ticket_for(store, 9002)
    await service.reply(answered.id, "在的，我来看看。", Source(-100, 1), wang)
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


async def test_a_counsellor_is_one_person_in_telegram_and_the_console(
    store: Store, tmp_path: Path
) -> None:
    """王老师 claims in the Telegram group; in the console (an account carrying her
    Telegram id) the ticket is hers: one id on tickets, her console name everywhere."""
    service, _front = service_for(store, tmp_path)
    ticket = await ticket_for(store)
    in_telegram = await service.directory.telegram(WANG_TELEGRAM, "Wang")
    claimed = await service.claim(ticket.id, in_telegram)
    assert isinstance(claimed, out.Claimed)
    account = await ConsoleStore(store).add_account(
        "wang", "王老师", "counsellor", "x", telegram_id=WANG_TELEGRAM
    )
    in_console = await service.directory.account(account)
    assert in_console.id == in_telegram.id == claimed.ticket.assignee_id
    assert in_console.actor != in_telegram.actor  # the trail says where she acted from
    assert (await service.directory.telegram(WANG_TELEGRAM, "Wang")).name == "王老师"
    everyone = await service.directory.everyone()
    assert [c.name for c in everyone.values()].count("王老师") == 1
    again = await service.claim(ticket.id, await service.directory.telegram(ZHAO_TELEGRAM, "赵"))
    assert again == out.AlreadyClaimed(claimed.ticket, "王老师")


async def test_the_command_line_is_one_counsellor_nobody_transfers_to(
    store: Store, tmp_path: Path
) -> None:
    service, _front = service_for(store, tmp_path)
    wang, _ = await people(service)
    cli = await service.directory.cli()
    ticket = await ticket_for(store)
    await service.reply(ticket.id, "我看一下。", Source(0, -1), cli)  # claims it
    fresh = await store.get_ticket(ticket.id)
    assert fresh is not None and fresh.assignee_id == cli.id
    assert await service.directory.name(fresh.assignee_id) == "CLI"
    assert cli.id not in await service.directory.everyone()
    refused = await service.transfer(ticket.id, cli.id, wang)
    assert refused == out.UnknownCounsellor(str(cli.id))
    assert (await service.directory.cli()).id == cli.id


async def test_a_transfer_typed_in_telegram_finds_a_console_user_by_name(
    store: Store, tmp_path: Path
) -> None:
    service, _ = service_for(store, tmp_path)
    wang, _ = await people(service)
    account = await ConsoleStore(store).add_account("li", "李老师", "counsellor", "x")
    ticket = await ticket_for(store)
    moved = await service.transfer(ticket.id, "@Li", wang)  # "/transfer @Li" in the topic
    assert isinstance(moved, out.Transferred) and moved.to is not None
    assert moved.to == await service.directory.account(account)
    everyone = await service.directory.everyone()
    assert sorted(c.name for c in everyone.values()) == sorted(["王老师", "赵老师", "李老师"])
