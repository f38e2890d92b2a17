"""Uploads at their edges, over real HTTP to the console served by uvicorn: file names and ids
that are not names (``..``) are refused with a message, staged files never leave the staging
folder, a failed preview leaves nothing behind, stale staging is cleaned at start-up and as
the console runs, and uploading a document with an existing id replaces it only when the admin
says so."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import uvicorn

from tests.channels.conftest import free_port
from tests.conftest import make_markdown
from tests.web.conftest import ADMIN_PASSWORD, Console, csrf_of, field_of

OVERTIME = (
    "# 加班费\n\n## 工作日\n安排劳动者延长工作时间的，支付不低于工资的百分之一百五十的工资报酬。\n"
)
DAY_S = 86_400


@asynccontextmanager
async def served(console: Console) -> AsyncIterator[httpx.AsyncClient]:
    """The console's app under uvicorn on a free port (its start-up runs), and a client
    logged in as the admin over HTTP."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(console.app, host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn stopped"
        await asyncio.sleep(0.05)
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, trust_env=False)
    try:
        page = await client.get("/login")
        login = await client.post(
            "/login",
            data={
                "username": "admin",
                "password": ADMIN_PASSWORD,
                "csrf_token": csrf_of(page.text),
            },
        )
        assert login.status_code == 303, login.text
        yield client
    finally:
        await client.aclose()
        server.should_exit = True
        await task


def staging(console: Console) -> Path:
    return console.services.settings.data_dir / "uploads" / "web-staging"


def staged_files(console: Console) -> list[Path]:
    root = staging(console)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def uploaded_files(console: Console) -> list[Path]:
    """Every file under data/uploads."""
    root = console.services.settings.data_dir / "uploads"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def preview(
    client: httpx.AsyncClient, name: str, content: bytes, **form: str
) -> httpx.Response:
    page = (await client.get("/admin/documents/upload")).text
    return await client.post(
        "/admin/documents/preview",
        data={"csrf_token": csrf_of(page), **form},
        files={"file": (name, content, "text/markdown")},
    )


def overtime(doc_id: str = "overtime-zh") -> bytes:
    return make_markdown(OVERTIME, id=doc_id, title="加班费规定", topics=["rights"]).encode()


async def test_a_file_named_dot_dot_is_refused_with_a_message(own_console: Console) -> None:
    async with served(own_console) as client:
        for name in ("..", ".", "../..", ".md"):
            refused = await preview(client, name, overtime())
            assert refused.status_code == 400, (name, refused.status_code)
            assert "文件名" in refused.text, name
        client.cookies.set("gg_lang", "en")
        refused = await preview(client, "..", overtime())
        assert refused.status_code == 400 and "file name" in refused.text
    assert staged_files(own_console) == []
    assert uploaded_files(own_console) == []


async def test_an_id_that_is_not_a_name_never_moves_the_file_out_of_its_folder(
    own_console: Console,
) -> None:
    async with served(own_console) as client:
        shown = await preview(client, "overtime.md", overtime())
        assert shown.status_code == 200, shown.text
        token = field_of(shown.text, "token")
        for bad_id in ("..", "../../etc", "a/b", "Bad Id"):
            refused = await client.post(
                "/admin/documents/commit",
                data={"csrf_token": csrf_of(shown.text), "token": token, "id": bad_id},
            )
            assert refused.status_code == 400, (bad_id, refused.status_code)
            assert "编号" in refused.text, bad_id
            # the staged file is where it was, and nothing else was written
            assert [p.name for p in uploaded_files(own_console)] == ["overtime.md"]
            assert staged_files(own_console)[0].parent.name == token
        done = await client.post(
            "/admin/documents/commit",
            data={"csrf_token": csrf_of(shown.text), "token": token, "id": "overtime-zh"},
        )
        assert "msg=web_upload_added&doc=" in done.headers["location"]
    assert "overtime-zh" in {d.meta.id for d in own_console.services.kb.documents()}
    assert staged_files(own_console) == []
    (kept,) = uploaded_files(own_console)
    assert kept.is_relative_to(own_console.services.settings.data_dir / "uploads" / "web")


