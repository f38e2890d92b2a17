"""The fake Bot API's deletions, with the real python-telegram-bot ``Bot`` over HTTP:
``deleteMessages`` (1-100 ids, those not found skipped), the 48-hour rule and the
``can_delete_messages`` right (``deleteMessage``, ``deleteMessages``, ``deleteForumTopic``),
as the Bot API documents them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from telegram import Bot
from telegram.error import BadRequest

from tests.fakes.telegram_server import DELETE_WINDOW_S, FakeTelegram

FORUM = -1001234567890
HOURS_49 = 49 * 3600


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(
        tg.token, base_url=f"{tg.base_url}/bot", base_file_url=f"{tg.base_url}/file/bot"
    ) as client:
        yield client


async def _posts(bot: Bot, chat: int, count: int, thread: int | None = None) -> list[int]:
    return [
        (await bot.send_message(chat, f"m{n}", message_thread_id=thread)).message_id
        for n in range(count)
    ]


def _ids(tg: FakeTelegram, chat: int) -> list[int]:
    return [m["message_id"] for m in tg.chat_history(chat)]


async def test_delete_messages_deletes_them_and_skips_those_not_found(
    tg: FakeTelegram, bot: Bot
) -> None:
    tg.forum(FORUM)
    thread = (await bot.create_forum_topic(FORUM, "#1")).message_thread_id
    ids = await _posts(bot, FORUM, 3, thread)
    assert await bot.delete_messages(FORUM, [ids[0], ids[2], 99_999])
    assert _ids(tg, FORUM) == [thread, ids[1]]
    assert [r.message_id for r in tg.sent if r.method == "deleteMessages"] == [ids[0], ids[2]]
    assert await bot.delete_messages(FORUM, [ids[0]]), "already gone: skipped, not an error"
    assert not tg.violations


async def test_delete_messages_takes_one_to_a_hundred_ids(tg: FakeTelegram, bot: Bot) -> None:
    tg.forum(FORUM)
    ids = await _posts(bot, FORUM, 1)
    with pytest.raises(BadRequest, match=r"(?i)too many message identifiers"):
        await bot.delete_messages(FORUM, list(range(1, 102)))
    with pytest.raises(BadRequest, match=r"(?i)message identifiers are not specified"):
        await bot.delete_messages(FORUM, [])
    assert await bot.delete_messages(FORUM, [*ids, *range(1000, 1099)]), "100 ids"
    assert _ids(tg, FORUM) == []


async def test_after_48_hours_a_message_cannot_be_deleted_but_its_topic_can(
    tg: FakeTelegram, bot: Bot
) -> None:
    tg.forum(FORUM)
    old = (await bot.create_forum_topic(FORUM, "#1")).message_thread_id
    new = (await bot.create_forum_topic(FORUM, "#2")).message_thread_id
    (stale,) = await _posts(bot, FORUM, 1, old)
    (fresh,) = await _posts(bot, FORUM, 1, new)
    assert tg.age_messages(FORUM, HOURS_49, thread_id=old) == 2  # with the topic's creation
    assert HOURS_49 > DELETE_WINDOW_S

    with pytest.raises(BadRequest, match=r"(?i)message can.t be deleted"):
        await bot.delete_messages(FORUM, [fresh, stale])
    assert fresh in _ids(tg, FORUM), "one that cannot be deleted: none is"
    with pytest.raises(BadRequest, match=r"(?i)message can.t be deleted"):
        await bot.delete_message(FORUM, stale)
    assert await bot.delete_messages(FORUM, [fresh])
    assert await bot.delete_forum_topic(FORUM, old), "a topic goes with its messages, any age"
    assert _ids(tg, FORUM) == [new]


async def test_without_the_right_to_delete_messages_only_its_own_fresh_ones_go(
    tg: FakeTelegram, bot: Bot
) -> None:
    tg.forum(FORUM, bot_can_delete_messages=False)
    member = tg.user(501, "Li")
    tg.join(FORUM, member)
    thread = (await bot.create_forum_topic(FORUM, "#1")).message_thread_id
    (own,) = await _posts(bot, FORUM, 1, thread)
    tg.send_text(member, "a counsellor's reply", chat=FORUM, thread_id=thread)
    theirs = _ids(tg, FORUM)[-1]

    member_info = await bot.get_chat_member(FORUM, bot.id)
    assert member_info.can_delete_messages is False  # type: ignore[attr-defined]
    with pytest.raises(BadRequest, match=r"(?i)message can.t be deleted"):
        await bot.delete_messages(FORUM, [theirs])
    with pytest.raises(BadRequest, match=r"(?i)not enough rights"):
        await bot.delete_forum_topic(FORUM, thread)
    assert await bot.delete_messages(FORUM, [own])
    assert _ids(tg, FORUM) == [thread, theirs]
