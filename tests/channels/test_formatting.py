"""Telegram formatting: what graduates and counsellors see, and the data behind the buttons."""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from telegram import InlineKeyboardMarkup

from bot.agent.models import Citation, Intent, Reply
from bot.channels.telegram.formatting import (
    CALLBACK_LIMIT,
    MESSAGE_LIMIT,
    TOPIC_NAME_LIMIT,
    Callback,
    TicketCard,
    answer_keyboard,
    back_to_bot_keyboard,
    card_keyboard,
    encode_callback,
    escape,
    forget_keyboard,
    language_keyboard,
    parse_callback,
    rating_keyboard,
    render_reply,
    render_ticket_card,
    render_transcript,
    split_html,
    student_label,
    text_length,
    topic_name,
)
from bot.handoff.office_hours import OfficeHours, format_office_hours, parse_office_hours
from bot.prompts import BUNDLED_PROMPTS_DIR, Messages

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = dt.UTC

# Every key the Telegram channel uses, with its placeholders.
TELEGRAM_KEYS: dict[str, set[str]] = {
    # graduates
    "tg_welcome": {"retention"},
    "tg_retention_days": {"days"},
    "tg_retention_forever": set(),
    "tg_help": set(),
    "tg_lang_choose": set(),
    "tg_lang_set": set(),
    "tg_region_ask": set(),
    "tg_region_set": {"region"},
    "tg_region_cleared": set(),
    "tg_region_unknown": {"value"},
    "tg_reset_done": set(),
    "tg_forget_confirm": set(),
    "tg_forget_done": set(),
    "tg_forget_done_group": set(),
    "tg_forget_done_pending": set(),
    "tg_forget_done_failed": set(),
    "tg_forget_cancelled": set(),
    "tg_handoff_queued": {"position"},
    "tg_handoff_queued_offhours": {"position", "hours"},
    "tg_handoff_already": {"position"},
    "tg_handoff_crisis_queued": set(),
    "tg_cancel_done": set(),
    "tg_cancel_nothing": set(),
    "tg_media_note": set(),
    "tg_media_relayed": set(),
    "tg_counsellor_says": {"text"},
    "tg_counsellor_named": {"name", "text"},
    "tg_counsellor_joined": set(),
    "tg_resolved": set(),
    "tg_rate_prompt": set(),
    "tg_rate_thanks": set(),
    "tg_feedback_up": set(),
    "tg_feedback_down": set(),
    "tg_long_wait": {"minutes"},
    "tg_giveup_offer": {"hours"},
    "tg_contact_saved": set(),
    "tg_back_to_bot": set(),
    "tg_rate_limited": {"seconds"},
    "tg_unavailable": set(),
    "tg_error": set(),
    "tg_error_later": set(),
    "tg_not_allowed": set(),
    "tg_unknown_command": {"command"},
    "tg_button_expired": set(),
    "tg_sources": set(),
    "btn_helpful": set(),
    "btn_unhelpful": set(),
    "btn_human": set(),
    "btn_lang_zh": set(),
    "btn_lang_en": set(),
    "btn_forget_yes": set(),
    "btn_forget_no": set(),
    "btn_back_to_bot": set(),
    # admins
    "adm_ingest_started": {"name"},
    "adm_ingest_done": {"added", "updated", "unchanged", "failed"},
    "adm_ingest_failures": {"details"},
    "adm_file_refused": {"name", "reason"},
    "adm_kb_header": {"count"},
    "adm_kb_empty": set(),
    "adm_kb_removed": {"doc_id"},
    "adm_kb_unknown": {"doc_id"},
    "adm_kb_remove_usage": set(),
    "adm_stats": {
        "days",
        "questions",
        "answered",
        "handed_off",
        "thumbs_up",
        "thumbs_down",
        "ratings",
        "rating_mean",
        "median_first_reply",
        "unanswered",
    },
    "adm_unanswered_header": {"count", "days"},
    "adm_unanswered_empty": {"days"},
    # counsellor group
    "grp_card": {
        "ticket_id",
        "category",
        "priority",
        "reason",
        "student",
        "lang",
        "region",
        "summary",
        "transcript",
        "draft",
        "citations",
    },
    "grp_no_draft": set(),
    "grp_claimed": {"name"},
    "grp_already_claimed": {"name"},
    "grp_transferred": {"name"},
    "grp_released": set(),
    "grp_resolved": {"name"},
    "grp_back_to_bot": {"name"},
    "grp_graduate_cancelled": set(),
    "grp_graduate_forgot": set(),
    "grp_erase_failed": {"ticket_id", "link", "error"},
    "grp_topic_forgotten": set(),
    "grp_note_saved": set(),
    "grp_draft_sent": {"name"},
    "grp_sla_reminder": {"ticket_id", "minutes", "link"},
    "grp_not_counsellor": set(),
    "grp_relay_failed": {"error"},
    "grp_rating": {"rating"},
    "grp_contact": {"contact"},
    "grp_topic_help": set(),
    "grp_crisis_alert": {"kind"},
    "sig_self_harm": set(),
    "sig_violence": set(),
    "sig_confined": set(),
    "sig_human": set(),
    "sig_illegal": set(),
    "sig_out_of_scope": set(),
    "sig_injection": set(),
    "sig_ordinary": set(),
    "grp_card_also": {"reason", "also"},
    "grp_ticket_closed": set(),
    "btn_claim": set(),
    "btn_send_draft": set(),
    "btn_resolve": set(),
    # labels
    "cat_policy": set(),
    "cat_rights": set(),
    "cat_procedure": set(),
    "cat_crisis": set(),
    "cat_other": set(),
    "prio_urgent": set(),
    "prio_high": set(),
    "prio_normal": set(),
    "reason_requested": set(),
    "reason_low_confidence": set(),
    "reason_sensitive": set(),
    "reason_crisis": set(),
    "reason_repeated_failure": set(),
    "student_anonymous": set(),
    "role_graduate": set(),
    "role_bot": set(),
    "role_counsellor": set(),
}


@pytest.fixture(scope="module")
def messages() -> Messages:
    return Messages.load()


# -- helpers -------------------------------------------------------------------------------------

_TAG = re.compile(r"<(/?)([a-zA-Z][\w-]*)[^<>]*>")
_ENTITY = re.compile(r"&(?:amp|lt|gt|quot|#[0-9]+);")


def visible(part: str) -> str:
    """The text Telegram shows for a piece of HTML."""
    return html.unescape(_TAG.sub("", part))


def squeeze(text: str) -> str:
    return "".join(text.split())


def assert_valid_html(text: str, allowed: set[str]) -> None:
    """Only allowed tags, properly nested; & < > only in tags and entities."""
    stack: list[str] = []
    for match in _TAG.finditer(text):
        closing, name = match.group(1), match.group(2)
        assert name in allowed, (name, text)
        if closing:
            assert stack and stack[-1] == name, text
            stack.pop()
        else:
            stack.append(name)
    assert not stack, text
    bare = _ENTITY.sub("", _TAG.sub("", text))
    assert not set(bare) & set("&<>"), text


def paragraph(number: int, size: int) -> str:
    text = f"第{number}段："
    sentence = "劳动合同约定的试用期工资不得低于本单位相同岗位最低档工资。"
    while len(text) < size:
        text += sentence
    return text[:size]


# -- the catalogue -------------------------------------------------------------------------------


def test_every_telegram_message_exists_in_both_languages(messages: Messages) -> None:
    names = set(messages.names())
    missing = set(TELEGRAM_KEYS) - names
    assert not missing, f"missing messages: {sorted(missing)}"
    for key, placeholders in TELEGRAM_KEYS.items():
        for lang in ("zh", "en"):
            assert messages.template(key, lang).strip(), (key, lang)
            assert messages.placeholders(key, lang) == placeholders, (key, lang)


def test_the_telegram_catalogue_defines_each_key_once() -> None:
    # yaml.safe_load silently keeps the last of two equal keys; look at the document itself
    node = yaml.compose((Path(BUNDLED_PROMPTS_DIR) / "telegram.yaml").read_text("utf-8"))
    assert isinstance(node, yaml.MappingNode)
    keys = [key.value for key, _ in node.value]
    assert len(keys) == len(set(keys)), [key for key in keys if keys.count(key) > 1]


def test_every_telegram_message_is_valid_telegram_html(messages: Messages) -> None:
    for key, placeholders in TELEGRAM_KEYS.items():
        for lang in ("zh", "en"):
            values = dict.fromkeys(placeholders, "x")
            text = messages.template(key, lang).format(**values)
            assert_valid_html(text, {"b", "i"})


def test_button_labels_fit_on_a_button(messages: Messages) -> None:
    for key in TELEGRAM_KEYS:
        if key.startswith("btn_"):
            for lang in ("zh", "en"):
                assert len(messages.get(key, lang)) <= 30, (key, lang)


# -- splitting long answers ----------------------------------------------------------------------


def test_a_long_chinese_answer_is_split_at_its_paragraphs() -> None:
    paragraphs = [paragraph(number, 3000) for number in (1, 2, 3)]
    parts = split_html("\n\n".join(paragraphs))
    assert parts == paragraphs
    assert all(len(part) <= MESSAGE_LIMIT for part in parts)


def test_short_paragraphs_are_kept_together_in_one_message() -> None:
    paragraphs = [paragraph(number, 1000) for number in range(1, 8)]  # 7,000 characters
    parts = split_html("\n\n".join(paragraphs))
    assert len(parts) == 2
    assert parts[0] == "\n\n".join(paragraphs[:4])  # 4 × 1,000 + blank lines ≤ 4,096
    assert parts[1] == "\n\n".join(paragraphs[4:])


def test_a_paragraph_too_long_for_one_message_is_cut_at_a_sentence_end() -> None:
    text = paragraph(1, 10_000)
    parts = split_html(text)
    assert len(parts) == 3
    assert all(len(part) <= MESSAGE_LIMIT for part in parts)
    assert all(part.endswith("。") for part in parts[:-1])
    assert "".join(parts) == text


def test_a_text_without_any_break_is_still_split_without_losing_anything() -> None:
    for text in ("字" * 10_000, "x" * 10_000):
        parts = split_html(text)
        assert len(parts) == 3
        assert all(0 < len(part) <= MESSAGE_LIMIT for part in parts)
        assert "".join(parts) == text


def test_emoji_count_twice_as_telegram_counts_them() -> None:
    text = "🎓" * 3000  # 6,000 UTF-16 code units
    parts = split_html(text)
    assert len(parts) == 2
    assert all(text_length(part) <= MESSAGE_LIMIT for part in parts)
    assert "".join(parts) == text


def test_bold_text_across_a_cut_stays_bold_in_both_parts() -> None:
    text = "开头。<b>" + "重要提醒。" * 1000 + "</b>结尾。"
    parts = split_html(text)
    assert len(parts) == 2
    for part in parts:
        assert len(part) <= MESSAGE_LIMIT
        assert_valid_html(part, {"b"})
    assert parts[0].endswith("</b>") and parts[1].startswith("<b>")
    assert squeeze("".join(visible(part) for part in parts)) == squeeze(visible(text))


def test_nested_tags_and_links_are_reopened_with_their_attributes() -> None:
    text = '<b>标题 <a href="https://example.org/?a=1&amp;b=2">' + "链接文字。" * 30 + "</a></b>"
    parts = split_html(text, limit=200)
    assert len(parts) > 1
    for part in parts:
        assert len(part) <= 200
        assert_valid_html(part, {"b", "a"})
        assert '<a href="https://example.org/?a=1&amp;b=2">' in part
    assert squeeze("".join(visible(part) for part in parts)) == squeeze(visible(text))


def test_an_entity_is_never_cut() -> None:
    text = "A&amp;B " * 2000
    for limit in (MESSAGE_LIMIT, 13, 7, 5):
        parts = split_html(text, limit=limit)
        for part in parts:
            assert len(part) <= limit
            assert_valid_html(part, set())
        assert squeeze("".join(visible(part) for part in parts)) == squeeze(visible(text))


@pytest.mark.parametrize("limit", range(15, 40))  # <i><b>x</b></i> is 15
def test_any_limit_gives_valid_parts_with_all_the_text(limit: int) -> None:
    text = (
        "第一段：<b>加粗 &lt;重点&gt;</b> 普通。\n\n"
        "Second paragraph with <i>italic <b>and bold</b> words</i> & more. Another sentence!\n"
        "第三行，没有句号但很长很长很长很长很长很长很长很长很长很长很长很长很长很长\n\n"
        + "&amp;"
        * 10
    )
    parts = split_html(escape_loose(text), limit=limit)
    assert parts
    for part in parts:
        assert 0 < len(part) <= limit
        assert part == part.strip()
        assert_valid_html(part, {"b", "i"})
    joined = squeeze("".join(visible(part) for part in parts))
    assert joined == squeeze(visible(escape_loose(text)))


def escape_loose(text: str) -> str:
    """The test text with its one bare & escaped (the rest is already Telegram HTML)."""
    return text.replace(" & ", " &amp; ")


def test_nothing_to_send_gives_no_parts() -> None:
    assert split_html("") == []
    assert split_html(" \n\n \n") == []


# -- answers -------------------------------------------------------------------------------------


def citation(doc_id: str, url: str | None, title: str = "劳动合同法") -> Citation:
    return Citation(
        doc_id=doc_id,
        title=title,
        authority="全国人大常委会",
        issued=dt.date(2012, 12, 28),
        effective_from=dt.date(2013, 7, 1),
        source_url=url,
        heading="试用期",
        excerpt="试用期最长不得超过六个月。",
    )


def reply(text: str, lang: str = "zh", citations: list[Citation] | None = None) -> Reply:
    return Reply.model_validate(
        {"text": text, "lang": lang, "intent": Intent.RIGHTS, "citations": citations or []}
    )


def test_html_in_an_answer_is_shown_as_text(messages: Messages) -> None:
    parts = render_reply(
        reply("<script>alert(1)</script>\n\nIf a < b & c > d, ask.", "en"), messages
    )
    joined = "\n".join(parts)
    assert "<script>" not in joined
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in joined
    assert "a &lt; b &amp; c &gt; d" in joined
    assert visible(joined) == "<script>alert(1)</script>\n\nIf a < b & c > d, ask."


def test_a_cited_source_url_becomes_a_link_once_per_document(messages: Messages) -> None:
    url = "https://www.gov.cn/law?id=1&lang=zh"
    citations = [
        citation("labour-contract-law", url, title="劳动合同法 <第十九条>"),
        citation("labour-contract-law", url, title="劳动合同法 <第十九条>"),
        citation("no-url", None),
    ]
    parts = render_reply(
        reply("试用期最长六个月。\n\n依据：《劳动合同法》", citations=citations), messages
    )
    assert len(parts) == 1
    text = parts[0]
    assert f"<b>{messages.get('tg_sources', 'zh')}</b>" in text
    assert text.count("<a ") == 1
    assert (
        '<a href="https://www.gov.cn/law?id=1&amp;lang=zh">劳动合同法 &lt;第十九条&gt;</a>' in text
    )
    assert text.startswith("试用期最长六个月。\n\n依据：《劳动合同法》")


def test_a_javascript_url_is_not_made_into_a_link(messages: Messages) -> None:
    citations = [
        citation("evil", "javascript:alert(1)"),
        citation("evil2", 'https://x.org/" onclick="alert(1)'),
        citation("data", "data:text/html,<b>x</b>"),
    ]
    parts = render_reply(reply("Probation is at most six months.", "en", citations), messages)
    assert parts == ["Probation is at most six months."]


def test_a_long_answer_with_sources_fits_in_messages(messages: Messages) -> None:
    text = "\n\n".join(paragraph(number, 2500) for number in range(1, 5))
    citations = [citation(f"doc-{n}", f"https://example.org/{n}") for n in range(5)]
    parts = render_reply(reply(text, citations=citations), messages)
    assert len(parts) >= 3
    for part in parts:
        assert len(part) <= MESSAGE_LIMIT
        assert_valid_html(part, {"a", "b"})
    assert parts[-1].count("<a href=") == 5


# -- buttons -------------------------------------------------------------------------------------

HUGE_ID = 10**18


def all_keyboards(messages: Messages) -> list[InlineKeyboardMarkup]:
    keyboards = [language_keyboard(messages)]
    for lang in ("zh", "en"):
        keyboards += [
            answer_keyboard(HUGE_ID, lang, messages),
            forget_keyboard(lang, messages),
            rating_keyboard(HUGE_ID, lang, messages),
            card_keyboard(HUGE_ID, lang, messages, has_draft=True),
            card_keyboard(HUGE_ID, lang, messages, has_draft=False),
            back_to_bot_keyboard(HUGE_ID, lang, messages),
        ]
    return keyboards