async def test_a_failed_preview_leaves_no_staged_file(own_console: Console) -> None:
    async with served(own_console) as client:
        binary = await preview(client, "broken.md", b"\x00\x01\x02 not text" * 50)
        assert binary.status_code == 422 and "binary" in binary.text
        empty = await preview(client, "empty.md", b"   \n")
        assert empty.status_code == 422
        unsupported = await preview(client, "notes.exe", b"MZ")
        assert unsupported.status_code == 422
    assert staged_files(own_console) == []


async def test_stale_staging_is_cleaned_at_start_up_and_while_running(
    own_console: Console,
) -> None:
    old = time.time() - 2 * DAY_S

    def stage(token: str, age_s: float) -> Path:
        folder = staging(own_console) / token
        folder.mkdir(parents=True)
        (folder / "left.md").write_text("left over", encoding="utf-8")
        os.utime(folder / "left.md", (time.time() - age_s, time.time() - age_s))
        os.utime(folder, (time.time() - age_s, time.time() - age_s))
        return folder

    abandoned = stage("a" * 24, 2 * DAY_S)
    recent = stage("b" * 24, 60)
    async with served(own_console) as client:
        assert not abandoned.exists(), "an upload abandoned two days ago is gone after start-up"
        assert recent.exists(), "an upload being previewed right now is kept"
        later = stage("c" * 24, 2 * DAY_S)
        os.utime(recent, (old, old))
        os.utime(recent / "left.md", (old, old))
        shown = await preview(client, "overtime.md", overtime())
        assert shown.status_code == 200
        assert not later.exists() and not recent.exists()
    assert len(staged_files(own_console)) == 1  # only the upload just previewed


async def test_an_upload_with_an_existing_id_replaces_it_only_when_the_admin_says_so(
    own_console: Console,
) -> None:
    kb = own_console.services.kb
    original = kb.document("probation-zh")
    async with served(own_console) as client:
        shown = await preview(client, "probation-v2.md", overtime("probation-zh"))
        assert shown.status_code == 200
        # the preview names the document it would replace and where that came from
        assert "probation-zh" in shown.text and "劳动合同法：试用期" in shown.text
        assert original.source in shown.text
        token = field_of(shown.text, "token")
        data = {"csrf_token": csrf_of(shown.text), "token": token, "id": "probation-zh"}
        refused = await client.post("/admin/documents/commit", data=data)
        assert refused.status_code == 409
        assert "劳动合同法：试用期" in refused.text and original.source in refused.text
        assert kb.document("probation-zh").version == original.version  # untouched
        assert [p.parent.name for p in staged_files(own_console)] == [token]  # kept

        done = await client.post(
            "/admin/documents/commit", data={**data, "replace": "probation-zh"}
        )
        assert "msg=web_upload_updated&doc=" in done.headers["location"]
        replaced = kb.document("probation-zh")
        assert replaced.meta.title == "加班费规定" and replaced.source != original.source
        assert Path(original.source).exists(), "the bundled file it replaced is not deleted"

        # the document's Replace button says so from the start; the upload it replaces goes
        form = (await client.get("/admin/documents/upload?replace=probation-zh")).text
        again = await client.post(
            "/admin/documents/preview",
            data={"csrf_token": csrf_of(form), "replace": "probation-zh"},
            files={"file": ("v3.md", overtime("probation-zh"), "text/markdown")},
        )
        assert "已有 id 为 probation-zh 的文档" in again.text
        done = await client.post(
            "/admin/documents/commit",
            data={"csrf_token": csrf_of(again.text), "token": field_of(again.text, "token")},
        )
        assert "msg=web_upload_updated&doc=" in done.headers["location"]
    assert kb.document("probation-zh").source.endswith("/v3.md")
    assert not Path(replaced.source).exists()
    assert [p.name for p in uploaded_files(own_console)] == ["v3.md"]
