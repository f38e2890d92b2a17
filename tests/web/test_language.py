"""Requirement 5 (a bilingual console): a Chinese page shows no English of the console's own
— no raw event kinds, reasons, modes, codes or units — and English pages get English words.
Only visible text is checked (tag contents, not attributes or class names)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from tests.web.conftest import Console, csrf_of

RAW_WORDS = [
    "min",
    "created",
    "topic_created",
    "claimed",
    "transferred",
    "note",
    "rated",
    "relay_failed",
    "message_from_graduate",
    "message_to_graduate",
    "outbox_delivered",
    "bot_reply_withheld",
    "draft_sent",
    "requested",
    "low_confidence",
    "hybrid",
    "dense",
    "lexical",
    "extractive",
    "policy",
    "rights",
    "login required",
    "CLI",
    "login",
    "logout",
    "hit_test",
    "analytics_exported",
    "canned_added",
    "curated_proposed",
    "anonymous",
    "counsellor",
    "bot",
    "graduate",
]
"""English the console itself could show (stored values, units); none of it appears in the
test data's visible text."""
CODES = ["zh", "en", "id"]
"""Language codes and "id": only as a whole token (not inside probation-zh or "(zh)")."""


class VisibleText(HTMLParser):
    """The text a reader sees: tag contents outside <script>/<style>. The audit log's details
    column (labels in the page's language, values as stored: file names, ids) is left out."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag in ("script", "style") or (tag == "td" and "data" in classes):
            self._skip = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._skip:
            self._skip = None

    def handle_data(self, data: str) -> None:
        if self._skip is None and data.strip():
            self.parts.append(data.strip())


def visible(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    parser.close()
    return "\n".join(parser.parts)


def raw_english(html: str) -> list[str]:
    text = visible(html)
    found = [w for w in RAW_WORDS if re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text)]
    found += [c for c in CODES if re.search(rf"(?<![\w(.-]){c}(?![\w).-])", text)]
    return found


async def test_chinese_pages_show_no_raw_english(console: Console) -> None:
    store = console.store
    s = console.services
    ticket = await console.graduate_ticket("公司试用期不给我交社保，怎么办？")
    console.clock.advance(minutes=20)
    waiting = await console.graduate_ticket("档案怎么转？", name="王同学", telegram_id=2001)
    cli = await store.cli_counsellor()  # claimed with `gradguide handoffs` (the command line)
    await store.claim(waiting.id, cli.id, "cli")
    for kind, actor, data in [
        ("topic_created", "bot", {"topic_id": 7}),
        ("message_from_graduate", "graduate", {}),
        ("relay_failed", "bot", {"error": "timeout"}),
        ("outbox_delivered", "bot", {}),
        ("bot_reply_withheld", "bot", {}),
        ("draft_sent", "cli", {}),
        ("note", "counsellor:501", {"text": "已电话联系"}),
        ("rated", "graduate", {"rating": 5}),
    ]:
        await store.add_event(ticket.id, kind, actor, data)
    await store.add_turn(ticket.conversation_id, "bot", "答复", lang="zh", intent="rights")
    await store.add_turn(ticket.conversation_id, "graduate", "How long is probation?", lang="en")
    await store.add_turn(ticket.conversation_id, "bot", "At most six months.", intent="policy")
    await s.console.propose_curated(
        "试用期社保", "必须缴纳。", "zh", "probation-zh", ticket_id=ticket.id, proposed_by=None
    )

    await console.as_user("admin")
    await console.form(f"/tickets/{ticket.id}", f"/tickets/{ticket.id}/claim")
    await console.form(f"/tickets/{ticket.id}", f"/tickets/{ticket.id}/note", text="内部备注")
    await console.form(f"/tickets/{ticket.id}", f"/tickets/{ticket.id}/transfer", to="queue")
    await console.form("/canned", "/canned", title="收到", text="老师已收到。", lang="en")
    await console.client.get("/admin/analytics.csv?days=7")
    upload = (await console.client.get("/admin/documents/upload")).text
    refused = await console.client.post(
        "/admin/documents/preview",
        data={"csrf_token": csrf_of(upload), "text": "# 报到证\n\n报到证已取消。"},
    )
    assert refused.status_code == 422
    # every missing field at once, named in the page's language
    assert "请补全或更正标出的字段" in visible(refused.text)
    assert "发文机关、发布日期、地区" in visible(refused.text)
    assert raw_english(refused.text) == []

    pages = {
        "/queue": ["20 分钟", "命令行"],
        f"/tickets/{ticket.id}": [
            "毕业生要求转人工",
            "创建工单",
            "创建 Telegram 话题",
            "认领",
            "转交",
            "内部备注",
            "毕业生评分",
            "老师（Telegram 501）",
            "命令行",
            "Admin: 内部备注",
        ],
        "/admin/documents": ["编号", "中文", "英文"],
        "/admin/hits?q=试用期最长多久": ["混合检索", "向量检索第 1 名"],
        "/admin/analytics?days=7": ["权益", "政策", "中文", "英文"],
        "/admin/audit": ["登录", "检索测试", "导出统计 CSV", "转交工单"],
        "/admin/curated": ["中文"],
        "/admin/accounts": ["登录名", "新建账号", "重设密码"],
        "/history": ["历史工单", "关闭时间", "最近 30 天"],
        "/canned": ["英文"],
    }
    for page, expected in pages.items():
        response = await console.client.get(page)
        assert response.status_code == 200, page
        assert raw_english(response.text) == [], page
        text = visible(response.text)
        for words in expected:
            assert words in text, (page, words)

    audit = (await console.client.get("/admin/audit")).text
    assert (
        "<th>详情</th>" in audit and "<b>转给</b>: —" in audit
    )  # readable, labelled (to the queue)
    assert "\\u" not in audit and "{&#34;" not in audit and '{"' not in audit  # not JSON

    # the queue's background refresh of someone signed out, and an over-long form field
    fetch = await console.client.get("/queue/rows", headers={"HX-Request": "true"})
    assert fetch.status_code == 200 and raw_english(fetch.text) == []
    page = (await console.client.get(f"/tickets/{ticket.id}")).text
    too_long = await console.client.post(
        f"/tickets/{ticket.id}/note",
        data={"csrf_token": csrf_of(page), "text": "长" * 5000},
        headers={"Referer": f"http://testserver/tickets/{ticket.id}"},
    )
    assert too_long.status_code == 422
    assert too_long.headers["content-type"].startswith("text/html")
    assert "表单内容无效" in visible(too_long.text) and raw_english(too_long.text) == []
    assert f'href="/tickets/{ticket.id}"' in too_long.text  # back to the form's page
    assert [e for e in await store.events(ticket.id) if e.data.get("text") == "长" * 5000] == []
    console.client.cookies.clear()
    signed_out = await console.client.get("/queue/rows", headers={"HX-Request": "true"})
    assert signed_out.status_code == 401 and signed_out.text == "请先登录工作台。"


async def test_english_pages_get_english_words(console: Console) -> None:
    ticket = await console.graduate_ticket()
    await console.store.add_event(ticket.id, "topic_created", "bot", {})
    await console.store.add_event(ticket.id, "something_new", "system", {})
    await console.as_user("chen")
    console.client.cookies.set("gg_lang", "en")
    text = visible((await console.client.get(f"/tickets/{ticket.id}")).text)
    assert "ticket opened" in text and "Telegram topic created" in text
    assert "other event (something_new)" in text and "the graduate asked for a person" in text
    assert "topic_created" not in text.replace("Telegram topic created", "")
    assert "等待" not in text and "分钟" not in text
    console.client.cookies.clear()
    console.client.cookies.set("gg_lang", "en")
    signed_out = await console.client.get("/queue/rows", headers={"HX-Request": "true"})
    assert signed_out.status_code == 401
    assert signed_out.text == "Please sign in to the console first."