def test_every_button_carries_short_data_that_parses_back(messages: Messages) -> None:
    for keyboard in all_keyboards(messages):
        for row in keyboard.inline_keyboard:
            for button in row:
                data = button.callback_data
                assert isinstance(data, str)
                assert len(data.encode("utf-8")) <= CALLBACK_LIMIT
                parsed = parse_callback(data)
                assert parsed is not None, data
                assert encode_callback(parsed.action, *parsed.args) == data


def test_buttons_say_what_they_do(messages: Messages) -> None:
    def data(keyboard: InlineKeyboardMarkup) -> list[str | object | None]:
        return [button.callback_data for row in keyboard.inline_keyboard for button in row]

    assert data(answer_keyboard(7, "zh", messages)) == ["fb:7:up", "fb:7:down", "human:7"]
    assert data(language_keyboard(messages)) == ["lang:zh", "lang:en"]
    assert [b.text for b in language_keyboard(messages).inline_keyboard[0]] == ["中文", "English"]
    assert data(forget_keyboard("en", messages)) == ["forget:yes", "forget:no"]
    assert data(rating_keyboard(3, "en", messages)) == [f"rate:3:{n}" for n in range(1, 6)]
    assert data(card_keyboard(9, "zh", messages, True)) == ["claim:9", "draft:9", "resolve:9"]
    assert data(card_keyboard(9, "zh", messages, False)) == ["claim:9", "resolve:9"]
    assert data(back_to_bot_keyboard(9, "en", messages)) == ["back:9"]


def test_callback_data_is_typed() -> None:
    parsed = parse_callback(encode_callback("rate", 42, 5))
    assert parsed == Callback("rate", ("42", "5"))
    assert parsed.int_arg(0) == 42 and parsed.int_arg(1) == 5
    assert parse_callback(f"fb:{HUGE_ID}:down") == Callback("fb", (str(HUGE_ID), "down"))


@pytest.mark.parametrize(
    "data",
    [
        None,
        "",
        "x" * 100,
        "fb:abc:up",
        "fb:1:sideways",
        "fb:1",
        "fb:1:up:extra",
        "fb:0:up",
        "fb:-1:up",
        "fb:01:up",
        "fb: 1:up",
        "fb:１２３:up",
        "rate:1:9",
        "rate:1:0",
        "rate:1:five",
        "lang:fr",
        "lang:中文",
        "forget:maybe",
        "claim:" + "9" * 40,
        "claim:99999999999999999999",
        "claim:",
        "unknown:1",
        ":",
        "\ud800",
        "human:1\n",
    ],
)
def test_garbage_callback_data_is_refused(data: str | None) -> None:
    assert parse_callback(data) is None


def test_callback_data_that_could_not_be_read_back_is_refused() -> None:
    with pytest.raises(ValueError, match="':'"):
        encode_callback("fb", 1, "up:down")
    with pytest.raises(ValueError):
        encode_callback("claim", 10**40)
    with pytest.raises(ValueError):
        encode_callback("nope", 1)
    with pytest.raises(ValueError):
        encode_callback("rate", 1, 6)


# -- graduates as counsellors see them ----------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last", "lang", "expected"),
    [
        ("张三", None, "zh", "张同学"),
        ("三", "张", "zh", "张同学"),
        ("张三", None, "en", "Student 张"),
        ("欧阳娜娜", None, "zh", "欧阳同学"),
        ("Wei", "Li", "en", "Wei L."),
        ("Wei Li", None, "zh", "Wei L."),
        ("Anna", None, "en", "Anna"),
        (None, None, "zh", "同学"),
        ("", "  ", "en", "Student"),
        ("🎓✨", None, "en", "Student"),
    ],
)
def test_a_student_is_shown_without_their_full_name(
    messages: Messages, first: str | None, last: str | None, lang: str, expected: str
) -> None:
    label = student_label(first, last, lang, messages)  # type: ignore[arg-type]
    assert label == expected
    if first and last and first.strip() and last.strip():
        assert not (first in label and last in label)  # never both names


def test_a_full_chinese_name_never_appears(messages: Messages) -> None:
    for first, last in [("张三丰", None), ("三丰", "张"), ("王小明", "王"), (None, "李四")]:
        label = student_label(first, last, "zh", messages)
        for name in (first, last):
            if name and len(name) > 1:
                assert name not in label


