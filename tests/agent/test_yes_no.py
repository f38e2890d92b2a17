"""A yes/no question is answered yes or no first when the evidence says so
(``bot.agent.yes_no``): "不合法。" / "No." opens the answer, the document's sentence and its
source follow; a sentence that does not settle it leaves the answer as it was."""

from __future__ import annotations

import re

import pytest

from bot.agent.agent import Agent
from bot.agent.lead_rank import is_yes_no
from bot.agent.models import Conversation
from bot.agent.yes_no import verdict
from bot.kb.cards import read_cards
from bot.prompts import Messages
from bot.settings import BUNDLED_KNOWLEDGE_DIR, Settings
from tests.agent.conftest import paragraphs, small_kb
from tests.agent.test_answers import Ask, assert_quoted_from_source, direct_answer
from tests.conftest import DocWriter

MESSAGES = Messages.load()

DEPOSITS_EN = (
    "# Deposits and documents\n\n"
    "## Can an employer ask for a deposit?\n\n"
    "An employer may not ask a new worker for a deposit, a guarantee or any other payment "
    "when hiring them.\n\n"
    "## Can a graduate apply for the job-seeking subsidy online?\n\n"
    "A graduate from a low-income family may apply for the one-off job-seeking subsidy online "
    "through the provincial public employment service platform.\n"
)


@pytest.mark.parametrize(
    ("question", "sentence", "expected"),
    [
        # a prohibition answers "may they?" no, and "is it illegal?" yes
        ("公司扣押我的身份证合法吗？", "用人单位不得扣押劳动者的居民身份证和其他证件。", "no"),
        ("Can my employer keep my ID card?", "An employer may not keep a worker's ID.", "no"),
        ("扣押身份证违法吗", "用人单位不得扣押劳动者的居民身份证和其他证件。", "yes"),
        # a permission answers yes
        ("困难家庭考生可以减免报名费吗？", "低保家庭的报考人员，可以申请减免报名费。", "yes"),
        # a duty answers "must I?" yes, and a negated question ("may they not?") no
        ("入职后需要签书面劳动合同吗", "用人单位应当与劳动者订立书面劳动合同。", "yes"),
        ("试用期可以不交社保吗", "试用期内用人单位应当依法为劳动者缴纳社会保险。", "no"),
    ],
)
def test_the_sentence_polarity_answers_the_question(
    question: str, sentence: str, expected: str
) -> None:
    assert verdict(question, sentence) == expected


@pytest.mark.parametrize(
    ("question", "sentence"),
    [
        # a duty does not say whether the opposite may be done
        ("Can they pay me 70% during probation?", "Probation pay must be at least 80%."),
        # hedged, limited, or ruling both ways: not settled
        ("能同时签几家单位的三方吗", "一般不能同时与多家单位签订就业协议。"),
        ("Can the employer extend my probation?", "An employer may set probation only once."),
        ("周末加班只给调休合法吗", "休息日加班可以安排补休；不能补休的才需支付200%的加班费。"),
        # not a yes/no question
        ("试用期最长多久？", "试用期最长不得超过六个月。"),
        # the asking clause is about something the sentence does not speak of
        ("公司扣了我身份证还收了押金，能罚公司吗", "用人单位不得扣押劳动者的居民身份证。"),
        ("公司入职收了我800块服装费，能要回来吗", "用人单位不得以任何名义向劳动者收取财物。"),
        # "还要做什么？" ends in 么 but is not a yes/no question
        ("被骗转账了，报警之外还要马上做什么？", "发现被骗转账后，应当第一时间报警。"),
        # "is there …?" is not asked of what the sentence rules
        ("退役大学生士兵考研有加分吗？", "退役大学生士兵报考硕士研究生可以加10分。"),
    ],
)
def test_a_sentence_that_does_not_settle_it_gives_no_verdict(question: str, sentence: str) -> None:
    assert verdict(question, sentence) is None


def _opens_with(answer: str) -> str | None:
    first = re.split(r"[。，,.;；：:（(！!—\s]", answer.strip(), maxsplit=1)[0].lower()
    if first in {"yes", "可以", "能", "有", "要", "需要", "是的", "合法", "应当办理"}:
        return "yes"
    if first in {"no", "不可以", "不能", "不合法", "不需要", "不用", "不是", "不允许"}:
        return "no"
    return None


def test_verdicts_agree_with_the_vetted_cards() -> None:
    """Each card's standard yes/no question against the sentence the card quotes: when the
    vetted answer opens with yes or no, the verdict given (if any) agrees with it nearly
    always. Measured 2026-12-07: 24 agree, 1 does not, 7 verdicts on cards that open
    otherwise ("不能随便辞退", "应当办理"), 316 questions without a verdict."""
    agree = disagree = 0
    for card in read_cards(BUNDLED_KNOWLEDGE_DIR / "cards")[0]:
        for lang in ("zh", "en"):
            question = card.question.get(lang)
            quote = next((e.quote for e in card.evidence if e.doc.endswith(f"-{lang}")), None)
            expected = _opens_with(card.answer.get(lang))
            given = verdict(question, quote) if quote and is_yes_no(question) else None
            if given and expected:
                agree += given == expected
                disagree += given != expected
    assert agree >= 20
    assert disagree <= 0.1 * (agree + disagree)


def test_an_illegal_practice_is_answered_not_legal_first_with_the_law_after(ask: Ask) -> None:
    reply = ask("公司扣押我的身份证合法吗？")
    answer = direct_answer(reply)
    assert answer.startswith(MESSAGES.get("yes_no_legal_no", "zh")), reply.text
    assert "不得扣押" in answer, "the document's own sentence follows the verdict"
    assert reply.citations and reply.citations[0].doc_id.endswith("-zh")
    assert_quoted_from_source(reply)
    sources = MESSAGES.get("sources_label", "zh")
    assert reply.text.index(sources) > reply.text.index("不得扣押"), "the source comes after"


@pytest.mark.parametrize(
    ("question", "verdict_key", "fact"),
    [
        ("Can my employer ask me for a deposit when I start?", "yes_no_may_no", "may not ask"),
        ("Can I apply for the job-seeking subsidy online?", "yes_no_may_yes", "apply for the"),
    ],
)
def test_an_english_yes_no_question_gets_yes_or_no_first(
    settings: Settings, write_doc: DocWriter, question: str, verdict_key: str, fact: str
) -> None:
    write_doc("deposits-en", DEPOSITS_EN, title="Deposits", lang="en", topics=["rights"])
    agent = Agent(small_kb(settings, write_doc, probation=False), settings)
    reply = agent.reply(Conversation(lang="en"), question)
    first = paragraphs(reply)[0]
    said = MESSAGES.get(verdict_key, "en")
    assert first.startswith(said + " "), reply.text
    assert fact in first
    assert reply.citations[0].doc_id == "deposits-en"


def test_an_open_question_gets_no_verdict(ask: Ask) -> None:
    answer = direct_answer(ask("试用期最长多久？"))
    verdicts = {MESSAGES.get(k, "zh") for k in MESSAGES.names() if k.startswith("yes_no_")}
    assert not any(answer.startswith(v) for v in verdicts)
