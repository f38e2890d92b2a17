"""The admin's pages: documents with a chunk preview before anything is indexed, replace,
expire and remove; hit testing; unanswered questions grouped; analytics with CSV."""

from __future__ import annotations

import datetime as dt
import re

from tests.conftest import make_markdown
from tests.web.conftest import Console, csrf_of, field_of

OVERTIME = """# 加班费的计算

## 工作日延长工作时间
安排劳动者延长工作时间的，支付不低于工资的百分之一百五十的工资报酬。

## 休息日和法定休假日
休息日安排劳动者工作又不能安排补休的，支付不低于工资的百分之二百的工资报酬；法定休假日安排劳动者工作的，支付不低于工资的百分之三百的工资报酬。
"""


async def test_documents_list_shows_validity(own_console: Console) -> None:
    console = own_console
    await console.as_user("admin")
    page = (await console.client.get("/admin/documents")).text
    assert "probation-zh" in page and "hukou-en" in page
    assert page.count('class="badge v-active"') == 2
    assert "<td>全国</td>" in page and "<td>national</td>" not in page  # the region, in words
    found = (await console.client.get("/admin/documents?q=HUKOU")).text
    assert "hukou-en" in found and "probation-zh" not in found  # search by id or title
    english = (await console.client.get("/admin/documents?lang=en")).text
    assert "hukou-en" in english and "probation-zh" not in english
    expired = (await console.client.get("/admin/documents?validity=expired")).text
    assert "没有符合条件的文档" in expired
    detail = (await console.client.get("/admin/documents/probation-zh")).text
    assert "试用期工资" in detail
    assert (await console.client.get("/admin/documents/nope")).status_code == 404


async def test_upload_previews_chunks_before_committing_then_hit_testing_finds_it(
    own_console: Console,
) -> None:
    console = own_console
    await console.as_user("admin")
    page = (await console.client.get("/admin/documents/upload")).text
    source = make_markdown(OVERTIME, id="overtime-zh", title="劳动法：加班费", topics=["rights"])
    preview = await console.client.post(
        "/admin/documents/preview",
        data={"csrf_token": csrf_of(page)},
        files={"file": ("overtime.md", source.encode("utf-8"), "text/markdown")},
    )
    assert preview.status_code == 200, preview.text
    assert "将被切分为 2 个段落" in preview.text
    assert "百分之三百" in preview.text
    ids = {d.meta.id for d in console.services.kb.documents()}
    assert "overtime-zh" not in ids  # nothing is indexed before the commit
    hits = (await console.client.get("/admin/hits?q=法定节假日加班工资怎么算")).text
    assert "overtime-zh" not in hits

    committed = await console.client.post(
        "/admin/documents/commit",
        data={
            "csrf_token": csrf_of(preview.text),
            "token": field_of(preview.text, "token"),
            **{name: field_of(preview.text, name) for name in ("id", "title", "lang", "region")},
        },
    )
    location = committed.headers["location"]
    assert location == "/admin/documents?msg=web_upload_added&doc=overtime-zh#doc-overtime-zh"
    listing = (await console.client.get(location)).text
    assert "文档已加入知识库" in listing and "overtime-zh" in listing
    # the new document's row is highlighted (and the page scrolls to it)
    assert 'id="doc-overtime-zh" class="validity-active highlight"' in listing
    hits = (await console.client.get("/admin/hits?q=法定节假日加班工资怎么算")).text
    ranked = re.findall(r'<code class="hit-doc">([^<]+)</code>', hits)
    assert ranked[0] == "overtime-zh"
    assert "机器人会这样回答" in hits and "百分之三百" in hits.split("bot-answer")[1]
    audit = [e.action for e in await console.services.console.audit_log()]
    assert "document_uploaded" in audit


async def test_upload_with_missing_metadata_asks_for_it_and_keeps_the_file(
    own_console: Console,
) -> None:
    console = own_console
    await console.as_user("admin")
    page = (await console.client.get("/admin/documents/upload")).text
    refused = await console.client.post(
        "/admin/documents/preview",
        data={"csrf_token": csrf_of(page), "text": "# 报到证\n\n报到证已取消。"},
    )
    assert refused.status_code == 422
    # what the file gives is derived and filled in; what it cannot give is marked, all at once
    assert field_of(refused.text, "title") == "报到证" and 'value="zh" selected' in refused.text
    assert field_of(refused.text, "id") == "document-zh"
    invalid = re.findall(r'name="(\w+)"[^>]*aria-invalid="true"', refused.text)
    assert invalid == ["authority", "issued", "region"]
    token = field_of(refused.text, "token")
    fixed = await console.client.post(
        "/admin/documents/preview",
        data={
            "csrf_token": csrf_of(refused.text),
            "token": token,
            "id": "report-card-zh",
            "title": "报到证取消",
            "lang": "zh",
            "authority": "教育部",
            "issued": "2023-01-01",
            "region": "national",
        },
    )
    assert fixed.status_code == 200 and "报到证已取消" in fixed.text
    commit = {name: field_of(fixed.text, name) for name in ("id", "title", "lang", "authority")}
    done = await console.client.post(
        "/admin/documents/commit",
        data={
            "csrf_token": csrf_of(fixed.text),
            "token": token,
            "issued": "2023-01-01",
            "region": "national",
            **commit,
        },
    )
    assert "msg=web_upload_added&doc=" in done.headers["location"]
    assert "report-card-zh" in {d.meta.id for d in console.services.kb.documents()}


