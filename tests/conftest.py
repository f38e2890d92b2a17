"""Shared fixtures: isolated settings, a knowledge base on a temp dir, document writers,
the bundled corpus index (built once per session) and a real Chroma server."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bot.kb.service import KnowledgeBase
from bot.settings import BUNDLED_KNOWLEDGE_DIR, Settings

TODAY = dt.date(2026, 11, 26)
ROOT = Path(__file__).resolve().parent.parent


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``long`` run first: with ``-n 4`` a worker takes one while the others
    share the rest. Run late, one such test alone made the suite several minutes longer
    (every worker was done and waited for it)."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No GRADGUIDE_*/OPENAI_* from the developer's shell, no .env, no proxies."""
    for name in list(os.environ):
        if name.startswith(("GRADGUIDE_", "OPENAI_")) or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PTB_TIMEDELTA", "1")  # as `gradguide serve` does: no PTB 22 warnings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    return Settings(data_dir=tmp_path / "data", knowledge_dir=knowledge)


def open_kb(settings: Settings) -> KnowledgeBase:
    return KnowledgeBase.open(settings, clock=lambda: TODAY)


@pytest.fixture
def kb(settings: Settings) -> KnowledgeBase:
    return open_kb(settings)


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The test's settings, also visible to `gradguide` commands run in this test."""
    monkeypatch.setenv("GRADGUIDE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("GRADGUIDE_KNOWLEDGE_DIR", str(settings.knowledge_dir))
    return settings


def run_gradguide(
    settings: Settings,
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m bot ARGS` as a new process on the test's data and knowledge dirs
    (``env``: more environment, e.g. ``GRADGUIDE_EMBEDDING=hash`` for speed)."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={
            "GRADGUIDE_DATA_DIR": str(settings.data_dir),
            "GRADGUIDE_KNOWLEDGE_DIR": str(settings.knowledge_dir),
            "PATH": "/usr/bin:/bin",
            **(env or {}),
        },
        timeout=300,
        check=False,
    )


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `gradguide ARGS` in this process: exit code, stdout, stderr."""
    from bot.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


DocWriter = Callable[..., Path]


def make_markdown(body: str, **meta: Any) -> str:
    fields: dict[str, Any] = {
        "title": "测试文档",
        "lang": "zh",
        "authority": "测试机关",
        "issued": dt.date(2024, 1, 1),
        "region": "national",
        "topics": ["rights", "F3"],
        "summary": "用于测试。",
    }
    fields.update(meta)
    front = yaml.safe_dump(fields, allow_unicode=True, sort_keys=False)
    return f"---\n{front}---\n{body}"


@pytest.fixture
def write_doc(settings: Settings) -> DocWriter:
    """write_doc(doc_id, body, folder=None, **meta) -> path of a Markdown file."""

    def write(doc_id: str, body: str, folder: Path | None = None, **meta: Any) -> Path:
        target = (folder or settings.knowledge_dir) / f"{doc_id}.md"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(make_markdown(body, id=doc_id, **meta), encoding="utf-8")
        return target

    return write


@pytest.fixture(scope="session")
def bundled_kb(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> KnowledgeBase:
    """The bundled corpus, indexed once for the whole run (embedded Chroma). Under xdist the
    first worker to get here builds it under a file lock and every worker opens a copy of
    its own (tests may add documents to theirs)."""
    data = tmp_path_factory.mktemp("bundled")
    with pytest.MonkeyPatch.context() as patch:  # the session outlives per-test isolation
        for name in list(os.environ):
            if name.startswith(("GRADGUIDE_", "OPENAI_")):
                patch.delenv(name)
        patch.chdir(data)
        settings = Settings(data_dir=data, knowledge_dir=BUNDLED_KNOWLEDGE_DIR)
        if worker_id != "master":
            shared = tmp_path_factory.getbasetemp().parent / "bundled-index"
            with _exclusive(shared.with_name("bundled-index.lock")):
                if not (shared / READY).is_file():
                    _build(settings.model_copy(update={"data_dir": shared}))
                    (shared / READY).touch()
            shutil.copytree(shared, data, dirs_exist_ok=True, ignore=shutil.ignore_patterns(READY))
            return open_kb(settings)
    return _build(settings)


READY = ".built"


def _build(settings: Settings) -> KnowledgeBase:
    kb = open_kb(settings)
    report = kb.ingest([BUNDLED_KNOWLEDGE_DIR])
    assert not report.failed, report.failed
    return kb


@contextlib.contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """One process at a time (the xdist workers of one run)."""
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Chroma server (`chroma run`) on a free loopback port."""
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    assert chroma, "the `chroma` command (from the chromadb package) is not installed"
    port = _free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    log = (path / "server.log").open("wb")
    process = subprocess.Popen(
        [chroma, "run", "--path", str(path / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1, trust_env=False).is_success:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"chroma run did not start: {(path / 'server.log').read_text()}")
        time.sleep(0.2)
    yield url
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()