def test_a_topic_name_is_short_enough_for_telegram() -> None:
    assert topic_name(42, "权益", "张同学") == "#42 · 权益 · 张同学"
    long_name = topic_name(HUGE_ID, "类" * 200, "张\n同学")
    assert len(long_name) <= TOPIC_NAME_LIMIT and text_length(long_name) <= TOPIC_NAME_LIMIT
    assert long_name.startswith(f"#{HUGE_ID} · 类") and long_name.endswith("…")
    assert "\n" not in topic_name(1, "权益", "张\n同学")
    assert text_length(topic_name(1, "🎓" * 100, "x")) <= TOPIC_NAME_LIMIT


# -- tickets -------------------------------------------------------------------------------------


def card(**changes: object) -> TicketCard:
    fields: dict[str, object] = {
        "ticket_id": 42,
        "category": "rights",
        "priority": "high",
        "reason": "requested",
        "student": "张同学",
        "graduate_lang": "zh",
        "region": "上海",
        "summary": "试用期工资 <低于> 最低工资怎么办",
        "transcript": [("user", "试用期工资多少？"), ("bot", "不得低于最低工资。")],
        "draft": "可以向劳动监察部门投诉 & 申请仲裁。",
        "citations": [citation("labour-contract-law", "https://www.gov.cn/law")],
    }
    fields.update(changes)
    return TicketCard(**fields)  # type: ignore[arg-type]


def test_a_ticket_card_shows_the_ticket_escaped(messages: Messages) -> None:
    text = render_ticket_card(card(), "zh", messages)
    assert_valid_html(text, {"b", "a", "code"})
    assert "#42" in text and "权益" in text and "张同学" in text and "上海" in text
    assert "试用期工资 &lt;低于&gt; 最低工资怎么办" in text
    assert "可以向劳动监察部门投诉 &amp; 申请仲裁。" in text
    assert "学生：试用期工资多少？" in text and "机器人：不得低于最低工资。" in text
    assert '<a href="https://www.gov.cn/law">劳动合同法</a>' in text


def test_a_ticket_without_a_draft_says_so(messages: Messages) -> None:
    text = render_ticket_card(card(draft=None, citations=[]), "en", messages)
    assert messages.get("grp_no_draft", "en") in text
    assert "Ticket #42" in text


def test_a_card_with_a_huge_transcript_fits_and_keeps_the_latest_turns(
    messages: Messages,
) -> None:
    turns = [("user" if n % 2 else "bot", f"第{n}轮：" + "内容" * 100) for n in range(500)]
    text = render_ticket_card(card(transcript=turns), "zh", messages)
    assert len(text) <= MESSAGE_LIMIT
    assert_valid_html(text, {"b", "a", "code"})
    assert "第499轮" in text and "第498轮" in text
    assert "第0轮" not in text
    assert "\n…\n" in text
    assert "可以向劳动监察部门投诉" in text  # the draft is untouched


def test_a_card_with_a_huge_draft_and_transcript_still_fits(messages: Messages) -> None:
    turns = [("user", f"第{n}轮：" + "<问题>" * 100) for n in range(100)]
    text = render_ticket_card(card(transcript=turns, draft="草稿&" * 5000), "en", messages)
    assert len(text) <= MESSAGE_LIMIT
    assert_valid_html(text, {"b", "a", "code"})
    assert "第99轮" in text  # the latest turn still shows
    assert "草稿&amp;" in text and "…" in text


def test_a_transcript_keeps_the_most_recent_turns_within_its_limit(messages: Messages) -> None:
    turns = [
        ("user", "问题一"),
        ("bot", "回答一 <b>"),
        ("counsellor", "老师的话"),
        ("user", "问题二"),
    ]
    full = render_transcript(turns, "zh", messages, limit=1000)
    assert full.splitlines() == [
        "学生：问题一",
        "机器人：回答一 &lt;b&gt;",
        "老师：老师的话",
        "学生：问题二",
    ]
    short = render_transcript(turns, "en", messages, limit=40)
    assert len(short) <= 40
    assert short.splitlines() == ["…", "Counsellor: 老师的话", "Graduate: 问题二"]
    tiny = render_transcript([("user", "很长的问题" * 50)], "zh", messages, limit=20)
    assert len(tiny) <= 20 and tiny.startswith("学生：很长") and tiny.endswith("…")
    assert render_transcript(turns, "zh", messages, limit=0) == ""


# -- office hours --------------------------------------------------------------------------------


