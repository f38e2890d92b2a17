"""Answers on the bundled corpus: grounded and cited, in the asker's language, aware of the
conversation, honest when the corpus has no answer, and asking for the region when the rule
depends on it."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bot.agent.agent import Agent
from bot.agent.models import Conversation, HandoffReason, Intent, Reply
from bot.kb.cards import comparable, read_cards
from bot.prompts import Messages
from bot.settings import BUNDLED_KNOWLEDGE_DIR, Settings
from tests.agent.conftest import paragraphs, plain, small_kb, source_text
from tests.conftest import DocWriter

Ask = Callable[..., Reply]
MESSAGES = Messages.load()
# Sentence ends, and the joints of a list the composer shows as one point
# ("……如下：第一项；第二项；第三项。"): every piece must be quoted from the document.
_SENTENCE = re.compile(r"(?<=[。！？；!?;：])|(?<=\.)\s+|(?<=:)\s+")


def front_matter(doc_id: str) -> dict[str, object]:
    (path,) = BUNDLED_KNOWLEDGE_DIR.rglob(f"{doc_id}.md")
    text = Path(path).read_text(encoding="utf-8")
    return dict(yaml.safe_load(text.split("---")[1]))


def direct_answer(reply: Reply) -> str:
    """The answer's first paragraph (after a note that the source is in the other language)."""
    first, *rest = paragraphs(reply)
    if first in (
        MESSAGES.get("other_language_source", "zh"),
        MESSAGES.get("other_language_source", "en"),
    ):
        return rest[0]
    return first


VETTED = {
    card.answer.get(lang)
    for card in read_cards(BUNDLED_KNOWLEDGE_DIR / "cards")[0]
    for lang in ("zh", "en")
}
VERDICTS = sorted(
    {
        MESSAGES.get(k, lang)
        for k in MESSAGES.names()
        if k.startswith("yes_no_")
        for lang in ("zh", "en")
    },
    key=len,
    reverse=True,
)
_EVIDENCE = re.compile(
    r"^(?:原文：「(?P<zh>.+)」|The document says: \u201c(?P<en>.+)\u201d)$", re.S
)


def assert_quoted_from_source(reply: Reply) -> None:
    """Every sentence (and list item) of the direct answer reads exactly as in the cited
    document — or, for an answer card, the answer is a card's vetted answer (a calculator's
    is computed) and the sentence quoted after it reads exactly as in the document."""
    doc = source_text(reply.citations[0].doc_id)
    if reply.composer in ("card", "calculator"):
        quoted = [m for p in paragraphs(reply) if (m := _EVIDENCE.match(p))]
        assert quoted, reply.text
        assert comparable(quoted[0].group("zh") or quoted[0].group("en")) in comparable(doc)
        if reply.composer == "card":
            assert direct_answer(reply) in VETTED, reply.text
        return
    answer = plain(direct_answer(reply))
    # a yes/no question's verdict ("不合法。", "No.") opens the answer, then the quotes
    answer = next((answer[len(v) :] for v in VERDICTS if answer.startswith(v)), answer)
    for sentence in (s.strip().rstrip("；;。.") for s in _SENTENCE.split(answer)):
        if sentence:
            assert sentence in doc, f"not in {reply.citations[0].doc_id}: {sentence!r}"


