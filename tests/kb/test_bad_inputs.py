"""Bad input files: each is refused with a specific reason, and only that file.

Every test ingests the bad file in the same batch as one good document, then checks that
the good document was added and is searchable and that the index holds exactly the good
documents' chunks (nothing half-written by the refused file).
"""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path
from typing import Any

import docx
import pytest
import yaml

from bot.kb.ingest import FileOutcome
from bot.kb.loaders import DERIVABLE, load_file
from bot.kb.models import REQUIRED_FIELDS
from bot.kb.service import KnowledgeBase
from bot.settings import Settings
from tests.conftest import DocWriter, make_markdown
from tests.fakes.documents import make_pdf

GOOD_ID = "good-internship"
GOOD_BODY = (
    "# 就业见习\n\n## 补贴标准\n\n参加就业见习的高校毕业生，每月领取见习补贴，"
    "标准为当地最低工资的百分之八十。\n"
)
GOOD_QUERY = "就业见习补贴标准是多少"
GOOD_PHRASE = "当地最低工资的百分之八十"

VALID_META: dict[str, Any] = {
    "title": "测试文档",
    "lang": "zh",
    "authority": "测试机关",
    "issued": "2024-01-01",
    "region": "national",
}


@pytest.fixture
def good(write_doc: DocWriter) -> Path:
    return write_doc(GOOD_ID, GOOD_BODY, title="就业见习管理办法")


@pytest.fixture
def bad_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "incoming"
    folder.mkdir()
    return folder


def ingest_batch(
    kb: KnowledgeBase, good: Path, *bad: Path, overrides: dict[str, Any] | None = None
) -> dict[str, FileOutcome]:
    """Ingest the bad files and the good one together; outcomes by file name."""
    report = kb.ingest([*bad, good], overrides)
    outcomes = {Path(o.path).name: o for o in report.outcomes}
    assert len(outcomes) == len(report.outcomes) == len(bad) + 1, report.outcomes
    return outcomes


def assert_refused(outcome: FileOutcome, *words: str) -> str:
    assert outcome.status == "failed", outcome
    assert outcome.chunks == 0
    error = outcome.error or ""
    for word in words:
        assert word.lower() in error.lower(), f"{word!r} not in {error!r}"
    return error


def assert_only_good_indexed(kb: KnowledgeBase, outcomes: dict[str, FileOutcome]) -> None:
    good = outcomes[f"{GOOD_ID}.md"]
    assert good.status == "added", good
    assert good.doc_id == GOOD_ID
    docs = kb.documents()
    assert [d.meta.id for d in docs] == [GOOD_ID]
    assert docs[0].chunk_count == good.chunks > 0
    assert kb.index.count_chunks() == sum(d.chunk_count for d in docs)
    hits = kb.search(GOOD_QUERY)
    assert hits, "the good document is not searchable"
    assert hits[0].doc_id == GOOD_ID
    assert GOOD_PHRASE in hits[0].text
    assert hits[0].heading == "就业见习 > 补贴标准"


def front_matter(**fields: Any) -> str:
    return "---\n" + yaml.safe_dump(fields, allow_unicode=True, sort_keys=False) + "---\n"


PDF_META = {**VALID_META, "id": "pdf-doc", "title": "PDF", "lang": "en"}


# -- empty and binary ------------------------------------------------------------------------


def test_empty_file(kb: KnowledgeBase, good: Path, bad_dir: Path) -> None:
    names = ["empty.md", "empty.txt", "empty.html", "empty.pdf", "empty.docx"]
    for name in names:
        (bad_dir / name).write_bytes(b"")

    outcomes = ingest_batch(kb, good, *(bad_dir / name for name in names))

    for name in names:
        assert_refused(outcomes[name], "empty")
    assert_only_good_indexed(kb, outcomes)


