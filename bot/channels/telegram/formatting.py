"""Telegram formatting: HTML escaping and splitting, callback data, keyboards, ticket cards
(office hours: ``bot.handoff.office_hours``).

Everything here is a pure function of its arguments (no network, no database, no clock), so
the handlers can be tested without Telegram. Texts are Telegram HTML (``parse_mode="HTML"``):
only ``&``, ``<`` and ``>`` are special, plus ``"`` inside attribute values.

Lengths are counted on the raw HTML in UTF-16 code units (:func:`text_length`). Telegram
counts the text after parsing the tags and entities, in UTF-16 code units, so a part that fits
by this count always fits on Telegram.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.agent.models import Citation, Reply
from bot.handoff.models import CATEGORIES, PRIORITIES
from bot.kb.models import Lang
from bot.prompts import Messages

MESSAGE_LIMIT = 4096
"""Characters in one message (Telegram's limit after entity parsing)."""
CALLBACK_LIMIT = 64
"""Bytes of callback data in one inline button."""
TOPIC_NAME_LIMIT = 128
"""Characters in a forum topic's name."""

ELLIPSIS = "…"
MISSING = "—"
"""Shown for an empty field of a ticket card."""


# -- escaping and length -------------------------------------------------------------------------


def escape(text: str, *, quote: bool = False) -> str:
    """Escape plain text for Telegram HTML; ``quote=True`` also escapes ``"`` (attribute values)."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped.replace('"', "&quot;") if quote else escaped


def text_length(text: str) -> int:
    """The length Telegram would see at most: UTF-16 code units of the raw string."""
    return len(text.encode("utf-16-le")) // 2


# -- splitting long messages ---------------------------------------------------------------------

_TOKEN = re.compile(
    r"<(?P<close>/)?(?P<name>[A-Za-z][\w-]*)(?:\s[^<>]*)?/?>"
    r"|&(?:#[0-9]+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);"
)
_CHAR, _ENTITY, _OPEN, _CLOSE, _VOID = range(5)
# Where a part may end, best first: a blank line, a line break, a sentence end, a space.
_PARAGRAPH, _LINE, _SENTENCE, _SPACE = 4, 3, 2, 1
_SENTENCE_ENDS = "。！？"
_SENTENCE_ENDS_BEFORE_SPACE = ".!?"


class _Atom(NamedTuple):
    """A piece of HTML that is never cut: a character, an entity or a tag."""

    text: str
    kind: int
    name: str = ""


def _atoms(html: str) -> list[_Atom]:
    atoms: list[_Atom] = []
    position = 0
    for match in _TOKEN.finditer(html):
        atoms.extend(_Atom(char, _CHAR) for char in html[position : match.start()])
        name = (match.group("name") or "").lower()
        if not name:
            kind = _ENTITY
        elif match.group("close"):
            kind = _CLOSE
        elif match.group(0).endswith("/>"):
            kind = _VOID
        else:
            kind = _OPEN
        atoms.append(_Atom(match.group(0), kind, name))
        position = match.end()
    atoms.extend(_Atom(char, _CHAR) for char in html[position:])
    return atoms


def _open_tags(atoms: Sequence[_Atom]) -> list[tuple[_Atom, ...]]:
    """For each position 0..len(atoms): the tags open just before it, outermost first."""
    stacks: list[tuple[_Atom, ...]] = [()]
    stack: tuple[_Atom, ...] = ()
    for atom in atoms:
        if atom.kind == _OPEN:
            stack = (*stack, atom)
        elif atom.kind == _CLOSE:
            names = [tag.name for tag in stack]
            if atom.name in names:
                stack = stack[: len(names) - 1 - names[::-1].index(atom.name)]
        stacks.append(stack)
    return stacks


def _is_space(atom: _Atom) -> bool:
    return atom.kind == _CHAR and atom.text.isspace()


def _is_visible(atom: _Atom) -> bool:
    return atom.kind == _ENTITY or (atom.kind == _CHAR and not atom.text.isspace())


def _cut_quality(atoms: Sequence[_Atom], position: int) -> int:
    """How good a place to cut is the boundary before ``atoms[position]`` (0: mid-word)."""
    before = atoms[position - 1]
    if before.kind != _CHAR:
        return 0
    if before.text == "\n":
        earlier = atoms[position - 2] if position >= 2 else None
        return _PARAGRAPH if earlier is not None and earlier.text == "\n" else _LINE
    if before.text in _SENTENCE_ENDS:
        return _SENTENCE
    after = atoms[position] if position < len(atoms) else None
    if before.text in _SENTENCE_ENDS_BEFORE_SPACE and (after is None or _is_space(after)):
        return _SENTENCE
    return _SPACE if before.text.isspace() else 0


def _closing(stack: Sequence[_Atom]) -> str:
    return "".join(f"</{tag.name}>" for tag in reversed(stack))


def _render_part(atoms: Sequence[_Atom], reopen: Sequence[_Atom], close: Sequence[_Atom]) -> str:
    """Reopened tags + atoms + closing tags, without whitespace at the edges or empty tag pairs."""
    visible = [index for index, atom in enumerate(atoms) if _is_visible(atom)]
    if not visible:
        return ""
    first, last = visible[0], visible[-1]
    body = [
        atom for index, atom in enumerate(atoms) if first <= index <= last or not _is_space(atom)
    ]
    closing = [_Atom(f"</{tag.name}>", _CLOSE, tag.name) for tag in reversed(close)]
    out: list[_Atom] = []
    for atom in [*reopen, *body, *closing]:
        if atom.kind == _CLOSE and out and out[-1].kind == _OPEN and out[-1].name == atom.name:
            out.pop()
        else:
            out.append(atom)
    return "".join(atom.text for atom in out)


def split_html(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split Telegram HTML into non-empty parts of at most ``limit`` (:func:`text_length`).

    Parts end at a blank line if possible, else at a line break, a sentence end, a space, and
    only then anywhere — never inside a tag or an entity. Tags open at a cut are closed at the
    end of the part and reopened at the start of the next. Whitespace at a cut is dropped.
    A part exceeds ``limit`` only if the open tags alone do not leave room for one character.
    """
    if limit < 1:
        raise ValueError(f"limit must be positive, not {limit}")
    if text.strip() and text_length(text) <= limit and text == text.strip():
        return [text]  # most messages: nothing to cut
    atoms = _atoms(text)
    stacks = _open_tags(atoms)
    sizes = [text_length(atom.text) for atom in atoms]
    closing_sizes = [text_length(_closing(stack)) for stack in stacks]
    min_fill = limit // 4
    parts: list[str] = []
    start = 0
    while start < len(atoms):
        while start < len(atoms) and _is_space(atoms[start]):
            start += 1
        if start == len(atoms):
            break
        reopen = stacks[start]
        used = text_length("".join(tag.text for tag in reopen))
        best: dict[int, tuple[int, int]] = {}  # quality -> (last end, size of the part's body)
        longest: int | None = None
        end: int | None = None
        body = 0
        for position in range(start + 1, len(atoms) + 1):
            body += sizes[position - 1]
            if used + body > limit:
                break
            if used + body + closing_sizes[position] > limit:
                continue
            if position == len(atoms):
                end = position
                break
            best[_cut_quality(atoms, position)] = (position, body)
            longest = position
        if end is None:
            end = _choose_cut(best, min_fill) or longest or start + 1
        part = _render_part(atoms[start:end], reopen, stacks[end])
        if part:
            parts.append(part)
        start = end
    return parts


def _choose_cut(best: dict[int, tuple[int, int]], min_fill: int) -> int | None:
    """The best-quality cut that fills at least a quarter of the part, else the best at all."""
    qualities = (_PARAGRAPH, _LINE, _SENTENCE, _SPACE)
    for quality in qualities:
        if quality in best and best[quality][1] >= min_fill:
            return best[quality][0]
    for quality in qualities:
        if quality in best:
            return best[quality][0]
    return None


# -- answers -------------------------------------------------------------------------------------


def is_web_url(url: str) -> bool:
    """An absolute http(s) URL without spaces or control characters."""
    if not url or any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in {"http", "https"} and bool(parts.netloc)


def link(url: str, title: str) -> str:
    """``<a href="url">title</a>``, or the escaped title alone when the URL is not http(s)."""
    if not is_web_url(url):
        return escape(title)
    return f'<a href="{escape(url, quote=True)}">{escape(title)}</a>'


def _distinct_linked(citations: Sequence[Citation]) -> list[Citation]:
    seen: set[str] = set()
    linked: list[Citation] = []
    for citation in citations:
        if citation.doc_id in seen or not citation.source_url:
            continue
        if is_web_url(citation.source_url):
            seen.add(citation.doc_id)
            linked.append(citation)
    return linked


def render_reply(reply: Reply, messages: Messages) -> list[str]:
    """The agent's reply as Telegram HTML messages: its text, then links to the sources."""
    blocks = [escape(reply.text.replace("\r\n", "\n").strip())]
    linked = _distinct_linked(reply.citations)
    if linked:
        heading = f"<b>{escape(messages.get('tg_sources', reply.lang))}</b>"
        lines = [f"• {link(c.source_url or '', c.title)}" for c in linked]
        blocks.append("\n".join([heading, *lines]))
    return split_html("\n\n".join(block for block in blocks if block))


# -- callback data -------------------------------------------------------------------------------

_ID = re.compile(r"[1-9][0-9]{0,18}")
_MAX_ID = 2**63 - 1  # ids are stored as signed 64-bit integers


def _is_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None and int(value) <= _MAX_ID


def _one_of(*choices: str) -> Callable[[str], bool]:
    return lambda value: value in choices


def _rating(value: str) -> bool:
    return value in {"1", "2", "3", "4", "5"}


_CALLBACK_ARGS: dict[str, tuple[Callable[[str], bool], ...]] = {
    "fb": (_is_id, _one_of("up", "down")),
    "human": (lambda v: v == "0" or _is_id(v),),  # 0: not under an answer
    "lang": (_one_of("zh", "en"),),
    "forget": (_one_of("yes", "no"),),
    "rate": (_is_id, _rating),
    "claim": (_is_id,),
    "draft": (_is_id,),
    "resolve": (_is_id,),
    "back": (_is_id,),
}
CALLBACK_ACTIONS = frozenset(_CALLBACK_ARGS)


@dataclass(frozen=True)
class Callback:
    """Parsed button data: ``fb:123:up`` is ``Callback("fb", ("123", "up"))``."""

    action: str
    args: tuple[str, ...]

    def int_arg(self, index: int) -> int:
        return int(self.args[index])


def encode_callback(action: str, *args: str | int) -> str:
    """``action:arg:arg``; ValueError if it is too long or does not parse back to the same."""
    values = [str(arg) for arg in args]
    if any(":" in value for value in values):
        raise ValueError(f"callback arguments cannot contain ':': {values!r}")
    data = ":".join([action, *values])
    if len(data.encode("utf-8")) > CALLBACK_LIMIT:
        raise ValueError(f"callback data over {CALLBACK_LIMIT} bytes: {data!r}")
    if parse_callback(data) != Callback(action, tuple(values)):
        raise ValueError(f"invalid callback data: {data!r}")
    return data


def parse_callback(data: str | None) -> Callback | None:
    """The button's data, or None when it is not something :func:`encode_callback` makes."""
    if not data or not data.isascii() or len(data) > CALLBACK_LIMIT:
        return None
    action, *args = data.split(":")
    checks = _CALLBACK_ARGS.get(action)
    if checks is None or len(args) != len(checks):
        return None
    if not all(check(arg) for check, arg in zip(checks, args, strict=True)):
        return None
    return Callback(action, tuple(args))


# -- keyboards -----------------------------------------------------------------------------------


def _button(label: str, action: str, *args: str | int) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=encode_callback(action, *args))


