"""Curated answers: a counsellor proposes a reply, an admin completes it as an answer card
(both languages, the quoted sentence of a document) and approves it; the agent then answers
matching questions from it through the same matcher as the library's cards, quoting the
document it rests on."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import pytest

from bot.agent.agent import Agent
from bot.agent.curated import CardForm, build_card
from bot.agent.models import Conversation
from bot.kb.cards import CuratedCard
from bot.kb.service import KnowledgeBase
from bot.settings import Settings
from tests.fakes.telegram_server import FakeTelegram
from tests.web.conftest import Console, start_console, stop_console

ANSWER = "试用期公司也必须给你缴纳社保；不缴的话可以向当地社保经办机构投诉。"
ANSWER_EN = (
    "Your employer must pay social insurance during probation too; "
    "if not, complain to the local social insurance agency."
)
QUESTION = "试用期公司不给交社保怎么办"
QUESTION_EN = "My company won't pay social insurance while I'm on probation, what can I do?"
QUOTE = "试用期内单位同样应当依法缴纳社会保险。"
"""A sentence of the bundled ``probation-zh``, word for word."""


def chunks_of(kb: KnowledgeBase, *doc_ids: str) -> dict[str, list[str]]:
    return {d: [c.text for c in kb.retriever.doc_chunks(d)] for d in doc_ids}


def card(kb: KnowledgeBase, doc_id: str = "probation-zh", quote: str = QUOTE) -> CuratedCard:
    built = build_card(
        7,
        CardForm(
            question={"zh": QUESTION, "en": QUESTION_EN},
            answer={"zh": ANSWER, "en": ANSWER_EN},
            variants={"zh": ["试用期不缴社保合法吗", ""], "en": []},
            doc_id=doc_id,
            quote=quote,
        ),
        chunks_of(kb, "probation-zh"),
    )
    assert isinstance(built, CuratedCard), built
    return built


def test_an_approved_card_answers_in_both_languages_and_quotes_its_document(
    bundled_kb: KnowledgeBase,
) -> None:
    agent = Agent(bundled_kb, bundled_kb.settings)
    before = agent.reply(Conversation(), QUESTION)
    assert before.composer != "curated" and ANSWER not in before.text

    assert agent.use_curated([card(bundled_kb)]) == 1
    reply = agent.reply(Conversation(), QUESTION + "？")
    assert reply.composer == "curated", reply.text
    assert reply.text.startswith(ANSWER)
    assert QUOTE in reply.text  # the evidence, as for every card
    assert reply.citations and reply.citations[0].doc_id == "probation-zh"

    english = agent.reply(Conversation(), QUESTION_EN)
    assert english.composer == "curated" and english.text.startswith(ANSWER_EN), english.text

    other = agent.reply(Conversation(), "试用期最长多久")
    assert other.composer != "curated"

    agent.use_curated([])  # withdrawn
    assert agent.reply(Conversation(), QUESTION).composer != "curated"


def test_a_card_whose_document_left_the_index_is_not_served(bundled_kb: KnowledgeBase) -> None:
    gone = card(bundled_kb).model_copy(
        update={"evidence": [card(bundled_kb).evidence[0].model_copy(update={"doc": "gone-zh"})]}
    )
    agent = Agent(bundled_kb, bundled_kb.settings)
    agent.use_curated([gone])
    assert agent.reply(Conversation(), QUESTION).composer != "curated"


def test_every_problem_with_an_approval_is_reported_at_once(bundled_kb: KnowledgeBase) -> None:
    problems = build_card(
        3,
        CardForm(
            question={"zh": QUESTION, "en": ""},
            answer={"zh": ANSWER, "en": " "},
            doc_id="probation-zh",
            quote=QUOTE,
        ),
        chunks_of(bundled_kb, "probation-zh"),
    )
    assert problems == [("missing", "question.en"), ("missing", "answer.en")]

    misquoted = build_card(
        3,
        CardForm(
            question={"zh": QUESTION, "en": QUESTION_EN},
            answer={"zh": ANSWER, "en": ANSWER_EN},
            doc_id="probation-zh",
            quote="试用期内单位可以不缴纳社会保险。",  # not what the document says
        ),
        chunks_of(bundled_kb, "probation-zh"),
    )
    assert misquoted == [("quote_not_found", "probation-zh: 试用期内单位可以不缴纳社会保险。")]
    unknown = build_card(
        3,
        CardForm(
            question={"zh": QUESTION, "en": QUESTION_EN},
            answer={"zh": ANSWER, "en": ANSWER_EN},
            doc_id="no-such-doc",
            quote=QUOTE,
        ),
        {},
    )
    assert unknown == [("unknown_document", "no-such-doc")]


def test_personal_data_in_an_approved_card_is_redacted(bundled_kb: KnowledgeBase) -> None:
    built = build_card(
        4,
        CardForm(
            question={"zh": QUESTION, "en": QUESTION_EN},
            answer={"zh": ANSWER + "有问题打 13812345678。", "en": ANSWER_EN},
            variants={"zh": ["我电话13812345678，试用期不交社保"]},
            doc_id="probation-zh",
            quote=QUOTE,
        ),
        chunks_of(bundled_kb, "probation-zh"),
    )
    assert isinstance(built, CuratedCard)
    assert "13812345678" not in built.model_dump_json()


@pytest.fixture
async def card_console(
    web_settings: Settings,
    tg: FakeTelegram,
    bundled_kb: KnowledgeBase,
) -> AsyncIterator[Console]:
    """The console on the bundled corpus and its encoder (the cards' match model is fitted
    to it; the small test corpus's hash embedder has none)."""
    started = await start_console(web_settings, tg, bundled_kb)
    try:
        yield started
    finally:
        await stop_console(started)


def card_fields(**changes: str) -> dict[str, str]:
    fields = {
        "question_zh": QUESTION,
        "question_en": QUESTION_EN,
        "answer_zh": ANSWER,
        "answer_en": ANSWER_EN,
        "variants_zh": "试用期不缴社保合法吗\n试用期没有社保正常吗",
        "variants_en": "",
        "doc_id": "probation-zh",
        "quote": QUOTE,
    }
    fields.update(changes)
    return fields


async def test_propose_complete_approve_and_the_bot_answers_with_it(
    card_console: Console,
) -> None:
    console = card_console
    ticket = await console.graduate_ticket(QUESTION)
    await console.as_user("chen")
    proposed = await console.form(
        f"/tickets/{ticket.id}",
        f"/tickets/{ticket.id}/propose",
        question=QUESTION,
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
    hit_test = f"/admin/hits?q={QUESTION}？"
    assert ANSWER not in (await console.client.get(hit_test)).text  # not approved yet

    page = (await console.client.get("/admin/curated")).text
    found = re.search(r'data-curated="(\d+)"', page)
    assert found is not None and ANSWER in page
    number = found.group(1)
    # the Chinese side comes from the counsellor's reply; English is for the admin to write
    assert f'name="question_zh" value="{QUESTION}"' in page
    assert 'name="question_en" value=""' in page

    incomplete = await console.form(
        "/admin/curated",
        f"/admin/curated/{number}/approve",
        **card_fields(question_en="", answer_en="", quote="试用期内单位可以不缴纳社会保险。"),
    )
    assert incomplete.status_code == 422
    shown = html.unescape(incomplete.text)
    assert "Missing: Question pattern (en)" in shown or "请填写" in shown, shown
    assert shown.count("<li>") >= 2  # both missing English fields, listed at once
    assert "试用期没有社保正常吗" in shown  # what the admin typed is kept
    misquoted = await console.form(
        "/admin/curated",
        f"/admin/curated/{number}/approve",
        **card_fields(quote="试用期内单位可以不缴纳社会保险。"),
    )
    assert misquoted.status_code == 422
    assert "试用期内单位可以不缴纳社会保险" in html.unescape(misquoted.text)

    approved = await console.form(
        "/admin/curated", f"/admin/curated/{number}/approve", **card_fields()
    )
    assert approved.headers["location"].endswith("msg=web_curated_approved")
    after = (await console.client.get(hit_test)).text
    answer = html.unescape(after.split("bot-answer")[1])
    assert ANSWER in answer and QUOTE in answer  # the card's answer, then its evidence
    listed = (await console.client.get("/admin/curated")).text
    assert f'data-card="curated-{number}"' in listed and QUESTION_EN in html.unescape(listed)

    await console.form("/admin/curated", f"/admin/curated/{number}/reject")
    withdrawn = (await console.client.get(hit_test)).text
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
    card_console: Console,
) -> None:
    console = card_console
    ticket = await console.graduate_ticket(QUESTION, name="张三")
    personal = f"张同学你好！{ANSWER} 有问题可以打我电话 13812345678。\n\n陈老师"
    await console.services.console.propose_curated(
        QUESTION,
        personal,
        "zh",
        "probation-zh",
        ticket_id=ticket.id,
        proposed_by=console.accounts["chen"].id,
    )
    await console.as_user("admin")
    page = (await console.client.get("/admin/curated")).text
    (offered,) = re.findall(r'<textarea name="answer_zh"[^>]*>(.*?)</textarea>', page, flags=re.S)
    assert offered.startswith(ANSWER[:10]) and "[phone]" in offered
    assert "张同学" not in offered and "陈老师" not in offered and "13812345678" not in offered
    # documents are chosen by title, with the browser's search over a datalist
    assert re.search(r'<option value="probation-zh">试用期', page)

    number = re.findall(r'data-curated="(\d+)"', page)[0]
    await console.form("/admin/curated", f"/admin/curated/{number}/approve", **card_fields())
    kept = await console.services.console.get_curated(int(number))
    assert kept is not None and kept.status == "approved" and kept.answer == ANSWER
    assert kept.card is not None and QUESTION_EN in kept.card


async def test_an_answer_approved_before_cards_is_listed_for_completion(
    console: Console,
) -> None:
    """Answers approved before answers became cards keep their row but are not served
    until an admin adds the other language and a quote."""
    store = console.services.console
    number = await store.propose_curated(
        QUESTION, ANSWER, "zh", "probation-zh", ticket_id=None, proposed_by=None
    )
    assert await store.decide_curated(number, "approved", console.accounts["admin"].id)
    assert await store.approved_cards() == []  # nothing to serve yet

    await console.as_user("admin")
    page = html.unescape((await console.client.get("/admin/curated")).text)
    assert f'data-curated="{number}"' in page
    messages = console.services.messages
    labels = [messages.get("web_curated_incomplete", lang) for lang in ("zh", "en")]
    assert any(label in page for label in labels)
    assert f'name="question_zh" value="{QUESTION}"' in page
