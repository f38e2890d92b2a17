"""The counsellor's desk: the live queue, the ticket page, and replies, claims, transfers and
resolutions that reach the graduate through the fake Telegram Bot API."""

from __future__ import annotations

import re

from sqlalchemy import select

from bot.channels.telegram.front import TelegramFrontEnd
from bot.handoff.routing import RoutingFrontEnd
from bot.kb.service import KnowledgeBase
from bot.settings import Settings
from bot.storage.models import OutboxRow
from tests.channels.conftest import FORUM
from tests.fakes.telegram_server import FakeTelegram
from tests.web.conftest import (
    GRADUATE,
    Console,
    csrf_of,
    field_of,
    start_console,
    stop_console,
)


async def test_queue_sorts_by_priority_and_colours_the_wait(console: Console) -> None:
    old = await console.graduate_ticket("档案怎么转？", name="王同学", telegram_id=2001)
    console.clock.advance(minutes=20)  # past the 15-minute reminder: late
    urgent = await console.graduate_ticket(
        "老板拖欠工资三个月了", name="赵同学", telegram_id=2002, priority="urgent"
    )
    await console.as_user("chen")
    page = await console.client.get("/queue")
    assert page.status_code == 200
    rows = page.text.split('data-ticket="')[1:]
    assert [row.split('"')[0] for row in rows] == [str(urgent.id), str(old.id)]
    assert f'class="sla-late" data-ticket="{old.id}"' in page.text
    assert f'class="sla-ok" data-ticket="{urgent.id}"' in page.text
    assert "紧急" in rows[0] and "20 分钟" in rows[1]
    assert 'data-poll="/queue/rows"' in page.text  # refreshed by static/console.js

    newer = await console.graduate_ticket("三方协议丢了", name="孙同学", telegram_id=2003)
    fragment = await console.client.get("/queue/rows", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert f'data-ticket="{newer.id}"' in fragment.text and "<html" not in fragment.text
    script = await console.client.get("/static/console.js")
    assert script.status_code == 200 and "data-poll" in script.text


async def test_ticket_page_shows_transcript_summary_draft_and_citations(console: Console) -> None:
    ticket = await console.graduate_ticket(
        "试用期可以不交社保吗？", draft="试用期也必须缴纳社会保险。"
    )
    await console.store.add_event(ticket.id, "note", "counsellor:501", {"text": "已电话联系"})
    await console.store.add_turn(ticket.conversation_id, "graduate", "[media]")  # a photo
    await console.as_user("chen")
    page = (await console.client.get(f"/tickets/{ticket.id}")).text
    assert "试用期可以不交社保吗？" in page
    assert "试用期也必须缴纳社会保险。" in page
    assert "已电话联系" in page
    assert "张同学" in page
    assert "毕业生发送了附件" in page
    assert (await console.client.get("/tickets/999")).status_code == 404


async def test_a_draft_the_graduate_never_saw_is_marked_and_sending_it_warns(
    console: Console,
) -> None:
    """A sensitive case: the graduate was only told a counsellor will contact them; the
    bot's answer is a draft, stored as its turn. The page says so, and sending it warns."""
    draft = "公司拖欠工资的，可以向劳动保障监察机构投诉，或者申请劳动仲裁。"
    ticket = await console.graduate_ticket(
        "公司拖欠我三个月工资了", draft=draft, reason="sensitive"
    )
    await console.store.add_turn(ticket.conversation_id, "bot", f"老师会联系你。\n\n{draft}")
    await console.as_user("chen")
    page = (await console.client.get(f"/tickets/{ticket.id}")).text
    (turn,) = re.findall(r'<li class="turn turn-draft">.*?</li>', page, flags=re.S)
    assert "机器人草稿（毕业生未看到）" in turn and draft in turn
    assert "turn-bot" not in page, "no draft is shown as a bot message the graduate read"
    warning = console.services.messages.get("web_draft_warning_sensitive", "zh")
    assert f'data-confirm="{warning}"' in page and warning in page

    plain = await console.graduate_ticket("试用期社保", telegram_id=GRADUATE + 1, draft=draft)
    page = (await console.client.get(f"/tickets/{plain.id}")).text
    assert "data-confirm" not in page.split("/draft")[1].split("</form>")[0]


async def test_reply_reaches_the_graduate_once_and_is_audited(console: Console) -> None:
    ticket = await console.graduate_ticket()
    await console.as_user("chen")
    page = (await console.client.get(f"/tickets/{ticket.id}")).text
    form = {"csrf_token": csrf_of(page), "nonce": field_of(page, "nonce")}
    text = "你好，试用期也必须缴纳社保，可以向社保经办机构投诉。"
    response = await console.client.post(f"/tickets/{ticket.id}/reply", data={**form, "text": text})
    assert response.status_code == 303
    received = await console.tg.await_for(chat=GRADUATE, text=text)
    assert received.text is not None and text in received.text
    # a double submit of the same form sends nothing more
    again = await console.client.post(f"/tickets/{ticket.id}/reply", data={**form, "text": text})
    assert again.status_code == 303
    assert len([m for m in console.tg.messages_to(GRADUATE) if text in (m.text or "")]) == 1

    fresh = await console.store.get_ticket(ticket.id)
    assert fresh is not None and fresh.status == "assigned"
    assert fresh.assignee_id == await console.counsellor_id("chen")
    assert fresh.first_response_at is not None
    events = await console.store.events(ticket.id)
    assert any(e.kind == "message_to_graduate" and e.actor == "web:chen" for e in events)
    audit = await console.services.console.audit_log()
    assert any(e.action == "reply" and e.target == f"ticket:{ticket.id}" for e in audit)
    shown = (await console.client.get(f"/tickets/{ticket.id}")).text
    assert text in shown and "陈老师" in shown


async def test_claim_transfer_and_resolve(console: Console) -> None:
    ticket = await console.graduate_ticket()
    await console.as_user("chen")
    claimed = await console.form(f"/tickets/{ticket.id}", f"/tickets/{ticket.id}/claim")
    assert claimed.headers["location"].endswith("msg=web_claimed")
    joined = console.services.messages.get("tg_counsellor_joined", "zh")
    await console.tg.await_for(chat=GRADUATE, text=joined[:8])
    again = await console.form(f"/tickets/{ticket.id}", f"/tickets/{ticket.id}/claim")
    assert again.headers["location"].endswith("msg=web_already_claimed")

    li = await console.counsellor_id("li")
    moved = await console.form(f"/tickets/{ticket.id}", f"/tickets/{ticket.id}/transfer", to=li)
    assert moved.headers["location"].endswith("msg=web_transferred")
    fresh = await console.store.get_ticket(ticket.id)
    assert fresh is not None and fresh.assignee_id == li
    bogus = await console.form(f"/tickets/{ticket.id}", f"/tickets/{ticket.id}/transfer", to="77")
    assert bogus.headers["location"].endswith("msg=web_transfer_unknown")
    queued = await console.form(
        f"/tickets/{ticket.id}", f"/tickets/{ticket.id}/transfer", to="queue"
    )
    assert queued.headers["location"].endswith("msg=web_transferred")
    fresh = await console.store.get_ticket(ticket.id)
    assert fresh is not None and fresh.status == "queued" and fresh.assignee_id is None
    again = await console.form(
        f"/tickets/{ticket.id}", f"/tickets/{ticket.id}/transfer", to="queue"
    )  # already in the queue: said so, not "closed"
    assert again.headers["location"].endswith("msg=web_already_queued")
    shown = (await console.client.get(again.headers["location"])).text
    assert "这个工单已经在队列中" in shown and "这个工单已经结束" not in shown

    resolved = await console.form(f"/tickets/{ticket.id}", f"/tickets/{ticket.id}/resolve")
    assert resolved.headers["location"].endswith("msg=web_resolved")
    fresh = await console.store.get_ticket(ticket.id)
    assert fresh is not None and fresh.status == "resolved"
    await console.tg.await_for(
        chat=GRADUATE, text=console.services.messages.get("tg_resolved", "zh")[:8]
    )
    page = (await console.client.get(f"/tickets/{ticket.id}")).text
    assert "这个工单已经结束" in page and f'action="/tickets/{ticket.id}/reply"' not in page
    late = await console.form(
        "/queue", f"/tickets/{ticket.id}/reply", text="还在吗", nonce="x" * 30
    )
    assert late.headers["location"].endswith("msg=web_ticket_closed")
    actions = [e.action for e in await console.services.console.audit_log()]
    assert {"claim", "transfer", "resolve"} <= set(actions)


async def test_canned_replies_are_shared_and_sent_as_replies(console: Console) -> None:
    ticket = await console.graduate_ticket()
    await console.as_user("li")
    text = "您好，老师已收到您的问题，会尽快回复。"
    await console.form("/canned", "/canned", title="收到", text=text, lang="zh")
    await console.as_user("chen")
    page = (await console.client.get(f"/tickets/{ticket.id}")).text
    assert "收到" in page and f'data-text="{text}"' in page
    canned = await console.services.console.canned()
    response = await console.client.post(
        f"/tickets/{ticket.id}/reply",
        data={
            "csrf_token": csrf_of(page),
            "nonce": field_of(page, "nonce"),
            "canned_id": canned[0].id,
        },
    )
    assert response.headers["location"].endswith("msg=web_reply_sent")
    await console.tg.await_for(chat=GRADUATE, text=text)
    await console.form("/canned", f"/canned/{canned[0].id}/delete")
    assert await console.services.console.canned() == []


async def test_internal_notes_never_reach_the_graduate(console: Console) -> None:
    ticket = await console.graduate_ticket()
    await console.as_user("chen")
    note = "内部：该生情绪比较激动，注意语气"
    response = await console.form(f"/tickets/{ticket.id}", f"/tickets/{ticket.id}/note", text=note)
    assert response.headers["location"].endswith("msg=web_note_saved")
    assert note in (await console.client.get(f"/tickets/{ticket.id}")).text
    assert all(note not in (m.text or "") for m in console.tg.messages_to(GRADUATE))


async def test_send_the_bots_draft(console: Console) -> None:
    draft = "试用期也必须缴纳社会保险。"
    ticket = await console.graduate_ticket(draft=draft)
    await console.as_user("chen")
    response = await console.form(f"/tickets/{ticket.id}", f"/tickets/{ticket.id}/draft")
    assert response.headers["location"].endswith("msg=web_reply_sent")
    await console.tg.await_for(chat=GRADUATE, text=draft)


async def test_a_transfer_is_told_in_the_tickets_topic(
    web_settings: Settings, tg: FakeTelegram, shared_kb: KnowledgeBase
) -> None:
    """With a counsellor group, the ticket's topic hears who took it over (and when it went
    back to the queue), as when /transfer is typed there."""
    tg.forum(FORUM)
    settings = web_settings.model_copy(update={"counsellor_chat_id": FORUM})
    console = await start_console(settings, tg, shared_kb)
    try:
        ticket = await console.graduate_ticket()
        front = console.services.handoff.front
        assert isinstance(front, RoutingFrontEnd) and isinstance(front.desk, TelegramFrontEnd)
        desk = await front.desk.desk()
        user = await console.store.get_user(ticket.user_id)
        ticket = await desk.ensure_topic(ticket, student="张同学", user=user)
        assert ticket.topic_id is not None
        await console.as_user("chen")
        li = console.accounts["li"]
        moved = await console.form(
            f"/tickets/{ticket.id}",
            f"/tickets/{ticket.id}/transfer",
            to=await console.counsellor_id("li"),
        )
        assert moved.headers["location"].endswith("msg=web_transferred")
        told = console.services.messages.get("grp_transferred", "zh", name=li.display_name)
        notice = await tg.await_for(chat=FORUM, thread_id=ticket.topic_id, text=told)
        assert notice.text is not None and li.display_name in notice.text
        await console.form(f"/tickets/{ticket.id}", f"/tickets/{ticket.id}/transfer", to="queue")
        released = console.services.messages.get("grp_released", "zh")
        await tg.await_for(chat=FORUM, thread_id=ticket.topic_id, text=released)
        assert all(told not in (m.text or "") for m in tg.messages_to(GRADUATE))
    finally:
        await stop_console(console)


async def test_the_console_works_while_telegram_is_unreachable(
    web_settings: Settings, tg: FakeTelegram, shared_kb: KnowledgeBase
) -> None:
    """With the Bot API down, a console claim, note, transfer, reply and resolve all happen;
    the page says the reply is queued, and what the graduate must hear waits in the outbox
    for the running bot (in order: joined, the reply, resolved, the rating prompt)."""
    down = web_settings.model_copy(update={"telegram_api_url": "http://127.0.0.1:9"})
    console = await start_console(down, tg, shared_kb)
    try:
        ticket = await console.graduate_ticket()
        page = f"/tickets/{ticket.id}"
        await console.as_user("chen")
        steps = [
            ("claim", {}, "web_claimed"),
            ("note", {"text": "家长来电"}, "web_note_saved"),
            ("transfer", {"to": "queue"}, "web_transferred"),
            ("reply", {"text": "试用期也必须缴纳社保。", "nonce": "n1"}, "web_reply_queued"),
            ("resolve", {}, "web_resolved"),
        ]
        for action, fields, notice in steps:
            response = await console.form(page, f"{page}/{action}", **fields)
            assert response.headers["location"].endswith(f"msg={notice}"), action
        fresh = await console.store.get_ticket(ticket.id)
        assert fresh is not None and fresh.status == "resolved"
        async with console.store.transaction() as s:
            rows = (
                await s.execute(
                    select(OutboxRow.payload)
                    .where(OutboxRow.status == "pending")
                    .order_by(OutboxRow.id)
                )
            ).scalars()
            to_graduate = [p.get("text", "") for p in rows if p.get("chat_id") == GRADUATE]
        messages = console.services.messages
        assert to_graduate[0] == messages.get("tg_counsellor_joined", "zh")
        assert to_graduate[1] == messages.get("tg_requeued", "zh")
        assert "试用期也必须缴纳社保。" in to_graduate[2]
        assert to_graduate[3:] == [
            messages.get("tg_resolved", "zh"),
            messages.get("tg_rate_prompt", "zh"),
        ]
        assert tg.messages_to(GRADUATE) == []
    finally:
        await stop_console(console)