async def test_replace_expire_and_remove(own_console: Console) -> None:
    console = own_console
    kb = console.services.kb
    await console.as_user("admin")
    form = (await console.client.get("/admin/documents/upload?replace=probation-zh")).text
    assert 'value="probation-zh" readonly' in form
    new_text = make_markdown(
        "# 试用期\n\n试用期最长不得超过六个月，新版本。", id="ignored", title="劳动合同法：试用期"
    )
    preview = await console.client.post(
        "/admin/documents/preview",
        data={"csrf_token": csrf_of(form), "replace": "probation-zh"},
        files={"file": ("p.md", new_text.encode(), "text/markdown")},
    )
    assert "已有 id 为 probation-zh 的文档" in preview.text
    data = {n: field_of(preview.text, n) for n in ("id", "title", "lang", "authority", "region")}
    done = await console.client.post(
        "/admin/documents/commit",
        data={
            "csrf_token": csrf_of(preview.text),
            "token": field_of(preview.text, "token"),
            **data,
            "issued": "2024-01-01",
        },
    )
    assert "msg=web_upload_updated&doc=" in done.headers["location"]
    assert any("新版本" in text for _, text in kb.chunks_of("probation-zh"))

    expired = await console.form("/admin/documents", "/admin/documents/hukou-en/expire")
    assert expired.headers["location"].endswith("web_expired")
    doc = kb.document("hukou-en")
    assert kb.validity(doc).value == "expired"
    assert doc.meta.expires == kb.clock() - dt.timedelta(days=1)
    assert doc.meta.title == "Hukou after graduation"  # the rest of the metadata is kept
    listing = (await console.client.get("/admin/documents")).text
    assert 'class="badge v-expired"' in listing
    assert all(h.doc_id != "hukou-en" for h in kb.search("hukou settle graduation contract"))

    removed = await console.form("/admin/documents", "/admin/documents/hukou-en/remove")
    assert removed.headers["location"].endswith("web_removed")
    assert "hukou-en" not in {d.meta.id for d in kb.documents()}
    actions = [e.action for e in await console.services.console.audit_log()]
    assert {"document_expired", "document_removed"} <= set(actions)


async def test_hit_testing_shows_scores_and_the_bots_answer(console: Console) -> None:
    await console.as_user("admin")
    page = (await console.client.get("/admin/hits?q=试用期最长多久")).text
    ranked = re.findall(r'<code class="hit-doc">([^<]+)</code>', page)
    assert ranked and ranked[0] == "probation-zh"
    scores = [float(s) for s in re.findall(r"<td>(0\.\d{4})</td>", page)]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert "不得超过六个月" in page.split("bot-answer")[1]
    english = (await console.client.get("/admin/hits?q=How+do+I+settle+my+hukou&lang=en")).text
    assert re.findall(r'<code class="hit-doc">([^<]+)</code>', english)[0] == "hukou-en"
    await console.client.get("/admin/hits", params={"q": "我的手机 13812345678 试用期多久"})
    await console.client.get("/admin/hits")  # the empty form is no query
    tests = [e for e in await console.services.console.audit_log() if e.action == "hit_test"]
    assert len(tests) == 3 and all(e.actor == "admin:admin" for e in tests)
    newest = tests[0].data
    assert newest["query"] == "我的手机 [phone] 试用期多久" and newest["mode"] == "hybrid"
    assert "13812345678" not in str([e.data for e in tests])
    assert {"query": "How do I settle my hukou", "lang": "en"}.items() <= tests[1].data.items()


async def test_unanswered_questions_are_grouped_by_similarity(console: Console) -> None:
    store = console.store
    for question in ("灵活就业社保怎么交", "灵活就业社保怎么交？", "灵活就业的社保怎么交"):
        await store.add_unanswered(None, question, "zh", 0.1, "low_confidence")
    await store.add_unanswered(None, "Can I defer my enlistment?", "en", 0.05, "no_answer")
    await store.add_unanswered(None, "我的手机号 13812345678 能查吗", "zh", 0.1, "no_answer")
    await console.as_user("admin")
    page = (await console.client.get("/admin/unanswered")).text
    groups = page.split('class="card group"')[1:]
    assert len(groups) == 3
    assert "× 3" in groups[0] and "灵活就业" in groups[0]
    assert "13812345678" not in page and "[phone]" in page  # stored redacted
    assert "/admin/documents/upload?title=" in groups[0]
    start = re.search(r'href="(/admin/documents/upload\?[^"]+)"', groups[0])
    assert start is not None
    form = (await console.client.get(start.group(1).replace("&amp;", "&"))).text
    assert "灵活就业社保怎么交" in form.split('name="text"')[1]