def test_front_matter_without_body(kb: KnowledgeBase, good: Path, bad_dir: Path) -> None:
    bad = bad_dir / "no-body.md"
    bad.write_text(front_matter(id="no-body", **VALID_META) + "\n   \n", encoding="utf-8")

    outcomes = ingest_batch(kb, good, bad)

    assert_refused(outcomes["no-body.md"], "no text")
    assert_only_good_indexed(kb, outcomes)


def test_binary_junk_saved_as_markdown(kb: KnowledgeBase, good: Path, bad_dir: Path) -> None:
    rng = random.Random(20241126)
    bad = bad_dir / "junk.md"
    bad.write_bytes(rng.randbytes(3000) + b"\x00\x00" + rng.randbytes(3000))

    outcomes = ingest_batch(kb, good, bad)

    assert_refused(outcomes["junk.md"], "binary")
    assert_only_good_indexed(kb, outcomes)


# -- corrupt PDF / DOCX ------------------------------------------------------------------------


def test_garbage_with_pdf_suffix(kb: KnowledgeBase, good: Path, bad_dir: Path) -> None:
    bad = bad_dir / "scan.pdf"
    bad.write_bytes(random.Random(7).randbytes(4096))

    outcomes = ingest_batch(kb, good, bad)

    assert_refused(outcomes["scan.pdf"], "PDF", "cannot be read")
    assert_only_good_indexed(kb, outcomes)