# -- 7. grounded, cited answers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "doc_id", "fact", "lang"),
    [
        ("试用期最长多久？", "probation-zh", "六个月", "zh"),
        ("How long can probation last?", "probation-en", "six months", "en"),
    ],
)
def test_probation_answer_is_grounded_and_cited(
    ask: Ask, question: str, doc_id: str, fact: str, lang: str
) -> None:
    reply = ask(question)
    assert fact in direct_answer(reply), "the direct answer comes first"
    assert reply.intent is Intent.RIGHTS
    assert reply.lang == lang
    assert reply.handoff is False
    assert reply.citations[0].doc_id == doc_id
    assert_quoted_from_source(reply)

    meta = front_matter(doc_id)
    citation = reply.citations[0]
    assert citation.title == meta["title"]
    assert citation.authority == meta["authority"]
    assert citation.doc_number == meta["doc_number"] == "中华人民共和国主席令第七十三号"
    assert citation.effective_from == dt.date(2013, 7, 1)
    assert citation.issued == dt.date(2012, 12, 28)
    assert citation.source_url == "https://flk.npc.gov.cn/"
    assert citation.excerpt and plain(citation.excerpt) in source_text(doc_id)
    # The graduate sees the source in the text, with its date.
    effective = MESSAGES.get("effective_label", lang, date="2013-07-01")
    assert citation.title in reply.text and effective in reply.text
    assert citation.doc_number in reply.text

    assert reply.suggestions, "related questions to ask next"
    assert all(s and s not in direct_answer(reply) for s in reply.suggestions)


@pytest.mark.parametrize(
    "question",
    ["扣押身份证合法吗", "Can an employer keep my ID card?", "三方协议和劳动合同有什么区别？"],
)
def test_other_answers_quote_their_source(ask: Ask, question: str) -> None:
    reply = ask(question)
    assert reply.citations
    assert_quoted_from_source(reply)


@pytest.mark.parametrize(
    "question",
    [
        "where do I do the graduate destination registration and what account do I log in with?",
        "No job yet - can my hukou stay at my university for now?",
        "my plans changed after i left school. deadline to update my destination registration?",
    ],
)
def test_answers_from_long_sections_quote_their_source(ask: Ask, question: str) -> None:
    reply = ask(question)
    assert reply.citations
    assert_quoted_from_source(reply)
    assert not re.search(r"[a-z)][.;][A-Z0-9-]", reply.text), "sentences run together"


# -- 8. follow-ups ---------------------------------------------------------------------------


def test_chinese_follow_up_about_pay_is_answered_in_context(ask: Ask) -> None:
    reply = ask("试用期最长多久？", "那试用期工资呢？")
    assert "百分之八十" in reply.text or "80%" in reply.text
    assert reply.citations[0].doc_id == "probation-zh"
    assert reply.lang == "zh"


def test_chinese_follow_up_about_pay_leads_with_the_pay_rule(ask: Ask) -> None:
    reply = ask("试用期最长多久？", "那试用期工资呢？")
    assert "百分之八十" in direct_answer(reply)


@pytest.mark.parametrize(
    "follow_up", ["And what about pay during probation?", "What about the salary?"]
)
def test_english_follow_up_about_pay_is_answered_in_context(ask: Ask, follow_up: str) -> None:
    reply = ask("How long can probation last?", follow_up)
    assert reply.citations[0].doc_id == "probation-en"
    assert reply.lang == "en"
    assert "80%" in reply.text


def test_english_follow_up_about_pay_leads_with_the_pay_rule(ask: Ask) -> None:
    reply = ask("How long can probation last?", "And what about pay during probation?")
    assert "80%" in direct_answer(reply)


@pytest.mark.parametrize(
    ("question", "fact"),
    [
        ("国企招应届生的增人增资政策执行到什么时候", "2026年12月31日"),  # when → a date
        ("How long does an employment internship last?", "3 to 12 months"),  # a duration
    ],
)
def test_the_answer_has_the_kind_of_answer_asked_for(ask: Ask, question: str, fact: str) -> None:
    assert fact in ask(question).text


def test_a_two_part_question_gets_both_parts(ask: Ask) -> None:
    reply = ask("how long is the Western Programme service and where do I apply?")
    assert "1–3 years" in reply.text and "xibu.youth.cn" in reply.text


def test_a_short_rule_comes_with_the_sentence_that_explains_it(ask: Ask) -> None:
    reply = ask("档案能不能我自己拿着去新单位报到")
    assert "档案不能自己带走" in reply.text
    assert "机要" in reply.text and "EMS" in reply.text
    assert_quoted_from_source(reply)