async def test_disliked_and_weak_answers_are_listed_and_a_crisis_is_never_a_document(
    console: Console,
) -> None:
    """What needs a better answer: not only 'not sure' replies, but answers rated 👎 and
    answers given with little confidence; a crisis message is listed without the offer to
    turn it into a document."""
    store = console.store
    ticket = await console.graduate_ticket("试用期能不能不交社保")
    user = await store.get_user(ticket.user_id)
    assert user is not None
    conversation = ticket.conversation_id
    await store.add_turn(conversation, "graduate", "见习补贴发给谁", lang="zh")
    disliked = await store.add_turn(
        conversation, "bot", "就业见习补贴……", lang="zh", intent="policy", confidence=0.9
    )
    await store.add_feedback(user.id, "thumb", -1, conversation_id=conversation, turn_id=disliked)
    await store.add_turn(conversation, "graduate", "档案放人才市场要钱吗", lang="zh")
    weak = console.services.settings.answer_threshold + 0.05
    await store.add_turn(conversation, "bot", "……", lang="zh", intent="procedure", confidence=weak)
    await store.add_turn(conversation, "graduate", "试用期多久", lang="zh")
    await store.add_turn(conversation, "bot", "六个月", lang="zh", intent="rights", confidence=0.95)
    await store.add_unanswered(None, "我不想活了 今晚就从楼上跳下去", "zh", 0.1, "low_confidence")
    await console.as_user("admin")
    page = (await console.client.get("/admin/unanswered")).text
    groups = {re.findall(r"<h2>(.*?) <span", g)[0]: g for g in page.split('class="card group"')[1:]}
    assert "毕业生点了 👎" in groups["见习补贴发给谁"]
    assert "回答了但把握不大" in groups["档案放人才市场要钱吗"]
    assert "试用期多久" not in groups, "a confident answer nobody disliked is not listed"
    (crisis,) = [g for lead, g in groups.items() if "不想活" in lead]
    assert "/admin/documents/upload" not in crisis and "不要据此新建文档" in crisis
    assert all("/admin/documents/upload" in g for g in groups.values() if g is not crisis)


async def test_analytics_charts_and_csv(console: Console) -> None:
    store = console.store
    ticket = await console.graduate_ticket("老板拖欠工资")
    user = await store.get_user(ticket.user_id)
    assert user is not None
    await store.add_turn(ticket.conversation_id, "bot", "答复", lang="zh", intent="rights")
    await store.add_turn(ticket.conversation_id, "graduate", "How long is probation?", lang="en")
    await store.add_turn(ticket.conversation_id, "bot", "At most six months.", intent="policy")
    await store.add_feedback(user.id, "rating", 5, ticket_id=ticket.id)
    await store.add_feedback(user.id, "thumb", 1)
    asked = store.now()  # the day the questions fall on, even when the answer crosses midnight
    console.clock.advance(minutes=12)
    await store.mark_first_response(ticket.id)
    await console.as_user("admin")
    page = (await console.client.get("/admin/analytics?days=7")).text
    assert page.count("<svg") == 5
    figures = re.findall(r"<div><b>([^<]+)</b>", page)
    assert figures[:4] == ["2", "2", "1", "12.0 分钟"]
    csv = await console.client.get("/admin/analytics.csv?days=7")
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0] == "date,questions,answered,handed_off"
    shanghai = dt.timezone(dt.timedelta(hours=8))  # GRADGUIDE_TIMEZONE: days start there
    day = asked.astimezone(shanghai).date().isoformat()
    assert f"{day},2,2,1" in lines
    assert len(lines[1 : lines.index("")]) == 8  # one row per day of the window
    assert "rating_5,1" in lines and "rating_1,0" in lines
    median = next(line for line in lines if line.startswith("median_first_response_s,"))
    assert 720 <= float(median.split(",")[1]) < 730
    assert "lang_zh,1" in lines and "lang_en,1" in lines and "topic_rights,1" in lines
    exported = [
        e for e in await console.services.console.audit_log() if e.action == "analytics_exported"
    ]
    assert len(exported) == 1 and exported[0].actor == "admin:admin"
    assert exported[0].data == {"days": 7}


async def test_audit_log_lists_console_actions(console: Console) -> None:
    await console.as_user("chen")
    await console.as_user("admin")
    page = (await console.client.get("/admin/audit")).text
    rows = page.split("<tbody>")[1]
    assert "陈老师" in rows and "Admin" in rows and "登录" in rows
    assert "counsellor:chen" not in rows and 'data-action="login"' in rows
    entries = await console.services.console.audit_log()
    assert {"counsellor:chen", "admin:admin"} <= {e.actor for e in entries if e.action == "login"}
