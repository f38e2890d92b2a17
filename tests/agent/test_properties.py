"""Property-based tests of the agent (hypothesis): whatever a graduate types — any Unicode,
control characters, right-to-left text, emoji, zero-width characters, NUL, whitespace only,
mixed scripts, 100 kB or 1 MB — the agent answers: it never raises, the reply is of a known
kind, in Chinese or English, and an answer always names its sources (documents that exist).
Runs on the bundled corpus with the real embeddings (``bundled_agent``)."""

from __future__ import annotations

import re
import time
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.agent.agent import Agent
from bot.agent.models import Conversation, Intent, Reply
from bot.kb.models import Lang
from bot.prompts import Messages

MESSAGES = Messages.load()
# Every fixed message the agent may send instead of an answer (Agent._special and
# record_feedback): a reply without sources must be one of these, word for word.
FIXED_KEYS = (
    "crisis",
    "crisis_violence",
    "crisis_confined",
    "illegal",
    "help",
    "handoff_requested",
    "injection",
    "greeting",
    "out_of_scope",
    "handoff_sensitive",
    "low_confidence",
    "low_confidence_handoff",
    "repeated_failure_handoff",
)
FIXED = {lang: {MESSAGES.get(key, lang) for key in FIXED_KEYS} for lang in ("zh", "en")}
ANSWER_INTENTS = {Intent.POLICY, Intent.RIGHTS, Intent.PROCEDURE}
# Characters no reply may contain: C0 controls other than the line break, DEL, and the bidi
# overrides/isolates that would reorder what the graduate sees.
UNPRINTABLE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")

PROPERTIES = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples on every run and in CI
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- what graduates may type ------------------------------------------------------------

CONTROL = "\x00\x01\x07\x08\x0b\x0c\x1b\x7f\r\t\n"
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u200f"
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
SPACES = " \u3000\xa0\u2028\u2029\u2003"
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧", "🇨🇳", "❤️", "🙏", "💼", "🤖"]
RTL = ["مرحبا", "عمل", "שלום", "עבודה"]
OTHER_SCRIPTS = ["Привет", "こんにちは", "안녕하세요", "नमस्ते", "Γειά", "ok", "OK?"]
WORDS_ZH = [
    "试用期",
    "工资",
    "合同",
    "社保",
    "公积金",
    "档案",
    "户口",
    "就业",
    "补贴",
    "毕业生",
    "吗",
]
WORDS_EN = ["probation", "salary", "contract", "how", "long", "can", "the", "my", "boss", "last"]

piece = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=12),  # any Unicode
    st.sampled_from(list(CONTROL + INVISIBLE + BIDI + SPACES)),
    st.sampled_from(EMOJI + RTL + OTHER_SCRIPTS + WORDS_ZH + WORDS_EN),
    st.sampled_from(["<b>", "</i>", "<script>alert(1)</script>", "&amp;", "'; DROP TABLE--"]),
)
messy_text = st.lists(piece, max_size=40).map("".join)
# Decoration that carries no words: it must not change what a question is answered with.
noise = st.sampled_from([*CONTROL, *INVISIBLE, *BIDI, *SPACES, *EMOJI, *"!?。，…~*#"])
decoration = st.lists(noise, max_size=15).map("".join)

QUESTIONS: dict[str, Lang] = {
    "试用期最长多久？": "zh",
    "How long can probation last?": "en",
    "毕业去向登记怎么办理？": "zh",
    "What is the tripartite agreement?": "en",
}


# -- what every reply must satisfy ------------------------------------------------------


def assert_sane(agent: Agent, reply: Reply) -> None:
    """A reply a graduate can use: a known kind, zh or en, sources for every answer."""
    assert isinstance(reply, Reply)
    assert reply.lang in ("zh", "en")
    assert isinstance(reply.intent, Intent)
    assert reply.text.strip(), "an empty reply"
    assert reply.handoff == (reply.handoff_reason is not None)
    assert not UNPRINTABLE.search(reply.text), f"unprintable characters in {reply.text!r}"
    assert len(reply.summary) <= 200
    if reply.composer == "none":
        assert not reply.citations
        assert reply.text in FIXED[reply.lang], f"not a catalogue message: {reply.text[:200]!r}"
        return
    documents = {d.meta.id: d.meta for d in agent._kb.documents()}
    assert reply.intent in ANSWER_INTENTS
    assert reply.citations, "an answer without sources"
    cited = [c.doc_id for c in reply.citations]
    assert set(cited) <= set(documents), f"cites documents that do not exist: {cited}"
    assert MESSAGES.get("sources_label", reply.lang) in reply.text, "the sources are not named"
    if documents[cited[0]].lang != reply.lang:
        notice = MESSAGES.get("other_language_source", reply.lang)
        assert notice in reply.text, "an answer from the other language must say so"


def ask(agent: Agent, text: str, conversation: Conversation | None = None) -> Reply:
    conversation = conversation or Conversation()
    reply = agent.reply(conversation, text)
    assert_sane(agent, reply)
    # the channels keep the conversation as JSON between messages
    restored = Conversation.model_validate_json(conversation.model_dump_json())
    assert restored == conversation
    return reply


# -- properties -------------------------------------------------------------------------


@PROPERTIES
@given(text=messy_text)
def test_any_text_gets_a_sane_reply(bundled_agent: Agent, text: str) -> None:
    ask(bundled_agent, text)


@PROPERTIES
@given(text=st.text(st.characters(exclude_categories=("Cs",)), max_size=2000))
def test_any_unicode_string_gets_a_sane_reply(bundled_agent: Agent, text: str) -> None:
    ask(bundled_agent, text)


