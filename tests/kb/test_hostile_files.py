"""Hostile files: DOCX zip bombs, PDFs whose streams unpack to hundreds of megabytes,
encrypted PDFs, and HTML entities in Markdown.

A bomb or an encrypted PDF is refused with a reason in Chinese and English, through the
knowledge base's ingestion (as the command line and the Telegram admin upload use it) and
through the console's upload; the other files of the batch are still added. The bombs are
built by the tests (tests/fakes/hostile.py), never committed.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from bot.kb.ingest import FileOutcome
from bot.kb.service import KnowledgeBase
from bot.prompts import Messages
from bot.settings import Settings
from tests.channels.conftest import ADMIN, Stack, stack, tg  # noqa: F401  (fixtures)
from tests.conftest import TODAY, DocWriter, make_markdown
from tests.fakes import hostile
from tests.fakes.hostile import GIB, MIB
from tests.fakes.telegram_server import FakeTelegram
from tests.storage.conftest import (  # noqa: F401  (fixtures the console needs)
    db_url,
    postgres_admin_url,
    postgres_env,
    postgres_url,
    sqlite_template,
)
from tests.web.conftest import (  # noqa: F401  (fixtures)
    Console,
    console,
    csrf_of,
    shared_kb,
    web_db_url,
    web_settings,
)

GOOD_ID = "good-internship"
GOOD_PHRASE = "当地最低工资的百分之八十"
META = {
    "title": "测试文档",
    "lang": "zh",
    "authority": "测试机关",
    "issued": "2024-01-01",
    "region": "national",
}


def both(key: str, **values: object) -> tuple[str, str]:
    """A catalogue message in Chinese and in English."""
    messages = Messages.load()
    return messages.get(key, "zh", **values), messages.get(key, "en", **values)


def assert_says(reason: str | None, key: str, **values: object) -> None:
    zh, en = both(key, **values)
    assert reason is not None
    assert zh in reason and en in reason, reason


@pytest.fixture
def good(write_doc: DocWriter) -> Path:
    return write_doc(
        GOOD_ID,
        f"# 就业见习\n\n## 补贴标准\n\n见习补贴标准为{GOOD_PHRASE}。\n",
        title="就业见习管理办法",
    )


def ingest(kb: KnowledgeBase, good: Path, *files: Path) -> dict[str, FileOutcome]:
    """Ingest the files with one good document; outcomes by file name. The good document
    is always added: one hostile file never stops the batch."""
    report = kb.ingest([good, *files], META)
    outcomes = {Path(o.path).name: o for o in report.outcomes}
    assert outcomes[good.name].status == "added", report.outcomes
    assert {d.meta.id for d in kb.documents()} == {GOOD_ID}
    return outcomes


def ingest_one(kb: KnowledgeBase, path: Path) -> FileOutcome:
    report = kb.ingest([path], {**META, "id": path.stem.lower().replace("_", "-")})
    (outcome,) = report.outcomes
    return outcome


# -- DOCX bombs ---------------------------------------------------------------------------


def test_a_docx_bomb_is_refused_and_the_rest_of_the_batch_is_added(
    kb: KnowledgeBase, good: Path, tmp_path: Path
) -> None:
    """1 MiB on disk, 1 GiB unpacked: refused from its declared size, before inflating."""
    bomb = hostile.write(tmp_path / "bomb.docx", hostile.docx_bomb(GIB))
    assert bomb.stat().st_size < 2 * MIB
    outcome = ingest(kb, good, bomb)["bomb.docx"]
    assert outcome.status == "failed"
    assert_says(outcome.error, "kb_inflated_too_large", limit="50")
    (hit, *_) = kb.search("见习补贴标准是多少")
    assert hit.doc.meta.id == GOOD_ID


def test_a_docx_whose_headers_understate_its_size_is_refused(
    kb: KnowledgeBase, good: Path, tmp_path: Path
) -> None:
    """The headers claim 4 KiB, the deflate stream holds 1 GiB: the sizes actually unpacked
    are counted, so the lie is found without inflating the rest (already refused, as
    damaged, before this change: a guard)."""
    liar = hostile.write(tmp_path / "liar.docx", hostile.docx_bomb(GIB, declared_size=4096))
    outcome = ingest(kb, good, liar)["liar.docx"]
    assert outcome.status == "failed"
    assert "word/document.xml" in (outcome.error or ""), outcome.error


def test_the_unpacked_limit_is_a_setting(tmp_path: Path) -> None:
    """A DOCX that unpacks to 3 MiB is read under the default limit and refused under a
    limit of 2 MB (GRADGUIDE_MAX_INFLATED_MB), in both languages."""
    docx = hostile.write(tmp_path / "padded.docx", hostile.docx_bomb(3 * MIB))
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    default = KnowledgeBase.open(
        Settings(data_dir=tmp_path / "default", knowledge_dir=knowledge), clock=lambda: TODAY
    )
    assert ingest_one(default, docx).status == "added"
    strict = KnowledgeBase.open(
        Settings(data_dir=tmp_path / "strict", knowledge_dir=knowledge, max_inflated_mb=2),
        clock=lambda: TODAY,
    )
    outcome = ingest_one(strict, docx)
    assert outcome.status == "failed"
    assert_says(outcome.error, "kb_inflated_too_large", limit="2")


def test_an_encrypted_word_document_is_named_as_such(
    kb: KnowledgeBase, good: Path, tmp_path: Path
) -> None:
    """Word saves a password-protected .docx (and Word 97-2003 saves a .doc) as an OLE
    compound file, not a zip: say so instead of "not a zip file"."""
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + b"EncryptedPackage" + bytes(4096)
    locked = hostile.write(tmp_path / "locked.docx", ole)
    outcome = ingest(kb, good, locked)["locked.docx"]
    assert outcome.status == "failed"
    assert_says(outcome.error, "kb_docx_encrypted")


# -- PDF streams --------------------------------------------------------------------------


def test_a_pdf_whose_pages_unpack_past_the_limit_is_refused(
    kb: KnowledgeBase, good: Path, tmp_path: Path
) -> None:
    """24 pages of 4 MiB each (96 MiB unpacked, 100 KiB on disk): no single stream is
    large, the total is. It was read, slowly, before this change."""
    pdf = hostile.write(tmp_path / "pages.pdf", hostile.pdf_bomb(24, 4 * MIB))
    assert pdf.stat().st_size < 1 * MIB
    outcome = ingest(kb, good, pdf)["pages.pdf"]
    assert outcome.status == "failed"
    assert_says(outcome.error, "kb_inflated_too_large", limit="50")


def test_a_pdf_with_one_huge_stream_is_refused_under_the_setting(tmp_path: Path) -> None:
    """One 8 MiB content stream against a 4 MB limit: pypdf stops inflating at the limit."""
    pdf = hostile.write(tmp_path / "stream.pdf", hostile.pdf_bomb(1, 8 * MIB))
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    strict = KnowledgeBase.open(
        Settings(data_dir=tmp_path / "strict", knowledge_dir=knowledge, max_inflated_mb=4),
        clock=lambda: TODAY,
    )
    outcome = ingest_one(strict, pdf)
    assert outcome.status == "failed"
    assert_says(outcome.error, "kb_inflated_too_large", limit="4")


# -- encrypted PDFs -----------------------------------------------------------------------


def test_encrypted_pdfs_are_refused_with_what_to_do(
    kb: KnowledgeBase, good: Path, tmp_path: Path
) -> None:
    """AES-256 (pypdf raised DependencyError without `cryptography`) and RC4 with a user
    password (pypdf raised FileNotDecryptedError) get the same words."""
    aes = hostile.write(tmp_path / "aes.pdf", hostile.aes256_encrypted_pdf())
    rc4 = hostile.write(
        tmp_path / "rc4.pdf", hostile.rc4_encrypted_pdf("Graduate internships", "secret")
    )
    outcomes = ingest(kb, good, aes, rc4)
    for name in ("aes.pdf", "rc4.pdf"):
        assert outcomes[name].status == "failed"
        assert_says(outcomes[name].error, "kb_pdf_encrypted")


def test_a_pdf_that_opens_without_a_password_is_still_read(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    """Encrypted with only an owner password (copying or printing restricted): every
    reader opens it without asking, and so does the loader."""
    pdf = hostile.write(
        tmp_path / "restricted.pdf",
        hostile.rc4_encrypted_pdf("Graduates may apply for an internship subsidy", ""),
    )
    outcome = ingest_one(kb, pdf)
    assert outcome.status == "added", outcome
    assert "internship subsidy" in kb.chunks_of("restricted")[0][1]


# -- the console's upload -----------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_console_upload_refuses_bombs_and_encrypted_pdfs(
    console: Console,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A 422 page that says why (not a 500), in the admin's language and in English."""
    await console.as_user("admin")
    page = (await console.client.get("/admin/documents/upload")).text
    for name, data, key in (
        ("bomb.docx", hostile.docx_bomb(GIB), "kb_inflated_too_large"),
        ("aes.pdf", hostile.aes256_encrypted_pdf(), "kb_pdf_encrypted"),
    ):
        refused = await console.client.post(
            "/admin/documents/preview",
            data={"csrf_token": csrf_of(page), **META, "id": "hostile"},
            files={"file": (name, data, "application/octet-stream")},
        )
        assert refused.status_code == 422, (name, refused.status_code)
        shown = html.unescape(re.sub(r"<[^>]+>", "", refused.text))
        values = {"limit": "50"} if key == "kb_inflated_too_large" else {}
        zh, en = both(key, **values)
        assert zh in shown and en in shown, shown
    assert "hostile" not in {d.meta.id for d in console.services.kb.documents()}


