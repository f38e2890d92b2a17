"""Personal data stays out of counsellor summaries and logs: ID numbers, mobile numbers,
e-mail addresses and bank cards."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.agent.agent import Agent
from bot.agent.models import Conversation
from bot.privacy import RedactingFilter, install_log_redaction, redact

ID_NUMBER = "11010519491231002X"
ID_DIGITS = "110105194912310021"
PHONE = "13812345678"
EMAIL = "zhang.san@example.com"
CARD = "6222 0212 3456 7890 123"
PERSONAL = f"我叫张三，身份证号{ID_NUMBER}，手机{PHONE}，邮箱{EMAIL}，银行卡{CARD}。"


@pytest.mark.parametrize(
    ("text", "secret", "placeholder"),
    [
        (f"身份证号{ID_NUMBER}", ID_NUMBER, "[id-number]"),
        ("身份证号11010519491231002x", "11010519491231002x", "[id-number]"),
        (f"身份证：{ID_DIGITS}。", ID_DIGITS, "[id-number]"),
        (f"手机{PHONE}，", PHONE, "[phone]"),
        ("call me on +86 138 1234 5678 please", "138 1234 5678", "[phone]"),
        ("电话+8613812345678", "13812345678", "[phone]"),
        ("电话 138-1234-5678", "138-1234-5678", "[phone]"),
        ("电话 86 13812345678", "13812345678", "[phone]"),
        (f"邮箱 {EMAIL}", EMAIL, "[email]"),
        ("mail a.b+jobs@mail.school.edu.cn now", "a.b+jobs@mail.school.edu.cn", "[email]"),
        (f"工资卡{CARD}", CARD, "[bank-card]"),
        ("卡号6222021234567890123", "6222021234567890123", "[bank-card]"),
        ("card 6222-0212-3456-7890", "6222-0212-3456-7890", "[bank-card]"),
    ],
)
def test_redact_removes_personal_identifiers(text: str, secret: str, placeholder: str) -> None:
    redacted = redact(text)
    assert secret not in redacted
    assert placeholder in redacted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"邮箱{EMAIL}", "邮箱[email]"),
        (f"我的邮箱是{EMAIL}，谢谢", "我的邮箱是[email]，谢谢"),
        (f"{EMAIL}联系我", "[email]联系我"),
        (f"请发到张老师的{EMAIL}或者打电话", "请发到张老师的[email]或者打电话"),
        ("邮箱:li_si@qq.com。", "邮箱:[email]。"),
    ],
)
def test_redacting_an_address_keeps_the_chinese_words_around_it(text: str, expected: str) -> None:
    """An address written straight after (or before) Chinese text, with no space: only the
    address goes, the words that say what it is stay."""
    assert redact(text) == expected


def test_redact_keeps_what_a_counsellor_needs() -> None:
    text = (
        "公司2024-07-01起拖欠工资6000元，国办发〔2022〕13号说了什么？我打过12333和12356，"
        "合同期三年，试用期6个月。"
    )
    assert redact(text) == text


def test_reply_summary_has_no_personal_data(bundled_agent: Agent) -> None:
    reply = bundled_agent.reply(Conversation(), PERSONAL + "公司扣押我的身份证合法吗？")
    for secret in (ID_NUMBER, PHONE, EMAIL, CARD, "6222", "1381234"):
        assert secret not in reply.summary
    assert "合法吗" in reply.summary, "the summary still says what was asked"


def test_reply_summary_of_a_long_message_has_no_partial_id(bundled_agent: Agent) -> None:
    question = "我的情况是这样的，公司扣着我的身份证不还，这种情况合不合法呢？" * 10
    question = question[:190]
    reply = bundled_agent.reply(Conversation(), f"身份证号{ID_DIGITS}" + question)
    assert ID_DIGITS[-10:] not in reply.summary


@pytest.fixture
def redacted_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="bot.agent.agent")
    install_log_redaction()
    yield caplog
    for handler in logging.getLogger().handlers:
        for log_filter in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(log_filter)


def test_agent_logs_have_no_personal_data(
    bundled_agent: Agent, redacted_logs: pytest.LogCaptureFixture
) -> None:
    bundled_agent.reply(Conversation(), f"手机{PHONE}，身份证{ID_NUMBER}，试用期最长多久？")
    bundled_agent.reply(Conversation(), f"call me on +86 138 1234 5678 or mail {EMAIL}")
    records = [r for r in redacted_logs.records if r.name == "bot.agent.agent"]
    assert len(records) == 2, "one debug line per reply"
    text = redacted_logs.text + "".join(r.getMessage() for r in records)
    for secret in (PHONE, ID_NUMBER, "138 1234 5678", EMAIL):
        assert secret not in text
    assert "试用期最长多久" in text


def test_agent_logs_have_no_partial_id(
    bundled_agent: Agent, redacted_logs: pytest.LogCaptureFixture
) -> None:
    prefix = ("我在一家公司做了三个月，" * 20)[:108]
    bundled_agent.reply(Conversation(), f"{prefix}{ID_DIGITS}，公司扣着我的身份证合法吗？")
    assert ID_DIGITS[:12] not in redacted_logs.text


def _record(msg: str, args: object) -> logging.LogRecord:
    return logging.LogRecord("bot.test", logging.INFO, __file__, 1, msg, args, None)


def test_redacting_filter_redacts_message_and_arguments() -> None:
    record = _record(f"user {EMAIL} asked: %s (card %s)", (f"手机{PHONE}", CARD))
    assert RedactingFilter().filter(record) is True
    message = record.getMessage()
    for secret in (EMAIL, PHONE, CARD):
        assert secret not in message
    assert "[email]" in message and "[phone]" in message and "[bank-card]" in message


def test_redacting_filter_handles_named_arguments() -> None:
    record = _record("phone=%(phone)s", ({"phone": PHONE},))
    RedactingFilter().filter(record)
    assert record.getMessage() == "phone=[phone]"


def test_redacting_filter_handles_numeric_arguments() -> None:
    record = _record("callback number %d", (int(PHONE),))
    RedactingFilter().filter(record)
    assert PHONE not in record.getMessage()


def test_a_logged_traceback_is_redacted_too() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("bot.test.traceback")
    logger.addHandler(handler)
    try:
        try:
            raise ValueError(f"INSERT failed: parameters ('我的电话{PHONE}', '{ID_NUMBER}')")
        except ValueError:
            logger.exception("handler failed for %s", EMAIL)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "ValueError: INSERT failed" in text and "Traceback" in text
    for secret in (PHONE, ID_NUMBER, EMAIL):
        assert secret not in text