@PROPERTIES
@given(text=st.text(st.sampled_from(list(SPACES + CONTROL + INVISIBLE + BIDI)), max_size=500))
def test_blank_or_invisible_messages_get_the_help_text(bundled_agent: Agent, text: str) -> None:
    reply = ask(bundled_agent, text)
    assert reply.intent is Intent.UNCLEAR and not reply.handoff
    assert reply.text == MESSAGES.get("help", reply.lang)


@PROPERTIES
@given(text=messy_text, lang=st.sampled_from(["zh", "en"]))
def test_a_chosen_language_is_always_the_reply_language(
    bundled_agent: Agent, text: str, lang: Lang
) -> None:
    reply = ask(bundled_agent, text, Conversation(lang=lang))
    assert reply.lang == lang


@cache
def clean_answer(agent: Agent, question: str) -> tuple[Intent, str]:
    reply = agent.reply(Conversation(), question)
    assert reply.citations, f"{question!r} is answered from the bundled corpus"
    return reply.intent, reply.citations[0].doc_id


@PROPERTIES
@given(
    question=st.sampled_from(sorted(QUESTIONS)),
    before=decoration,
    after=decoration,
)
def test_emoji_controls_and_invisible_characters_around_a_question_do_not_change_the_answer(
    bundled_agent: Agent, question: str, before: str, after: str
) -> None:
    reply = ask(bundled_agent, f"{before}{question}{after}")
    assert reply.lang == QUESTIONS[question]
    assert (reply.intent, reply.citations[0].doc_id if reply.citations else None) == clean_answer(
        bundled_agent, question
    )


@pytest.mark.parametrize(
    "question, text",
    [
        ("How long can probation last?", "Ho\u200bw long can pro\u200bbation last?"),
        ("试用期最长多久？", "\u200b".join("试用期最长多久？")),
    ],
    ids=["en", "zh"],
)
def test_zero_width_spaces_inside_words_do_not_change_the_answer(
    bundled_agent: Agent, question: str, text: str
) -> None:
    reply = ask(bundled_agent, text)
    assert reply.lang == QUESTIONS[question]
    expected = clean_answer(bundled_agent, question)
    assert (reply.intent, reply.citations[0].doc_id if reply.citations else None) == expected


def test_a_full_width_english_question_is_answered_like_a_half_width_one(
    bundled_agent: Agent,
) -> None:
    reply = ask(bundled_agent, "Ｈｏｗ ｌｏｎｇ ｃａｎ ｐｒｏｂａｔｉｏｎ ｌａｓｔ？")
    assert reply.lang == "en"
    expected = clean_answer(bundled_agent, "How long can probation last?")
    assert (reply.intent, reply.citations[0].doc_id if reply.citations else None) == expected


@settings(PROPERTIES, max_examples=10)
@given(turns=st.lists(st.one_of(messy_text, st.sampled_from(sorted(QUESTIONS))), max_size=6))
def test_a_conversation_of_anything_stays_sane_and_bounded(
    bundled_agent: Agent, turns: list[str]
) -> None:
    conversation = Conversation()
    for text in turns:
        ask(bundled_agent, text, conversation)
    limit = 2 * bundled_agent._settings.conversation_max_turns
    assert len(conversation.turns) == min(2 * len(turns), limit)


# -- huge messages ----------------------------------------------------------------------

HUGE_BUDGET_S = 20.0  # measured 0.1-3 s on the 2-core machine under load

KB100 = 100_000
MB1 = 1_000_000
HUGE: dict[str, tuple[str, Lang | None, bool]] = {
    # id: (message, reply language or None for either, answered from a probation document)
    "zh-100kB-story-then-question": (
        ("我在一家公司上班，老板说要加班，我不知道怎么办。" * 4000)[:KB100] + "试用期最长多久？",
        "zh",
        True,
    ),
    "en-100kB-story-then-question": (
        ("My boss says I must work overtime and I do not know what to do. " * 1600)[:KB100]
        + " How long can probation last?",
        "en",
        True,
    ),
    "zh-1MB-repeated-question": ("试用期最长多久？" * (MB1 // 8), "zh", True),
    "mixed-scripts-1MB": (("试用期 probation 😀 \u202e مرحبا \u200b " * 40_000)[:MB1], None, False),
    "whitespace-1MB": (" \n\t\u3000\xa0" * (MB1 // 5), None, False),
    "emoji-100kB": ("😀👍🏽" * (KB100 // 3), None, False),
    "nul-100kB": ("\x00" * KB100, None, False),
    "zero-width-100kB-then-question": (
        "\u200b\u200d\ufeff" * (KB100 // 3) + "试用期最长多久？",
        "zh",
        True,
    ),
    "rtl-100kB": (("مرحبا بالعالم " * 8000)[:KB100], None, False),
    "html-100kB": (("<script>alert(1)</script>" * 4000)[:KB100], None, False),
}


@pytest.mark.parametrize("case", sorted(HUGE))
def test_huge_messages_get_a_sane_reply_quickly(bundled_agent: Agent, case: str) -> None:
    text, lang, probation = HUGE[case]
    started = time.perf_counter()
    reply = ask(bundled_agent, text)
    elapsed = time.perf_counter() - started
    assert elapsed < HUGE_BUDGET_S, f"{len(text):,} characters took {elapsed:.1f} s"
    if lang is not None:
        assert reply.lang == lang
    if probation:
        assert reply.citations and reply.citations[0].doc_id.startswith("probation-")
    assert "<script>" not in reply.text


def test_a_long_unbroken_run_of_characters_is_answered_quickly(bundled_agent: Agent) -> None:
    text = "哈" * 40_000  # a graduate holding a key down, or a pasted blob without spaces
    started = time.perf_counter()
    ask(bundled_agent, text)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"{len(text):,} characters took {elapsed:.1f} s"
