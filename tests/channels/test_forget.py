"""Issue 14, item 6: /forget also deletes what the bot copied into the counsellor group.

A graduate who talked to counsellors left the bot's messages in the group: each ticket's
card (with the transcript), the copies of everything they wrote while a ticket was open
(phone numbers included: counsellors call back), the notice with the contact details they
left. /forget deletes them from every topic of theirs — the open ticket's and earlier,
closed ones — with ``deleteMessages``; what Telegram will not let a bot delete (older than
48 hours) goes with its whole topic (``deleteForumTopic``); what it refuses both ways is
reported honestly, to the graduate and to the counsellors, who are asked to delete it by
hand. The deletion is durable: a Telegram outage (429, 5xx) or a restart only delays it.

Every test drives the real bot over HTTP against the fake Bot API (``conftest.py``), which
models the 48-hour rule and the ``can_delete_messages`` right.
"""

from __future__ import annotations

import datetime as dt

import pytest

from bot.storage.erasures import Erasures
from tests.channels.conftest import FORUM, GRADUATE, Bot, Stack, wait_until
from tests.channels.test_handoffs import Opened, hand_off, people, plain, said
from tests.fakes.telegram_server import FakeTelegram, FakeUser, SentRecord

PHONE = "13912345678"
FIRST = f"公司拖欠工资，请打我电话 {PHONE}"
SECOND = "合同到期不续签有补偿吗？我的微信是 zhang_wx_2024"
CONTACT = "13700001111"
HOURS_49 = 49 * 3600
TIMEOUT = 20.0
ONCE = pytest.mark.parametrize("stack", ["polling-sqlite"], indirect=True)
POLLING = pytest.mark.parametrize("stack", ["polling-sqlite", "polling-postgresql"], indirect=True)


async def copy_of(tg: FakeTelegram, graduate: FakeUser, opened: Opened, text: str) -> SentRecord:
    """The graduate writes while the ticket is open; the copy in the ticket's topic."""
    mark = tg.mark()
    tg.send_text(graduate, text)
    return await tg.await_for(
        chat=FORUM, thread_id=opened.thread, method="copyMessage", since=mark, timeout=TIMEOUT
    )


async def cancel(tg: FakeTelegram, bot: Bot, graduate: FakeUser) -> None:
    """/cancel: the ticket closes, its topic too (an earlier, closed ticket)."""
    mark = tg.mark()
    tg.send_command(graduate, "cancel")
    await tg.await_for(
        chat=graduate.id, since=mark, text=said(bot, "tg_cancel_done"), timeout=TIMEOUT
    )


async def contact(tg: FakeTelegram, bot: Bot, graduate: FakeUser, opened: Opened) -> SentRecord:
    mark = tg.mark()
    tg.send_command(graduate, "contact", CONTACT)
    await tg.await_for(chat=graduate.id, since=mark, text=said(bot, "tg_contact_saved"))
    notice = said(bot, "grp_contact", contact=CONTACT)
    return await tg.await_for(chat=FORUM, thread_id=opened.thread, since=mark, text=notice)


async def forget(tg: FakeTelegram, graduate: FakeUser) -> SentRecord:
    """/forget, yes: the bot's last word to the graduate."""
    mark = tg.mark()
    tg.send_command(graduate, "forget")
    confirm = await tg.await_for(chat=graduate.id, since=mark, timeout=TIMEOUT)
    assert confirm.callback_data == ["forget:yes", "forget:no"]
    mark = tg.mark()
    tg.click(graduate, confirm, "forget:yes")
    return await tg.await_for(chat=graduate.id, since=mark, timeout=60)


def in_group(tg: FakeTelegram) -> dict[int, str]:
    """Every message now in the counsellor group (any topic): id → what it shows."""
    return {
        m["message_id"]: plain(str(m.get("text") or m.get("caption") or ""))
        for m in tg.chat_history(FORUM)
    }


def assert_nothing_of_theirs(tg: FakeTelegram, carried: list[SentRecord]) -> None:
    """None of the bot's messages that carried the graduate's words is left, and no message
    in the group shows what they wrote."""
    left = in_group(tg)
    assert not [r.summary() for r in carried if r.message_id in left]
    for text in left.values():
        for secret in (PHONE, CONTACT, "zhang_wx_2024", "拖欠工资", "不续签"):
            assert secret not in text, text


async def two_tickets(tg: FakeTelegram, bot: Bot, graduate: FakeUser) -> tuple[Opened, Opened]:
    """An earlier ticket (closed) and an open one, each with a copy of the graduate's words;
    the open one with their contact details too."""
    first = await hand_off(tg, bot, graduate)
    await copy_of(tg, graduate, first, FIRST)
    await cancel(tg, bot, graduate)
    second = await hand_off(tg, bot, graduate, question=None)
    await copy_of(tg, graduate, second, SECOND)
    await contact(tg, bot, graduate, second)
    assert first.thread != second.thread
    return first, second


