"""A local fake of the Telegram Bot API, served over real HTTP on 127.0.0.1, for end-to-end tests.

The real python-telegram-bot ``Application``/``Bot`` talks to it exactly as to Telegram::

    with FakeTelegram() as tg:                       # or: async with FakeTelegram() as tg
        bot = Bot(tg.token, base_url=f"{tg.base_url}/bot",
                  base_file_url=f"{tg.base_url}/file/bot")
        alice = tg.user(1001, "Alice", language_code="zh")
        tg.send_command(alice, "start")              # an Update, queued for getUpdates/webhook
        reply = tg.wait_for(chat=alice, text="欢迎")   # or: await tg.await_for(...)

A pytest fixture is three lines (``with FakeTelegram() as fake: yield fake``); leaving the
``with`` block raises AssertionError if the bot ever broke the Bot API spec (see below).

The server runs on its own asyncio loop in a background thread, so it serves sync tests and
async tests alike (the test's loop runs the bot). Every public method is thread-safe and
non-blocking, except the ``wait_*`` helpers (sync tests) whose ``await_*`` twins are for async
tests. Nothing here sleeps for a fixed time.

Endpoints: ``POST/GET {base_url}/bot{token}/{method}`` (query string, urlencoded, JSON and
multipart bodies, uploads and ``attach://`` parts; JSON-encoded values in form bodies are
decoded by the parameter's type in the spec) and ``GET {base_url}/file/bot{token}/{file_path}``.
A wrong token gets ``401 {"ok": false, "error_code": 401, "description": "Unauthorized"}``.

Spec validation: the official description (``../shared/telegram-bot-api-spec/api.min.json``,
see :mod:`tests.fakes.telegram_spec`; ``$GRADGUIDE_BOT_API_SPEC`` or ``spec_path=`` name another
file) checks every request: the method exists (spelled exactly as in the spec), required
parameters are present, no unknown parameter is sent (stricter than Telegram, which ignores
unknown parameters, so that typos in the bot fail tests). A violation is
answered like Telegram (400, or 404 "Not Found: method not found") and recorded in
``tg.violations``; ``tg.assert_no_violations()`` fails on any, so does leaving the context
manager unless ``tg.expect_violations()`` was called. Every reply and every generated Update is
also checked against the spec (a problem there is recorded as a "fake bug: ..." violation).
Without the file the fake works, ``tg.spec_available`` is False and ``tg.spec_skip_reason``
says why. A method in the spec that the fake lacks is answered 501 and listed in
``tg.unimplemented``.

World: ``tg.bot`` (a FakeUser), ``tg.user(id, first_name, ...)`` (users and their private chats,
chat id == user id; a user who never wrote to the bot gets 403 "bot can't initiate
conversation" unless created with ``started=True``), ``tg.forum(chat_id, title)`` (forum
supergroups; the bot is an administrator allowed to manage topics), ``tg.group(...)``,
``tg.join``, ``tg.block``, ``tg.create_topic``. Message ids increase per chat; a topic's
``message_thread_id`` is the id of its ``forum_topic_created`` service message.

Acting as people (each builds an Update, queues it for getUpdates, or POSTs it to the webhook):
``send_text``, ``send_command``, ``send_photo``, ``send_document``, ``send_voice``,
``send_sticker``, ``click`` (a callback_query; the button must be on the message),
``raw_update``. In groups privacy mode applies: a bot that is not an administrator sees only
commands and replies to it.

What the bot did: ``tg.sent`` (a :class:`SentRecord` per message sent, copied, forwarded,
edited or deleted), ``tg.requests`` / ``tg.calls(method)`` (every :class:`RequestRecord`),
``tg.messages_to(chat, thread_id)``, ``tg.chat_history(chat, thread_id)``, ``tg.topics(chat)``,
``tg.commands(...)``, ``tg.callback_answers``, ``tg.webhook_attempts``.

Waiting: ``wait_for``/``await_for`` (first matching SentRecord; on timeout an AssertionError
that dumps what was sent), ``wait_for_call``/``await_call`` (a request), ``wait_idle``/
``await_idle`` (no pending update, no request in flight, quiet for a moment), ``mark()``.

Webhooks: ``setWebhook``/``deleteWebhook``/``getWebhookInfo`` or ``tg.set_webhook(...)``;
updates are POSTed with ``X-Telegram-Bot-Api-Secret-Token``, several at once (up to the
webhook's ``max_connections``) but one update of a chat at a time, in order: a chat's next
update waits until the one before it is delivered (unless ``tg.webhook_chat_order = False``).
A non-2xx answer, a connection error or no answer within ``webhook_timeout_s`` is retried
after ``webhook_retry_delays`` (the last delay repeats); ``tg.add_webhook_replica(url)`` or
``tg.webhook_targets = [url1, url2]`` (a load balancer in front of the webhook URL) spread the
attempts round-robin.
``post_webhook_raw``/``apost_webhook_raw`` POST an update with any (wrong or missing) secret
and return the status.

Faults: ``tg.fail(method, kind, times, executed=...)`` and ``tg.fail_rate(p, kinds, seed)``;
kinds are "429" (retry_after ``tg.retry_after``), "500", "502" (nginx HTML page) and "timeout"
(the request is held ``tg.timeout_hold_s`` seconds; ``executed=True`` carries the call out
anyway, as Telegram may). Every injected fault is recorded in ``tg.injected``.

Not modelled: inline mode, payments, media groups, polls, reactions, business features,
MarkdownV2 parsing (text is kept as sent), automatic url/mention entities, real media
transcoding (photo sizes share the uploaded bytes), downloading files given by URL.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import copy
import functools
import json
import mimetypes
import random
import re
import socket
import struct
import threading
import time
import zlib
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar, cast
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from tests.fakes.telegram_spec import BotApiSpec, RequestProblem, coerce_value, load_spec

JSONDict = dict[str, Any]
FaultKind = Literal["429", "500", "502", "timeout"]
T = TypeVar("T")

DEFAULT_TOKEN = "123456:TEST-token"
DEFAULT_FORUM_ID = -1001234567890
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
DOWNLOAD_LIMIT = 20 * 1024 * 1024
UPLOAD_LIMIT = 50 * 1024 * 1024
TOPIC_COLORS = (7322096, 16766590, 13338331, 9367192, 16749490, 16478047)
DELETE_WINDOW_S = 48 * 3600
"""deleteMessage(s): "A message can only be deleted if it was sent less than 48 hours ago"
(``tg.age_messages`` makes messages older)."""
DELETE_BATCH_LIMIT = 100
"""deleteMessages: "A JSON-serialized list of 1-100 identifiers of messages to delete"."""
FAULT_KINDS = ("429", "500", "502", "timeout")
UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
)
NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
MEDIA_KINDS = ("photo", "document", "voice", "sticker", "audio", "video", "animation", "video_note")
CONTENT_KEYS = (
    "text",
    "entities",
    "link_preview_options",
    *MEDIA_KINDS,
    "caption",
    "caption_entities",
    "show_caption_above_media",
    "has_media_spoiler",
    "contact",
    "dice",
    "location",
    "venue",
)
BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_FILE_PREFIX = {
    "photo": "AgACAgIAAxkBAAI",
    "document": "BQACAgIAAxkBAAI",
    "voice": "AwACAgIAAxkBAAI",
    "sticker": "CAACAgIAAxkBAAI",
    "audio": "CQACAgIAAxkBAAI",
    "video": "BAACAgIAAxkBAAI",
}
_FILE_FOLDER = {
    "photo": ("photos", ".jpg"),
    "document": ("documents", ""),
    "voice": ("voice", ".oga"),
    "sticker": ("stickers", ".webp"),
    "audio": ("music", ".mp3"),
    "video": ("videos", ".mp4"),
}
_DEFAULT_MIME = {
    "voice": "audio/ogg",
    "audio": "audio/mpeg",
    "video": "video/mp4",
    "document": "application/octet-stream",
}
# Used to type parameters when the spec file is absent; everything else is a String.
_FALLBACK_TYPES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("chat_id", "from_chat_id"), ("Integer", "String")),
    **dict.fromkeys(
        (
            "message_id",
            "message_thread_id",
            "user_id",
            "offset",
            "limit",
            "timeout",
            "max_connections",
            "icon_color",
            "cache_time",
            "duration",
            "width",
            "height",
        ),
        ("Integer",),
    ),
    **dict.fromkeys(
        (
            "drop_pending_updates",
            "show_alert",
            "disable_notification",
            "protect_content",
            "has_spoiler",
            "allow_paid_broadcast",
            "disable_content_type_detection",
            "supports_streaming",
            "show_caption_above_media",
        ),
        ("Boolean",),
    ),
    **dict.fromkeys(
        (
            "reply_markup",
            "reply_parameters",
            "link_preview_options",
            "scope",
            "entities",
            "caption_entities",
            "allowed_updates",
            "commands",
            "message_ids",
            "media",
            "reaction",
        ),
        ("Object",),
    ),
}
_API_PATH = re.compile(r"/bot(?P<token>[^/]+)/(?P<method>[^/]*)")
_FILE_PATH = re.compile(r"/file/bot(?P<token>[^/]+)/(?P<path>.+)")
_ATTACH_RE = re.compile(r"attach://([\w\-.]+)")
_INT_RE = re.compile(r"[+-]?\d+")
_COMMAND_RE = re.compile(r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>])")
_BOT_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
_NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    "</body>\r\n</html>\r\n"
)


# -- small helpers ----------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def make_png(
    width: int = 320, height: int = 240, rgb: tuple[int, int, int] = (40, 110, 200)
) -> bytes:
    """A valid, single-colour PNG image."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def image_size(content: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG, GIF or WebP image; None when it is not one of those."""
    if content.startswith(b"\x89PNG\r\n\x1a\n") and len(content) >= 24:
        width, height = struct.unpack(">II", content[16:24])
        return int(width), int(height)
    if content[:6] in (b"GIF87a", b"GIF89a") and len(content) >= 10:
        width, height = struct.unpack("<HH", content[6:10])
        return int(width), int(height)
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return 512, 512
    if content.startswith(b"\xff\xd8"):
        index = 2
        while index + 9 < len(content):
            if content[index] != 0xFF:
                index += 1
                continue
            marker = content[index + 1]
            length = int.from_bytes(content[index + 2 : index + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", content[index + 5 : index + 9])
                return int(width), int(height)
            index += 2 + length
        return 800, 600
    return None


class EntityParseError(ValueError):
    """Telegram's "can't parse entities" reason."""


_HTML_ENTITY_RE = re.compile(r"&(#[xX][0-9a-fA-F]{1,8}|#[0-9]{1,10}|[a-zA-Z]{2,8});")
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
    "tg-time": "date_time",
}


def _decode_html_entity(source: str, index: int) -> tuple[str, int] | None:
    match = _HTML_ENTITY_RE.match(source, index)
    if match is None:
        return None
    name = match.group(1)
    if name.startswith("#"):
        try:
            code = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
        except ValueError:
            return None
        if not 0 < code <= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        return chr(code), match.end()
    decoded = _NAMED_ENTITIES.get(name)
    return (decoded, match.end()) if decoded is not None else None


def _unescape_attribute(value: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(value):
        decoded = _decode_html_entity(value, index) if value[index] == "&" else None
        if decoded is None:
            out.append(value[index])
            index += 1
        else:
            out.append(decoded[0])
            index = decoded[1]
    return "".join(out)


def _normalize_url(url: str) -> str | None:
    url = url.strip()
    if not url:
        return None
    if "://" not in url and not url.startswith(("tg:", "mailto:")):
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme in ("http", "https", "ftp"):
        if not parts.netloc:
            return None
        return url if parts.path or parts.query or parts.fragment else url + "/"
    return url if parts.scheme in ("tg", "ton", "mailto") else None


@dataclass
class _OpenTag:
    name: str
    start: int
    attrs: dict[str, str]
    language: str | None = None


def parse_html(source: str) -> tuple[str, list[JSONDict]]:
    """Telegram's HTML parse mode: (plain text, entities) or EntityParseError.

    Follows the Bot API's rules and messages: supported tags only, balanced and properly
    nested, byte offsets (UTF-8, in the source) in the errors, and just the four named
    entities &lt; &gt; &amp; &quot; plus numeric ones (others stay as written).
    """
    out: list[str] = []
    u16 = 0
    stack: list[_OpenTag] = []
    entities: list[JSONDict] = []
    size = len(source)

    def byte_offset(index: int) -> int:
        return len(source[:index].encode("utf-8"))

    index = 0
    while index < size:
        char = source[index]
        if char == "&":
            decoded = _decode_html_entity(source, index)
            if decoded is not None:
                out.append(decoded[0])
                u16 += utf16_len(decoded[0])
                index = decoded[1]
                continue
        if char != "<":
            out.append(char)
            u16 += 2 if ord(char) > 0xFFFF else 1
            index += 1
            continue
        begin = byte_offset(index)
        index += 1
        if index < size and source[index] == "/":
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {begin}")
            index += 1
            end = index
            while end < size and not source[end].isspace() and source[end] != ">":
                end += 1
            name = source[index:end].lower()
            while end < size and source[end].isspace():
                end += 1
            if end >= size or source[end] != ">":
                raise EntityParseError(f"Unclosed end tag at byte offset {begin}")
            top = stack[-1]
            if name and name != top.name:
                raise EntityParseError(
                    f'Unmatched end tag at byte offset {begin}, expected "</{top.name}>", '
                    f'found "</{name}>"'
                )
            stack.pop()
            index = end + 1
            _close_tag(top, u16, stack, entities, "".join(out))
            continue
        end = index
        while end < size and not source[end].isspace() and source[end] != ">":
            end += 1
        if end >= size:
            raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
        name = source[index:end].lower()
        if name not in _HTML_TAGS:
            raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {begin}')
        attrs: dict[str, str] = {}
        index = end
        while True:
            while index < size and source[index].isspace():
                index += 1
            if index >= size:
                raise EntityParseError(f'Unclosed start tag "{name}" at byte offset {begin}')
            if source[index] == ">":
                index += 1
                break
            attr_start = index
            while index < size and not source[index].isspace() and source[index] not in "=>":
                index += 1
            attr = source[attr_start:index].lower()
            if not attr:
                raise EntityParseError(
                    f'Empty attribute name in the tag "{name}" at byte offset {begin}'
                )
            while index < size and source[index].isspace():
                index += 1
            if index >= size:
                raise EntityParseError(f'Unclosed start tag "{name}" at byte offset {begin}')
            if source[index] != "=":
                attrs.setdefault(attr, "")
                continue
            index += 1
            while index < size and source[index].isspace():
                index += 1
            if index >= size:
                raise EntityParseError(f'Unclosed start tag "{name}" at byte offset {begin}')
            if source[index] in "\"'":
                closing = source.find(source[index], index + 1)
                if closing < 0:
                    raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
                value = _unescape_attribute(source[index + 1 : closing])
                index = closing + 1
            else:
                value_start = index
                while index < size and (
                    (source[index].isascii() and source[index].isalnum()) or source[index] in ".-"
                ):
                    index += 1
                if index < size and not source[index].isspace() and source[index] != ">":
                    raise EntityParseError(
                        f"Unexpected end of name token at byte offset {byte_offset(value_start)}"
                    )
                value = source[value_start:index]
            attrs.setdefault(attr, value)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {begin}'
            )
        if name == "tg-emoji" and not _INT_RE.fullmatch(attrs.get("emoji-id", "")):
            raise EntityParseError(
                f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset {begin}'
            )
        if name == "tg-time" and not _INT_RE.fullmatch(attrs.get("unix", "")):
            raise EntityParseError(
                f'Tag "tg-time" must have attribute "unix" at byte offset {begin}'
            )
        stack.append(_OpenTag(name, u16, attrs))
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(out), entities


def _close_tag(
    tag: _OpenTag, u16: int, stack: list[_OpenTag], entities: list[JSONDict], text: str
) -> None:
    length = u16 - tag.start
    language = tag.attrs.get("class", "")
    if (
        tag.name == "code"
        and stack
        and stack[-1].name == "pre"
        and language.startswith("language-")
    ):
        stack[-1].language = language.removeprefix("language-")
        return
    if length <= 0:
        return
    entity: JSONDict = {"type": _HTML_TAGS[tag.name], "offset": tag.start, "length": length}
    if tag.name == "a":
        href = tag.attrs.get("href") or text.encode("utf-16-le")[tag.start * 2 :].decode(
            "utf-16-le"
        )
        url = _normalize_url(href)
        if url is None:
            return
        entity["url"] = url
    elif tag.name == "pre" and tag.language:
        entity["language"] = tag.language
    elif tag.name == "blockquote" and "expandable" in tag.attrs:
        entity["type"] = "expandable_blockquote"
    elif tag.name == "tg-emoji":
        entity["custom_emoji_id"] = tag.attrs["emoji-id"]
    elif tag.name == "tg-time":
        entity["unix_time"] = int(tag.attrs["unix"])
        if tag.attrs.get("format"):
            entity["date_time_format"] = tag.attrs["format"]
    entities.append(entity)


def _strip_text(text: str, entities: list[JSONDict]) -> tuple[str, list[JSONDict]]:
    """Telegram trims surrounding whitespace; entities follow the text."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    shift = utf16_len(text[: len(text) - len(text.lstrip())])
    limit = utf16_len(stripped)
    kept: list[JSONDict] = []
    for entity in entities:
        start = max(int(entity["offset"]) - shift, 0)
        end = min(int(entity["offset"]) + int(entity["length"]) - shift, limit)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


def _command_entities(text: str) -> list[JSONDict]:
    return [
        {
            "type": "bot_command",
            "offset": utf16_len(text[: match.start()]),
            "length": utf16_len(match.group()),
        }
        for match in _COMMAND_RE.finditer(text)
    ]


def _media_kind(message: Mapping[str, Any]) -> str | None:
    return next((kind for kind in MEDIA_KINDS if kind in message), None)


def _file_ids(message: Mapping[str, Any]) -> list[str]:
    kind = _media_kind(message)
    if kind is None:
        return []
    media = message[kind]
    if isinstance(media, list):
        return [str(size["file_id"]) for size in media]
    return [str(media["file_id"])]


def _inline_buttons(markup: object) -> list[JSONDict]:
    if not isinstance(markup, dict):
        return []
    rows = markup.get("inline_keyboard")
    if not isinstance(rows, list):
        return []
    return [b for row in rows if isinstance(row, list) for b in row if isinstance(b, dict)]


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- records and world objects ----------------------------------------------------------------


@dataclass
class FakeUser:
    """A Telegram user (or the bot itself)."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_bot: bool = False
    started: bool = False  # wrote to the bot privately; otherwise a DM gets 403
    blocked: bool = False  # blocked the bot; a DM gets 403

    def to_api(self) -> JSONDict:
        data: JSONDict = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data


@dataclass
class FakeTopic:
    """A forum topic; ``message_thread_id`` is its id. ``topic["name"]`` works too."""

    chat_id: int
    message_thread_id: int
    name: str
    icon_color: int
    icon_custom_emoji_id: str | None = None
    closed: bool = False
    deleted: bool = False

    def to_api(self) -> JSONDict:
        data: JSONDict = {
            "message_thread_id": self.message_thread_id,
            "name": self.name,
            "icon_color": self.icon_color,
        }
        if self.icon_custom_emoji_id:
            data["icon_custom_emoji_id"] = self.icon_custom_emoji_id
        return data

    def __getitem__(self, key: str) -> Any:
        """Read it like the ForumTopic object the Bot API returns (plus closed/deleted)."""
        if key in ("closed", "deleted", "chat_id"):
            return getattr(self, key)
        return self.to_api()[key]


@dataclass
class FakeChat:
    """A chat: private (id == the user's id), group or supergroup (forum if ``is_forum``)."""

    id: int
    type: str
    title: str | None = None
    username: str | None = None
    user: FakeUser | None = None
    is_forum: bool = False
    bot_can_manage_topics: bool = True
    bot_can_delete_messages: bool = True
    members: dict[int, str] = field(default_factory=dict)  # user id -> status
    topics: dict[int, FakeTopic] = field(default_factory=dict)
    messages: dict[int, JSONDict] = field(default_factory=dict)  # current, not deleted
    last_message_id: int = 0

    def to_api(self) -> JSONDict:
        data: JSONDict = {"id": self.id, "type": self.type}
        if self.user is not None:
            data.update(
                {
                    k: v
                    for k, v in self.user.to_api().items()
                    if k in ("first_name", "last_name", "username")
                }
            )
        else:
            data["title"] = self.title or ""
            if self.username:
                data["username"] = self.username
        if self.is_forum:
            data["is_forum"] = True
        return data

    def to_full_info(self) -> JSONDict:
        data = self.to_api()
        data.update(
            {
                "accent_color_id": abs(self.id) % 7,
                "max_reaction_count": 11,
                "accepted_gift_types": {
                    "unlimited_gifts": False,
                    "limited_gifts": False,
                    "unique_gifts": False,
                    "premium_subscription": False,
                    "gifts_from_channels": False,
                },
            }
        )
        if self.type != "private":
            data["permissions"] = {
                "can_send_messages": True,
                "can_send_photos": True,
                "can_send_documents": True,
                "can_send_voice_notes": True,
                "can_manage_topics": False,
            }
        return data


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request."""

    field: str
    filename: str | None
    content: bytes
    mime_type: str | None

    def __repr__(self) -> str:
        return f"UploadedFile({self.field!r}, {self.filename!r}, {len(self.content)} bytes)"


@dataclass
class StoredFile:
    kind: str
    file_id: str
    file_unique_id: str
    content: bytes
    file_name: str | None = None
    mime_type: str | None = None
    width: int = 0
    height: int = 0
    duration: int = 0
    emoji: str | None = None
    source_url: str | None = None
    file_path: str | None = None
    group: tuple[str, ...] = ()  # photos: the file ids of all sizes

    def to_api(self) -> JSONDict:
        base: JSONDict = {"file_id": self.file_id, "file_unique_id": self.file_unique_id}
        if self.kind == "photo":
            return {**base, "width": self.width, "height": self.height, "file_size": self.size}
        if self.kind == "sticker":
            data = {
                **base,
                "type": "regular",
                "width": self.width or 512,
                "height": self.height or 512,
                "is_animated": (self.file_name or "").endswith(".tgs"),
                "is_video": (self.file_name or "").endswith(".webm"),
            }
            if self.emoji:
                data["emoji"] = self.emoji
            data["file_size"] = self.size
            return data
        data = dict(base)
        if self.kind in ("voice", "audio", "video"):
            data["duration"] = self.duration
        if self.kind == "video":
            data.update(width=self.width or 640, height=self.height or 360)
        if self.file_name and self.kind in ("document", "audio", "video"):
            data["file_name"] = self.file_name
        if self.mime_type:
            data["mime_type"] = self.mime_type
        data["file_size"] = self.size
        return data

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass
class SentRecord:
    """One thing the bot did to a message: sent, copied, forwarded, edited or deleted it.

    ``text`` is the text or caption as Telegram shows it (after HTML parsing), ``source_text``
    what the bot sent; ``reply_markup`` is the markup as sent (None: none or removed);
    ``message`` is the message after the call (the copy for copyMessage, the removed message
    for deleteMessage).
    """

    index: int
    method: str
    chat_id: int
    message_id: int
    message_thread_id: int | None
    text: str | None
    source_text: str | None
    parse_mode: str | None
    entities: list[JSONDict]
    reply_markup: JSONDict | None
    media: str | None
    file_ids: list[str]
    message: JSONDict
    params: JSONDict
    time: float

    @property
    def buttons(self) -> list[JSONDict]:
        """The inline keyboard buttons, row after row."""
        return _inline_buttons(self.reply_markup)

    @property
    def callback_data(self) -> list[str]:
        return [str(b["callback_data"]) for b in self.buttons if "callback_data" in b]

    @property
    def button_texts(self) -> list[str]:
        return [str(b.get("text", "")) for b in self.buttons]

    def summary(self) -> str:
        where = f"chat={self.chat_id}" + (
            f" thread={self.message_thread_id}" if self.message_thread_id else ""
        )
        media = f" media={self.media}" if self.media else ""
        keys = f" buttons={self.callback_data}" if self.buttons else ""
        return (
            f"#{self.index} {self.method} {where} msg={self.message_id}{media} "
            f"text={_short(self.text)}{keys}"
        )


@dataclass
class RequestRecord:
    """One HTTP request to the Bot API endpoint, with the reply the fake gave."""

    method: str
    params: JSONDict
    time: float
    http_method: str
    content_type: str
    attachments: dict[str, UploadedFile] = field(default_factory=dict)
    status: int | None = None
    response: JSONDict | None = None
    fault: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def description(self) -> str | None:
        return None if self.response is None else self.response.get("description")


@dataclass(frozen=True)
class InjectedFault:
    method: str
    kind: str
    executed: bool
    time: float


@dataclass(frozen=True)
class WebhookAttempt:
    url: str
    update_id: int
    status: int | None
    error: str | None
    time: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _FaultRule:
    method: str | None
    kind: str
    remaining: int
    executed: bool
    retry_after: int | None


@dataclass
class _FaultRate:
    p: float
    kinds: tuple[str, ...]
    methods: frozenset[str] | None
    exclude: frozenset[str]
    executed: bool
    rng: random.Random


@dataclass
class _Webhook:
    url: str
    secret_token: str | None = None
    allowed_updates: list[str] | None = None
    max_connections: int = 40
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass
class _Call:
    method: str
    params: JSONDict
    attachments: dict[str, UploadedFile]


class ApiError(Exception):
    """An error reply: ``{"ok": false, "error_code": code, "description": ...}``."""

    def __init__(self, code: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


UserRef = FakeUser | int
ChatRef = FakeChat | FakeUser | int


class _MessageLike(Protocol):
    """A python-telegram-bot Message (or anything with these two attributes)."""

    @property
    def message_id(self) -> int: ...

    @property
    def chat_id(self) -> int: ...


MessageRef = SentRecord | _MessageLike | Mapping[str, Any] | int
Handler = Callable[[_Call], Awaitable[Any]]


# -- the fake ---------------------------------------------------------------------------------


class FakeTelegram:
    """A Telegram Bot API server on 127.0.0.1 with a scriptable world; see the module docs."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        spec_path: Path | str | None = None,
        bot_username: str = "gradguide_test_bot",
        bot_first_name: str = "GradGuide Test",
        fail_on_violations: bool = True,
        privacy_mode: bool = True,
        timeout_hold_s: float = 3.0,
        retry_after: int = 1,
        webhook_retry_delays: Sequence[float] = (0.05, 0.1, 0.25, 0.5, 1.0),
        webhook_timeout_s: float = 10.0,
    ) -> None:
        self.token = token
        bot_id = int(token.split(":", 1)[0]) if _INT_RE.fullmatch(token.split(":", 1)[0]) else 1
        self.bot = FakeUser(bot_id, bot_first_name, username=bot_username, is_bot=True)
        loaded = load_spec(spec_path)
        self.spec: BotApiSpec | None = loaded.spec
        self.spec_path: Path = loaded.path
        self.spec_skip_reason: str | None = loaded.skip_reason
        self.fail_on_violations = fail_on_violations
        self.privacy_mode = privacy_mode
        self.timeout_hold_s = timeout_hold_s
        self.retry_after = retry_after
        self.webhook_retry_delays = tuple(webhook_retry_delays)
        self.webhook_timeout_s = webhook_timeout_s
        self.webhook_chat_order = True
        """False: deliver a chat's updates without waiting for the one before it to be
        delivered. Telegram keeps the order; tests of what a replica does when updates of
        one chat are processed at once anyway (a replica that lost its chat lease) set it."""

        self.violations: list[str] = []
        self.unimplemented: list[str] = []
        self.requests: list[RequestRecord] = []
        self.sent: list[SentRecord] = []
        self.injected: list[InjectedFault] = []
        self.webhook_attempts: list[WebhookAttempt] = []
        self.webhook_targets: list[str] = []
        self.webhook_replicas: list[str] = []
        self.callback_answers: dict[str, JSONDict] = {}
        self.downloads: list[str] = []
        self.filtered_updates: list[JSONDict] = []

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._users: dict[int, FakeUser] = {bot_id: self.bot}
        self._chats: dict[int, FakeChat] = {}
        self._files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self._file_seq = 0
        self._path_seq = 0
        self._unchecked_updates: set[int] = set()
        self._pending: list[JSONDict] = []
        self._next_update_id = 700_000_001
        self._allowed_updates: list[str] | None = None
        self._webhook: _Webhook | None = None
        self._round_robin = 0
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._callback_queries: dict[str, bool] = {}  # id -> answered
        self._query_seq = 0
        self._fault_rules: list[_FaultRule] = []
        self._fault_rate: _FaultRate | None = None
        self._poll_generation = 0
        self._in_flight = 0
        self._last_activity = time.monotonic()

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._delivery: asyncio.Task[None] | None = None
        self._delivery_event: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._slots_size = 0
        self._stop_event: asyncio.Event | None = None
        self._update_waiters: list[asyncio.Future[None]] = []
        self._stopping = False
        self._port: int | None = None

        media = {kind: self._media_handler(kind) for kind in _FILE_PREFIX}
        self._methods: dict[str, Handler] = {
            "getMe": self._api_get_me,
            "logOut": self._api_true,
            "close": self._api_true,
            "getUpdates": self._api_get_updates,
            "setWebhook": self._api_set_webhook,
            "deleteWebhook": self._api_delete_webhook,
            "getWebhookInfo": self._api_get_webhook_info,
            "sendMessage": self._api_send_message,
            "editMessageText": self._api_edit_message_text,
            "editMessageReplyMarkup": self._api_edit_message_reply_markup,
            "deleteMessage": self._api_delete_message,
            "deleteMessages": self._api_delete_messages,
            "answerCallbackQuery": self._api_answer_callback_query,
            "sendChatAction": self._api_send_chat_action,
            "copyMessage": self._api_copy_message,
            "forwardMessage": self._api_forward_message,
            "sendPhoto": media["photo"],
            "sendDocument": media["document"],
            "sendVoice": media["voice"],
            "sendSticker": media["sticker"],
            "sendAudio": media["audio"],
            "sendVideo": media["video"],
            "getFile": self._api_get_file,
            "createForumTopic": self._api_create_forum_topic,
            "closeForumTopic": self._api_close_forum_topic,
            "reopenForumTopic": self._api_reopen_forum_topic,
            "editForumTopic": self._api_edit_forum_topic,
            "deleteForumTopic": self._api_delete_forum_topic,
            "setMyCommands": self._api_set_my_commands,
            "getMyCommands": self._api_get_my_commands,
            "deleteMyCommands": self._api_delete_my_commands,
            "getChat": self._api_get_chat,
            "getChatMember": self._api_get_chat_member,
        }

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def spec_available(self) -> bool:
        return self.spec is not None

    @property
    def implemented_methods(self) -> list[str]:
        return sorted(self._methods)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeTelegram is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (the bot: ``{base_url}/bot``, ``{base_url}/file/bot``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """``{base_url}/bot{token}``: POST ``{api_url}/{method}``."""
        return f"{self.base_url}/bot{self.token}"

    def start(self) -> FakeTelegram:
        """Listen on a free loopback port (in a background thread with its own loop)."""
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = int(sock.getsockname()[1])
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run_loop, args=(loop,), name=f"fake-telegram-{self._port}", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._astart(sock), loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Stop serving; held and long-polling requests are released at once."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._astop(), loop).result(timeout=15)
        self._finish(loop, thread)

    async def astart(self) -> FakeTelegram:
        return self.start()  # starting does not wait on the caller's loop

    async def astop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._astop(), loop))
        self._finish(loop, thread)

    def _finish(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = None
        self._thread = None

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc_type is None and self.fail_on_violations:
            self.assert_no_violations()

    async def __aenter__(self) -> FakeTelegram:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()
        if exc_type is None and self.fail_on_violations:
            self.assert_no_violations()

    def assert_no_violations(self) -> None:
        """AssertionError listing every Bot API violation (and fake bug) seen so far."""
        with self._lock:
            violations = list(self.violations)
        if violations:
            raise AssertionError(
                f"{len(violations)} Bot API violation(s):\n- " + "\n- ".join(violations)
            )

    def expect_violations(self) -> None:
        """Opt out: leaving the context manager does not fail on recorded violations."""
        self.fail_on_violations = False

    def _run_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _astart(self, sock: socket.socket) -> None:
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._delivery_event = asyncio.Event()
        self._slots = None
        self._session = aiohttp.ClientSession(trust_env=False)
        app = web.Application(client_max_size=UPLOAD_LIMIT + 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        self._delivery = asyncio.create_task(self._deliver_forever())

    async def _astop(self) -> None:
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()
        self._wake()
        if self._delivery is not None:
            self._delivery.cancel()
            await asyncio.gather(self._delivery, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # -- building the world -----------------------------------------------------------------------

    def user(
        self,
        user_id: int,
        first_name: str | None = None,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
        started: bool | None = None,
        is_bot: bool = False,
    ) -> FakeUser:
        """The user with this id (created with a private chat if new; given fields updated)."""
        with self._lock:
            user = self._users.get(user_id)
            if user is None:
                user = FakeUser(user_id, first_name or f"User {user_id}", is_bot=is_bot)
                self._users[user_id] = user
            elif first_name is not None:
                user.first_name = first_name
            if last_name is not None:
                user.last_name = last_name
            if username is not None:
                user.username = username
            if language_code is not None:
                user.language_code = language_code
            if started is not None:
                user.started = started
            if user_id not in self._chats and user_id != self.bot.id:
                self._chats[user_id] = FakeChat(user_id, "private", user=user)
            return user

    def group(
        self,
        chat_id: int,
        title: str = "Group",
        *,
        is_forum: bool = False,
        username: str | None = None,
        bot_status: str = "administrator",
        bot_can_manage_topics: bool = True,
        bot_can_delete_messages: bool = True,
        members: Iterable[UserRef] = (),
        admins: Iterable[UserRef] = (),
    ) -> FakeChat:
        """A supergroup the bot is in (as ``bot_status``); users join as members/admins."""
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat is None:
                chat = FakeChat(
                    chat_id,
                    "supergroup",
                    title=title,
                    username=username,
                    is_forum=is_forum,
                    bot_can_manage_topics=bot_can_manage_topics,
                    bot_can_delete_messages=bot_can_delete_messages,
                    last_message_id=1,
                )
                self._chats[chat_id] = chat
            chat.members[self.bot.id] = bot_status
            for member in members:
                chat.members[self._user_ref(member).id] = "member"
            for admin in admins:
                chat.members[self._user_ref(admin).id] = "administrator"
            return chat

    def forum(
        self,
        chat_id: int = DEFAULT_FORUM_ID,
        title: str = "Counsellors",
        **options: Any,
    ) -> FakeChat:
        """A forum supergroup (topics enabled); options as for :meth:`group`."""
        return self.group(chat_id, title, is_forum=True, **options)

    def chat(self, chat: ChatRef) -> FakeChat:
        with self._lock:
            found = self._chats.get(self._chat_id(chat))
            if found is None:
                raise KeyError(f"no chat {self._chat_id(chat)} in the fake world")
            return found

    def join(self, chat: ChatRef, user: UserRef, status: str = "member") -> None:
        """Set a user's membership status: creator, administrator, member, left or kicked."""
        with self._lock:
            self.chat(chat).members[self._user_ref(user).id] = status

    def block(self, user: UserRef, blocked: bool = True) -> None:
        """The user blocks (or unblocks) the bot: messages to them get 403."""
        with self._lock:
            self._user_ref(user).blocked = blocked

    def age_messages(self, chat: ChatRef, seconds: float, *, thread_id: int | None = None) -> int:
        """Make the chat's current messages (of one topic, or all) ``seconds`` older, as if
        they had been sent that long before (a bot cannot delete a message after 48 hours:
        ``DELETE_WINDOW_S``); how many."""
        with self._lock:
            messages = self.chat(chat).messages.values()
            aged = [
                m for m in messages if thread_id is None or m.get("message_thread_id") == thread_id
            ]
            for message in aged:
                message["date"] = int(message["date"] - seconds)
            return len(aged)

    def create_topic(
        self,
        chat: ChatRef,
        name: str,
        *,
        icon_color: int = TOPIC_COLORS[0],
        by: UserRef | None = None,
    ) -> FakeTopic:
        """A topic made by a person (an update is delivered) or silently by the bot (by=None)."""
        with self._lock:
            forum = self.chat(chat)
            if not forum.is_forum:
                raise ValueError(f"chat {forum.id} is not a forum")
            creator = self.bot if by is None else self._user_ref(by)
            topic = self._new_topic(forum, creator, name, icon_color, None)
            if by is not None:
                self._deliver_message(forum, creator, forum.messages[topic.message_thread_id])
            return topic

    def file_content(self, file_id: str) -> bytes:
        with self._lock:
            return self._files[file_id].content

    # -- acting as people ---------------------------------------------------------------------

    def send_text(
        self,
        user: UserRef,
        text: str,
        chat: ChatRef | None = None,
        thread_id: int | None = None,
        *,
        reply_to: MessageRef | None = None,
    ) -> JSONDict:
        """A text message from ``user`` (private chat unless ``chat``; a topic if ``thread_id``).

        /commands get ``bot_command`` entities. Returns the Update (not delivered to a bot that
        privacy mode keeps from seeing it).
        """
        content: JSONDict = {"text": text}
        entities = _command_entities(text)
        if entities:
            content["entities"] = entities
        return self._user_message(user, chat, thread_id, content, reply_to)

    def send_command(
        self,
        user: UserRef,
        command: str,
        args: str = "",
        chat: ChatRef | None = None,
        thread_id: int | None = None,
    ) -> JSONDict:
        """``/command args`` as :meth:`send_text`."""
        text = "/" + command.lstrip("/") + (f" {args}" if args else "")
        return self.send_text(user, text, chat, thread_id)

    def send_photo(
        self,
        user: UserRef,
        content: bytes | None = None,
        *,
        caption: str | None = None,
        chat: ChatRef | None = None,
        thread_id: int | None = None,
    ) -> JSONDict:
        """A photo (default: a generated 320x240 PNG), in several sizes like Telegram makes."""
        data = content if content is not None else make_png()
        if image_size(data) is None:
            raise ValueError("send_photo needs PNG, JPEG, GIF or WebP bytes")
        with self._lock:
            sizes = self._store_photo(data, "photo.jpg")
        message: JSONDict = {"photo": [s.to_api() for s in sizes]}
        return self._user_message(user, chat, thread_id, self._with_caption(message, caption))

    def send_document(
        self,
        user: UserRef,
        filename: str,
        content: bytes,
        mime_type: str | None = None,
        *,
        chat: ChatRef | None = None,
        thread_id: int | None = None,
        caption: str | None = None,
    ) -> JSONDict:
        """A document; its bytes can then be fetched with getFile and downloaded."""
        mime = mime_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        with self._lock:
            stored = self._store_file("document", content, filename, mime)
        message: JSONDict = {"document": stored.to_api()}
        return self._user_message(user, chat, thread_id, self._with_caption(message, caption))

    def send_voice(
        self,
        user: UserRef,
        content: bytes = b"OggS\x00\x02fake-opus-voice",
        *,
        duration: int = 2,
        chat: ChatRef | None = None,
        thread_id: int | None = None,
        caption: str | None = None,
    ) -> JSONDict:
        """A voice message (OGG/Opus)."""
        with self._lock:
            stored = self._store_file("voice", content, None, "audio/ogg", duration=duration)
        message: JSONDict = {"voice": stored.to_api()}
        return self._user_message(user, chat, thread_id, self._with_caption(message, caption))

    def send_sticker(
        self,
        user: UserRef,
        emoji: str = "👍",
        *,
        content: bytes = b"RIFF\x1a\x00\x00\x00WEBPVP8 fake-sticker",
        chat: ChatRef | None = None,
        thread_id: int | None = None,
    ) -> JSONDict:
        """A (static WebP) sticker."""
        with self._lock:
            stored = self._store_file("sticker", content, "sticker.webp", "image/webp")
            stored.emoji = emoji
            stored.width = stored.height = 512
        return self._user_message(user, chat, thread_id, {"sticker": stored.to_api()})

    def click(
        self,
        user: UserRef,
        message: MessageRef,
        callback_data: str | None = None,
        *,
        button_text: str | None = None,
        chat: ChatRef | None = None,
    ) -> JSONDict:
        """``user`` presses an inline button of the bot's message: a callback_query Update.

        ``message`` is a SentRecord, a Message dict or a message id (with ``chat``, or unique
        among the bot's messages). The button is found by ``callback_data`` or its text; an
        AssertionError says so when the message (still) has no such button.
        """
        with self._lock:
            clicker = self._user_ref(user)
            where, stored = self._find_bot_message(message, chat)
            buttons = _inline_buttons(stored.get("reply_markup"))
            if button_text is not None:
                chosen = next((b for b in buttons if b.get("text") == button_text), None)
                if chosen is None or "callback_data" not in chosen:
                    raise AssertionError(
                        f"message {stored['message_id']} in chat {where.id} has no callback "
                        f"button {button_text!r}; buttons: {[b.get('text') for b in buttons]}"
                    )
                callback_data = str(chosen["callback_data"])
            present = [b.get("callback_data") for b in buttons if "callback_data" in b]
            if callback_data is None or callback_data not in present:
                raise AssertionError(
                    f"message {stored['message_id']} in chat {where.id} has no button with "
                    f"callback_data {callback_data!r}; its callback data: {present}"
                )
            if where.type == "private" and where.id != clicker.id:
                raise AssertionError(
                    f"user {clicker.id} cannot see the private chat {where.id} to click in it"
                )
            self._query_seq += 1
            query_id = str(4_200_000_000_000_000_000 + self._query_seq * 7919 + clicker.id)
            self._callback_queries[query_id] = False
            instance = str(abs(hash((where.id, self.bot.id))) % 10**18)
            update: JSONDict = {
                "callback_query": {
                    "id": query_id,
                    "from": clicker.to_api(),
                    "message": copy.deepcopy(stored),
                    "chat_instance": instance,
                    "data": callback_data,
                }
            }
            self._enqueue(update)
            return update

    def raw_update(self, update: Mapping[str, Any]) -> JSONDict:
        """Queue any update as given (an ``update_id`` is added when missing); not checked."""
        data = copy.deepcopy(dict(update))
        with self._lock:
            if isinstance(data.get("update_id"), int):
                self._next_update_id = max(self._next_update_id, data["update_id"] + 1)
            self._enqueue(data, check=False)
            self._unchecked_updates.add(int(data["update_id"]))
        return data

    # -- what happened ----------------------------------------------------------------------------

    def calls(self, method: str) -> list[RequestRecord]:
        """Every request for ``method``, in order."""
        with self._lock:
            return [record for record in self.requests if record.method == method]

    def messages_to(self, chat: ChatRef, thread_id: int | None = None) -> list[SentRecord]:
        """SentRecords of messages the bot sent/copied/forwarded to a chat (and topic)."""
        chat_id = self._chat_id(chat)
        with self._lock:
            return [
                record
                for record in self.sent
                if record.chat_id == chat_id
                and (
                    record.method in ("copyMessage", "forwardMessage")
                    or record.method.startswith("send")
                )
                and (thread_id is None or record.message_thread_id == thread_id)
            ]

    def chat_history(self, chat: ChatRef, thread_id: int | None = None) -> list[JSONDict]:
        """The chat's current messages (anyone's, edits applied, deletions gone), by id."""
        with self._lock:
            messages = self.chat(chat).messages
            return [
                copy.deepcopy(messages[mid])
                for mid in sorted(messages)
                if thread_id is None or messages[mid].get("message_thread_id") == thread_id
            ]

    def message(self, chat: ChatRef, message_id: int) -> JSONDict | None:
        with self._lock:
            found = self.chat(chat).messages.get(message_id)
            return copy.deepcopy(found) if found is not None else None

    def topics(self, chat: ChatRef, *, include_deleted: bool = False) -> list[FakeTopic]:
        with self._lock:
            return [
                topic
                for topic in self.chat(chat).topics.values()
                if include_deleted or not topic.deleted
            ]

    def commands(
        self, scope: Mapping[str, Any] | None = None, language_code: str = ""
    ) -> list[JSONDict]:
        """The command list set with setMyCommands for this scope and language."""
        with self._lock:
            return copy.deepcopy(self._commands.get((self._scope_key(scope), language_code), []))

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates not yet confirmed (getUpdates) or delivered (webhook)."""
        with self._lock:
            return copy.deepcopy(self._pending)

    @property
    def webhook_url(self) -> str | None:
        with self._lock:
            return self._webhook.url if self._webhook else None

    @property
    def webhook_secret(self) -> str | None:
        with self._lock:
            return self._webhook.secret_token if self._webhook else None

    # -- waiting ----------------------------------------------------------------------------------

    def mark(self) -> int:
        """The current length of ``tg.sent``, for ``wait_for(..., since=mark)``."""
        with self._lock:
            return len(self.sent)

    def wait_for(
        self,
        predicate: Callable[[SentRecord], bool] | None = None,
        timeout: float = 10.0,
        *,
        method: str | None = None,
        chat: ChatRef | None = None,
        thread_id: int | None = None,
        text: str | None = None,
        since: int = 0,
    ) -> SentRecord:
        """The first SentRecord (from index ``since``) matching all the given conditions.

        ``text`` is a substring of the shown text/caption. Raises AssertionError with a dump of
        what was sent when none arrives within ``timeout`` seconds.
        """
        match = self._sent_matcher(predicate, method, chat, thread_id, text)
        return self._wait_sync(lambda: self.sent, match, since, timeout, "a sent message")

    async def await_for(
        self,
        predicate: Callable[[SentRecord], bool] | None = None,
        timeout: float = 10.0,
        *,
        method: str | None = None,
        chat: ChatRef | None = None,
        thread_id: int | None = None,
        text: str | None = None,
        since: int = 0,
    ) -> SentRecord:
        """:meth:`wait_for` for async tests (does not block the caller's loop)."""
        match = self._sent_matcher(predicate, method, chat, thread_id, text)
        return await self._wait_async(lambda: self.sent, match, since, timeout, "a sent message")

    def wait_for_call(
        self,
        method: str,
        timeout: float = 10.0,
        *,
        predicate: Callable[[RequestRecord], bool] | None = None,
        since: int = 0,
    ) -> RequestRecord:
        """The first request for ``method`` (from index ``since`` of ``tg.requests``)."""

        def match(record: RequestRecord) -> bool:
            return record.method == method and (predicate is None or predicate(record))

        return self._wait_sync(lambda: self.requests, match, since, timeout, f"a {method} call")

    async def await_call(
        self,
        method: str,
        timeout: float = 10.0,
        *,
        predicate: Callable[[RequestRecord], bool] | None = None,
        since: int = 0,
    ) -> RequestRecord:
        def match(record: RequestRecord) -> bool:
            return record.method == method and (predicate is None or predicate(record))

        return await self._wait_async(
            lambda: self.requests, match, since, timeout, f"a {method} call"
        )

    def wait_idle(self, timeout: float = 5.0, quiet: float = 0.1) -> None:
        """Until no update is pending, no request is in flight and none came for ``quiet`` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                wait = self._idle_wait(quiet)
                if wait <= 0:
                    return
                if time.monotonic() >= deadline:
                    raise AssertionError(self._timeout_report("the bot to be idle", timeout))
                self._changed.wait(min(wait, max(deadline - time.monotonic(), 0.001)))

    async def await_idle(self, timeout: float = 5.0, quiet: float = 0.1) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                wait = self._idle_wait(quiet)
            if wait <= 0:
                return
            if loop.time() >= deadline:
                raise AssertionError(self._timeout_report("the bot to be idle", timeout))
            await asyncio.sleep(min(wait, 0.02))

    def _idle_wait(self, quiet: float) -> float:
        if self._pending or self._in_flight:
            return quiet
        return quiet - (time.monotonic() - self._last_activity)

    def _sent_matcher(
        self,
        predicate: Callable[[SentRecord], bool] | None,
        method: str | None,
        chat: ChatRef | None,
        thread_id: int | None,
        text: str | None,
    ) -> Callable[[SentRecord], bool]:
        chat_id = None if chat is None else self._chat_id(chat)

        def match(record: SentRecord) -> bool:
            return (
                (method is None or record.method == method)
                and (chat_id is None or record.chat_id == chat_id)
                and (thread_id is None or record.message_thread_id == thread_id)
                and (text is None or text in (record.text or ""))
                and (predicate is None or predicate(record))
            )

        return match

    def _wait_sync(
        self,
        source: Callable[[], list[T]],
        match: Callable[[T], bool],
        since: int,
        timeout: float,
        what: str,
    ) -> T:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for item in source()[since:]:
                    if match(item):
                        return item
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(self._timeout_report(what, timeout))
                self._changed.wait(remaining)

    async def _wait_async(
        self,
        source: Callable[[], list[T]],
        match: Callable[[T], bool],
        since: int,
        timeout: float,
        what: str,
    ) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        event = asyncio.Event()
        waiter = (loop, event)
        with self._lock:
            self._async_waiters.append(waiter)
        try:
            while True:
                event.clear()
                with self._lock:
                    items = list(source()[since:])
                for item in items:
                    if match(item):
                        return item
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise AssertionError(self._timeout_report(what, timeout))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)
        finally:
            with self._lock:
                self._async_waiters.remove(waiter)

    def _timeout_report(self, what: str, timeout: float) -> str:
        with self._lock:
            lines = [f"timed out after {timeout:g}s waiting for {what}"]
            lines.append(f"sent ({len(self.sent)} records; the last 20):")
            lines += [f"  {record.summary()}" for record in self.sent[-20:]] or ["  (nothing)"]
            failed = [r for r in self.requests if r.status is not None and r.status != 200]
            if failed:
                lines.append("failed requests (the last 10):")
                lines += [
                    f"  {r.method} -> {r.status} {r.description or ''}".rstrip()
                    for r in failed[-10:]
                ]
            lines.append(
                f"requests: {len(self.requests)}; pending updates: {len(self._pending)}; "
                f"injected faults: {len(self.injected)}"
            )
            if self.violations:
                lines.append("violations: " + "; ".join(self.violations))
            if self.unimplemented:
                lines.append("unimplemented methods called: " + ", ".join(self.unimplemented))
            return "\n".join(lines)

    def _notify_changed(self) -> None:
        with self._lock:
            self._changed.notify_all()
            for loop, event in self._async_waiters:
                with contextlib.suppress(RuntimeError):  # that loop is closed
                    loop.call_soon_threadsafe(event.set)

    # -- faults -----------------------------------------------------------------------------------

    def fail(
        self,
        method: str | None = None,
        kind: FaultKind = "429",
        times: int = 1,
        *,
        executed: bool = False,
        retry_after: int | None = None,
    ) -> None:
        """The next ``times`` calls of ``method`` (any method if None) fail with ``kind``.

        ``executed=True`` (500/502/timeout): the call takes effect although the client sees an
        error, as happens with Telegram. 429 carries ``retry_after`` (default ``tg.retry_after``).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}")
        with self._lock:
            self._fault_rules.append(_FaultRule(method, kind, times, executed, retry_after))

    def fail_rate(
        self,
        p: float,
        kinds: Sequence[FaultKind] = ("429", "500"),
        seed: int | None = None,
        *,
        methods: Collection[str] | None = None,
        exclude: Collection[str] = ("getUpdates",),
        executed: bool = False,
    ) -> None:
        """Each call (of ``methods``, minus ``exclude``) fails with probability ``p``; p=0 stops."""
        if any(kind not in FAULT_KINDS for kind in kinds):
            raise ValueError(f"kinds must be among {FAULT_KINDS}")
        with self._lock:
            self._fault_rate = (
                _FaultRate(
                    p,
                    tuple(kinds),
                    frozenset(methods) if methods is not None else None,
                    frozenset(exclude),
                    executed,
                    random.Random(seed),
                )
                if p > 0
                else None
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._fault_rules.clear()
            self._fault_rate = None

    def _take_fault(self, method: str) -> _FaultRule | None:
        with self._lock:
            for rule in self._fault_rules:
                if rule.remaining > 0 and rule.method in (None, method):
                    rule.remaining -= 1
                    return rule
            rate = self._fault_rate
            if (
                rate is not None
                and (rate.methods is None or method in rate.methods)
                and method not in rate.exclude
                and rate.rng.random() < rate.p
            ):
                return _FaultRule(method, rate.rng.choice(rate.kinds), 0, rate.executed, None)
            return None

    # -- webhook control ----------------------------------------------------------------------

    def set_webhook(
        self,
        url: str,
        *,
        secret_token: str | None = None,
        allowed_updates: Sequence[str] | None = None,
        max_connections: int = 40,
        drop_pending_updates: bool = False,
    ) -> None:
        """As if the bot called setWebhook."""
        with self._lock:
            self._webhook = _Webhook(
                url,
                secret_token,
                list(allowed_updates) if allowed_updates is not None else None,
                max_connections,
            )
            if allowed_updates is not None:
                self._allowed_updates = list(allowed_updates) or None
            if drop_pending_updates:
                self._pending.clear()
        self._wake_from_any_thread()

    def delete_webhook(self, *, drop_pending_updates: bool = False) -> None:
        with self._lock:
            self._webhook = None
            if drop_pending_updates:
                self._pending.clear()
        self._wake_from_any_thread()

    def add_webhook_replica(self, url: str) -> None:
        """Deliver webhook updates round-robin to ``url`` too (another bot replica)."""
        with self._lock:
            self.webhook_replicas.append(url)
        self._wake_from_any_thread()

    def post_webhook_raw(
        self,
        update: Mapping[str, Any] | None = None,
        *,
        secret: str | None = None,
        url: str | None = None,
        timeout: float = 10.0,
    ) -> int:
        """POST one update to the webhook (or ``url``) with this secret header (None: no header).

        The update is not queued; returns the HTTP status the receiver answered. For sync tests
        whose bot runs in another thread; async tests use :meth:`apost_webhook_raw`.
        """
        future = self._submit(self._raw_post(update, secret, url))
        return future.result(timeout=timeout)

    async def apost_webhook_raw(
        self,
        update: Mapping[str, Any] | None = None,
        *,
        secret: str | None = None,
        url: str | None = None,
    ) -> int:
        return await asyncio.wrap_future(self._submit(self._raw_post(update, secret, url)))

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if self._loop is None:
            coro.close()
            raise RuntimeError("FakeTelegram is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _raw_post(
        self, update: Mapping[str, Any] | None, secret: str | None, url: str | None
    ) -> int:
        with self._lock:
            target = url or (self._webhook.url if self._webhook else None)
            if target is None and self.webhook_targets:
                target = self.webhook_targets[0]
            if update is None:
                probe = FakeUser(999_000_001, "Webhook Probe")
                update = {
                    "update_id": self._next_update_id + 10**6,
                    "message": {
                        "message_id": 1,
                        "from": probe.to_api(),
                        "chat": {"id": probe.id, "type": "private", "first_name": probe.first_name},
                        "date": int(time.time()),
                        "text": "probe",
                    },
                }
        if target is None:
            raise ValueError("no webhook URL: pass url= or set a webhook first")
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        assert self._session is not None
        async with self._session.post(
            target,
            data=json.dumps(update, ensure_ascii=False).encode(),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self.webhook_timeout_s),
        ) as response:
            await response.read()
            return response.status

    # -- internals: people and messages -------------------------------------------------------

    @staticmethod
    def _chat_id(chat: ChatRef) -> int:
        return chat.id if isinstance(chat, FakeChat | FakeUser) else int(chat)

    def _user_ref(self, user: UserRef) -> FakeUser:
        if isinstance(user, FakeUser):
            return self._users.setdefault(user.id, user)
        return self._users.get(user) or self.user(user)

    def _next_message_id(self, chat: FakeChat) -> int:
        chat.last_message_id += 1
        return chat.last_message_id

    def _post(
        self,
        chat: FakeChat,
        sender: FakeUser,
        content: Mapping[str, Any],
        *,
        thread_id: int | None = None,
        reply_to: Mapping[str, Any] | None = None,
        markup: JSONDict | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> JSONDict:
        """Store a new message in ``chat`` and return it."""
        message: JSONDict = {
            "message_id": self._next_message_id(chat),
            "from": sender.to_api(),
            "chat": chat.to_api(),
            "date": int(time.time()),
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        if reply_to is None and thread_id is not None:
            reply_to = chat.messages.get(thread_id)  # the topic's creation message
        if reply_to is not None:
            message["reply_to_message"] = {
                k: copy.deepcopy(v) for k, v in reply_to.items() if k != "reply_to_message"
            }
        message.update(extra or {})
        message.update(copy.deepcopy(dict(content)))
        if markup is not None:
            message["reply_markup"] = copy.deepcopy(markup)
        chat.messages[message["message_id"]] = message
        return message

    def _new_topic(
        self,
        chat: FakeChat,
        creator: FakeUser,
        name: str,
        icon_color: int,
        emoji_id: str | None,
    ) -> FakeTopic:
        thread_id = chat.last_message_id + 1
        created: JSONDict = {"name": name, "icon_color": icon_color}
        if emoji_id:
            created["icon_custom_emoji_id"] = emoji_id
        topic = FakeTopic(chat.id, thread_id, name, icon_color, emoji_id)
        chat.topics[thread_id] = topic
        self._post(chat, creator, {"forum_topic_created": created}, thread_id=thread_id)
        chat.messages[thread_id].pop("reply_to_message", None)
        self._notify_changed()
        return topic

    def _chat_for(self, user: FakeUser, chat: ChatRef | None) -> FakeChat:
        if chat is None:
            self.user(user.id)
            return self._chats[user.id]
        return self.chat(chat)

    def _user_message(
        self,
        user: UserRef,
        chat: ChatRef | None,
        thread_id: int | None,
        content: JSONDict,
        reply_to: MessageRef | None = None,
    ) -> JSONDict:
        with self._lock:
            sender = self._user_ref(user)
            where = self._chat_for(sender, chat)
            if where.type == "private":
                if where.id != sender.id:
                    raise ValueError(
                        f"user {sender.id} cannot write in the private chat {where.id}"
                    )
                sender.started = True
                sender.blocked = False
            else:
                if where.members.get(sender.id) == "kicked":
                    raise ValueError(f"user {sender.id} is banned from chat {where.id}")
                if where.members.get(sender.id) in (None, "left"):
                    where.members[sender.id] = "member"
            thread = None
            if thread_id is not None:
                topic = where.topics.get(thread_id)
                if not where.is_forum or topic is None or topic.deleted:
                    raise ValueError(f"no topic {thread_id} in chat {where.id}")
                admin = where.members.get(sender.id) in ("administrator", "creator")
                if topic.closed and not admin:
                    raise ValueError(f"topic {thread_id} is closed; members cannot post in it")
                thread = thread_id
            replied = None
            if reply_to is not None:
                replied = where.messages.get(self._message_id_of(reply_to))
                if replied is None:
                    raise ValueError(f"no message {reply_to!r} to reply to in chat {where.id}")
                if thread is None and replied.get("is_topic_message"):
                    thread = replied.get("message_thread_id")
            message = self._post(where, sender, content, thread_id=thread, reply_to=replied)
            return self._deliver_message(where, sender, message)

    def _deliver_message(self, chat: FakeChat, sender: FakeUser, message: JSONDict) -> JSONDict:
        update: JSONDict = {"message": copy.deepcopy(message)}
        if self._bot_sees(chat, message):
            self._enqueue(update)
        return update

    def _bot_sees(self, chat: FakeChat, message: Mapping[str, Any]) -> bool:
        if chat.type == "private":
            return True
        status = chat.members.get(self.bot.id, "left")
        if status in ("left", "kicked"):
            return False
        if status in ("administrator", "creator") or not self.privacy_mode:
            return True
        if str(message.get("text", "")).startswith("/"):
            return True
        reply = message.get("reply_to_message")
        return isinstance(reply, dict) and reply.get("from", {}).get("id") == self.bot.id

    @staticmethod
    def _message_id_of(message: MessageRef) -> int:
        if isinstance(message, Mapping):
            inner = message.get("message", message)
            return int(inner["message_id"])
        if isinstance(message, int):
            return message
        return int(message.message_id)  # a SentRecord or a python-telegram-bot Message

    def _find_bot_message(
        self, message: MessageRef, chat: ChatRef | None
    ) -> tuple[FakeChat, JSONDict]:
        if isinstance(message, Mapping):
            if chat is None:
                inner = message.get("message", message)
                chat = int(inner["chat"]["id"])
        elif not isinstance(message, int) and chat is None:
            chat = int(message.chat_id)
        message_id = self._message_id_of(message)
        if chat is not None:
            where = self.chat(chat)
            found = where.messages.get(message_id)
            if found is None:
                raise AssertionError(f"message {message_id} in chat {where.id} does not exist")
            return where, found
        candidates = [
            (c, c.messages[message_id])
            for c in self._chats.values()
            if message_id in c.messages
            and c.messages[message_id].get("from", {}).get("id") == self.bot.id
        ]
        if len(candidates) != 1:
            raise AssertionError(
                f"{len(candidates)} bot messages have id {message_id}; pass chat= to choose"
            )
        return candidates[0]

    @staticmethod
    def _with_caption(content: JSONDict, caption: str | None) -> JSONDict:
        if caption:
            content["caption"] = caption
            entities = _command_entities(caption)
            if entities:
                content["caption_entities"] = entities
        return content

    def _enqueue(self, update: JSONDict, *, check: bool = True) -> None:
        with self._lock:
            if "update_id" not in update:
                update["update_id"] = self._next_update_id
                self._next_update_id += 1
            kind = next((key for key in update if key != "update_id"), None)
            allowed = self._allowed_updates
            if kind is not None and (
                (allowed and kind not in allowed) or (not allowed and kind in NOT_BY_DEFAULT)
            ):
                self.filtered_updates.append(update)
                return
            if check and self.spec is not None:
                self._fake_bug(self.spec.check_object("Update", update, "Update"))
            self._pending.append(copy.deepcopy(update))
            self._notify_changed()
        self._wake_from_any_thread()

    def _fake_bug(self, problems: Iterable[str]) -> None:
        with self._lock:
            self.violations.extend(f"fake bug: {problem}" for problem in problems)

    def _wake_from_any_thread(self) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # closed while stopping
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        """(server loop) Wake long polls and the webhook deliverer."""
        waiters, self._update_waiters = self._update_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self._delivery_event is not None:
            self._delivery_event.set()

    # -- internals: files ---------------------------------------------------------------------

    def _new_file_ids(self, kind: str) -> tuple[str, str]:
        self._file_seq += 1
        token = f"{self.bot.id}:{kind}:{self._file_seq}:fake".encode()
        body = base64.urlsafe_b64encode(token).decode().rstrip("=")
        unique = base64.urlsafe_b64encode(f"u{self._file_seq}".encode()).decode().rstrip("=")
        return f"{_FILE_PREFIX.get(kind, 'BQACAgIAAxkBAAI')}{body}", f"AgAD{unique}"

    def _store_file(
        self,
        kind: str,
        content: bytes,
        file_name: str | None,
        mime_type: str | None,
        *,
        duration: int = 0,
        source_url: str | None = None,
    ) -> StoredFile:
        file_id, unique_id = self._new_file_ids(kind)
        stored = StoredFile(
            kind,
            file_id,
            unique_id,
            content,
            file_name=file_name,
            mime_type=mime_type,
            duration=duration,
            source_url=source_url,
        )
        self._files[file_id] = stored
        return stored

    def _store_photo(self, content: bytes, file_name: str | None) -> list[StoredFile]:
        width, height = image_size(content) or (800, 600)
        sizes: list[tuple[int, int]] = []
        longest = max(width, height, 1)
        for bound in (90, 320, 800, 1280):
            if bound < longest:
                scale = bound / longest
                sizes.append((max(1, round(width * scale)), max(1, round(height * scale))))
        sizes.append((width, height))
        stored = []
        for w, h in sizes:
            item = self._store_file("photo", content, file_name, "image/jpeg")
            item.width, item.height = w, h
            stored.append(item)
        group = tuple(item.file_id for item in stored)
        for item in stored:
            item.group = group
        return stored

    def _media_object(self, stored: StoredFile) -> Any:
        if stored.kind == "photo":
            return [self._files[file_id].to_api() for file_id in stored.group or (stored.file_id,)]
        return stored.to_api()

    def _input_file(self, call: _Call, kind: str) -> StoredFile:
        value = call.params.get(kind)
        params = call.params
        if isinstance(value, str) and value.startswith("attach://"):
            attached = call.attachments.get(value.removeprefix("attach://"))
            if attached is None:
                raise _bad("wrong file identifier/HTTP URL specified")
            value = attached
        if isinstance(value, UploadedFile):
            if not value.content:
                raise _bad("file must be non-empty")
            name = value.filename
            mime = value.mime_type
            if mime in (None, "application/octet-stream") and name:
                mime = mimetypes.guess_type(name)[0] or mime
            if kind == "photo":
                if image_size(value.content) is None:
                    raise _bad("IMAGE_PROCESS_FAILED")
                return self._store_photo(value.content, name)[-1]
            stored = self._store_file(
                kind,
                value.content,
                name,
                mime or _DEFAULT_MIME.get(kind),
                duration=int(params.get("duration") or (1 if kind != "document" else 0)),
            )
            self._decorate(stored, params)
            return stored
        if not isinstance(value, str) or not value:
            raise _bad(f"there is no {kind} in the request")
        if value.startswith(("http://", "https://")):
            name = Path(urlsplit(value).path).name or None
            if kind == "photo":
                photo = self._store_photo(make_png(), name)
                for item in photo:
                    item.source_url = value
                return photo[-1]
            stored = self._store_file(
                kind,
                b"",
                name,
                mimetypes.guess_type(name or "")[0] or _DEFAULT_MIME.get(kind),
                duration=int(params.get("duration") or 1),
                source_url=value,
            )
            self._decorate(stored, params)
            return stored
        known = self._files.get(value)
        if known is None:
            raise _bad("wrong file identifier/HTTP URL specified")
        if known.kind != kind:
            raise _bad("type of file mismatch")
        return known

    @staticmethod
    def _decorate(stored: StoredFile, params: Mapping[str, Any]) -> None:
        if stored.kind == "sticker":
            stored.width = stored.height = 512
            if params.get("emoji"):
                stored.emoji = str(params["emoji"])
        if stored.kind == "video":
            stored.width = int(params.get("width") or 640)
            stored.height = int(params.get("height") or 360)

    # -- internals: HTTP ------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        match = _API_PATH.fullmatch(request.path)
        if match:
            return await self._handle_api(request, match["token"], match["method"])
        match = _FILE_PATH.fullmatch(request.path)
        if match:
            return await self._handle_file(match["token"], match["path"])
        return _json_response(404, {"ok": False, "error_code": 404, "description": "Not Found"})

    async def _handle_file(self, token: str, path: str) -> web.StreamResponse:
        with self._lock:
            stored = self._files_by_path.get(path) if token == self.token else None
            if stored is not None:
                self.downloads.append(path)
        if stored is None:
            return _json_response(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        return web.Response(
            body=stored.content, content_type=stored.mime_type or "application/octet-stream"
        )

    async def _handle_api(self, request: web.Request, token: str, method: str) -> web.Response:
        record = RequestRecord(method, {}, time.time(), request.method, request.content_type or "")
        if token != self.token:
            self._log_request(record)
            return self._reply_error(record, ApiError(401, "Unauthorized"))
        if not method:
            self._log_request(record)
            return self._reply_error(record, ApiError(404, "Not Found"))
        try:
            params, attachments = await self._read_params(request)
        except ApiError as error:
            self._log_request(record)
            return self._reply_error(record, error)
        problems = self._coerce(method, params)
        record.params = params
        record.attachments = attachments
        polling = method == "getUpdates"
        self._log_request(record, in_flight=not polling)
        try:
            return await self._dispatch(record, _Call(method, params, attachments), problems)
        except Exception as exc:  # a bug of the fake: report it loudly, answer 500
            self._fake_bug([f"{method} raised {exc!r}"])
            return self._reply_error(record, ApiError(500, "Internal Server Error"))
        finally:
            with self._lock:
                if not polling:
                    self._in_flight -= 1
                self._last_activity = time.monotonic()
                self._notify_changed()

    def _log_request(self, record: RequestRecord, *, in_flight: bool = False) -> None:
        with self._lock:
            self.requests.append(record)
            if in_flight:
                self._in_flight += 1
            self._last_activity = time.monotonic()
            self._notify_changed()

    async def _read_params(self, request: web.Request) -> tuple[JSONDict, dict[str, UploadedFile]]:
        values: JSONDict = dict(request.query)
        files: dict[str, UploadedFile] = {}
        if request.can_read_body:
            content_type = request.content_type
            if content_type == "application/json":
                raw = await request.read()
                try:
                    body = json.loads(raw) if raw.strip() else {}
                except ValueError:
                    raise _bad("can't parse JSON object") from None
                if not isinstance(body, dict):
                    raise _bad("the request body must be a JSON object")
                values.update({k: v for k, v in body.items() if v is not None})
            elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                for key, item in form.items():
                    if isinstance(item, web.FileField):
                        try:
                            content = item.file.read()
                        finally:
                            item.file.close()
                        files[key] = UploadedFile(key, item.filename, content, item.content_type)
                    elif isinstance(item, bytes | bytearray):
                        files[key] = UploadedFile(key, None, bytes(item), None)
                    else:
                        values[key] = item
            else:
                await request.read()
        referenced = set()
        for value in values.values():
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            referenced.update(_ATTACH_RE.findall(text))
        attachments = {name: part for name, part in files.items() if name in referenced}
        for name, part in files.items():
            if name not in referenced:
                values[name] = part
        return values, attachments

    def _param_types(self, method: str, name: str) -> tuple[str, ...] | None:
        if self.spec is not None:
            if method not in self.spec.methods:
                return None
            return self.spec.param_types(method, name)
        return _FALLBACK_TYPES.get(name, ("String",))

    def _coerce(self, method: str, params: JSONDict) -> list[str]:
        """Type the values in place; the names of parameters that cannot be typed."""
        bad: list[str] = []
        for name, value in list(params.items()):
            types = self._param_types(method, name)
            if types is None or isinstance(value, UploadedFile):
                continue
            try:
                params[name] = coerce_value(types, value)
            except ValueError as exc:
                bad.append(f"{method}: parameter {name!r}: {exc}")
        return bad

    async def _dispatch(
        self, record: RequestRecord, call: _Call, bad_types: list[str]
    ) -> web.Response:
        method = call.method
        problems: list[RequestProblem] = []
        if self.spec is not None:
            problems = self.spec.check_request(method, call.params)
            if any(p.kind == "unknown_method" for p in problems):
                self._violate([p.message for p in problems])
                return self._reply_error(record, ApiError(404, "Not Found: method not found"))
        if problems or bad_types:
            self._violate([p.message for p in problems] + bad_types)
            return self._reply_error(record, self._problem_error(problems, bad_types))
        handler = self._methods.get(method)
        if handler is None:
            with self._lock:
                self.unimplemented.append(method)
            return self._reply_error(
                record,
                ApiError(501, f"Not Implemented: the fake Telegram server has no {method}"),
            )
        fault = self._take_fault(method)
        if fault is not None:
            return await self._inject(record, call, handler, fault)
        try:
            result = await handler(call)
        except ApiError as error:
            return self._reply_error(record, error)
        return self._reply_ok(record, result)

    @staticmethod
    def _problem_error(problems: list[RequestProblem], bad_types: list[str]) -> ApiError:
        missing = [p.param for p in problems if p.kind == "missing"]
        if missing:
            name = missing[0]
            return _bad("message text is empty" if name == "text" else f"{name} is empty")
        unknown = [p.param for p in problems if p.kind == "unknown_param"]
        if unknown:
            return _bad(f'unknown parameter "{unknown[0]}"')
        return _bad(f"can't parse parameters: {bad_types[0]}")

    def _violate(self, messages: Iterable[str]) -> None:
        with self._lock:
            self.violations.extend(messages)

    async def _inject(
        self, record: RequestRecord, call: _Call, handler: Handler, fault: _FaultRule
    ) -> web.Response:
        executed = fault.executed and fault.kind != "429"
        record.fault = fault.kind
        with self._lock:
            self.injected.append(InjectedFault(call.method, fault.kind, executed, time.time()))
        if fault.kind == "429":
            seconds = fault.retry_after if fault.retry_after is not None else self.retry_after
            return self._reply_error(
                record,
                ApiError(
                    429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds}
                ),
            )
        outcome: tuple[bool, Any] | None = None
        if executed:
            try:
                outcome = (True, await handler(call))
            except ApiError as error:
                outcome = (False, error)
        if fault.kind == "timeout":
            # The client has given up by now; whatever is answered goes nowhere.
            await self._sleep(self.timeout_hold_s)
            if outcome is not None:
                ok, value = outcome
                return self._reply_ok(record, value) if ok else self._reply_error(record, value)
            return self._reply_error(record, ApiError(504, "Gateway Timeout"))
        if fault.kind == "500":
            return self._reply_error(record, ApiError(500, "Internal Server Error"))
        record.status = 502
        return web.Response(status=502, text=_NGINX_502, content_type="text/html")

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the server stops."""
        assert self._stop_event is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), seconds)

    def _reply_ok(self, record: RequestRecord, result: Any) -> web.Response:
        if self.spec is not None:
            checked = result
            if record.method == "getUpdates":  # raw_update() may queue odd updates on purpose
                checked = [u for u in result if u.get("update_id") not in self._unchecked_updates]
            self._fake_bug(self.spec.check_result(record.method, checked))
        payload = {"ok": True, "result": result}
        record.status = 200
        record.response = payload
        return _json_response(200, payload)

    def _reply_error(self, record: RequestRecord, error: ApiError) -> web.Response:
        payload: JSONDict = {
            "ok": False,
            "error_code": error.code,
            "description": error.description,
        }
        if error.parameters:
            payload["parameters"] = error.parameters
        record.status = error.code
        record.response = payload
        return _json_response(error.code, payload)

    # -- internals: webhook delivery ----------------------------------------------------------

    def _delivery_targets(self) -> list[str]:
        if self._webhook is None:
            return []
        if self.webhook_targets:
            return list(self.webhook_targets)
        return [self._webhook.url, *self.webhook_replicas]

    @staticmethod
    def _delivery_chat(update: Mapping[str, Any]) -> tuple[str, object]:
        """The chat an update belongs to, for the delivery order (its sender when it has
        no chat, itself when it has neither)."""
        for kind, body in update.items():
            if kind == "update_id" or not isinstance(body, dict):
                continue
            message = body.get("message") if kind == "callback_query" else body
            chat = message.get("chat") if isinstance(message, dict) else None
            if isinstance(chat, dict) and "id" in chat:
                return "chat", chat["id"]
            sender = body.get("from")
            if isinstance(sender, dict) and "id" in sender:
                return "user", sender["id"]
        return "update", update.get("update_id")

    def _connection_slots(self, max_connections: int) -> asyncio.Semaphore:
        """(server loop) The webhook's connections: at most ``max_connections`` POSTs at once
        (a new semaphore when setWebhook changes it)."""
        if self._slots is None or self._slots_size != max_connections:
            self._slots = asyncio.Semaphore(max_connections)
            self._slots_size = max_connections
        return self._slots

    async def _deliver_forever(self) -> None:
        """(server loop) Deliver webhook updates like Telegram: several at once, up to the
        webhook's ``max_connections``, but one update of a chat at a time and in order (a
        chat's next update waits until the one before it is delivered, retries included)."""
        assert self._delivery_event is not None
        event = self._delivery_event
        deliveries: dict[tuple[str, object], asyncio.Task[None]] = {}

        def finished(chat: tuple[str, object], task: asyncio.Task[None]) -> None:
            if deliveries.get(chat) is task:
                del deliveries[chat]
            event.set()

        try:
            while not self._stopping:
                event.clear()
                heads: list[tuple[tuple[str, object], JSONDict]] = []
                with self._lock:
                    if self._webhook is not None and self._delivery_targets():
                        busy = set(deliveries)
                        for update in self._pending:
                            chat = self._delivery_chat(update)
                            if not self.webhook_chat_order:
                                chat = ("update", update["update_id"])
                            if chat not in busy:
                                busy.add(chat)
                                heads.append((chat, copy.deepcopy(update)))
                for chat, update in heads:
                    task = asyncio.create_task(self._deliver_one(update))
                    deliveries[chat] = task
                    task.add_done_callback(functools.partial(finished, chat))
                await event.wait()
        finally:
            for task in deliveries.values():
                task.cancel()
            await asyncio.gather(*deliveries.values(), return_exceptions=True)

    async def _deliver_one(self, update: JSONDict) -> None:
        """(server loop) POST one update until a 2xx answer, round-robin over the targets,
        pausing ``webhook_retry_delays`` after each failure; stops if the update is dropped
        or the webhook deleted."""
        update_id = int(update["update_id"])
        failures = 0
        while not self._stopping:
            with self._lock:
                hook = self._webhook
                targets = self._delivery_targets()
                pending = any(u["update_id"] == update_id for u in self._pending)
                if hook is None or not targets or not pending:
                    return
                url = targets[self._round_robin % len(targets)]
                self._round_robin += 1
            async with self._connection_slots(hook.max_connections):
                status, error = await self._post_update(url, update, hook.secret_token)
            attempt = WebhookAttempt(url, update_id, status, error, time.time())
            with self._lock:
                self.webhook_attempts.append(attempt)
                if attempt.ok:
                    self._pending = [u for u in self._pending if u["update_id"] != update_id]
                else:
                    failures += 1
                    hook.last_error_date = int(time.time())
                    hook.last_error_message = error
                self._last_activity = time.monotonic()
                self._notify_changed()
            if attempt.ok:
                return
            delays = self.webhook_retry_delays or (0.05,)
            await self._sleep(delays[min(failures, len(delays)) - 1])

    async def _post_update(
        self, url: str, update: JSONDict, secret: str | None
    ) -> tuple[int | None, str | None]:
        headers = {"Content-Type": "application/json"}
        if secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        assert self._session is not None
        try:
            async with self._session.post(
                url,
                data=json.dumps(update, ensure_ascii=False).encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.webhook_timeout_s),
            ) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return response.status, None
                return (
                    response.status,
                    f"Wrong response from the webhook: {response.status} {response.reason}",
                )
        except aiohttp.ClientConnectorError:
            return None, "Connection refused"
        except TimeoutError:
            return None, "Connection timed out"
        except aiohttp.ClientError as exc:
            return None, f"Connection error: {exc}"

    # -- internals: checks shared by methods --------------------------------------------------

    def _find_chat(self, ref: object) -> FakeChat:
        chat: FakeChat | None = None
        if isinstance(ref, int) and not isinstance(ref, bool):
            chat = self._chats.get(ref)
        elif isinstance(ref, str) and ref.startswith("@"):
            wanted = ref[1:].lower()
            chat = next(
                (
                    c
                    for c in self._chats.values()
                    if (c.username or (c.user.username if c.user else None) or "").lower() == wanted
                ),
                None,
            )
        if chat is None:
            raise _bad("chat not found")
        return chat

    def _check_can_write(self, chat: FakeChat) -> None:
        if chat.type == "private":
            user = self._users[chat.id]
            if user.is_bot:
                raise ApiError(403, "Forbidden: bot can't send messages to bots")
            if user.blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            if not user.started:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
            return
        status = chat.members.get(self.bot.id, "left")
        if status == "kicked":
            raise ApiError(403, f"Forbidden: bot was kicked from the {chat.type} chat")
        if status == "left":
            raise ApiError(403, f"Forbidden: bot is not a member of the {chat.type} chat")

    def _target_thread(self, chat: FakeChat, thread_id: object) -> int | None:
        if thread_id in (None, 0) or not chat.is_forum:
            return None
        topic = chat.topics.get(cast(int, thread_id))
        if topic is None or topic.deleted:
            raise _bad("message thread not found")
        if topic.closed:
            raise _bad("TOPIC_CLOSED")
        return topic.message_thread_id

    def _reply_target(
        self, chat: FakeChat, params: Mapping[str, Any], thread: int | None
    ) -> tuple[JSONDict | None, int | None]:
        reply = params.get("reply_parameters")
        if not isinstance(reply, dict) or "message_id" not in reply:
            return None, thread
        if reply.get("chat_id") not in (None, chat.id, chat.username and f"@{chat.username}"):
            return None, thread  # replies across chats (external_reply) are not modelled
        found = chat.messages.get(int(reply["message_id"]))
        if found is None:
            if reply.get("allow_sending_without_reply"):
                return None, thread
            raise _bad("message to be replied not found")
        if thread is None and found.get("is_topic_message"):
            thread = found.get("message_thread_id")
        return found, thread

    def _format(
        self,
        text: object,
        parse_mode: object,
        entities: object,
        *,
        caption: bool,
    ) -> tuple[str, list[JSONDict]]:
        source = "" if text is None else str(text)
        mode = str(parse_mode or "").strip().lower()
        if isinstance(entities, list) and entities:
            plain, found = source, [dict(e) for e in entities if isinstance(e, dict)]
        elif mode == "html":
            try:
                plain, found = parse_html(source)
            except EntityParseError as error:
                raise _bad(f"can't parse entities: {error}") from None
        elif mode in ("", "markdown", "markdownv2"):
            plain, found = source, []
        else:
            raise _bad("unsupported parse_mode")
        plain, found = _strip_text(plain, found)
        if caption:
            if len(plain) > CAPTION_LIMIT:
                raise _bad("message caption is too long")
        elif not plain:
            raise _bad("message text is empty")
        elif len(plain) > TEXT_LIMIT:
            raise _bad("message is too long")
        return plain, found

    def _caption_content(self, params: Mapping[str, Any]) -> JSONDict:
        if "caption" not in params:
            return {}
        caption, entities = self._format(
            params.get("caption"),
            params.get("parse_mode"),
            params.get("caption_entities"),
            caption=True,
        )
        content: JSONDict = {}
        if caption:
            content["caption"] = caption
            if entities:
                content["caption_entities"] = entities
        return content

    def _check_markup(self, markup: object) -> JSONDict | None:
        """Validate reply_markup; the inline keyboard to keep on the message, if any."""
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                raise _bad('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array')
            for row in rows:
                for button in row:
                    self._check_button(button)
            return copy.deepcopy(markup)
        if "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                raise _bad('field "keyboard" of the ReplyKeyboardMarkup must be an Array')
        elif not ({"remove_keyboard", "force_reply"} & markup.keys()):
            raise _bad("can't parse reply keyboard markup JSON object")
        return None

    @staticmethod
    def _check_button(button: object) -> None:
        if not isinstance(button, dict):
            raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
        if not isinstance(button.get("text"), str):
            raise _bad('can\'t parse inline keyboard button: Field "text" must be of type String')
        actions = [key for key in BUTTON_ACTIONS if key in button]
        if len(actions) != 1:
            raise _bad(
                "can't parse inline keyboard button: InlineKeyboardButton must have exactly one "
                f"optional field set, has {actions or 'none'}"
            )
        if "callback_data" in button:
            data = button["callback_data"]
            if not isinstance(data, str) or not 1 <= len(data.encode()) <= CALLBACK_DATA_LIMIT:
                raise _bad("BUTTON_DATA_INVALID")
        if "url" in button:
            url = button["url"]
            if not isinstance(url, str) or _normalize_url(url) is None:
                raise _bad("BUTTON_URL_INVALID")

    def _record_sent(
        self,
        method: str,
        call: _Call,
        message: Mapping[str, Any],
        *,
        source_text: object = None,
    ) -> SentRecord:
        params = call.params
        markup = params.get("reply_markup")
        record = SentRecord(
            index=len(self.sent),
            method=method,
            chat_id=int(message["chat"]["id"]),
            message_id=int(message["message_id"]),
            message_thread_id=message.get("message_thread_id"),
            text=message.get("text", message.get("caption")),
            source_text=None if source_text is None else str(source_text),
            parse_mode=params.get("parse_mode"),
            entities=copy.deepcopy(message.get("entities", message.get("caption_entities", []))),
            reply_markup=copy.deepcopy(markup) if isinstance(markup, dict) else None,
            media=_media_kind(message),
            file_ids=_file_ids(message),
            message=copy.deepcopy(dict(message)),
            params=dict(params),
            time=time.time(),
        )
        self.sent.append(record)
        self._notify_changed()
        return record

    def _writable_target(self, params: Mapping[str, Any]) -> tuple[FakeChat, int | None]:
        chat = self._find_chat(params.get("chat_id"))
        self._check_can_write(chat)
        return chat, self._target_thread(chat, params.get("message_thread_id"))

    def _edit_target(self, params: Mapping[str, Any]) -> tuple[FakeChat, JSONDict]:
        if params.get("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID")  # inline messages are not modelled
        if "message_id" not in params:
            raise _bad("message identifier is not specified")
        chat = self._find_chat(params.get("chat_id"))
        message = chat.messages.get(int(params["message_id"]))
        if message is None:
            raise _bad("message to edit not found")
        if message.get("from", {}).get("id") != self.bot.id:
            raise _bad("message can't be edited")
        return chat, message

    def _bot_manages_topics(self, chat: FakeChat) -> bool:
        status = chat.members.get(self.bot.id)
        return status == "creator" or (status == "administrator" and chat.bot_can_manage_topics)

    def _forum_topic(self, params: Mapping[str, Any]) -> tuple[FakeChat, FakeTopic]:
        chat = self._find_chat(params.get("chat_id"))
        if not chat.is_forum:
            raise _bad("the chat is not a forum")
        if not self._bot_manages_topics(chat):
            raise _bad("not enough rights to manage topics in the chat")
        topic = chat.topics.get(int(params.get("message_thread_id") or 0))
        if topic is None or topic.deleted:
            raise _bad("TOPIC_ID_INVALID")
        return chat, topic

    def _scope_key(self, scope: object) -> str:
        if not isinstance(scope, dict):
            scope = {"type": "default"}
        scope = dict(scope)
        if "chat_id" in scope:
            scope["chat_id"] = self._find_chat(
                coerce_value(("Integer", "String"), scope["chat_id"])
            ).id
        return json.dumps(scope, sort_keys=True)

    # -- Bot API methods ----------------------------------------------------------------------

    async def _api_true(self, call: _Call) -> bool:
        return True

    async def _api_get_me(self, call: _Call) -> JSONDict:
        return {
            **self.bot.to_api(),
            "can_join_groups": True,
            "can_read_all_group_messages": not self.privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _api_get_updates(self, call: _Call) -> list[JSONDict]:
        params = call.params
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._webhook is not None:
                raise ApiError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )
            offset = int(params.get("offset") or 0)
            limit = min(max(int(params.get("limit") or 100), 1), 100)
            timeout = max(float(params.get("timeout") or 0), 0.0)
            if "allowed_updates" in params and isinstance(params["allowed_updates"], list):
                self._allowed_updates = [str(k) for k in params["allowed_updates"]] or None
            if offset > 0:
                self._pending = [u for u in self._pending if u["update_id"] >= offset]
            elif offset < 0:
                self._pending = self._pending[offset:]
            self._poll_generation += 1
            generation = self._poll_generation
            self._notify_changed()
        self._wake()  # an older long poll is terminated with 409
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                if generation != self._poll_generation:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that only "
                        "one bot instance is running",
                    )
                batch = copy.deepcopy(self._pending[:limit])
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._stopping:
                return batch
            waiter: asyncio.Future[None] = loop.create_future()
            self._update_waiters.append(waiter)
            await asyncio.wait({waiter}, timeout=remaining)

    async def _api_set_webhook(self, call: _Call) -> bool:
        params = call.params
        url = str(params.get("url") or "")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_RE.fullmatch(str(secret)):
            raise _bad("secret token contains unallowed characters")
        if url and urlsplit(url).scheme not in ("http", "https"):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        max_connections = int(params.get("max_connections") or 40)
        if not 1 <= max_connections <= 100:
            raise _bad("bad webhook: max_connections must be between 1 and 100")
        allowed = params.get("allowed_updates")
        if url:
            self.set_webhook(
                url,
                secret_token=str(secret) if secret else None,
                allowed_updates=allowed if isinstance(allowed, list) else None,
                max_connections=max_connections,
                drop_pending_updates=bool(params.get("drop_pending_updates")),
            )
        else:
            self.delete_webhook(drop_pending_updates=bool(params.get("drop_pending_updates")))
        return True

    async def _api_delete_webhook(self, call: _Call) -> bool:
        self.delete_webhook(drop_pending_updates=bool(call.params.get("drop_pending_updates")))
        return True

    async def _api_get_webhook_info(self, call: _Call) -> JSONDict:
        with self._lock:
            hook = self._webhook
            info: JSONDict = {
                "url": hook.url if hook else "",
                "has_custom_certificate": False,
                "pending_update_count": len(self._pending),
            }
            if hook is not None:
                info["ip_address"] = "127.0.0.1"
                info["max_connections"] = hook.max_connections
                if hook.allowed_updates is not None:
                    info["allowed_updates"] = list(hook.allowed_updates)
                if hook.last_error_date is not None:
                    info["last_error_date"] = hook.last_error_date
                    info["last_error_message"] = hook.last_error_message or ""
            return info

    async def _api_send_message(self, call: _Call) -> JSONDict:
        params = call.params
        with self._lock:
            chat, thread = self._writable_target(params)
            text, entities = self._format(
                params.get("text"), params.get("parse_mode"), params.get("entities"), caption=False
            )
            markup = self._check_markup(params.get("reply_markup"))
            reply_to, thread = self._reply_target(chat, params, thread)
            content: JSONDict = {"text": text}
            if entities:
                content["entities"] = entities
            message = self._post(
                chat, self.bot, content, thread_id=thread, reply_to=reply_to, markup=markup
            )
            self._record_sent("sendMessage", call, message, source_text=params.get("text"))
            return copy.deepcopy(message)

    def _media_handler(self, kind: str) -> Handler:
        async def send(call: _Call) -> JSONDict:
            params = call.params
            with self._lock:
                chat, thread = self._writable_target(params)
                content = self._caption_content(params)
                markup = self._check_markup(params.get("reply_markup"))
                reply_to, thread = self._reply_target(chat, params, thread)
                stored = self._input_file(call, kind)
                content[kind] = self._media_object(stored)
                if params.get("has_spoiler") and kind in ("photo", "video"):
                    content["has_media_spoiler"] = True
                if params.get("show_caption_above_media") and "caption" in content:
                    content["show_caption_above_media"] = True
                message = self._post(
                    chat, self.bot, content, thread_id=thread, reply_to=reply_to, markup=markup
                )
                method = "send" + kind.capitalize()
                self._record_sent(method, call, message, source_text=params.get("caption"))
                return copy.deepcopy(message)

        return send

    async def _api_edit_message_text(self, call: _Call) -> JSONDict:
        params = call.params
        with self._lock:
            _chat, message = self._edit_target(params)
            if "text" not in message:
                raise _bad("there is no text in the message to edit")
            text, entities = self._format(
                params.get("text"), params.get("parse_mode"), params.get("entities"), caption=False
            )
            markup = self._check_markup(params.get("reply_markup"))
            if (
                text == message.get("text")
                and entities == message.get("entities", [])
                and markup == message.get("reply_markup")
            ):
                raise _bad(_NOT_MODIFIED.removeprefix("Bad Request: "))
            message["text"] = text
            if entities:
                message["entities"] = entities
            else:
                message.pop("entities", None)
            self._set_markup(message, markup)
            message["edit_date"] = int(time.time())
            self._record_sent("editMessageText", call, message, source_text=params.get("text"))
            return copy.deepcopy(message)

    async def _api_edit_message_reply_markup(self, call: _Call) -> JSONDict:
        params = call.params
        with self._lock:
            _chat, message = self._edit_target(params)
            markup = self._check_markup(params.get("reply_markup"))
            if markup == message.get("reply_markup"):
                raise _bad(_NOT_MODIFIED.removeprefix("Bad Request: "))
            self._set_markup(message, markup)
            message["edit_date"] = int(time.time())
            self._record_sent("editMessageReplyMarkup", call, message)
            return copy.deepcopy(message)

    @staticmethod
    def _set_markup(message: JSONDict, markup: JSONDict | None) -> None:
        # Telegram drops an inline keyboard the edit does not repeat.
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup

    def _can_delete(self, chat: FakeChat, message: Mapping[str, Any]) -> bool:
        """deleteMessage's limitations: sent less than 48 hours ago, not the service message
        of a topic's creation, and the bot's own or (in a group) the bot an administrator
        allowed to delete messages (``bot_can_delete_messages``)."""
        if time.time() - float(message["date"]) >= DELETE_WINDOW_S:
            return False
        if "forum_topic_created" in message:
            return False
        if chat.type == "private" or message.get("from", {}).get("id") == self.bot.id:
            return True
        status = chat.members.get(self.bot.id)
        return status == "creator" or (status == "administrator" and chat.bot_can_delete_messages)

    async def _api_delete_message(self, call: _Call) -> bool:
        params = call.params
        with self._lock:
            chat = self._find_chat(params.get("chat_id"))
            message = chat.messages.get(int(params.get("message_id") or 0))
            if message is None:
                raise _bad("message to delete not found")
            if not self._can_delete(chat, message):
                raise _bad("message can't be deleted")
            del chat.messages[message["message_id"]]
            self._record_sent("deleteMessage", call, message)
            return True

    async def _api_delete_messages(self, call: _Call) -> bool:
        """1-100 message ids; those not found are skipped. When one of those found cannot be
        deleted (``_can_delete``) the request fails and nothing is deleted (what tdlib
        does: it checks every message before it deletes any)."""
        params = call.params
        ids = params.get("message_ids")
        if not isinstance(ids, list) or not ids:
            raise _bad("message identifiers are not specified")
        if len(ids) > DELETE_BATCH_LIMIT:
            raise _bad("too many message identifiers specified")
        if any(isinstance(i, bool) or not isinstance(i, int) or i <= 0 for i in ids):
            raise _bad("invalid message identifier specified")
        with self._lock:
            chat = self._find_chat(params.get("chat_id"))
            found = [chat.messages[i] for i in dict.fromkeys(ids) if i in chat.messages]
            if not all(self._can_delete(chat, message) for message in found):
                raise _bad("message can't be deleted")
            for message in found:
                del chat.messages[message["message_id"]]
                self._record_sent("deleteMessages", call, message)
            return True

    async def _api_answer_callback_query(self, call: _Call) -> bool:
        params = call.params
        query_id = str(params.get("callback_query_id"))
        with self._lock:
            if self._callback_queries.get(query_id) is not False:
                raise _bad("query is too old and response timeout expired or query ID is invalid")
            if len(str(params.get("text") or "")) > 200:
                raise _bad("MESSAGE_TOO_LONG")
            self._callback_queries[query_id] = True
            self.callback_answers[query_id] = dict(params)
            return True

    async def _api_send_chat_action(self, call: _Call) -> bool:
        params = call.params
        with self._lock:
            self._writable_target(params)
            if params.get("action") not in CHAT_ACTIONS:
                raise _bad("wrong parameter action in request")
            return True

    def _source_message(self, params: Mapping[str, Any], what: str) -> JSONDict:
        source = self._find_chat(params.get("from_chat_id"))
        message = source.messages.get(int(params.get("message_id") or 0))
        if message is None:
            raise _bad(f"message to {what} not found")
        if not any(key in message for key in CONTENT_KEYS):
            raise _bad(f"message can't be {'copied' if what == 'copy' else 'forwarded'}")
        return message

    async def _api_copy_message(self, call: _Call) -> JSONDict:
        params = call.params
        with self._lock:
            original = self._source_message(params, "copy")
            chat, thread = self._writable_target(params)
            content = {key: original[key] for key in CONTENT_KEYS if key in original}
            if "caption" in params and _media_kind(original):
                content.pop("caption", None)
                content.pop("caption_entities", None)
                content.update(self._caption_content(params))
            markup = self._check_markup(params.get("reply_markup"))
            reply_to, thread = self._reply_target(chat, params, thread)
            message = self._post(
                chat, self.bot, content, thread_id=thread, reply_to=reply_to, markup=markup
            )
            self._record_sent("copyMessage", call, message, source_text=params.get("caption"))
            return {"message_id": message["message_id"]}

    async def _api_forward_message(self, call: _Call) -> JSONDict:
        params = call.params
        with self._lock:
            original = self._source_message(params, "forward")
            chat, thread = self._writable_target(params)
            content = {key: original[key] for key in CONTENT_KEYS if key in original}
            origin = original.get("forward_origin") or {
                "type": "user",
                "date": original["date"],
                "sender_user": original["from"],
            }
            message = self._post(
                chat, self.bot, content, thread_id=thread, extra={"forward_origin": origin}
            )
            self._record_sent("forwardMessage", call, message)
            return copy.deepcopy(message)

    async def _api_get_file(self, call: _Call) -> JSONDict:
        file_id = str(call.params.get("file_id") or "")
        with self._lock:
            stored = self._files.get(file_id)
            if stored is None:
                raise _bad("wrong file_id or the file is temporarily unavailable")
            if stored.size > DOWNLOAD_LIMIT:
                raise _bad("file is too big")
            if stored.file_path is None:
                folder, default_ext = _FILE_FOLDER.get(stored.kind, ("documents", ""))
                ext = Path(stored.file_name or "").suffix or default_ext
                if not ext and stored.mime_type:
                    ext = mimetypes.guess_extension(stored.mime_type) or ""
                self._path_seq += 1
                stored.file_path = f"{folder}/file_{self._path_seq}{ext}"
                self._files_by_path[stored.file_path] = stored
            return {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_size": stored.size,
                "file_path": stored.file_path,
            }

    async def _api_create_forum_topic(self, call: _Call) -> JSONDict:
        params = call.params
        with self._lock:
            chat = self._find_chat(params.get("chat_id"))
            if not chat.is_forum:
                raise _bad("the chat is not a forum")
            if not self._bot_manages_topics(chat):
                raise _bad("not enough rights to create a topic")
            name = str(params.get("name") or "")
            if not name.strip():
                raise _bad("TOPIC_TITLE_EMPTY")
            if len(name) > 128:
                raise _bad("TOPIC_TITLE_TOO_LONG")
            color = int(params.get("icon_color") or TOPIC_COLORS[0])
            if color not in TOPIC_COLORS:
                raise _bad("TOPIC_ICON_COLOR_INVALID")
            emoji = params.get("icon_custom_emoji_id") or None
            topic = self._new_topic(chat, self.bot, name, color, emoji)
            return topic.to_api()

    async def _api_close_forum_topic(self, call: _Call) -> bool:
        return self._set_topic_closed(call, closed=True)

    async def _api_reopen_forum_topic(self, call: _Call) -> bool:
        return self._set_topic_closed(call, closed=False)

    def _set_topic_closed(self, call: _Call, *, closed: bool) -> bool:
        with self._lock:
            chat, topic = self._forum_topic(call.params)
            if topic.closed == closed:
                raise _bad("TOPIC_NOT_MODIFIED")
            topic.closed = closed
            service = "forum_topic_closed" if closed else "forum_topic_reopened"
            self._post(chat, self.bot, {service: {}}, thread_id=topic.message_thread_id)
            self._notify_changed()
            return True

    async def _api_edit_forum_topic(self, call: _Call) -> bool:
        params = call.params
        with self._lock:
            chat, topic = self._forum_topic(params)
            edited: JSONDict = {}
            name = params.get("name")
            if name is not None and name != topic.name:
                if not str(name).strip() or len(str(name)) > 128:
                    raise _bad("TOPIC_TITLE_EMPTY")
                topic.name = edited["name"] = str(name)
            emoji = params.get("icon_custom_emoji_id")
            if emoji is not None and (emoji or None) != topic.icon_custom_emoji_id:
                topic.icon_custom_emoji_id = str(emoji) or None
                edited["icon_custom_emoji_id"] = str(emoji)
            if not edited:
                raise _bad("TOPIC_NOT_MODIFIED")
            self._post(
                chat, self.bot, {"forum_topic_edited": edited}, thread_id=topic.message_thread_id
            )
            self._notify_changed()
            return True

    async def _api_delete_forum_topic(self, call: _Call) -> bool:
        """ "The bot must be an administrator in the chat for this to work and must have the
        can_delete_messages administrator rights"; there is no 48-hour limit."""
        with self._lock:
            chat, topic = self._forum_topic(call.params)
            status = chat.members.get(self.bot.id)
            if status != "creator" and not chat.bot_can_delete_messages:
                raise _bad("not enough rights to delete the topic")
            topic.deleted = True
            for message_id in [
                mid
                for mid, message in chat.messages.items()
                if message.get("message_thread_id") == topic.message_thread_id
            ]:
                del chat.messages[message_id]
            self._notify_changed()
            return True

    async def _api_set_my_commands(self, call: _Call) -> bool:
        params = call.params
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad("too many commands")
        cleaned: list[JSONDict] = []
        for item in commands:
            if not isinstance(item, dict):
                raise _bad("can't parse BotCommand JSON object")
            command = str(item.get("command", "")).removeprefix("/")
            description = str(item.get("description", ""))
            if not _BOT_COMMAND_NAME.fullmatch(command):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(description.strip()) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": command, "description": description})
        with self._lock:
            key = (self._scope_key(params.get("scope")), str(params.get("language_code") or ""))
            self._commands[key] = cleaned
            return True

    async def _api_get_my_commands(self, call: _Call) -> list[JSONDict]:
        with self._lock:
            key = (
                self._scope_key(call.params.get("scope")),
                str(call.params.get("language_code") or ""),
            )
            return copy.deepcopy(self._commands.get(key, []))

    async def _api_delete_my_commands(self, call: _Call) -> bool:
        with self._lock:
            key = (
                self._scope_key(call.params.get("scope")),
                str(call.params.get("language_code") or ""),
            )
            self._commands.pop(key, None)
            return True

    async def _api_get_chat(self, call: _Call) -> JSONDict:
        with self._lock:
            return self._find_chat(call.params.get("chat_id")).to_full_info()

    async def _api_get_chat_member(self, call: _Call) -> JSONDict:
        params = call.params
        with self._lock:
            chat = self._find_chat(params.get("chat_id"))
            user_id = int(params.get("user_id") or 0)
            user = self._users.get(user_id)
            if user is None:
                raise _bad("user not found")
            if chat.type == "private":
                status = "member" if user_id in (chat.id, self.bot.id) else "left"
            else:
                status = chat.members.get(user_id, "left")
            return self._chat_member(chat, user, status)

    def _chat_member(self, chat: FakeChat, user: FakeUser, status: str) -> JSONDict:
        data: JSONDict = {"status": status, "user": user.to_api()}
        if status == "creator":
            data["is_anonymous"] = False
        elif status == "administrator":
            is_bot = user.id == self.bot.id
            data.update(
                {
                    "can_be_edited": False,
                    "is_anonymous": False,
                    "can_manage_chat": True,
                    "can_delete_messages": chat.bot_can_delete_messages if is_bot else True,
                    "can_manage_video_chats": True,
                    "can_restrict_members": True,
                    "can_promote_members": False,
                    "can_change_info": True,
                    "can_invite_users": True,
                    "can_post_stories": False,
                    "can_edit_stories": False,
                    "can_delete_stories": False,
                    "can_pin_messages": True,
                    "can_manage_topics": chat.bot_can_manage_topics if is_bot else True,
                }
            )
        elif status == "kicked":
            data["until_date"] = 0
        return data


def _json_response(status: int, payload: JSONDict) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(payload, ensure_ascii=False),
        content_type="application/json",
    )