# -- the Telegram admin upload ------------------------------------------------------------


@pytest.mark.parametrize("stack", ["polling-sqlite"], indirect=True)
async def test_a_telegram_admin_is_told_why_a_bomb_was_refused(
    tg: FakeTelegram,  # noqa: F811
    stack: Stack,  # noqa: F811
) -> None:
    bot = await stack.start_bot()
    admin = tg.user(ADMIN, "Admin", language_code="zh", started=True)
    before = {d.meta.id for d in bot.services.kb.documents()}
    mark = tg.mark()
    tg.send_document(admin, "bomb.docx", hostile.docx_bomb(GIB), "application/octet-stream")
    failures = await tg.await_for(chat=ADMIN, since=mark, text="以下文件未能导入", timeout=60)
    zh, en = both("kb_inflated_too_large", limit="50")
    text = failures.text or ""
    assert "bomb.docx" in text and zh in text and en in text, text
    assert {d.meta.id for d in bot.services.kb.documents()} == before


# -- HTML entities in Markdown ------------------------------------------------------------

ENTITIES = """# 工资 &amp; 社保

## 试用期 &lt;第十九条&gt;

试用期工资不得低于约定工资的百分之八十&#65292;且不得低于最低工资&nbsp;标准。
引号写作 &ldquo;劳动合同&rdquo;，撇号写作 &#x27;。

网页示例：&lt;script&gt;alert(1)&lt;/script&gt; 只是文字。

<script>alert("real")</script>

```
&lt;保持原样&gt;
```
"""


