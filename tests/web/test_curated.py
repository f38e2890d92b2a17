"""Curated answers: a counsellor proposes a reply, an admin approves it, and the agent then
answers a matching question with it — citing the document it rests on."""

from __future__ import annotations

import re

from bot.agent.agent import Agent
from bot.agent.curated import CuratedAnswers, CuratedEntry
from bot.agent.models import Conversation
from bot.kb.service import KnowledgeBase
from tests.web.conftest import Console

ANSWER = "试用期公司也必须给你缴纳社保；不缴的话可以向当地社保经办机构投诉。"


def test_agent_uses_an_approved_answer_only_above_the_threshold(shared_kb: KnowledgeBase) -> None:
    curated = CuratedAnswers(shared_kb.embedder, threshold=0.85)
    agent = Agent(shared_kb, shared_kb.settings, curated=curated)
    before = agent.reply(Conversation(), "试用期公司不给交社保怎么办")
    assert before.composer != "curated"

    curated.replace([CuratedEntry(1, "试用期公司不给交社保怎么办", ANSWER, "zh", "probation-zh")])
    reply = agent.reply(Conversation(), "试用期公司不给交社保怎么办？")
    assert reply.composer == "curated"
    assert reply.text.startswith(ANSWER)
    assert [c.doc_id for c in reply.citations] == ["probation-zh"]
    assert reply.confidence >= 0.85

    other = agent.reply(Conversation(), "试用期最长多久")
    assert other.composer != "curated"
    english = agent.reply(Conversation(lang="en"), "试用期公司不给交社保怎么办？")
    assert english.composer != "curated"  # an answer in Chinese is not given in English


def test_a_curated_answer_is_not_used_when_its_document_is_gone(shared_kb: KnowledgeBase) -> None:
    curated = CuratedAnswers(shared_kb.embedder, threshold=0.85)
    curated.replace([CuratedEntry(1, "试用期公司不给交社保怎么办", ANSWER, "zh", "removed-doc")])
    agent = Agent(shared_kb, shared_kb.settings, curated=curated)
    assert agent.reply(Conversation(), "试用期公司不给交社保怎么办").composer != "curated"


async def test_propose_approve_and_the_bot_answers_with_it(console: Console) -> None:
    ticket = await console.graduate_ticket("试用期公司不给交社保怎么办")
    await console.as_user("chen")
    proposed = await console.form(
        f"/tickets/{ticket.id}",
        f"/tickets/{ticket.id}/propose",
        question="试用期公司不给交社保怎么办",
        answer=ANSWER,
        doc_id="probation-zh",
        lang="zh",
    )
    assert proposed.headers["location"].endswith("msg=web_curated_proposed")
    bad = await console.form(
        f"/tickets/{ticket.id}",
        f"/tickets/{ticket.id}/propose",
        question="x",
        answer="y",
        doc_id="no-such-doc",
    )
    assert bad.headers["location"].endswith("msg=web_curated_invalid")

    await console.as_user("admin")
    question = "/admin/hits?q=试用期公司不给交社保怎么办？"
    before = (await console.client.get(question)).text
    assert ANSWER not in before  # proposed is not approved

    page = (await console.client.get("/admin/curated")).text
    curated_id = re.search(r'data-curated="(\d+)"', page)
    assert curated_id is not None and ANSWER in page
    approved = await console.form(
        "/admin/curated",
        f"/admin/curated/{curated_id.group(1)}/approve",
        question="试用期公司不给交社保怎么办",
        doc_id="probation-zh",
    )
    assert approved.headers["location"].endswith("msg=web_curated_approved")
    after = (await console.client.get(question)).text
    answer = after.split("bot-answer")[1]
    assert ANSWER in answer and "curated" in after
    assert "劳动合同法：试用期" in answer  # still cites the document

    await console.form("/admin/curated", f"/admin/curated/{curated_id.group(1)}/reject")
    withdrawn = (await console.client.get(question)).text
    assert ANSWER not in withdrawn.split("bot-answer")[1]
    actions = [e.action for e in await console.services.console.audit_log()]
    assert {"curated_proposed", "curated_approved", "curated_rejected"} <= set(actions)


async def test_forgetting_the_graduate_keeps_the_redacted_answer_without_the_ticket(
    console: Console,
) -> None:
    ticket = await console.graduate_ticket("我的电话 13812345678，试用期不交社保怎么办")
    curated_id = await console.services.console.propose_curated(
        "电话 13812345678 试用期不交社保",
        ANSWER,
        "zh",
        "probation-zh",
        ticket_id=ticket.id,
        proposed_by=console.accounts["chen"].id,
    )
    await console.store.forget_user(ticket.user_id)
    kept = await console.services.console.get_curated(curated_id)
    assert kept is not None and kept.ticket_id is None
    assert "13812345678" not in kept.question and "[phone]" in kept.question


async def test_a_proposal_is_offered_without_greeting_names_or_numbers_and_can_be_edited(
    console: Console,
) -> None:
    ticket = await console.graduate_ticket("试用期公司不给交社保怎么办", name="张三")
    personal = f"张同学你好！{ANSWER} 有问题可以打我电话 13812345678。\n\n陈老师"
    await console.services.console.propose_curated(
        "试用期公司不给交社保怎么办",
        personal,
        "zh",
        "probation-zh",
        ticket_id=ticket.id,
        proposed_by=console.accounts["chen"].id,
    )
    await console.as_user("admin")
    page = (await console.client.get("/admin/curated")).text
    (offered,) = re.findall(r'<textarea name="answer"[^>]*>(.*?)</textarea>', page, flags=re.S)
    assert offered.startswith(ANSWER[:10]) and "[phone]" in offered
    assert "张同学" not in offered and "陈老师" not in offered and "13812345678" not in offered
    # documents are chosen by title, with the browser's search over a datalist
    assert '<option value="probation-zh">劳动合同法：试用期</option>' in page

    curated_id = re.findall(r'data-curated="(\d+)"', page)[0]
    edited = ANSWER  # the admin takes out the phone sentence too
    await console.form(
        "/admin/curated",
        f"/admin/curated/{curated_id}/approve",
        question="试用期公司不给交社保怎么办",
        doc_id="probation-zh",
        answer=edited,
    )
    kept = await console.services.console.get_curated(int(curated_id))
    assert kept is not None and kept.status == "approved" and kept.answer == edited
