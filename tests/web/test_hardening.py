"""Nothing a stranger sends is stored, nothing oversized is read, no path number crashes the
console, and no log line of ``gradguide web`` holds a phone or ID number (issue 14)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from bot.settings import Settings
from tests.fakes.telegram_server import FakeTelegram
from tests.web.conftest import (
    ADMIN_PASSWORD,
    Console,
    csrf_of,
    gradguide_web,
    start_console,
    stop_console,
)

MIB = 1024 * 1024
BOUNDARY = "gradguide-test-boundary"
PHONE = "13812345678"
ID_NUMBER = "11010519491231002X"


class Upload:
    """A multipart form: the fields, then a file of ``file_size`` bytes of ``x``, made as it
    is read; ``sent`` is how much of it the app has pulled."""

    def __init__(self, file_size: int, fields: dict[str, str], file_name: str = "big.md") -> None:
        head = "".join(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in fields.items()
        )
        head += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{file_name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        self.head = head.encode()
        self.tail = f"\r\n--{BOUNDARY}--\r\n".encode()
        self.file_size = file_size
        self.size = len(self.head) + file_size + len(self.tail)
        self.sent = 0

    def _count(self, chunk: bytes) -> bytes:
        self.sent += len(chunk)
        return chunk

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._count(self.head)
        block = b"x" * MIB
        left = self.file_size
        while left > 0:
            yield self._count(block[: min(left, MIB)])
            left -= MIB
        yield self._count(self.tail)

    def headers(self, *, declared: bool, lang: str = "zh") -> dict[str, str]:
        headers = {
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Accept-Language": lang,
        }
        if declared:
            headers["Content-Length"] = str(self.size)
        return headers


def staged(console: Console) -> list[Path]:
    folder = console.services.settings.data_dir / "uploads" / "web-staging"
    return sorted(folder.iterdir()) if folder.exists() else []


# -- item 5: bodies are read only from someone logged in, and only up to the cap ------------


@pytest.mark.parametrize("path", ["/admin/documents/preview", "/tickets/1/note"])
async def test_an_anonymous_300_mib_post_is_refused_before_its_body_is_read(
    console: Console, path: str
) -> None:
    await console.graduate_ticket()
    upload = Upload(300 * MIB, {"text": "你好"})
    response = await console.client.post(
        path, content=upload.chunks(), headers=upload.headers(declared=True)
    )
    assert response.status_code == 401
    assert response.text == "请先登录工作台。"
    assert upload.sent == 0, f"{upload.sent} bytes of a stranger's body were read"
    assert staged(console) == []
    # without a Content-Length, the same: not one byte read
    streamed = Upload(300 * MIB, {"text": "你好"})
    response = await console.client.post(
        path, content=streamed.chunks(), headers=streamed.headers(declared=False, lang="en")
    )
    assert response.status_code == 401
    assert response.text == "Please sign in to the console first."
    assert streamed.sent == 0


async def test_a_logged_in_upload_over_the_default_cap_gets_413_unread(console: Console) -> None:
    await console.as_user("admin")
    csrf = csrf_of((await console.client.get("/admin/documents/upload")).text)
    cap = int((console.services.settings.max_file_mb + 8) * MIB)  # the documented default
    upload = Upload(cap, {"csrf_token": csrf})
    response = await console.client.post(
        "/admin/documents/preview", content=upload.chunks(), headers=upload.headers(declared=True)
    )
    assert response.status_code == 413
    assert "发送的内容太大（工作台最多接收 28 MB）" in response.text
    assert upload.sent == 0
    assert staged(console) == []
    english = Upload(cap, {"csrf_token": csrf})
    response = await console.client.post(
        "/admin/documents/preview",
        content=english.chunks(),
        headers=english.headers(declared=True, lang="en"),
    )
    assert response.status_code == 413
    assert "What was sent is too large (the console takes at most 28 MB)" in response.text
    # still logged in, and the upload page works
    assert (await console.client.get("/admin/documents/upload")).status_code == 200


@pytest.fixture
async def small_cap(web_settings: Settings, tg: FakeTelegram) -> AsyncIterator[Console]:
    """A console whose body cap is set (GRADGUIDE_WEB_MAX_BODY_MB=2)."""
    settings = web_settings.model_copy(update={"web_max_body_mb": 2.0})
    started = await start_console(settings, tg)
    try:
        yield started
    finally:
        await stop_console(started)


async def test_a_body_sent_without_a_length_is_cut_off_at_the_cap(small_cap: Console) -> None:
    console = small_cap
    ticket = await console.graduate_ticket()
    await console.as_user("chen")
    csrf = csrf_of((await console.client.get(f"/tickets/{ticket.id}")).text)
    upload = Upload(40 * MIB, {"csrf_token": csrf, "text": "一条备注"})
    response = await console.client.post(
        f"/tickets/{ticket.id}/note",
        content=upload.chunks(),
        headers=upload.headers(declared=False),
    )
    assert response.status_code == 413
    assert "工作台最多接收 2 MB" in response.text
    assert upload.sent <= 2 * MIB + MIB + len(upload.head), "read on past the cap"
    events = await console.store.events(ticket.id)
    assert [e for e in events if e.kind == "note"] == []  # nothing was saved
    # a body under the cap still goes through, the same way
    note = await console.form(f"/tickets/{ticket.id}", f"/tickets/{ticket.id}/note", text="好的")
    assert note.status_code == 303


async def test_the_largest_upload_the_limits_allow_passes_the_gate(
    web_settings: Settings, tg: FakeTelegram
) -> None:
    """The cap's default (``max_file_mb`` + 8 MB) lets a file of ``max_file_mb`` through
    with a full text field; the upload's own checks answer it."""
    settings = web_settings.model_copy(update={"max_file_mb": 1.0})
    console = await start_console(settings, tg)
    try:
        await console.as_user("admin")
        csrf = csrf_of((await console.client.get("/admin/documents/upload")).text)
        fields = {"csrf_token": csrf, "text": "试" * 340_000}  # Starlette's 1 MB per field
        upload = Upload(MIB, fields, file_name="big.bin")
        response = await console.client.post(
            "/admin/documents/preview",
            content=upload.chunks(),
            headers=upload.headers(declared=True),
        )
        assert response.status_code == 422
        assert "不支持这种文件类型" in response.text
        assert upload.sent == upload.size
    finally:
        await stop_console(console)