def test_entities_in_markdown_are_read_as_the_characters_they_stand_for(
    kb: KnowledgeBase, write_doc: DocWriter
) -> None:
    """What a Markdown reader sees: `&amp;` is "&", `&lt;` is "<" (also in headings); code
    keeps its text; a real <script> is still dropped."""
    path = write_doc("entities-zh", ENTITIES, title="试用期")
    report = kb.ingest([path])
    assert report.outcomes[0].status == "added", report.outcomes
    chunks = kb.chunks_of("entities-zh")
    text = "\n".join(f"{heading}\n{body}" for heading, body in chunks)
    assert "工资 & 社保" in text and "试用期 <第十九条>" in text
    assert "百分之八十，且不得低于最低工资\u00a0标准" in text
    assert "“劳动合同”" in text and "撇号写作 '" in text
    assert "<script>alert(1)</script> 只是文字" in text
    assert 'alert("real")' not in text
    assert "&lt;保持原样&gt;" in text
    assert "&amp;" not in text and "&ldquo;" not in text and "&nbsp;" not in text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_unescaped_markup_is_shown_as_text_in_the_console(
    console: Console,  # noqa: F811
) -> None:
    """The characters an entity stands for are text: the console escapes them again, so
    `&lt;script&gt;` in a document is never a script on the page."""
    await console.as_user("admin")
    page = (await console.client.get("/admin/documents/upload")).text
    body = (
        "# 示例\n\n&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(2)&gt;\n"
    )
    source = make_markdown(body, id="entities-preview")
    preview = await console.client.post(
        "/admin/documents/preview",
        data={"csrf_token": csrf_of(page)},
        files={"file": ("entities.md", source.encode(), "text/markdown")},
    )
    assert preview.status_code == 200, preview.text
    assert "<script>alert(1)" not in preview.text and "<img src=x" not in preview.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(2)&gt;" in (
        preview.text
    )