def answer_keyboard(turn_id: int, lang: Lang, messages: Messages) -> InlineKeyboardMarkup:
    """Under an answer: 👍 / 👎, and "ask a counsellor"."""
    return InlineKeyboardMarkup(
        [
            [
                _button(messages.get("btn_helpful", lang), "fb", turn_id, "up"),
                _button(messages.get("btn_unhelpful", lang), "fb", turn_id, "down"),
            ],
            [_button(messages.get("btn_human", lang), "human", turn_id)],
        ]
    )


def human_keyboard(lang: Lang, messages: Messages) -> InlineKeyboardMarkup:
    """Only "ask a counsellor" (when the bot cannot answer at all right now)."""
    return InlineKeyboardMarkup([[_button(messages.get("btn_human", lang), "human", 0)]])


def language_keyboard(messages: Messages) -> InlineKeyboardMarkup:
    """中文 / English, each label in its own language."""
    return InlineKeyboardMarkup(
        [
            [
                _button(messages.get("btn_lang_zh", "zh"), "lang", "zh"),
                _button(messages.get("btn_lang_en", "en"), "lang", "en"),
            ]
        ]
    )


def forget_keyboard(lang: Lang, messages: Messages) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                _button(messages.get("btn_forget_yes", lang), "forget", "yes"),
                _button(messages.get("btn_forget_no", lang), "forget", "no"),
            ]
        ]
    )


def rating_keyboard(ticket_id: int, lang: Lang, messages: Messages) -> InlineKeyboardMarkup:
    """1 to 5 stars for the counsellor (the labels are the same in both languages)."""
    del lang, messages  # kept so that every keyboard is called the same way
    return InlineKeyboardMarkup(
        [[_button(f"{score}⭐", "rate", ticket_id, score) for score in range(1, 6)]]
    )


def card_keyboard(
    ticket_id: int, lang: Lang, messages: Messages, has_draft: bool
) -> InlineKeyboardMarkup:
    """Under a ticket card: Claim, Send draft (only if there is one), Resolve."""
    buttons = [_button(messages.get("btn_claim", lang), "claim", ticket_id)]
    if has_draft:
        buttons.append(_button(messages.get("btn_send_draft", lang), "draft", ticket_id))
    buttons.append(_button(messages.get("btn_resolve", lang), "resolve", ticket_id))
    return InlineKeyboardMarkup([buttons])


def back_to_bot_keyboard(ticket_id: int, lang: Lang, messages: Messages) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[_button(messages.get("btn_back_to_bot", lang), "back", ticket_id)]]
    )


# -- people and topics ---------------------------------------------------------------------------

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_COMPOUND_SURNAMES = frozenset(
    {
        "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐",
        "长孙", "宇文", "司徒", "夏侯", "轩辕", "端木", "独孤", "南宫", "西门", "百里",
        "呼延", "东郭", "澹台", "公冶", "太史", "申屠", "万俟", "闻人", "赫连", "钟离",
    }
)  # fmt: skip
_STUDENT_NAME_LIMIT = 24