def carried(tg: FakeTelegram, *opened: Opened) -> list[SentRecord]:
    """The bot's messages in these topics that carry the graduate's words: copies, cards,
    the contact notice."""
    records = [r for o in opened for r in tg.messages_to(FORUM, o.thread)]
    return [
        r
        for r in records
        if r.method == "copyMessage" or r.callback_data or CONTACT in (r.text or "")
    ]


async def test_forget_deletes_the_copies_from_every_topic_of_theirs(
    tg: FakeTelegram, bot: Bot
) -> None:
    graduate, _, _ = people(tg)
    first, second = await two_tickets(tg, bot, graduate)
    copies = carried(tg, first, second)
    assert len(copies) == 5, [r.summary() for r in copies]  # 2 cards, 2 copies, 1 contact
    assert any(PHONE in plain(text) for text in in_group(tg).values())

    done = await forget(tg, graduate)

    assert done.text == said(bot, "tg_forget_done_group")
    assert_nothing_of_theirs(tg, copies)
    topics = {t.message_thread_id: t for t in tg.topics(FORUM, include_deleted=True)}
    renamed = plain(bot.messages.get("grp_topic_forgotten", "zh"))
    for opened in (first, second):  # emptied, kept, and no longer named after the graduate
        topic = topics[opened.thread]
        assert not topic.deleted
        assert topic.name == f"#{opened.ticket.id} · {renamed}", topic.name
    forgot = said(bot, "grp_graduate_forgot")
    assert forgot in in_group(tg).values(), "the counsellors are told why the topic emptied"
    calls = tg.calls("deleteMessages")
    assert calls and all(1 <= len(c.params["message_ids"]) <= 100 for c in calls)
    assert not tg.calls("deleteForumTopic")
    erasures = await Erasures(bot.store).all()
    assert [e.step for e in erasures] == ["done", "done"]


@ONCE
async def test_messages_older_than_48_hours_go_with_their_topic(tg: FakeTelegram, bot: Bot) -> None:
    graduate, _, _ = people(tg)
    first, second = await two_tickets(tg, bot, graduate)
    copies = carried(tg, first, second)
    tg.age_messages(FORUM, HOURS_49, thread_id=first.thread)  # the earlier ticket: 2 days ago

    done = await forget(tg, graduate)

    assert done.text == said(bot, "tg_forget_done_group")
    assert_nothing_of_theirs(tg, copies)
    topics = {t.message_thread_id: t for t in tg.topics(FORUM, include_deleted=True)}
    assert topics[first.thread].deleted, "Telegram refused the messages: the topic went"
    assert not topics[second.thread].deleted, "the recent one only lost the bot's copies"
    refused = [c for c in tg.calls("deleteMessages") if c.status == 400]
    assert refused and "can't be deleted" in (refused[0].description or "")
    erasures = await Erasures(bot.store).all()
    assert [e.step for e in erasures] == ["done", "done"]


@ONCE
async def test_when_telegram_refuses_both_the_graduate_and_the_counsellors_are_told(
    tg: FakeTelegram, bot: Bot
) -> None:
    graduate, _, _ = people(tg)
    first, second = await two_tickets(tg, bot, graduate)
    copies = carried(tg, first, second)
    tg.age_messages(FORUM, HOURS_49, thread_id=first.thread)
    tg.chat(FORUM).bot_can_delete_messages = False  # an admin that may not delete

    mark = tg.mark()
    done = await forget(tg, graduate)

    assert done.text == said(bot, "tg_forget_done_failed")
    recent = [r for r in copies if r.message_thread_id == second.thread]
    left = in_group(tg)
    assert not [r.summary() for r in recent if r.message_id in left], "its own, fresh ones went"
    assert all(r.message_id in left for r in copies if r.message_thread_id == first.thread)
    link = f"https://t.me/c/{str(FORUM)[4:]}/{first.thread}"
    notice = await tg.await_for(chat=FORUM, since=mark, text=link, timeout=TIMEOUT)
    assert notice.message_thread_id is None, "in the group itself, where every admin sees it"
    assert f"#{first.ticket.id}" in (notice.text or "")
    shown = (notice.text or "").lower()
    assert "can't be deleted" in shown or "not enough rights" in shown, "Telegram's reason"
    steps = sorted(e.step for e in await Erasures(bot.store).all())
    assert steps == ["done", "failed"]


