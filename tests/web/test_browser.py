"""End to end in headless Chromium (Debian's `chromium`, driven by Playwright): the console
served by uvicorn, the Telegram bot running against the fake Bot API, one SQLite database.

Screenshots of the pages visited are written to the test's temp dir; with
``GG_SCREENSHOTS=1`` they also replace those under docs/screenshots/ (shown in the README).

Like the rest of tests/web they run on SQLite and on PostgreSQL (``web_db_url``); the second
backend costs about 12 s on the 2-core development machine. With ``GG_SCREENSHOTS=1`` the
PostgreSQL run's screenshots are the ones kept (the pages are the same).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect

from bot.kb.service import KnowledgeBase
from bot.root import web_services
from bot.settings import Settings
from bot.storage import Store
from bot.storage.console_store import ConsoleStore
from bot.web.app import create_app
from bot.web.security import hash_password
from tests.channels.conftest import FORUM, GRADUATE, Stack, free_port, wait_until
from tests.conftest import ROOT, make_markdown
from tests.fakes.telegram_server import FakeTelegram, make_png
from tests.web.conftest import ADMIN_PASSWORD, PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM.exists(), "install Debian's chromium: apt-get install -y chromium"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            await launched.close()


class Server:
    """The console app under uvicorn, in this test's event loop."""

    def __init__(self, settings: Settings, kb: KnowledgeBase) -> None:
        self.services = web_services(settings, kb=kb)
        self.port = free_port()
        config = uvicorn.Config(
            create_app(self.services), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Server:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            assert not self.task.done(), "uvicorn stopped"
            await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task
        await self.services.store.db.dispose()


async def shot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5000, f"{name}: an empty screenshot"
    if os.environ.get("GG_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / path.name)


async def log_in(page: Page, url: str, username: str, password: str) -> None:
    await page.goto(f"{url}/queue")
    await expect(page).to_have_url(f"{url}/login?next=/queue")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit].primary")
    await expect(page).to_have_url(f"{url}/queue")


async def test_counsellor_claims_a_telegram_ticket_and_the_graduate_gets_the_reply(
    tg: FakeTelegram,
    shared_kb: KnowledgeBase,
    web_db_url: str,
    browser: Browser,
    tmp_path: Path,
) -> None:
    backend = "postgresql" if web_db_url.startswith("postgresql") else "sqlite"
    stack = Stack(tg, shared_kb, "polling", backend, web_db_url, tmp_path / "d")
    try:
        bot = await stack.start_bot()
        graduate = tg.user(GRADUATE, "张三", language_code="zh")
        tg.send_text(graduate, "公司试用期不给交社保，我想找老师问问")
        tg.send_command(graduate, "human")
        await wait_until(
            lambda: _has_ticket(bot.store), timeout=20, what="a ticket from the fake Bot API"
        )
        [ticket] = await bot.store.list_tickets(["queued"])
        photo = make_png(480, 320, (200, 120, 40))
        tg.send_photo(graduate, photo, caption="这是劳动合同第 3 页")
        await wait_until(
            lambda: _has_attachment(bot.store, ticket.id), timeout=20, what="the photo recorded"
        )

        async with Server(stack.settings(), shared_kb) as server:
            await server.services.console.add_account(
                "chen", "陈老师", "counsellor", hash_password(PASSWORD)
            )
            page = await browser.new_page(locale="zh-CN", viewport={"width": 1280, "height": 800})
            await page.goto(f"{server.url}/login")
            await shot(page, tmp_path, "login")
            await log_in(page, server.url, "chen", PASSWORD)
            row = page.locator(f'tr[data-ticket="{ticket.id}"]')
            await expect(row).to_contain_text("张三")
            await expect(row).to_contain_text("排队中")
            await shot(page, tmp_path, "queue")

            await row.locator("a").first.click()
            await expect(page.locator("h1")).to_contain_text(f"#{ticket.id}")
            await expect(page.locator(".transcript")).to_contain_text("试用期不给交社保")
            thumb = page.locator(".attachments img.thumb")
            await expect(thumb).to_have_count(1)
            await expect(page.locator(".attachments")).to_contain_text("这是劳动合同第 3 页")
            # the image really loaded (an expectation, not wait_for_function: the console's
            # CSP forbids eval, which a polled string predicate needs)
            await expect(thumb).to_have_js_property("naturalWidth", 480)
            await page.click("text=认领")
            await expect(page.locator(".flash")).to_contain_text("已认领")
            reply = "你好，我是陈老师。试用期公司也必须给你缴纳社保，我们一起看看怎么处理。"
            await page.fill("#reply-text", reply)
            await shot(page, tmp_path, "ticket")
            await page.click("#reply-form button[type=submit]")
            await expect(page.locator(".flash")).to_contain_text("已发送给毕业生")
            await expect(page.locator(".transcript")).to_contain_text(reply)

            received = await tg.await_for(chat=GRADUATE, text=reply, timeout=10)
            assert received.text is not None and reply in received.text
            topic = ticket.topic_id
            if topic is not None:  # the counsellors' topic hears about the claim as well
                await tg.await_for(chat=FORUM, thread_id=topic, text="陈老师", timeout=10)
            fresh = await bot.store.get_ticket(ticket.id)
            assert fresh is not None and fresh.status == "assigned"
            await page.close()
    finally:
        await stack.close()


async def _has_ticket(store: object) -> bool:
    tickets = await store.list_tickets(["queued"])  # type: ignore[attr-defined]
    return bool(tickets)


async def _has_attachment(store: Store, ticket_id: int) -> bool:
    return bool(await ConsoleStore(store).attachments(ticket_id))


OVERTIME = make_markdown(
    "# 加班费\n\n## 法定休假日\n"
    "法定休假日安排劳动者工作的，支付不低于工资的百分之三百的工资报酬。\n\n"
    "## 休息日\n休息日安排劳动者工作又不能安排补休的，支付不低于工资的百分之二百的工资报酬。\n",
    id="overtime-zh",
    title="劳动法：加班工资",
    topics=["rights"],
)


async def test_admin_uploads_a_document_and_finds_it_by_hit_testing(
    tg: FakeTelegram, web_settings: Settings, browser: Browser, tmp_path: Path
) -> None:
    kb = KnowledgeBase.open(web_settings)
    kb.ingest([web_settings.knowledge_dir])
    async with Server(web_settings, kb) as server:
        await server.services.console.add_account(
            "admin", "Admin", "admin", hash_password(ADMIN_PASSWORD)
        )
        page = await browser.new_page(locale="en-US", viewport={"width": 1280, "height": 800})
        await log_in(page, server.url, "admin", ADMIN_PASSWORD)
        await page.goto(f"{server.url}/admin/documents")
        await expect(page.locator("tr[data-doc]")).to_have_count(2)
        await page.click("text=Upload a document")
        source = tmp_path / "overtime.md"
        source.write_text(OVERTIME, encoding="utf-8")
        await page.set_input_files("input[type=file]", str(source))
        await page.click("text=Preview the chunks")
        await expect(page.locator("ol.chunks li")).to_have_count(2)
        await shot(page, tmp_path, "upload-preview")
        assert "overtime-zh" not in {d.meta.id for d in kb.documents()}
        await page.click("text=Add to the knowledge base")
        await expect(page.locator(".flash")).to_contain_text("added to the knowledge base")
        await expect(page.locator('tr[data-doc="overtime-zh"]')).to_contain_text("active")
        await shot(page, tmp_path, "documents")

        await page.click("header >> text=Hit testing")
        await page.fill("input[name=q]", "法定节假日加班工资怎么算")
        await page.click("form.search button[type=submit]")
        await expect(page.locator("code.hit-doc").first).to_have_text("overtime-zh")
        await expect(page.locator(".bot-answer")).to_contain_text("百分之三百")
        await shot(page, tmp_path, "hit-testing")

        await page.goto(f"{server.url}/admin/analytics")
        await expect(page.locator("svg.chart")).to_have_count(5)
        await shot(page, tmp_path, "analytics")
        await page.close()


ADMIN_PAGES = {
    "zh": {
        "locale": "zh-CN",
        "preview": "预览分段",
        "commit": "确认写入知识库",
        "missing": "发文机关、发布日期、地区",
        "national": "全国",
        "details": "详情",
        "outcome": "结果: added",
        "crisis": "不要据此新建文档",
        "history": "历史工单",
        "no_history": "没有符合条件的已关闭工单",
        "accounts": "账号",
        "created": "账号已创建",
        "disable": "停用",
        "disabled": "账号已停用",
        "state": "已停用",
        "shots": (
            "upload-missing-fields",
            "documents-zh",
            "audit",
            "unanswered",
            "curated",
            "accounts",
        ),
    },
    "en": {
        "locale": "en-US",
        "preview": "Preview the chunks",
        "commit": "Add to the knowledge base",
        "missing": "Authority, Issued, Region",
        "national": "National",
        "details": "Details",
        "outcome": "outcome: added",
        "crisis": "Do not turn it into a document",
        "history": "History",
        "no_history": "No closed ticket matches",
        "accounts": "Accounts",
        "created": "Account created",
        "disable": "Disable",
        "disabled": "Account disabled",
        "state": "disabled",
        "shots": (),
    },
}


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_an_admin_works_through_the_admin_pages(
    tg: FakeTelegram, web_settings: Settings, browser: Browser, tmp_path: Path, lang: str
) -> None:
    """A .txt without metadata: every missing field marked at once, the rest derived; the new
    document highlighted in a list that can be searched, regions in words; the audit log
    readable; a crisis in 'unanswered' never offered as a document; a curated proposal
    offered without greeting, names or phone number; the history of closed tickets — in
    Chinese and in English."""
    words: dict[str, Any] = ADMIN_PAGES[lang]
    kinds = ("upload", "documents", "audit", "unanswered", "curated", "accounts")
    shots = dict(zip(kinds, words["shots"], strict=False))  # screenshots: the Chinese run

    async def snap(page: Page, what: str) -> None:
        if what in shots:
            await shot(page, tmp_path, shots[what])

    kb = KnowledgeBase.open(web_settings)
    kb.ingest([web_settings.knowledge_dir])
    async with Server(web_settings, kb) as server:
        console, store = server.services.console, server.services.store
        await console.add_account("admin", "管理员", "admin", hash_password(ADMIN_PASSWORD))
        for question in ("我不想活了 今晚就从楼上跳下去", "灵活就业社保补贴怎么申请"):
            await store.add_unanswered(None, question, "zh", 0.1, "low_confidence")
        user = await store.get_or_create_user(GRADUATE, "张三")
        conversation = await store.load_conversation(user.id)
        ticket, _ = await store.open_ticket(
            conversation.id, user.id, "rights", "normal", "requested", "试用期社保", None, [], []
        )
        proposal = "张同学你好！试用期也必须缴纳社保。有事打我电话 13812345678。\n\n陈老师"
        await console.propose_curated(
            "试用期公司不给交社保怎么办",
            proposal,
            "zh",
            "probation-zh",
            ticket_id=ticket.id,
            proposed_by=None,
        )
        page = await browser.new_page(
            locale=words["locale"], viewport={"width": 1280, "height": 800}
        )
        await log_in(page, server.url, "admin", ADMIN_PASSWORD)

        await page.goto(f"{server.url}/admin/documents/upload")
        source = tmp_path / "加班工资通知.txt"
        source.write_text("法定休假日加班的，支付不低于工资的百分之三百的工资报酬。", "utf-8")
        await page.set_input_files("input[type=file]", str(source))
        await page.click(f"text={words['preview']}")
        await expect(page.locator("p.error")).to_contain_text(words["missing"])
        await expect(page.locator('[aria-invalid="true"]')).to_have_count(3)
        await expect(page.locator("input[name=id]")).to_have_value("jia-ban-gong-zi-tong-zhi-zh")
        await snap(page, "upload")
        await page.fill("input[name=authority]", "某市人力资源和社会保障局")
        await page.fill("input[name=issued]", "2025-03-01")
        await page.fill("input[name=region]", "national")
        await page.click(f"text={words['preview']}")
        await page.click(f"text={words['commit']}")
        row = page.locator("tr.highlight")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("jia-ban-gong-zi-tong-zhi-zh")
        await expect(row).to_contain_text(words["national"])
        box = await row.locator(".badge").bounding_box()
        assert box is not None and box["height"] < 30, "the badge stays on one line"
        await page.fill("input[name=q]", "加班")
        await page.click("form.filters button")
        await expect(page.locator("tr[data-doc]")).to_have_count(1)
        await snap(page, "documents")

        await page.goto(f"{server.url}/admin/audit")
        await expect(page.locator("th", has_text=words["details"])).to_have_count(1)
        await expect(page.locator("td.data").first).to_contain_text(words["outcome"])
        await snap(page, "audit")

        await page.goto(f"{server.url}/admin/unanswered")
        crisis = page.locator("section.group", has_text="不想活")
        await expect(crisis).to_contain_text(words["crisis"])
        await expect(crisis.locator("a.button")).to_have_count(0)
        other = page.locator("section.group", has_text="灵活就业")
        await expect(other.locator("a.button")).to_have_count(1)
        await snap(page, "unanswered")

        await page.goto(f"{server.url}/admin/curated")
        offered = await page.locator("textarea[name=answer_zh]").input_value()
        assert offered.startswith("试用期也必须缴纳社保。"), offered
        assert "张同学" not in offered and "13812345678" not in offered
        assert "陈老师" not in offered
        # the English side of the card is for the admin to write
        assert await page.locator("textarea[name=answer_en]").input_value() == ""
        await snap(page, "curated")

        await page.click(f"header >> text={words['history']}")
        await expect(page.locator("table.history")).to_contain_text(words["no_history"])

        await page.goto(f"{server.url}/admin/analytics")
        await expect(page.locator("svg.chart.wide")).to_have_count(2)
        chart = await page.locator("svg.chart.wide").first.bounding_box()
        assert chart is not None and chart["width"] > 900, "a time series uses the page's width"

        await page.click(f"header >> text={words['accounts']}")
        await page.fill("input[name=username]", "zhou")
        await page.fill("input[name=display_name]", "周老师")
        await page.fill('form.account-form input[name="password"]', "a long enough passphrase")
        await page.click("form.account-form button")
        await expect(page.locator(".flash")).to_contain_text(words["created"])
        row = page.locator('tr[data-account="zhou"]')
        await expect(row).to_contain_text("周老师")
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await row.locator(f"text={words['disable']}").click()
        await expect(page.locator(".flash")).to_contain_text(words["disabled"])
        await expect(row).to_contain_text(words["state"])
        await snap(page, "accounts")
        await page.close()


DRAFT_PAGE = {
    "zh": (
        "zh-CN",
        "机器人草稿（毕业生未看到）",
        "敏感问题",
        "直接发送拟答",
        "历史工单",
        "没有符合条件",
    ),
    "en": (
        "en-US",
        "Bot's draft (not seen by the graduate)",
        "sensitive case",
        "Send the draft",
        "History",
        "No closed ticket matches",
    ),
}


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_a_counsellor_sees_the_unsent_draft_and_is_warned_before_sending_it(
    tg: FakeTelegram,
    web_settings: Settings,
    shared_kb: KnowledgeBase,
    browser: Browser,
    tmp_path: Path,
    lang: str,
) -> None:
    locale, marked, warning, send, history, no_history = DRAFT_PAGE[lang]
    async with Server(web_settings, shared_kb) as server:
        console, store = server.services.console, server.services.store
        await console.add_account("chen", "陈老师", "counsellor", hash_password(PASSWORD))
        tg.user(GRADUATE, "张三", started=True)
        user = await store.get_or_create_user(GRADUATE, "张三")
        conversation = await store.load_conversation(user.id)
        draft = "公司拖欠工资的，可以向劳动保障监察机构投诉，或者申请劳动仲裁。"
        transcript = [
            {"role": "graduate", "text": "公司拖欠我三个月工资了"},
            {"role": "bot", "text": f"老师会联系你。\n\n{draft}"},  # stored, not shown
        ]
        await store.open_ticket(
            conversation.id,
            user.id,
            "rights",
            "high",
            "sensitive",
            "拖欠工资",
            draft,
            [],
            transcript,
        )
        page = await browser.new_page(locale=locale, viewport={"width": 1280, "height": 800})
        await log_in(page, server.url, "chen", PASSWORD)
        await page.click("tr[data-ticket] a")
        await expect(page.locator(".turn-draft .role")).to_have_text(marked)
        await expect(page.locator("p.warning")).to_contain_text(warning)
        if lang == "zh":
            await shot(page, tmp_path, "ticket-draft")
        asked: list[str] = []

        async def answer(dialog: Any) -> None:
            asked.append(dialog.message)
            await dialog.dismiss()  # the counsellor thinks again: nothing is sent

        page.on("dialog", answer)
        await page.click(f"text={send}")
        for _ in range(100):
            if asked:
                break
            await asyncio.sleep(0.05)
        assert asked and warning in asked[0]
        await expect(page.locator("h1")).to_contain_text("#1")  # still on the ticket
        assert not [m for m in tg.messages_to(GRADUATE) if draft in (m.text or "")]

        await page.click(f"header >> text={history}")
        await expect(page.locator("h1")).to_contain_text(history)
        await expect(page.locator("table.history")).to_contain_text(no_history)
        await page.close()