def _chinese_surname(name: str) -> str:
    chars = "".join(_CJK.findall(name))
    return chars[:2] if chars[:2] in _COMPOUND_SURNAMES else chars[:1]


def _word(token: str) -> str:
    """A name token without emoji and punctuation at its edges."""
    start, end = 0, len(token)
    while start < end and not token[start].isalpha():
        start += 1
    while end > start and not token[end - 1].isalpha():
        end -= 1
    return token[start:end]


def student_label(
    first_name: str | None, last_name: str | None, lang: Lang, messages: Messages
) -> str:
    """How counsellors see a graduate, never with the full name.

    A Chinese name gives the surname: 张同学 (zh) / Student 张 (en); a Latin one the first given
    name and an initial (Wei L.); no usable name gives ``student_anonymous``.
    """
    first = (first_name or "").strip()
    last = (last_name or "").strip()
    anonymous = messages.get("student_anonymous", lang)
    surname = ""
    if _CJK.search(last):
        surname = _chinese_surname(last)
    elif _CJK.search(first):
        surname = _chinese_surname(first)
    if surname:
        return f"{surname}{anonymous}" if lang == "zh" else f"{anonymous} {surname}"
    words = [word for word in (_word(token) for token in f"{first} {last}".split()) if word]
    if not words:
        return anonymous
    given = words[0][:_STUDENT_NAME_LIMIT]
    return f"{given} {words[-1][0].upper()}." if len(words) > 1 else given


def _clip_units(text: str, limit: int) -> str:
    """The longest prefix of ``text`` within ``limit`` UTF-16 units, surrogate pairs kept whole."""
    used = 0
    for index, char in enumerate(text):
        used += text_length(char)
        if used > limit:
            return text[:index]
    return text