def shanghai(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


def test_office_hours_are_open_on_weekdays_in_working_hours() -> None:
    hours = parse_office_hours("mon-fri 09:00-18:00")
    assert hours == OfficeHours(frozenset(range(5)), dt.time(9), dt.time(18))
    assert shanghai(25, 10).strftime("%a") == "Wed"
    assert hours.is_open(shanghai(25, 10), "Asia/Shanghai")
    assert hours.is_open(shanghai(25, 9), "Asia/Shanghai")
    assert not hours.is_open(shanghai(28, 10), "Asia/Shanghai")  # Saturday
    assert not hours.is_open(shanghai(25, 20), "Asia/Shanghai")
    assert not hours.is_open(shanghai(25, 18), "Asia/Shanghai")  # closes at 18:00
    assert not hours.is_open(shanghai(25, 8, 59), "Asia/Shanghai")


def test_office_hours_convert_other_time_zones_to_the_office_time_zone() -> None:
    hours = parse_office_hours("mon-fri 09:00-18:00")
    assert hours.is_open(dt.datetime(2026, 11, 25, 2, 0, tzinfo=UTC), "Asia/Shanghai")  # 10:00
    assert not hours.is_open(dt.datetime(2026, 11, 25, 12, 0, tzinfo=UTC), "Asia/Shanghai")
    # Sunday 23:30 UTC is Monday 07:30 in Shanghai: still closed; Monday 01:30 UTC is open
    assert not hours.is_open(dt.datetime(2026, 11, 29, 23, 30, tzinfo=UTC), "Asia/Shanghai")
    assert hours.is_open(dt.datetime(2026, 11, 30, 1, 30, tzinfo=UTC), "Asia/Shanghai")
    # Friday 20:00 UTC is Saturday 04:00 in Shanghai
    assert not hours.is_open(dt.datetime(2026, 11, 27, 20, 0, tzinfo=UTC), "Asia/Shanghai")
    # the same moment is open in a zone where it is Friday afternoon
    assert hours.is_open(dt.datetime(2026, 11, 27, 20, 0, tzinfo=UTC), "America/Los_Angeles")


def test_office_hours_need_an_aware_time_and_a_known_zone() -> None:
    hours = parse_office_hours("mon-fri 09:00-18:00")
    with pytest.raises(ValueError, match="timezone-aware"):
        hours.is_open(dt.datetime(2026, 11, 25, 10), "Asia/Shanghai")
    with pytest.raises(ValueError, match="time zone"):
        hours.is_open(shanghai(25, 10), "Mars/Olympus_Mons")


@pytest.mark.parametrize(
    ("spec", "zh", "en"),
    [
        ("mon-fri 09:00-18:00", "周一至周五 09:00–18:00", "Mon–Fri 09:00–18:00"),
        ("Mon-Fri 9:00-17:30", "周一至周五 09:00–17:30", "Mon–Fri 09:00–17:30"),
        ("sat,sun 10:00-16:00", "周六、周日 10:00–16:00", "Sat, Sun 10:00–16:00"),
        ("mon,wed,fri 08:30-12:00", "周一、周三、周五 08:30–12:00", "Mon, Wed, Fri 08:30–12:00"),
        ("daily 08:00-20:00", "每天 08:00–20:00", "Every day 08:00–20:00"),
    ],
)
def test_office_hours_are_described_in_the_graduates_language(spec: str, zh: str, en: str) -> None:
    assert format_office_hours(spec, "zh") == zh
    assert format_office_hours(spec, "en") == en


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "mon-fri",
        "09:00-18:00",
        "mon-fri 09:00",
        "mon-fri 9-18",
        "mon-fri 18:00-09:00",
        "mon-fri 09:00-09:00",
        "mon-fri 25:00-26:00",
        "mon-fri 09:60-18:00",
        "funday 09:00-18:00",
        "mon-fri,, 09:00-18:00",
        "mon-fri 09:00-18:00 extra",
    ],
)
def test_a_bad_office_hours_spec_is_refused_with_a_reason(spec: str) -> None:
    with pytest.raises(ValueError, match="office hours"):
        parse_office_hours(spec)


def test_escape_handles_the_three_special_characters_and_quotes_in_attributes() -> None:
    assert escape('a < b & c > "d"') == 'a &lt; b &amp; c &gt; "d"'
    assert escape('"x"', quote=True) == "&quot;x&quot;"
