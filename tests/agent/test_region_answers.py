"""Regions in answers (issue 13 §4): the national rule leads unless the graduate names a
place; a place with no document of its own is said so, never answered with another
region's rule."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.agent.models import Reply
from bot.kb.retriever import Retriever
from bot.kb.service import KnowledgeBase
from bot.prompts import Messages

MESSAGES = Messages.load()

Ask = Callable[..., Reply]


@pytest.fixture
def bundled_retriever(bundled_kb: KnowledgeBase) -> Retriever:
    return bundled_kb.retriever


def shanghai_cited(reply: Reply) -> bool:
    return any("shanghai" in c.doc_id for c in reply.citations)


def test_without_a_region_the_shanghai_document_is_never_offered(
    bundled_retriever: Retriever,
) -> None:
    hits = bundled_retriever.search("事业单位招聘应届毕业生的口径是毕业几年内？", k=20)
    assert hits
    assert not any(h.doc.meta.region == "shanghai" for h in hits)


def test_naming_shanghai_brings_its_document(bundled_retriever: Retriever) -> None:
    hits = bundled_retriever.search(
        "事业单位招聘应届毕业生的口径是毕业几年内？", k=20, region="上海"
    )
    assert any(h.doc.meta.region == "shanghai" for h in hits)


def test_a_city_inside_a_province_gets_that_provinces_documents(
    bundled_retriever: Retriever,
) -> None:
    """No bundled document is for Jiangsu; Shanghai's never reach a Suzhou question."""
    hits = bundled_retriever.search("应届生身份怎么认定", k=20, region="苏州")
    assert hits and all(h.doc.meta.region == "national" for h in hits)


def test_a_question_naming_a_city_without_documents_says_so_and_gives_the_national_rule(
    ask: Ask,
) -> None:
    reply = ask("我在深圳，事业单位招聘说的应届生是指毕业几年内的？")
    opening = reply.text.split("\n\n", 1)[0]
    notice = MESSAGES.get("region_no_document", "zh", region="深圳")
    assert opening.startswith(notice), reply.text
    # the answer starts right under the notice, in the paragraph a graduate reads first
    assert opening.removeprefix(notice).strip(), reply.text
    assert not shanghai_cited(reply), "Shanghai's rule passed off as Shenzhen's"


def test_an_english_question_naming_chengdu_is_told_in_english(ask: Ask) -> None:
    reply = ask("I work in Chengdu. How long can my probation be on a two-year contract?")
    assert "no document specific to Chengdu" in reply.text, reply.text
    assert not shanghai_cited(reply)


def test_a_shanghai_question_is_answered_from_the_shanghai_document(ask: Ask) -> None:
    reply = ask("上海的事业单位招聘，应届生是指毕业几年内的？")
    assert shanghai_cited(reply), reply.text
    assert MESSAGES.get("region_no_document", "zh", region="上海").split("，")[0] not in reply.text


def test_asking_for_the_national_rule_is_no_missing_region(ask: Ask) -> None:
    reply = ask("最低工资标准是多少？", region="全国")
    assert MESSAGES.get("region_no_document", "zh", region="全国")[:8] not in reply.text