def test_a_section_asking_what_to_do_is_an_answer_not_only_a_next_step(ask: Ask) -> None:
    reply = ask("交了3000块内推费说保进国企 现在对方把我拉黑了 咋办")
    body = reply.text.split(MESSAGES.get("sources_label", "zh"))[0]
    assert "110" in body


def test_the_document_named_by_the_question_answers_it(ask: Ask) -> None:
    reply = ask("考上事业单位以后试用期要多长时间")
    assert reply.citations[0].doc_id == "public-institutions-zh"
    assert "12个月" in direct_answer(reply) and "第十三条" in direct_answer(reply)


@pytest.mark.parametrize(
    ("first", "follow_up", "doc_prefix"),
    [
        ("国考报名能同时报几个岗位", "报完以后下一步干啥", "civil-service-exam"),
        ("How long can probation last?", "is it paid?", "probation"),
    ],
)
def test_a_short_message_that_leans_on_the_last_one_is_a_follow_up(
    ask: Ask, first: str, follow_up: str, doc_prefix: str
) -> None:
    reply = ask(first, follow_up)
    assert reply.intent is not Intent.OUT_OF_SCOPE
    assert reply.citations and reply.citations[0].doc_id.startswith(doc_prefix)


def test_a_self_contained_question_after_an_answer_is_not_mixed_up(ask: Ask) -> None:
    reply = ask("试用期最长多久？", "扣押身份证合法吗")
    assert reply.citations[0].doc_id == "penalties-deposits-zh"
    assert "身份证" in direct_answer(reply)


# -- 9. language -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "lang", "doc_id"),
    [
        ("试用期最长多久？", "zh", "probation-zh"),
        ("HR说试用期可以延长到一年，offer上写的是6个月，合法吗？", "zh", "probation-zh"),
        ("How long can probation last?", "en", "probation-en"),
        ("Is 三方协议 the same as a labour contract?", "en", "employment-agreement-en"),
    ],
)
def test_the_reply_follows_the_language_of_the_question(
    ask: Ask, question: str, lang: str, doc_id: str
) -> None:
    reply = ask(question)
    assert reply.lang == lang
    assert reply.citations[0].doc_id == doc_id
    sources = MESSAGES.get("sources_label", lang)
    assert sources in reply.text


def test_forced_english_answers_a_chinese_question_in_english(ask: Ask) -> None:
    reply = ask("试用期最长多久？", lang="en")
    assert reply.lang == "en"
    assert reply.citations[0].doc_id == "probation-en"
    assert "six months" in reply.text
    assert "Sources" in reply.text and "依据" not in reply.text


def test_each_message_gets_its_own_language(ask: Ask) -> None:
    reply = ask("How long can probation last?", "试用期工资最低多少？")
    assert reply.lang == "zh"
    assert "百分之八十" in reply.text


def test_forced_english_prefers_the_english_source_when_there_is_one(
    settings: Settings, write_doc: DocWriter
) -> None:
    agent = Agent(small_kb(settings, write_doc), settings)
    reply = agent.reply(Conversation(lang="en"), "试用期最长多久？")
    assert reply.lang == "en"
    assert MESSAGES.get("other_language_source", "en") not in reply.text
    assert "six months" in reply.text


# -- 10. relevance gate and feedback ----------------------------------------------------


def assert_not_sure(reply: Reply, lang: str) -> None:
    assert reply.intent is Intent.UNCLEAR
    assert reply.citations == []
    assert reply.handoff is False
    assert reply.text == MESSAGES.get("low_confidence", lang)
    assert "/human" in reply.text


def assert_low_confidence_handoff(reply: Reply, lang: str) -> None:
    assert reply.citations == []
    assert reply.handoff is True
    assert reply.handoff_reason is HandoffReason.LOW_CONFIDENCE
    assert reply.text == MESSAGES.get("low_confidence_handoff", lang)


