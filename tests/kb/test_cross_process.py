"""Other processes' writes never break a running reader, and their content is answerable
within ``GRADGUIDE_INDEX_REFRESH_S``: real OS processes (`python -m bot kb ...` and a
long-running knowledge-base process, tests/kb/kb_process.py), on embedded Chroma and on a
Chroma server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings
from tests.conftest import ROOT, DocWriter, open_kb

REFRESH_S = 1.0
SLACK_S = 1.5  # polling, and a search that is under way when the refresh is due

TRIAL = "## 试用期\n\n劳动合同期限三年以上的，试用期不得超过六个月。\n"
TRIAL_V2 = "## 试用期\n\n劳动合同期限一年以上不满三年的，试用期不得超过二个月。\n"
INTERNSHIP = "## 见习\n\n就业见习期限一般为三至十二个月，见习补贴发给见习单位。\n"
INSURANCE = "## 社保\n\n用人单位应当自用工之日起三十日内为职工办理社会保险登记。\n"


class KbProcess:
    """tests/kb/kb_process.py running as its own process: one JSON command, one JSON reply."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as stderr:  # not a pipe: a full one would stall the process
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.kb.kb_process"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
            )
        assert self._read() == {"ready": True}

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the kb process died: {self.log.read_text()[-3000:]}")
        return dict(json.loads(line))

    def __call__(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command, ensure_ascii=False) + "\n")
        self.process.stdin.flush()
        return self._read()

    def wait_for(self, question: str, expect: Any, what: str) -> float:
        """Search until ``expect(reply)`` holds; seconds taken. Any error fails at once."""
        start = time.monotonic()
        while True:
            reply = self(search=question)
            assert "error" not in reply, f"{what}: the running process failed: {reply['error']}"
            if expect(reply):
                return time.monotonic() - start
            assert time.monotonic() - start < REFRESH_S + SLACK_S, f"{what}: not seen: {reply}"
            time.sleep(0.05)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(params=["embedded", "server"])
def shared(request: pytest.FixtureRequest, settings: Settings) -> Iterator[dict[str, str]]:
    """The environment of every process in a test: one index, embedded or on a server."""
    settings = settings.model_copy(update={"embedding": "hash", "index_refresh_s": REFRESH_S})
    env = {
        "GRADGUIDE_DATA_DIR": str(settings.data_dir),
        "GRADGUIDE_KNOWLEDGE_DIR": str(settings.knowledge_dir),
        "GRADGUIDE_EMBEDDING": "hash",
        "GRADGUIDE_INDEX_REFRESH_S": str(REFRESH_S),
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
    }
    if request.param == "server":
        url = request.getfixturevalue("chroma_server")
        env["GRADGUIDE_CHROMA_URL"] = url
        kb = open_kb(settings.model_copy(update={"chroma_url": url}))
        for doc in kb.documents():  # the server outlives a test
            kb.remove(doc.meta.id)
    yield env


def gradguide(env: dict[str, str], *args: str) -> str:
    """`python -m bot ARGS` as a new process; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def top_is(doc_id: str, text: str = "") -> Any:
    return lambda reply: reply["ids"][:1] == [doc_id] and text in reply["texts"][0]


@pytest.fixture
def running(shared: dict[str, str], write_doc: DocWriter, tmp_path: Path) -> Iterator[KbProcess]:
    """The bot (or the console): a process that has searched the index before others write."""
    gradguide(shared, "kb", "ingest", str(write_doc("trial-doc", TRIAL, title="试用期规定")))
    process = KbProcess(shared, tmp_path / "kb_process.log")
    try:
        process.wait_for("试用期最长多久", top_is("trial-doc", "六个月"), "before any write")
        yield process
        background = process(errors=True)  # nothing it did in the background failed either
        assert background["errors"] == [], background["errors"][:3]
        assert background["searches"] > 0
    finally:
        process.close()


def test_another_process_adds_and_removes_while_one_runs(
    shared: dict[str, str], running: KbProcess, write_doc: DocWriter, settings: Settings
) -> None:
    # `gradguide kb ingest` (a new document) from another shell: answerable within the refresh.
    uploads = settings.data_dir.parent / "uploads"
    internship = write_doc("new-doc", INTERNSHIP, folder=uploads, title="见习规定")
    gradguide(shared, "kb", "ingest", str(internship))
    running.wait_for("见习补贴发给谁", top_is("new-doc"), "a new document")

    # The running process writes too (an admin upload), right after the other's write.
    insurance = write_doc("third-doc", INSURANCE, folder=uploads, title="社保规定")
    assert running(ingest=str(insurance)) == {"statuses": ["added"]}
    running.wait_for("社会保险登记", top_is("third-doc"), "its own upload")

    gradguide(shared, "kb", "remove", "new-doc")
    running.wait_for("见习补贴发给谁", lambda r: "new-doc" not in r["ids"], "a removed document")


def test_another_process_replaces_and_rebuilds_while_one_runs(
    shared: dict[str, str], running: KbProcess, write_doc: DocWriter, settings: Settings
) -> None:
    trial = write_doc("trial-doc", TRIAL_V2, title="试用期规定")
    gradguide(shared, "kb", "ingest", str(trial))
    running.wait_for("试用期最长多久", top_is("trial-doc", "二个月"), "a replaced document")

    insurance = write_doc("third-doc", INSURANCE, folder=settings.data_dir.parent / "uploads")
    assert running(ingest=str(insurance)) == {"statuses": ["added"]}
    gradguide(shared, "kb", "rebuild")  # re-embeds both, then collects garbage
    running.wait_for("社会保险登记", top_is("third-doc"), "after a rebuild")
    running.wait_for("试用期最长多久", top_is("trial-doc", "二个月"), "after a rebuild")

    # The index on disk is whole: a new process finds both documents, current versions.
    found = json.loads(gradguide(shared, "kb", "search", "试用期 社会保险登记", "--json"))
    assert {hit["doc_id"] for hit in found} == {"trial-doc", "third-doc"}
    assert not any("六个月" in hit["text"] for hit in found)
