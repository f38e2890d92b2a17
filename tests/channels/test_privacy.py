"""Issue 14, item 7b: what the privacy notice says is what is stored.

What a graduate writes (to the bot or, through it, to a counsellor), what a counsellor writes
back, the captions of the files they send and the agent's dialogue state are stored with ID,
phone, e-mail and bank card numbers redacted — while the counsellors still see the
graduate's message whole in their Telegram group (the relay copies it), so that they can call
back on a number the graduate gives. The notice says so, with the retention period in force,
and the contact details left with /contact go at the end of it too.

Real bot over HTTP against the fake Bot API, real database (``conftest.py``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import text

from bot.channels.telegram.jobs import apply_retention
from tests.channels.conftest import FORUM, GRADUATE, Bot, Stack
from tests.channels.test_handoffs import ask, hand_off, people, said
from tests.fakes.telegram_server import FakeTelegram

PHONE = "13912345678"
ID_NUMBER = "11010519491231002X"
EMAIL = "zhang.san@example.com"
SECRETS = (PHONE, ID_NUMBER, EMAIL)
TIMEOUT = 20.0
STORES = pytest.mark.parametrize("stack", ["polling-sqlite", "polling-postgresql"], indirect=True)
ONCE = pytest.mark.parametrize("stack", ["polling-sqlite"], indirect=True)


async def rows(bot: Bot, query: str) -> list[Any]:
    async with bot.store.db.engine.connect() as connection:
        return list((await connection.execute(text(query))).scalars())


@STORES
async def test_what_graduates_write_is_stored_redacted_and_reaches_counsellors_whole(
    tg: FakeTelegram, bot: Bot
) -> None:
    graduate, li, _ = people(tg)
    await ask(tg, graduate, f"我的手机号是{PHONE}，试用期最长多久？")  # answered by the bot
    opened = await hand_off(tg, bot, graduate, question=None)

    mark = tg.mark()
    tg.send_text(graduate, f"请打我电话 {PHONE}，身份证{ID_NUMBER}，邮箱{EMAIL}")
    copy = await tg.await_for(
        chat=FORUM, thread_id=opened.thread, method="copyMessage", since=mark, timeout=TIMEOUT
    )
    assert all(secret in (copy.text or "") for secret in SECRETS), "the counsellor sees it all"
    mark = tg.mark()
    tg.send_photo(graduate, caption=f"劳动合同照片，有事打{PHONE}")
    photo = await tg.await_for(
        chat=FORUM, thread_id=opened.thread, method="copyMessage", since=mark, timeout=TIMEOUT
    )
    assert PHONE in (photo.text or "")
    mark = tg.mark()
    tg.send_text(li, f"好的，我下午打 {PHONE} 联系你", chat=FORUM, thread_id=opened.thread)
    await tg.await_for(chat=GRADUATE, since=mark, text=PHONE, timeout=TIMEOUT)
    await tg.await_idle()

    turns = await rows(bot, "SELECT text FROM turns ORDER BY id")
    states = await rows(bot, "SELECT state FROM conversations")
    captions = await rows(bot, "SELECT caption FROM ticket_attachments")
    stored = json.dumps([turns, states, captions], ensure_ascii=False)
    for secret in SECRETS:
        assert secret not in stored, secret
    assert "我的手机号是[phone]，试用期最长多久？" in turns, "the question, as asked, redacted"
    assert "请打我电话 [phone]，身份证[id-number]，邮箱[email]" in turns
    assert "好的，我下午打 [phone] 联系你" in turns, "the counsellor's words too"
    assert captions == ["劳动合同照片，有事打[phone]"]
    assert "[phone]" in json.dumps(states, ensure_ascii=False), "the dialogue state too"


@ONCE
async def test_the_privacy_notice_gives_the_retention_period_in_force(stack: Stack) -> None:
    for days, retention in ((30, "tg_retention_days"), (0, "tg_retention_forever")):
        bot = await stack.start_bot(retention_days=days)
        graduate, _, _ = people(stack.tg)
        for lang in ("zh", "en"):
            await bot.store.get_or_create_user(GRADUATE)
            user = await bot.store.get_user(telegram_id=GRADUATE)
            assert user is not None
            await bot.store.set_user_lang(user.id, lang)  # type: ignore[arg-type]
            mark = stack.tg.mark()
            stack.tg.send_command(graduate, "start")
            welcome = await stack.tg.await_for(chat=GRADUATE, since=mark, timeout=TIMEOUT)
            period = bot.messages.get(retention, lang, days=days)  # type: ignore[arg-type]
            assert welcome.text == said(bot, "tg_welcome", lang, retention=period)
            if days:
                assert f"{days}" in (welcome.text or "")
            assert "[phone]" in (welcome.text or ""), "it says how numbers are stored"
        await bot.stop()
        stack.bots.remove(bot)


@ONCE
async def test_contact_details_go_with_the_transcript_at_the_end_of_retention(
    tg: FakeTelegram, stack: Stack
) -> None:
    bot = await stack.start_bot(retention_days=30)
    graduate, _, _ = people(tg)
    opened = await hand_off(tg, bot, graduate)
    mark = tg.mark()
    tg.send_command(graduate, "contact", PHONE)
    await tg.await_for(chat=GRADUATE, since=mark, text=said(bot, "tg_contact_saved"))
    mark = tg.mark()
    tg.send_command(graduate, "cancel")
    await tg.await_for(chat=GRADUATE, since=mark, text=said(bot, "tg_cancel_done"))
    closed = await bot.store.get_ticket(opened.ticket.id)
    assert closed is not None and closed.contact == PHONE, "kept as given while it matters"

    stack.clock.advance(days=29)
    await apply_retention(bot.services)
    kept = await bot.store.get_ticket(opened.ticket.id)
    assert kept is not None and kept.contact == PHONE, "not yet"
    stack.clock.advance(days=2)
    await apply_retention(bot.services)
    after = await bot.store.get_ticket(opened.ticket.id)
    assert after is not None and after.contact is None and after.transcript == []
    assert after.summary, "the ticket itself stays for the records"
