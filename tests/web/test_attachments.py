"""The graduate's attachments on the ticket page: recorded when a graduate sends a file while
a ticket is open, listed (images as thumbnails), and fetched from the (fake) Telegram Bot API
when a counsellor opens one — for its own ticket only, for logged-in counsellors and admins
only, with a clear page when Telegram does not give the file."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import httpx

from bot.storage.models import TicketAttachmentRow
from tests.channels.conftest import FORUM, Stack, wait_until
from tests.fakes.telegram_server import make_png
from tests.web.conftest import GRADUATE, Console

CONTRACT = b"%PDF-1.4\n% a graduate's labour contract, page 3\n%%EOF\n"
CONTRACT_NAME = "劳动合同 <第3页>.pdf"


def url_of(ticket_id: int, attachment_id: int, download: bool = False) -> str:
    return f"/tickets/{ticket_id}/attachments/{attachment_id}" + ("?download=1" if download else "")


def assert_safe(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]


async def test_a_counsellor_sees_the_attachments_and_downloads_them(console: Console) -> None:
    ticket = await console.graduate_ticket()
    tg = console.tg
    png = make_png(64, 48, (10, 120, 60))
    sent = tg.send_photo(GRADUATE, png, caption="工资条 <b>截图</b>")
    photo = await console.attach(ticket, sent)
    largest = sent["message"]["photo"][-1]
    assert (photo.file_id, photo.file_size) == (largest["file_id"], len(png))
    contract = await console.attach(
        ticket, tg.send_document(GRADUATE, CONTRACT_NAME, CONTRACT, caption="合同")
    )
    voice = await console.attach(ticket, tg.send_voice(GRADUATE, b"OggS\x00\x02my-voice"))
    assert (photo.kind, contract.kind, voice.kind) == ("photo", "document", "voice")
    assert photo.mime_type == "image/jpeg" and contract.mime_type == "application/pdf"
    await console.store.add_turn(ticket.conversation_id, "graduate", "[media]")

    await console.as_user("chen")
    page = (await console.client.get(f"/tickets/{ticket.id}")).text
    assert 'id="attachments"' in page and 'href="#attachments"' in page
    listed = page.split('<ul class="attachments">')[1].split("</ul>")[0]
    assert listed.count("data-attachment=") == 3
    for label in ("图片", "文件", "语音"):
        assert label in listed
    assert "劳动合同 &lt;第3页&gt;.pdf" in listed and "工资条 &lt;b&gt;截图&lt;/b&gt;" in listed
    assert f"{len(CONTRACT)} B" in listed
    # only the photo is an image: one thumbnail, three download links
    assert listed.count('class="thumb"') == 1
    assert f'<img class="thumb" src="{url_of(ticket.id, photo.id)}"' in listed
    for item in (photo, contract, voice):
        assert f'href="{url_of(ticket.id, item.id, download=True)}"' in listed

    shown = await console.client.get(url_of(ticket.id, photo.id))
    assert shown.status_code == 200
    assert shown.content == png  # what the graduate uploaded, through getFile and the file URL
    assert shown.headers["content-type"] == "image/jpeg"
    assert shown.headers["content-disposition"].startswith("inline;")
    assert_safe(shown)
    saved = await console.client.get(url_of(ticket.id, photo.id, download=True))
    assert saved.content == png
    assert saved.headers["content-disposition"].startswith("attachment;")

    document = await console.client.get(url_of(ticket.id, contract.id))
    assert document.status_code == 200 and document.content == CONTRACT
    assert document.headers["content-type"] == "application/pdf"
    disposition = document.headers["content-disposition"]
    assert disposition.startswith("attachment;"), "anything but an image is a download"
    assert "filename*=UTF-8''" + quote("劳动合同 _第3页_.pdf", safe="") in disposition
    assert f'filename="document-{contract.id}.pdf"' in disposition and "<" not in disposition
    assert_safe(document)
    sound = await console.client.get(url_of(ticket.id, voice.id))
    assert sound.content == b"OggS\x00\x02my-voice"
    assert sound.headers["content-type"] == "audio/ogg"
    assert sound.headers["content-disposition"].startswith(
        f'attachment; filename="voice-{voice.id}'
    )

    downloads = [
        e for e in await console.services.console.audit_log() if e.action == "attachment_download"
    ]
    assert [e.data["attachment"] for e in downloads] == [photo.id]


async def test_a_replayed_message_is_recorded_once(console: Console) -> None:
    ticket = await console.graduate_ticket()
    update = console.tg.send_sticker(GRADUATE)
    sticker = await console.attach(ticket, update)
    assert sticker.kind == "sticker" and sticker.mime_type == "image/webp"
    message = update["message"]
    again = await console.services.console.add_attachment(
        ticket.id,
        ticket.conversation_id,
        "sticker",
        chat_id=message["chat"]["id"],
        message_id=message["message_id"],
        file_id=sticker.file_id,
        file_unique_id=sticker.file_unique_id,
    )
    assert again is None
    assert [a.id for a in await console.services.console.attachments(ticket.id)] == [sticker.id]


async def test_an_attachment_is_served_for_its_own_ticket_only(console: Console) -> None:
    mine = await console.graduate_ticket()
    other = await console.graduate_ticket("档案怎么转？", name="王同学", telegram_id=2002)
    photo = await console.attach(mine, console.tg.send_photo(GRADUATE))

    anonymous = await console.client.get(url_of(mine.id, photo.id))
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login")
    background = await console.client.get(url_of(mine.id, photo.id), headers={"HX-Request": "1"})
    assert background.status_code == 401

    await console.as_user("li")
    assert (await console.client.get(url_of(mine.id, photo.id))).status_code == 200
    wrong = await console.client.get(url_of(other.id, photo.id))
    assert wrong.status_code == 404 and "找不到这个页面" in wrong.text
    assert (await console.client.get(url_of(mine.id, photo.id + 99))).status_code == 404
    assert (await console.client.get(url_of(999, photo.id))).status_code == 404
    assert len(console.tg.downloads) == 1, "only the right one was fetched"

    await console.as_user("admin")  # admins may do what counsellors do
    assert (await console.client.get(url_of(mine.id, photo.id))).status_code == 200


async def test_telegram_failing_gives_a_clear_page(console: Console) -> None:
    ticket = await console.graduate_ticket()
    contract = await console.attach(
        ticket, console.tg.send_document(GRADUATE, "contract.pdf", CONTRACT)
    )
    await console.as_user("chen")
    target = url_of(ticket.id, contract.id, download=True)

    console.tg.fail("getFile", "500")
    failed = await console.client.get(target)
    assert failed.status_code == 502
    assert "无法从 Telegram 取得这个附件" in failed.text and "20 MB" in failed.text
    assert f'href="/tickets/{ticket.id}"' in failed.text and "返回工单" in failed.text
    assert console.tg.token not in failed.text

    console.tg.fail("getFile", "502")  # nginx's HTML page instead of JSON
    console.client.cookies.set("gg_lang", "en")
    failed = await console.client.get(target)
    assert failed.status_code == 502
    assert "This attachment could not be fetched from Telegram." in failed.text
    assert "Back to the ticket" in failed.text

    async with console.store.transaction() as session:  # a file Telegram no longer knows
        row = await session.get(TicketAttachmentRow, contract.id)
        assert row is not None
        row.file_id = "BQACAgIAAxkBAAI-unknown"
    assert (await console.client.get(target)).status_code == 502

    settings = console.services.settings
    console.services.settings = settings.model_copy(
        update={"telegram_api_url": "http://127.0.0.1:9"}  # nothing listens there
    )
    assert (await console.client.get(target)).status_code == 502
    # the page itself still works
    assert (await console.client.get(f"/tickets/{ticket.id}")).status_code == 200


async def test_forgetting_the_graduate_and_retention_delete_the_attachments(
    console: Console,
) -> None:
    ticket = await console.graduate_ticket()
    photo = await console.attach(ticket, console.tg.send_photo(GRADUATE))
    other = await console.graduate_ticket("档案怎么转？", name="王同学", telegram_id=2002)
    kept = await console.attach(other, console.tg.send_voice(2002))

    counts = await console.store.forget_user(ticket.user_id)
    assert counts["ticket_attachments"] == 1
    assert await console.services.console.get_attachment(photo.id) is None
    assert await console.services.console.get_attachment(kept.id) is not None

    console.clock.advance(days=200)
    removed = await console.store.delete_transcripts_older_than(
        console.store.now() - dt.timedelta(days=180)
    )
    assert removed["attachments"] == 1
    assert await console.services.console.attachments(other.id) == []


async def test_a_photo_sent_during_a_ticket_reaches_the_ticket_page(console: Console) -> None:
    """End to end: the bot (against the fake Bot API, on the console's database) records the
    photo a graduate sends while their ticket is open; the console shows and serves it."""
    tg = console.tg
    settings = console.services.settings
    backend = (
        "postgresql" if settings.database_url_or_default.startswith("postgresql") else "sqlite"
    )
    stack = Stack(
        tg,
        console.services.kb,
        "polling",
        backend,
        settings.database_url_or_default,
        settings.data_dir / "bot",
    )
    try:
        bot = await stack.start_bot()
        graduate = tg.user(GRADUATE, "张三", language_code="zh")
        tg.send_text(graduate, "公司试用期不给交社保，我想找老师问问")
        tg.send_command(graduate, "human")

        async def opened() -> bool:
            return bool(await bot.store.list_tickets(["queued"]))

        await wait_until(opened, timeout=20, what="a ticket")
        [ticket] = await bot.store.list_tickets(["queued"])
        png = make_png(96, 64, (220, 40, 40))
        mark = tg.mark()
        tg.send_photo(graduate, png, caption="这是我的劳动合同")
        await tg.await_for(chat=FORUM, since=mark, method="copyMessage", timeout=20)

        async def recorded() -> bool:
            return bool(await console.services.console.attachments(ticket.id))

        await wait_until(recorded, timeout=20, what="the photo recorded")
        [photo] = await console.services.console.attachments(ticket.id)
        assert photo.kind == "photo" and photo.caption == "这是我的劳动合同"
        assert (photo.chat_id, photo.file_size) == (GRADUATE, len(png))

        await console.as_user("chen")
        page = (await console.client.get(f"/tickets/{ticket.id}")).text
        assert f'src="{url_of(ticket.id, photo.id)}"' in page and "这是我的劳动合同" in page
        shown = await console.client.get(url_of(ticket.id, photo.id))
        assert shown.status_code == 200 and shown.content == png
    finally:
        await stack.close()
