"""The admin's command line: ingest, list, show, search, stats, remove, rebuild."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import Settings
from tests.conftest import ROOT, DocWriter, run_cli, run_gradguide


def test_admin_workflow(
    env: Settings, write_doc: DocWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    write_doc("probation-zh", "## 试用期\n\n试用期最长不得超过六个月。\n", title="试用期规定")
    write_doc(
        "old-subsidy-zh",
        "## 补助\n\n一次性扩岗补助每人1500元。\n",
        title="扩岗补助",
        expires=dt.date(2025, 12, 31),
    )
    code, out, _ = run_cli(capsys, "kb", "ingest", str(env.knowledge_dir))
    assert code == 0
    assert "added" in out and "2" in out

    code, out, _ = run_cli(capsys, "kb", "list", "--json")
    listed = {row["id"]: row for row in json.loads(out)}
    assert listed["probation-zh"]["validity"] == "active"
    assert listed["old-subsidy-zh"]["validity"] == "expired"
    code, out, _ = run_cli(capsys, "kb", "list")
    assert "EXPIRED" in out

    code, out, _ = run_cli(capsys, "kb", "search", "试用期最长多久", "--json", "--k", "3")
    hits = json.loads(out)
    assert hits[0]["doc_id"] == "probation-zh"
    assert hits[0]["found_by"] == "dense+lexical"
    assert hits[0]["rank"] == 1 and hits[0]["score"] > 0
    assert all(h["doc_id"] != "old-subsidy-zh" for h in hits)
    code, out, _ = run_cli(capsys, "kb", "search", "扩岗补助", "--json", "--include-expired")
    assert json.loads(out)[0]["doc_id"] == "old-subsidy-zh"

    code, out, _ = run_cli(capsys, "kb", "show", "probation-zh", "--json")
    shown = json.loads(out)
    assert shown["title"] == "试用期规定" and "六个月" in shown["chunks"][0]["text"]

    code, out, _ = run_cli(capsys, "kb", "stats", "--json")
    stats = json.loads(out)
    assert stats["documents"] == 2 and stats["by_validity"] == {"active": 1, "expired": 1}

    code, out, _ = run_cli(capsys, "kb", "remove", "old-subsidy-zh")
    assert code == 0 and "Removed old-subsidy-zh" in out
    code, _, err = run_cli(capsys, "kb", "show", "old-subsidy-zh")
    assert code == 2 and "no document with id 'old-subsidy-zh'" in err

    code, out, _ = run_cli(capsys, "kb", "rebuild")
    assert code == 0
    code, out, _ = run_cli(capsys, "kb", "list", "--json")
    assert {row["id"] for row in json.loads(out)} == {"probation-zh", "old-subsidy-zh"}


def test_ingest_reports_failures_and_exits_nonzero(
    env: Settings, write_doc: DocWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_doc("probation-zh", "## 试用期\n\n试用期最长不得超过六个月。\n")
    bad = env.knowledge_dir / "broken.md"
    bad.write_text("---\ntitle: 没有编号\nlang: zh\n---\n正文。\n", encoding="utf-8")
    code, out, _ = run_cli(capsys, "kb", "ingest", str(good), str(bad))
    assert code == 1
    assert "broken.md" in out and "'authority'" in out and "'issued'" in out and "'region'" in out
    assert "required" in out and "id 'broken-zh'" in out  # derived from the file name, shown


def test_metadata_options_for_a_file_without_front_matter(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    text = env.knowledge_dir / "notice.txt"
    text.write_text("高校毕业生可以申请一次性求职创业补贴，由学校初审。", encoding="utf-8")
    code, out, _ = run_cli(
        capsys,
        *("kb", "ingest", str(text), "--id", "notice-zh", "--title", "求职补贴通知"),
        *("--lang", "zh", "--authority", "某市人社局", "--issued", "2025-03-01"),
        *("--region", "guizhou", "--topics", "subsidy,C1"),
    )
    assert code == 0, out
    code, out, _ = run_cli(capsys, "kb", "show", "notice-zh", "--json")
    shown = json.loads(out)
    assert shown["region"] == "guizhou" and shown["topics"] == ["subsidy", "C1"]


def test_first_search_builds_the_index(
    env: Settings, write_doc: DocWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    write_doc("probation-zh", "## 试用期\n\n试用期最长不得超过六个月。\n")
    code, out, err = run_cli(capsys, "kb", "search", "试用期", "--json")
    assert code == 0 and "first use" in err
    assert json.loads(out)[0]["doc_id"] == "probation-zh"


def test_kb_stats_from_any_folder_builds_the_index_in_the_users_data_dir(
    env: Settings, write_doc: DocWriter, tmp_path: Path
) -> None:
    """No GRADGUIDE_DATA_DIR: the index goes to $XDG_DATA_HOME/gradguide, built on first
    use, and nothing lands in the folder the command was started from."""
    write_doc("probation-zh", "## 试用期\n\n试用期最长不得超过六个月。\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "bot", "kb", "stats", "--json"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "XDG_DATA_HOME": str(tmp_path / "xdg"),
            "GRADGUIDE_KNOWLEDGE_DIR": str(env.knowledge_dir),
            "GRADGUIDE_EMBEDDING": "hash",
        },
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["documents"] == 1
    assert (tmp_path / "xdg" / "gradguide" / "chroma").is_dir()
    assert list(elsewhere.iterdir()) == []


def test_errors_are_messages_not_tracebacks(env: Settings, tmp_path: Path) -> None:
    result = run_gradguide(env, "kb", "remove", "no-such-doc")
    assert result.returncode == 2
    assert "no document with id 'no-such-doc'" in result.stderr
    assert "Traceback" not in result.stderr

    bad_url = subprocess.run(
        [sys.executable, "-m", "bot", "kb", "list"],
        capture_output=True,
        text=True,
        env={"GRADGUIDE_CHROMA_URL": "localhost:8000", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert bad_url.returncode == 2
    assert "GRADGUIDE_CHROMA_URL" in bad_url.stderr and "Traceback" not in bad_url.stderr


# -- hostile files and an unusable data directory (issue 14) ------------------------------

MEASURED = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:])\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "sys.stderr.write(f'\\npeak-kib={peak}\\n')\n"
    "sys.exit(code)\n"
)


def run_measured(settings: Settings, *args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """`python -m bot ARGS` in a fresh process, and that process's peak memory in MiB."""
    result = subprocess.run(
        [sys.executable, "-c", MEASURED, sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env={
            "GRADGUIDE_DATA_DIR": str(settings.data_dir),
            "GRADGUIDE_KNOWLEDGE_DIR": str(settings.knowledge_dir),
            "PATH": "/usr/bin:/bin",
        },
        timeout=300,
        check=False,
    )
    stderr, _, peak = result.stderr.rpartition("peak-kib=")
    result.stderr = stderr
    return result, int(peak) // 1024


def both(key: str, **values: object) -> tuple[str, str]:
    from bot.prompts import Messages

    messages = Messages.load()
    return messages.get(key, "zh", **values), messages.get(key, "en", **values)


def test_a_docx_bomb_is_refused_in_bounded_memory(env: Settings, tmp_path: Path) -> None:
    """1 MiB on disk, 1 GiB unpacked: `kb ingest` used 2.1 GB and named an XML error; now
    the file is refused, in both languages, without being unpacked."""
    from tests.fakes import hostile

    bomb = hostile.write(tmp_path / "bomb.docx", hostile.docx_bomb(hostile.GIB))
    result, peak_mib = run_measured(env, "kb", "ingest", str(bomb))
    assert result.returncode == 1, result.stderr
    zh, en = both("kb_inflated_too_large", limit="50")
    assert "bomb.docx" in result.stdout and zh in result.stdout and en in result.stdout
    assert "Traceback" not in result.stderr
    assert peak_mib < 768, f"{peak_mib} MiB"


def test_an_encrypted_pdf_is_refused_with_what_to_do(env: Settings, tmp_path: Path) -> None:
    """AES (pypdf's DependencyError was logged with a traceback) and RC4 with a password."""
    from tests.fakes import hostile

    aes = hostile.write(tmp_path / "aes.pdf", hostile.aes256_encrypted_pdf())
    rc4 = hostile.write(tmp_path / "rc4.pdf", hostile.rc4_encrypted_pdf("Internships", "pw"))
    result = run_gradguide(env, "kb", "ingest", str(aes), str(rc4))
    assert result.returncode == 1, result.stderr
    zh, en = both("kb_pdf_encrypted")
    failed = [line for line in result.stdout.splitlines() if "✗" in line]
    assert len(failed) == 2, result.stdout
    assert all(zh in line and en in line for line in failed), failed
    assert "Traceback" not in result.stderr and "DependencyError" not in result.stderr


def run_on_data_dir(settings: Settings, data_dir: Path, *args: str) -> list[str]:
    """Run `python -m bot ARGS` with GRADGUIDE_DATA_DIR=data_dir; it must fail with exit
    code 2 and one line on stderr, which is returned (with stdout's lines)."""
    result = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env={
            "GRADGUIDE_DATA_DIR": str(data_dir),
            "GRADGUIDE_KNOWLEDGE_DIR": str(settings.knowledge_dir),
            "GRADGUIDE_EMBEDDING": "hash",
            "PATH": "/usr/bin:/bin",
        },
        timeout=120,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, (args, result.returncode, result.stderr)
    assert not result.stdout.strip(), result.stdout
    return lines


DATA_DIR_COMMANDS = (
    ("kb", "list"),
    ("kb", "stats"),
    ("kb", "show", "probation-zh"),
    ("kb", "remove", "probation-zh"),
    ("kb", "search", "试用期"),
    ("kb", "rebuild"),
    ("web", "--port", "1"),
)


def test_a_data_dir_that_cannot_be_created_is_one_clear_line(
    settings: Settings, tmp_path: Path
) -> None:
    """GRADGUIDE_DATA_DIR under a regular file: the directory can never be made (this
    holds for root too, which ignores permissions). Every `kb` command and `web` say so in
    one line naming the directory and the file in the way."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a regular file")
    data_dir = blocker / "data"
    doc = tmp_path / "doc.md"
    doc.write_text("---\nid: doc\n---\n正文。\n", encoding="utf-8")
    zh, en = both("data_dir_under_file", blocker=blocker)
    for args in (*DATA_DIR_COMMANDS, ("kb", "ingest", str(doc))):
        (line,) = run_on_data_dir(settings, data_dir, *args)
        assert str(data_dir) in line and zh in line and en in line, (args, line)


def test_a_data_dir_that_is_a_file_is_one_clear_line(settings: Settings, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.write_text("a regular file where the data directory should be")
    zh, en = both("data_dir_is_file")
    for args in (("kb", "list"), ("web", "--port", "1")):
        (line,) = run_on_data_dir(settings, data_dir, *args)
        assert str(data_dir) in line and zh in line and en in line, (args, line)


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root writes to a read-only (chmod 555) directory; the tests of a data "
    "directory under a regular file cover a directory that cannot be used",
)
def test_a_read_only_data_dir_is_one_clear_line(settings: Settings, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o555)
    try:
        for args in (("kb", "list"), ("kb", "rebuild"), ("web", "--port", "1")):
            (line,) = run_on_data_dir(settings, data_dir, *args)
            assert str(data_dir) in line and "not writable" in line, (args, line)
    finally:
        data_dir.chmod(0o755)


def test_a_file_where_the_index_folder_should_be_is_one_clear_line(
    settings: Settings, tmp_path: Path
) -> None:
    """The data directory is fine but its `chroma` folder is a file: the error met deep
    inside is reported in one line naming that path."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "chroma").write_text("not the index")
    zh, en = both("data_dir_is_file")
    for args in (("kb", "list"), ("kb", "search", "试用期")):
        (line,) = run_on_data_dir(settings, data_dir, *args)
        assert str(data_dir / "chroma") in line and zh in line and en in line, (args, line)


def test_the_cli_loads_neither_the_database_layer_nor_telegram_for_ask() -> None:
    """`gradguide ask` in a new process must start fast (≤ 2 s): the database layer, Alembic
    and python-telegram-bot (0.3 s of imports) load only for the commands that use them."""
    wanted = "{'sqlalchemy', 'alembic', 'telegram'}"
    printed = (  # what `ask` does after answering: print the reply
        "from rich.console import Console; from bot.agent.models import Intent, Reply; "
        "bot.cli._print_reply(Reply(text='x', lang='zh', intent=Intent.POLICY), Console()); "
    )
    probe = f"import sys, bot.cli; {printed}print(sorted({wanted} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout
