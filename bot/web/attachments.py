"""The graduates' attachments on the ticket page: fetched from Telegram when a counsellor
opens one (``getFile``, then ``{telegram_api_url}/file/bot{token}/{file_path}``) and
streamed to the browser; nothing is kept on the console's disk.

Only JPEG, PNG, GIF and WebP images are shown in the page; every other file is sent as a
download (``Content-Disposition: attachment``) with ``nosniff`` and a sandboxing CSP, so a
file a graduate sent never runs as a page of the console.
"""

from __future__ import annotations

import logging
import mimetypes
import re
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import quote

import httpx

from bot.settings import Settings
from bot.storage.console_store import Attachment

logger = logging.getLogger(__name__)

INLINE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
"""What the console shows inline (no SVG: it can carry scripts)."""
FILE_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
MAX_NAME_CHARS = 120
_MIME = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*$")
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f"\\/:*?<>|;]+')
_ASCII_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class FileUnavailable(Exception):
    """The Bot API did not give the file; the message never contains the bot's token."""


def is_image(attachment: Attachment) -> bool:
    return (attachment.mime_type or "").lower() in INLINE_TYPES


def content_type(attachment: Attachment) -> str:
    mime = (attachment.mime_type or "").strip().lower()
    return mime if _MIME.fullmatch(mime) else "application/octet-stream"


def format_size(size: int | None) -> str:
    if size is None:
        return "—"
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def file_name(attachment: Attachment, file_path: str = "") -> str:
    """The name to save the file under: the graduate's file name without any path or
    character that could break a header, else ``<kind>-<id>.<ext>``."""
    given = unicodedata.normalize("NFC", attachment.file_name or "").replace("\\", "/")
    name = _UNSAFE_NAME.sub("_", PurePosixPath(given).name).strip(" ._")
    if name:
        return name[-MAX_NAME_CHARS:]
    suffix = ".jpg" if attachment.kind == "photo" else PurePosixPath(file_path).suffix
    if not _SUFFIX.fullmatch(suffix):
        suffix = mimetypes.guess_extension(content_type(attachment)) or ""
    return f"{attachment.kind}-{attachment.id}{suffix}"


def content_disposition(disposition: str, name: str, fallback: str) -> str:
    """``inline`` or ``attachment`` with the real (UTF-8) name in ``filename*`` (RFC 6266)
    and, for old browsers, ``filename``: the name if it is plain ASCII, else ``fallback``."""
    plain = _ASCII_UNSAFE.sub("_", name)
    if not name.isascii() or not re.search(r"[A-Za-z0-9]", PurePosixPath(plain).stem):
        plain = fallback
    return f"{disposition}; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


@dataclass
class TelegramFile:
    """An open download from the Bot API; ``chunks()`` streams it and closes it."""

    file_path: str
    size: int | None
    """The body's length when Telegram said it (the Content-Length to pass on)."""
    response: httpx.Response
    client: httpx.AsyncClient

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.aiter_bytes():
                yield chunk
        finally:
            await self.close()

    async def close(self) -> None:
        await self.response.aclose()
        await self.client.aclose()


async def open_file(settings: Settings, file_id: str) -> TelegramFile:
    """``getFile``, then start the download. Raises ``FileUnavailable``."""
    token = settings.telegram_bot_token
    if not token:
        raise FileUnavailable("TELEGRAM_BOT_TOKEN is not set")
    api = settings.telegram_api_url.rstrip("/")
    client = httpx.AsyncClient(timeout=FILE_TIMEOUT)
    try:
        answer = await client.post(f"{api}/bot{token}/getFile", json={"file_id": file_id})
        try:
            body = answer.json()
        except ValueError:
            raise FileUnavailable(f"getFile answered HTTP {answer.status_code}") from None
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not body.get("ok") or not isinstance(result, dict):
            reason = body.get("description") if isinstance(body, dict) else None
            raise FileUnavailable(f"getFile answered HTTP {answer.status_code}: {reason}")
        file_path = result.get("file_path")
        if not isinstance(file_path, str) or not file_path or ".." in file_path.split("/"):
            raise FileUnavailable("getFile gave no usable file_path")
        url = f"{api}/file/bot{token}/{quote(file_path.lstrip('/'), safe='/')}"
        response = await client.send(client.build_request("GET", url), stream=True)
        if response.status_code != 200:
            await response.aclose()
            raise FileUnavailable(f"the download answered HTTP {response.status_code}")
        length = response.headers.get("content-length", "")
        decoded = "content-encoding" in response.headers  # aiter_bytes() decompresses
        size = int(length) if length.isdigit() and not decoded else None
        return TelegramFile(file_path, size, response, client)
    except FileUnavailable as exc:
        await client.aclose()
        raise FileUnavailable(str(exc).replace(token, "***")) from None
    except (httpx.HTTPError, OSError) as exc:
        await client.aclose()
        reason = f"{type(exc).__name__}: {exc}".replace(token, "***")
        raise FileUnavailable(reason) from None


def response_headers(
    attachment: Attachment, remote: TelegramFile, *, inline: bool
) -> dict[str, str]:
    """The download's headers: its name, no sniffing, no script, cached by this browser only."""
    name = file_name(attachment, remote.file_path)
    suffix = PurePosixPath(name).suffix
    fallback = f"{attachment.kind}-{attachment.id}{suffix if _SUFFIX.fullmatch(suffix) else ''}"
    headers = {
        "Content-Disposition": content_disposition(
            "inline" if inline else "attachment", name, fallback
        ),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=600",
    }
    if remote.size is not None:
        headers["Content-Length"] = str(remote.size)
    return headers