async def test_the_login_form_takes_a_small_body_only(console: Console) -> None:
    page = await console.client.get("/login")
    big = await console.client.post(
        "/login",
        data={"username": "admin", "password": "x" * 70_000, "csrf_token": csrf_of(page.text)},
    )
    assert big.status_code == 413
    assert "工作台最多接收 64 KB" in big.text
    assert (await console.login("admin", ADMIN_PASSWORD)).status_code == 303


# -- item 9: a number in the path too big for the database is a 404, not a crash -----------


OUT_OF_RANGE = ["99999999999999999999999", "2147483648", "0", "-1", "１２", "abc"]


def int_routes(console: Console) -> list[tuple[str, str, list[str]]]:
    """(method, path, int parameters) of every route with a number in its path: a route
    added later is checked without editing this file."""
    found = []
    for context in iter_route_contexts(console.app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or context.path is None:
            continue
        names = [p.alias for p in route.dependant.path_params if p.field_info.annotation is int]
        for method in sorted(context.methods or ()):
            if names:
                found.append((method, context.path, names))
    return found


async def test_every_number_in_a_path_out_of_range_gives_404(console: Console) -> None:
    ticket = await console.graduate_ticket()
    await console.as_user("admin")
    csrf = csrf_of((await console.client.get("/queue")).text)
    routes = int_routes(console)
    paths = {path for _, path, _ in routes}
    assert {
        "/tickets/{ticket_id}",
        "/tickets/{ticket_id}/attachments/{attachment_id}",
        "/canned/{canned_id}/delete",
        "/admin/curated/{curated_id}/approve",
    } <= paths
    for method, path, names in routes:
        for bad in OUT_OF_RANGE:
            for name in names:  # one parameter out of range, the others real
                url = path
                for other in names:
                    url = url.replace(f"{{{other}}}", bad if other == name else str(ticket.id))
                response = await console.client.request(method, url, headers={"X-CSRF-Token": csrf})
                assert response.status_code == 404, (method, url, response.text[:200])
                assert "找不到这个页面" in response.text, (method, url)
    huge = await console.client.get("/tickets/99999999999999999999999")
    assert huge.status_code == 404 and "退出" in huge.text  # the console's page, logged in
    assert (await console.client.get(f"/tickets/{ticket.id}")).status_code == 200


async def test_a_reply_naming_a_canned_reply_out_of_range_is_not_a_crash(
    console: Console,
) -> None:
    ticket = await console.graduate_ticket()
    await console.as_user("chen")
    response = await console.form(
        f"/tickets/{ticket.id}",
        f"/tickets/{ticket.id}/reply",
        text="",
        canned_id="99999999999999999999999",
        nonce="n1",
    )
    assert response.status_code == 303
    assert response.headers["location"].endswith("msg=web_reply_empty")


# -- item 7a: the access log of `gradguide web` is redacted ---------------------------------


@pytest.fixture
def web_process(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``gradguide web`` in a subprocess, with an admin account; its output is read after
    it stops."""
    with gradguide_web(tmp_path, "admin", "admin", ADMIN_PASSWORD) as running:
        yield running


def test_the_access_log_of_gradguide_web_hides_phone_and_id_numbers(
    web_process: tuple[str, subprocess.Popen[str]],
) -> None:
    url, server = web_process
    with httpx.Client(base_url=url, trust_env=False, timeout=60) as client:
        page = client.get("/login")
        login = client.post(
            "/login",
            data={
                "username": "admin",
                "password": ADMIN_PASSWORD,
                "csrf_token": csrf_of(page.text),
            },
        )
        assert login.status_code == 303
        for question in (
            f"我的电话{PHONE}身份证{ID_NUMBER}",
            f"电话 +86 {PHONE[:3]} {PHONE[3:7]} {PHONE[7:]}",
        ):
            assert client.get("/admin/hits", params={"q": question}).status_code == 200
    server.send_signal(signal.SIGINT)
    output, _ = server.communicate(timeout=30)
    access = [line for line in output.splitlines() if "GET /admin/hits?q=" in line]
    assert len(access) == 2, output[-3000:]
    for line in access:
        assert "[phone]" in line, line
    assert "[id-number]" in access[0]
    spaced = [PHONE[:3], PHONE[3:7], PHONE[7:]]
    for secret in (PHONE, ID_NUMBER, "+".join(spaced), "%20".join(spaced)):
        assert secret not in output, f"a personal number reached the log: {secret}"
    assert "GET /login" in output  # the access log is still written