@pytest.mark.parametrize(
    ("first", "second", "lang"),
    [
        ("公司年会节目必须参加吗", "年会不表演节目会被扣奖金吗", "zh"),
        (
            "Is it OK to bring my parents to a job fair?",
            "Can my parents sit in on my interview?",
            "en",
        ),
    ],
)
def test_two_unanswerable_questions_bring_in_a_counsellor(
    bundled_agent: Agent, first: str, second: str, lang: str
) -> None:
    conversation = Conversation()
    assert_not_sure(bundled_agent.reply(conversation, first), lang)
    assert_low_confidence_handoff(bundled_agent.reply(conversation, second), lang)


def test_an_answer_in_between_resets_the_not_sure_streak(bundled_agent: Agent) -> None:
    conversation = Conversation()
    assert_not_sure(bundled_agent.reply(conversation, "公司年会节目必须参加吗"), "zh")
    assert bundled_agent.reply(conversation, "试用期最长多久？").citations
    assert_not_sure(bundled_agent.reply(conversation, "年会不表演节目会被扣奖金吗"), "zh")


@pytest.mark.parametrize(
    ("first", "second", "lang"),
    [
        ("星火计划专项补贴什么时候申报", "星火计划专项补贴申报需要什么材料", "zh"),
        (
            "How do I apply for the Moonbeam relocation grant for graduates?",
            "What documents do I need for the Moonbeam relocation grant for graduates?",
            "en",
        ),
    ],
)
def test_questions_about_a_programme_the_corpus_does_not_cover_are_not_answered(
    bundled_agent: Agent, first: str, second: str, lang: str
) -> None:
    conversation = Conversation()
    assert_not_sure(bundled_agent.reply(conversation, first), lang)
    assert_low_confidence_handoff(bundled_agent.reply(conversation, second), lang)


def test_two_negative_ratings_bring_in_a_counsellor(bundled_agent: Agent) -> None:
    conversation = Conversation()
    bundled_agent.reply(conversation, "How long can probation last?")
    assert bundled_agent.record_feedback(conversation, helpful=False) is None
    reply = bundled_agent.record_feedback(conversation, helpful=False)
    assert reply is not None
    assert reply.handoff is True
    assert reply.handoff_reason is HandoffReason.REPEATED_FAILURE
    assert reply.text == MESSAGES.get("repeated_failure_handoff", "en")
    assert reply.citations == []


def test_a_positive_rating_resets_the_negative_streak(bundled_agent: Agent) -> None:
    conversation = Conversation()
    bundled_agent.reply(conversation, "试用期最长多久？")
    assert bundled_agent.record_feedback(conversation, helpful=False) is None
    assert bundled_agent.record_feedback(conversation, helpful=True) is None
    assert bundled_agent.record_feedback(conversation, helpful=False) is None
    reply = bundled_agent.record_feedback(conversation, helpful=False)
    assert reply is not None and reply.handoff_reason is HandoffReason.REPEATED_FAILURE
    assert reply.lang == "zh"


# -- 11. region ------------------------------------------------------------------------------


def test_a_region_dependent_question_without_a_region_asks_for_it(ask: Ask) -> None:
    reply = ask("一次性求职创业补贴能拿多少钱")
    assert reply.citations
    assert "/region" in reply.text
    assert "各地不同" in reply.text or "各省自行确定" in reply.text


def test_an_english_region_dependent_question_says_it_varies_or_asks(ask: Ask) -> None:
    reply = ask("How much is the one-off job-search subsidy?")
    assert reply.citations
    assert "/region" in reply.text or "each province" in reply.text