async def test_telegram_failing_and_a_restart_only_delay_the_deletion(
    tg: FakeTelegram, stack: Stack
) -> None:
    bot = await stack.start_bot(chat_lease_s=3)  # how long a stopped process holds its work
    graduate, _, _ = people(tg)
    first, second = await two_tickets(tg, bot, graduate)
    copies = carried(tg, first, second)
    tg.fail("deleteMessages", "429", times=1)  # waited out
    tg.fail("deleteMessages", "500", times=1000)  # then down, as long as this process lives

    done = await forget(tg, graduate)

    assert done.text == said(bot, "tg_forget_done_pending")
    assert len(tg.calls("deleteMessages")) >= 4, "retried before giving it to the job"
    left = in_group(tg)
    assert all(r.message_id in left for r in copies), "nothing deleted yet"
    erasures = await Erasures(bot.store).all()
    assert erasures and all(e.pending and e.last_error for e in erasures)

    await bot.stop()  # the process ends with the deletion unfinished
    stack.bots.remove(bot)
    tg.clear_faults()
    bot = await stack.start_bot(chat_lease_s=3)  # a new one knows only what the database says

    async def erased() -> bool:
        return all(not e.pending for e in await Erasures(bot.store).all())

    await wait_until(erased, timeout=60, what="the job to finish the erasures")
    assert_nothing_of_theirs(tg, copies)
    assert [e.step for e in await Erasures(bot.store).all()] == ["done", "done"]
    assert not tg.calls("deleteForumTopic"), "a 500 is not a refusal: no topic deleted"


@ONCE
async def test_a_copy_the_outbox_job_delivered_is_deleted_by_its_id(
    tg: FakeTelegram, bot: Bot
) -> None:
    """Telegram failed the copy at first; the outbox job delivered it later. Its id is
    recorded then, so /forget deletes that one message rather than the whole topic."""
    graduate, _, _ = people(tg)
    opened = await hand_off(tg, bot, graduate)
    tg.fail("copyMessage", "500", times=4)  # every attempt of the relay itself
    mark = tg.mark()
    source = tg.send_text(graduate, FIRST)["message"]["message_id"]
    copy = await tg.await_for(
        chat=FORUM, thread_id=opened.thread, method="copyMessage", since=mark, timeout=TIMEOUT
    )
    assert len([f for f in tg.injected if f.method == "copyMessage"]) == 4

    async def recorded() -> bool:
        link = await bot.store.link_for_source("to_counsellors", GRADUATE, source)
        return link is not None and link.target_message_id == copy.message_id

    await wait_until(recorded, what="the outbox job to record the copy's id")
    done = await forget(tg, graduate)

    assert done.text == said(bot, "tg_forget_done_group")
    assert copy.message_id not in in_group(tg)
    assert not tg.calls("deleteForumTopic")
    (topic,) = tg.topics(FORUM, include_deleted=True)
    assert not topic.deleted


@ONCE
async def test_a_graduate_who_never_reached_a_counsellor_is_told_the_plain_news(
    tg: FakeTelegram, bot: Bot
) -> None:
    graduate, _, _ = people(tg)
    mark = tg.mark()
    tg.send_command(graduate, "start")
    await tg.await_for(chat=GRADUATE, since=mark)
    done = await forget(tg, graduate)
    assert done.text == said(bot, "tg_forget_done")
    assert not tg.calls("deleteMessages") and not await Erasures(bot.store).all()


@ONCE
async def test_the_confirmation_says_what_is_deleted_where(tg: FakeTelegram, bot: Bot) -> None:
    graduate, _, _ = people(tg)
    mark = tg.mark()
    tg.send_command(graduate, "forget")
    confirm = await tg.await_for(chat=GRADUATE, since=mark)
    assert confirm.text == said(bot, "tg_forget_confirm")
    for lang in ("zh", "en"):
        text = bot.messages.get("tg_forget_confirm", lang)  # type: ignore[arg-type]
        assert "48" in text, "what Telegram will not let the bot delete"
        assert ("话题" if lang == "zh" else "topic") in text, "which topics go whole"
        assert ("手动" if lang == "zh" else "by hand") in text, "what happens when it cannot"


@ONCE
async def test_a_topic_with_a_copy_whose_id_is_unknown_goes_whole(
    tg: FakeTelegram, bot: Bot
) -> None:
    """Telegram failed every attempt to copy a message, so the bot never learnt a copy's id
    (had it landed): the known messages go first, then the topic with everything in it."""
    graduate, _, _ = people(tg)
    opened = await hand_off(tg, bot, graduate)
    tg.fail("copyMessage", "500", times=10_000)
    mark = tg.mark()
    tg.send_text(graduate, FIRST)
    await tg.await_call("copyMessage", predicate=lambda r: r.status == 500)
    await wait_until(
        lambda: _relay_failed(bot, opened), what="the copy to be left to the outbox job"
    )

    done = await forget(tg, graduate)

    assert done.text == said(bot, "tg_forget_done_group")
    (topic,) = tg.topics(FORUM, include_deleted=True)
    assert topic.deleted
    deleted = [r.message_id for r in tg.sent[mark:] if r.method == "deleteMessages"]
    assert opened.card.message_id in deleted, "the card first, by its id"
    tg.clear_faults()
    assert not await bot.store.due(bot.store.now(), 50, lease=dt.timedelta(seconds=1)), (
        "nothing of theirs is left to send"
    )


async def _relay_failed(bot: Bot, opened: Opened) -> bool:
    events = await bot.store.events(opened.ticket.id)
    return any(e.kind == "relay_failed" for e in events)