def test_truncated_pdf(
    kb: KnowledgeBase, settings: Settings, good: Path, bad_dir: Path, tmp_path: Path
) -> None:
    pdf = make_pdf("Graduates can apply for the relocation subsidy.")
    complete = tmp_path / "complete.pdf"
    complete.write_bytes(pdf)
    max_bytes = int(settings.max_file_mb * 1_048_576)
    # the complete file is fine; only the truncation breaks it
    loaded = load_file(complete, PDF_META, max_bytes=max_bytes)
    assert "relocation subsidy" in loaded.sections[0].text
    bad = bad_dir / "truncated.pdf"
    bad.write_bytes(pdf[: len(pdf) // 2])

    outcomes = ingest_batch(kb, good, bad)

    assert_refused(outcomes["truncated.pdf"], "PDF", "cannot be read")
    assert_only_good_indexed(kb, outcomes)


def _docx_bytes() -> bytes:
    document = docx.Document()
    document.core_properties.title = "Broken"
    document.add_heading("Section", level=1)
    document.add_paragraph("Some text.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_truncated_docx(kb: KnowledgeBase, good: Path, bad_dir: Path) -> None:
    data = _docx_bytes()
    bad = bad_dir / "truncated.docx"
    bad.write_bytes(data[: len(data) // 2])

    outcomes = ingest_batch(kb, good, bad)

    assert_refused(outcomes["truncated.docx"], "DOCX", "cannot be read")
    assert_only_good_indexed(kb, outcomes)


def test_docx_with_damaged_xml_fails_only_that_file(
    kb: KnowledgeBase, good: Path, bad_dir: Path
) -> None:
    """BUG: a DOCX whose zip is intact but whose word/document.xml is cut off raises
    lxml's XMLSyntaxError, which ``_docx_to_markdown`` does not catch: the whole batch aborts
    with a traceback and the good document is never ingested."""
    original = zipfile.ZipFile(io.BytesIO(_docx_bytes()))
    damaged = io.BytesIO()
    with zipfile.ZipFile(damaged, "w") as out:
        for item in original.infolist():
            content = original.read(item.filename)
            if item.filename == "word/document.xml":
                content = content[: len(content) // 2]
            out.writestr(item, content)
    bad = bad_dir / "damaged.docx"
    bad.write_bytes(damaged.getvalue())

    outcomes = ingest_batch(kb, good, bad)

    assert_refused(outcomes["damaged.docx"], "DOCX", "cannot be read")
    assert_only_good_indexed(kb, outcomes)


# -- size and encoding -------------------------------------------------------------------------


def test_file_over_the_size_limit(kb: KnowledgeBase, good: Path, bad_dir: Path) -> None:
    bad = bad_dir / "huge.md"
    with bad.open("wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: instant, and never read

    outcomes = ingest_batch(kb, good, bad)

    error = assert_refused(outcomes["huge.md"], "50.0 MB", "20 MB")
    assert "GRADGUIDE_MAX_FILE_MB" in error
    assert_only_good_indexed(kb, outcomes)


def test_gbk_text_is_refused_as_not_utf8(kb: KnowledgeBase, good: Path, bad_dir: Path) -> None:
    bad = bad_dir / "gbk.md"
    text = make_markdown("# 档案\n\n毕业生档案应在两个月内转递。\n", id="gbk-doc")
    bad.write_bytes(text.encode("gbk"))

    outcomes = ingest_batch(kb, good, bad)

    assert_refused(outcomes["gbk.md"], "not UTF-8", "GBK", "save it as UTF-8")
    assert_only_good_indexed(kb, outcomes)


# -- metadata ----------------------------------------------------------------------------------


def test_duplicate_ids_in_one_batch(kb: KnowledgeBase, good: Path, bad_dir: Path) -> None:
    first = bad_dir / "first-copy.md"
    first.write_text(make_markdown("第一份文件的内容。", id="same-id"), encoding="utf-8")
    second = bad_dir / "sub" / "second-copy.md"
    second.parent.mkdir()
    second.write_text(make_markdown("第二份文件的内容。", id="same-id"), encoding="utf-8")

    outcomes = ingest_batch(kb, good, first, second)

    for name in ("first-copy.md", "second-copy.md"):
        error = assert_refused(outcomes[name], "'same-id'", "several files")
        assert "first-copy.md" in error
        assert "second-copy.md" in error
    assert_only_good_indexed(kb, outcomes)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("issued", "next tuesday", ["'issued'", "date", "next tuesday"]),
        ("lang", "fr", ["'lang'", "'fr'", "zh"]),
        ("topics", {"main": "rights", "extra": "F3"}, ["'topics'", "list"]),
    ],
    ids=["issued-not-a-date", "lang-fr", "topics-mapping"],
)
def test_front_matter_with_wrong_types(
    kb: KnowledgeBase,
    write_doc: DocWriter,
    good: Path,
    bad_dir: Path,
    field: str,
    value: Any,
    words: list[str],
) -> None:
    bad = write_doc("wrong-types", "正文内容。", folder=bad_dir, **{field: value})

    outcomes = ingest_batch(kb, good, bad)

    assert_refused(outcomes["wrong-types.md"], *words)
    assert_only_good_indexed(kb, outcomes)


def test_impossible_calendar_date_fails_only_that_file(
    kb: KnowledgeBase, good: Path, bad_dir: Path
) -> None:
    """BUG: an unquoted impossible date (issued: 2024-02-30) makes PyYAML raise ValueError,
    which ``_split_front_matter`` does not catch (it only catches yaml.YAMLError): the whole
    batch aborts with a traceback and the good document is never ingested."""
    bad = bad_dir / "feb-30.md"
    bad.write_text(
        "---\nid: feb-30\ntitle: 二月三十日\nlang: zh\nauthority: 测试机关\n"
        "issued: 2024-02-30\nregion: national\n---\n正文内容。\n",
        encoding="utf-8",
    )

    outcomes = ingest_batch(kb, good, bad)

    assert_refused(outcomes["feb-30.md"], "issued")
    assert_only_good_indexed(kb, outcomes)


def test_missing_required_field(kb: KnowledgeBase, good: Path, bad_dir: Path) -> None:
    bad: list[Path] = []
    for field in REQUIRED_FIELDS:  # one file per missing field, all in one batch
        meta = {"id": f"without-{field}", **VALID_META}
        del meta[field]
        path = bad_dir / f"without-{field}.md"
        path.write_text(front_matter(**meta) + "正文内容。\n", encoding="utf-8")
        bad.append(path)
    blank = bad_dir / "blank-title.md"  # `title:` with nothing after it
    blank.write_text(
        front_matter(id="blank-title", **{**VALID_META, "title": None}) + "正文内容。\n",
        encoding="utf-8",
    )

    outcomes = ingest_batch(kb, good, *bad, blank)

    for field in REQUIRED_FIELDS:
        outcome = outcomes[f"without-{field}.md"]
        if field in DERIVABLE:  # read from the file itself, and said so
            assert outcome.status == "added" and field in outcome.derived, outcome
            continue
        error = assert_refused(outcome, f"'{field}'", "missing")
        others = [f"'{f}'" for f in REQUIRED_FIELDS if f != field]
        assert not any(other in error for other in others), error
    blank = outcomes["blank-title.md"]
    assert blank.status == "added" and blank.derived == {"title": "正文内容。"}
    derived = {outcomes[f"without-{field}.md"].doc_id for field in DERIVABLE}
    assert {d.meta.id for d in kb.documents()} == {GOOD_ID, blank.doc_id, *derived}


def test_required_fields_are_the_documented_ones() -> None:
    assert set(REQUIRED_FIELDS) == {"id", "title", "lang", "authority", "issued", "region"}


def test_unsupported_extension(kb: KnowledgeBase, good: Path, bad_dir: Path) -> None:
    expected = {"policy.doc": ".doc", "policy.xlsx": ".xlsx", "NOTES": "(none)"}
    for name in expected:  # valid Markdown inside: only the name is wrong
        (bad_dir / name).write_text(make_markdown("正文内容。", id="unsupported"), encoding="utf-8")

    outcomes = ingest_batch(kb, good, *(bad_dir / name for name in expected))

    for name, suffix in expected.items():
        error = assert_refused(outcomes[name], "unsupported file type", suffix)
        assert ".md" in error and ".docx" in error  # tells the admin what would work
    assert_only_good_indexed(kb, outcomes)


def test_invalid_yaml_front_matter(kb: KnowledgeBase, good: Path, bad_dir: Path) -> None:
    bad = bad_dir / "broken-yaml.md"
    bad.write_text(
        "---\nid: broken-yaml\ntitle: [unclosed list\nlang: zh\n---\n正文内容。\n",
        encoding="utf-8",
    )

    outcomes = ingest_batch(kb, good, bad)

    assert_refused(outcomes["broken-yaml.md"], "invalid YAML", "front matter")
    assert_only_good_indexed(kb, outcomes)


# -- a bad re-upload of an existing document --------------------------------------------------


def test_bad_reupload_keeps_the_indexed_version(
    kb: KnowledgeBase, write_doc: DocWriter, good: Path
) -> None:
    path = write_doc("stipend-rules", "# 见习津贴\n\n旧版规定：见习津贴每月一千元，按月发放。\n")
    first = kb.ingest([path])
    assert first.outcomes[0].status == "added"
    before = kb.document("stipend-rules")
    chunks_before = kb.chunks_of("stipend-rules")

    # the admin edits the same file: new text, but a date nobody can parse
    write_doc(
        "stipend-rules",
        "# 见习津贴\n\n新版规定：见习津贴每月三千元，一次发放。\n",
        issued="next tuesday",
    )
    outcomes = ingest_batch(kb, good, path)

    assert_refused(outcomes["stipend-rules.md"], "'issued'", "next tuesday")
    assert outcomes[f"{GOOD_ID}.md"].status == "added"
    after = kb.document("stipend-rules")
    assert after.content_hash == before.content_hash
    assert after.version == before.version
    assert after.ingested_at == before.ingested_at
    assert kb.chunks_of("stipend-rules") == chunks_before
    docs = kb.documents()
    assert [d.meta.id for d in docs] == sorted([GOOD_ID, "stipend-rules"])
    assert kb.index.count_chunks() == sum(d.chunk_count for d in docs)
    hits = kb.search("见习津贴每月多少钱")
    assert hits[0].doc_id == "stipend-rules"
    assert "每月一千元" in hits[0].text
    assert not any("三千元" in h.text for h in hits)