def topic_name(ticket_id: int, category_label: str, student: str) -> str:
    """``#42 · 权益 · 张同学``, on one line, cut to TOPIC_NAME_LIMIT."""
    fields = [f"#{ticket_id}", " ".join(category_label.split()), " ".join(student.split())]
    name = " · ".join(field for field in fields if field)
    if text_length(name) <= TOPIC_NAME_LIMIT:
        return name
    return _clip_units(name, TOPIC_NAME_LIMIT - len(ELLIPSIS)).rstrip() + ELLIPSIS


# -- counsellor cards ----------------------------------------------------------------------------

_REASONS = ("requested", "low_confidence", "sensitive", "crisis", "repeated_failure")
_ROLE_KEYS = {
    "user": "role_graduate",
    "graduate": "role_graduate",
    "bot": "role_bot",
    "counsellor": "role_counsellor",
}


def category_label(category: str, lang: Lang, messages: Messages) -> str:
    """政策 / Policy …; anything unknown (greetings, unclear questions) is 其他 / Other."""
    return messages.get(f"cat_{category if category in CATEGORIES else 'other'}", lang)


def priority_label(priority: str, lang: Lang, messages: Messages) -> str:
    if priority not in PRIORITIES:
        raise ValueError(f"unknown priority {priority!r}; expected one of {PRIORITIES}")
    return messages.get(f"prio_{priority}", lang)


SIGNALS = (
    "self_harm",
    "violence",
    "confined",
    "human",
    "illegal",
    "out_of_scope",
    "injection",
    "ordinary",
)
"""The message check's classes (``bot.agent.guard.Label`` values), each with a ``sig_`` label."""


def reason_label(reason: str | None, lang: Lang, messages: Messages) -> str:
    """The handoff reason (a HandoffReason value) in words; MISSING for none."""
    if not reason:
        return MISSING
    return messages.get(f"reason_{reason}", lang) if reason in _REASONS else reason


def _clip(text: str, limit: int) -> str:
    """``text`` escaped, cut with an ellipsis so that it fits in ``limit`` units ("" if none)."""
    escaped = escape(text)
    if text_length(escaped) <= limit:
        return escaped
    room = limit - len(ELLIPSIS)
    if room < 0:
        return ""
    used = 0
    for index, char in enumerate(text):
        used += text_length(escape(char))
        if used > room:
            return escape(text[:index]) + ELLIPSIS
    return escaped  # not reached: the whole text did not fit


def _transcript_prefix(role: str, lang: Lang, messages: Messages) -> str:
    key = _ROLE_KEYS.get(role)
    label = messages.get(key, lang) if key else role
    return escape(label) + ("：" if lang == "zh" else ": ")


def render_transcript(
    turns: Sequence[tuple[str, str]], lang: Lang, messages: Messages, limit: int
) -> str:
    """One ``role: text`` line per turn (escaped), the most recent turns that fit in ``limit``.

    Roles are ``user``/``graduate``, ``bot`` and ``counsellor``. When older turns are left out
    the first line is "…"; when not even the last turn fits, its beginning is shown.
    """
    if limit <= 0 or not turns:
        return ""
    lines = [
        _transcript_prefix(role, lang, messages) + escape(" ".join(text.split()))
        for role, text in turns
    ]
    marker = text_length(ELLIPSIS + "\n")
    kept: list[str] = []
    used = 0
    for count, line in enumerate(reversed(lines), start=1):
        cost = text_length(line) + (1 if kept else 0)
        reserve = 0 if count == len(lines) else marker
        if used + cost + reserve > limit:
            break
        kept.append(line)
        used += cost
    if kept:
        if len(kept) < len(lines):
            kept.append(ELLIPSIS)
        return "\n".join(reversed(kept))
    role, text = turns[-1]
    head = ELLIPSIS + "\n" if len(turns) > 1 else ""
    prefix = head + _transcript_prefix(role, lang, messages)
    room = limit - text_length(prefix)
    if room < len(ELLIPSIS) + 1:
        return ELLIPSIS if limit >= len(ELLIPSIS) else ""
    return prefix + _clip(" ".join(text.split()), room)


@dataclass(frozen=True)
class TicketCard:
    """What the counsellor group sees about a ticket. Texts are plain (escaped when rendered)."""

    ticket_id: int
    category: str
    """One of CATEGORIES (an Intent value also works: greeting, unclear … become "other")."""
    priority: str
    """One of PRIORITIES."""
    reason: str | None
    """A HandoffReason value."""
    student: str
    """From :func:`student_label`."""
    graduate_lang: Lang
    region: str | None
    summary: str
    transcript: Sequence[tuple[str, str]] = ()
    """(role, text) pairs, oldest first."""
    draft: str | None = None
    """The bot's proposed answer, if it had a reliable one."""
    citations: Sequence[Citation] = ()
    signals: Sequence[str] = ()
    """What the message check found (the decided class first); the others are shown with
    the reason, e.g. a crisis told inside a wage question."""


def reason_with_signals(
    reason: str | None, signals: Sequence[str], lang: Lang, messages: Messages
) -> str:
    """The reason in words, then what else the message check found in the message:
    "危机 · 同时：有就业或权益问题"."""
    said = reason_label(reason, lang, messages)
    others = [
        messages.get(f"sig_{signal}", lang)
        for signal in dict.fromkeys(signals[1:])
        if signal in SIGNALS and signal != reason
    ]
    if not others:
        return said
    joined = ("；" if lang == "zh" else "; ").join(others)
    return messages.get("grp_card_also", lang, reason=said, also=joined)


def _citation_lines(citations: Sequence[Citation]) -> list[str]:
    seen: set[str] = set()
    lines: list[str] = []
    for citation in citations:
        if citation.doc_id in seen:
            continue
        seen.add(citation.doc_id)
        title = link(citation.source_url or "", citation.title)
        number = f"（{escape(citation.doc_number)}）" if citation.doc_number else ""
        lines.append(f"• {title}{number} · <code>{escape(citation.doc_id)}</code>")
    return lines


_TRANSCRIPT_FLOOR = 600
_SUMMARY_LIMIT = 500  # the summary is meant to be one line


def render_ticket_card(
    card: TicketCard, lang: Lang, messages: Messages, limit: int = MESSAGE_LIMIT
) -> str:
    """The ``grp_card`` message for a ticket, always within ``limit``.

    When it is too long the transcript is shortened first (oldest turns go; a very long draft
    still leaves it the latest few hundred characters), then the draft, then the summary, then
    the list of sources.
    """
    draft = (card.draft or "").strip() or messages.get("grp_no_draft", lang)
    citations = _citation_lines(card.citations)
    values = {
        "ticket_id": str(card.ticket_id),
        "category": escape(category_label(card.category, lang, messages)),
        "priority": escape(priority_label(card.priority, lang, messages)),
        "reason": escape(reason_with_signals(card.reason, card.signals, lang, messages)),
        "student": escape(card.student.strip() or messages.get("student_anonymous", lang)),
        "lang": escape(messages.get(f"btn_lang_{card.graduate_lang}", lang)),
        "region": escape(card.region.strip()) if card.region and card.region.strip() else MISSING,
        "summary": _clip(card.summary.strip(), _SUMMARY_LIMIT) or MISSING,
        "transcript": render_transcript(card.transcript, lang, messages, limit) or MISSING,
        "draft": escape(draft),
        "citations": "\n".join(citations) or MISSING,
    }

    def render() -> str:
        # not messages.get(): the card's {lang} placeholder would clash with its lang parameter
        return messages.template("grp_card", lang).format(**values)

    def room_for(field: str) -> int:
        saved, values[field] = values[field], ""
        room = limit - text_length(render())
        values[field] = saved
        return room

    text = render()
    if text_length(text) <= limit:
        return text
    values["transcript"] = render_transcript(
        card.transcript, lang, messages, room_for("transcript")
    )
    if text_length(render()) > limit:
        # the draft alone is too long: keep the latest turns (a third of the room, at most
        # _TRANSCRIPT_FLOOR) and give the draft the rest
        values["transcript"] = values["draft"] = ""
        free = limit - text_length(render())
        floor = min(_TRANSCRIPT_FLOOR, free // 3)
        values["transcript"] = render_transcript(card.transcript, lang, messages, floor)
        values["draft"] = _clip(draft, room_for("draft"))
    if text_length(render()) > limit:
        values["summary"] = _clip(card.summary.strip(), room_for("summary"))
    while text_length(render()) > limit and len(citations) > 0:
        citations.pop()
        values["citations"] = "\n".join([*citations, ELLIPSIS])
    text = render()
    return text if text_length(text) <= limit else split_html(text, limit)[0]