@pytest.mark.parametrize(
    ("question", "region"),
    [("一次性求职创业补贴能拿多少钱", "guizhou"), ("贵州一次性求职创业补贴能拿多少钱", None)],
)
def test_a_known_region_is_not_asked_for_again(ask: Ask, question: str, region: str | None) -> None:
    reply = ask(question, region=region)
    assert reply.citations
    assert "/region" not in reply.text
    assert MESSAGES.get("ask_region", "zh") not in reply.text


# -- 12. long messages -----------------------------------------------------------------------


def test_a_long_message_under_the_focus_limit_is_answered(ask: Ask) -> None:
    message = "我是今年的应届毕业生，刚签了第一份劳动合同，对很多规定不太了解。" * 3
    reply = ask(message + "试用期最长多久？")
    assert "六个月" in reply.text


@pytest.mark.parametrize(
    ("filler", "question", "fact"),
    [
        ("我是今年的应届毕业生，最近在找工作，心里有很多困惑。", "试用期最长多久？", "六个月"),
        (
            "I graduated this year and I have been looking for a job for months. ",
            "How long can probation last?",
            "six months",
        ),
    ],
)
def test_a_5000_character_message_is_answered_by_its_final_question(
    ask: Ask, filler: str, question: str, fact: str
) -> None:
    message = (filler * 400)[: 5000 - len(question)] + question
    assert len(message) == 5000
    reply = ask(message)
    assert reply.intent in (Intent.RIGHTS, Intent.POLICY, Intent.PROCEDURE)
    assert fact in reply.text


# -- 13. conversation state ------------------------------------------------------------------


def test_a_conversation_survives_a_json_round_trip(bundled_agent: Agent) -> None:
    conversation = Conversation(id="wx-42", region="guizhou")
    bundled_agent.reply(conversation, "试用期最长多久？")
    stored = conversation.model_dump_json()
    restored = Conversation.model_validate_json(stored)
    assert restored == conversation
    assert restored.model_dump_json() == stored

    reply = bundled_agent.reply(restored, "那试用期工资呢？")
    assert "百分之八十" in reply.text or "80%" in reply.text
    assert reply.citations[0].doc_id == "probation-zh"


def test_reset_forgets_the_dialogue_but_keeps_settings(bundled_agent: Agent) -> None:
    conversation = Conversation(lang="en", region="shanghai")
    bundled_agent.reply(conversation, "How long can probation last?")
    bundled_agent.record_feedback(conversation, helpful=False)
    assert conversation.turns
    conversation.reset()
    assert conversation.turns == []
    assert conversation.last_user_query() is None
    assert conversation.negative_rating_streak == 0
    assert conversation.low_confidence_streak == 0
    assert (conversation.lang, conversation.region) == ("en", "shanghai")
    # One more 👎 after the reset does not hand over: the streak really restarted.
    assert bundled_agent.record_feedback(conversation, helpful=False) is None


def test_warm_up_answers_titles_in_both_languages_and_leaves_no_trace(
    bundled_agent: Agent,
) -> None:
    """``gradguide serve`` warms the agent up before polling: titles of each language,
    answered on the pool's threads, with nothing carried into a graduate's conversation."""
    from concurrent.futures import ThreadPoolExecutor

    asked: list[str] = []
    original = bundled_agent.reply

    def spy(conversation: Conversation, message: str) -> Reply:
        asked.append(message)
        return original(conversation, message)

    bundled_agent.reply = spy  # type: ignore[method-assign]
    try:
        with ThreadPoolExecutor(2) as pool:
            answered = bundled_agent.warm_up(pool, per_language=3)
    finally:
        del bundled_agent.reply
    assert answered == len(asked) == 6
    # English titles may quote a Chinese name in brackets; Chinese ones have no English
    assert sum(1 for q in asked if re.search(r"[A-Za-z]{4}", q)) == 3
    fresh = Conversation()
    reply = bundled_agent.reply(fresh, "试用期最长能约定多久？")
    assert reply.citations and len(fresh.turns) == 2
