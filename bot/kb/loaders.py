"""Turn a file (Markdown, text, HTML, PDF, DOCX) into a ``ParsedDocument``.

Every refusal is an ``IngestError`` subclass whose message names the file and the reason.
A DOCX or PDF is measured before it is unpacked and refused past ``max_inflated_bytes``
(zip bombs), and an encrypted PDF is refused with what to do (``bot.kb.unpack``).
HTML entities in Markdown (``&amp;``, ``&lt;``) are read as the characters they stand for,
after the markup is stripped: the text is plain, and every channel escapes it when shown.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterable, Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import ValidationError

from bot.errors import (
    BinaryFileError,
    CorruptFileError,
    EmptyFileError,
    EncodingError,
    FileTooLargeError,
    MetadataError,
    UnsupportedFileError,
)
from bot.kb.models import REQUIRED_FIELDS, DocMeta, ParsedDocument, Section, detect_lang
from bot.kb.unpack import check_zip, read_pdf
from bot.settings import Settings

TEXT_SUFFIXES = {".md", ".markdown", ".txt"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx"}

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CODE_SPAN = re.compile(r"(`+).*?\1", re.S)

DEFAULT_MAX_INFLATED_BYTES = int(Settings.model_fields["max_inflated_mb"].default * 1_048_576)
"""For callers that do not pass ``max_inflated_bytes`` (GRADGUIDE_MAX_INFLATED_MB's default)."""


def iter_source_files(paths: Iterable[Path]) -> Iterable[Path]:
    """Expand folders (recursively, sorted); README files in folders are documentation."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if (
                    child.is_file()
                    and child.suffix.lower() in SUPPORTED_SUFFIXES
                    and not child.name.lower().startswith("readme")
                    and not any(part.startswith(".") for part in child.relative_to(path).parts)
                ):
                    yield child
        else:
            yield path


def load_file(
    path: Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    max_bytes: int,
    max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES,
) -> ParsedDocument:
    """Load and validate one file; ``overrides`` (from the command line) beat front matter.
    ``max_bytes`` limits the file, ``max_inflated_bytes`` what a DOCX or PDF unpacks to."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnsupportedFileError(
            path, f"unsupported file type {suffix or '(none)'}; use .md, .txt, .html, .pdf or .docx"
        )
    if not path.is_file():
        raise EmptyFileError(path, "not a readable file")
    size = path.stat().st_size
    if size == 0:
        raise EmptyFileError(path, "the file is empty")
    if size > max_bytes:
        raise FileTooLargeError(
            path,
            f"the file is {size / 1_048_576:.1f} MB, over the {max_bytes / 1_048_576:g} MB "
            "limit (GRADGUIDE_MAX_FILE_MB); split it into smaller documents",
        )
    data = path.read_bytes()
    front: dict[str, Any] = {}
    intrinsic_title: str | None = None
    if suffix in TEXT_SUFFIXES or suffix in HTML_SUFFIXES:
        text = _decode_text(path, data)
        if suffix in HTML_SUFFIXES:
            intrinsic_title, body = _html_to_markdown(text)
        else:
            front, body = _split_front_matter(path, text)
            body = _strip_markup(body)
    elif suffix == ".pdf":
        intrinsic_title, body = _pdf_to_text(path, data, max_inflated_bytes)
    else:
        check_zip(path, data, max_inflated_bytes)
        intrinsic_title, body = _docx_to_markdown(path, data)

    fields = {**front, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    if not fields.get("title") and intrinsic_title:
        fields["title"] = intrinsic_title
    derived = derive_meta(path, body, fields)
    meta = _validate_meta(path, {**fields, **derived}, derived)
    sections = split_sections(body, meta.title)
    if suffix in MARKDOWN_SUFFIXES:
        sections = [_unescape_section(section) for section in sections]
    if not sections:
        raise EmptyFileError(path, "no text after the metadata")
    return ParsedDocument(meta=meta, sections=sections, source=path.resolve(), derived=derived)


_FIRST_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")
_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
DERIVABLE = ("title", "lang", "id")
"""What a file without front matter is given from itself (``derive_meta``)."""


def derive_meta(path: Path, body: str, fields: Mapping[str, Any]) -> dict[str, str]:
    """The fields of ``DERIVABLE`` the file did not give, derived from it: the title from
    the first heading or line, the language from the text, the id from the file name (its
    pinyin when the name is Chinese) with the language as a suffix, as the bundled corpus
    names its documents."""
    derived: dict[str, str] = {}
    if not fields.get("title"):
        heading = _FIRST_HEADING.search(body)
        line = next((x.strip() for x in body.splitlines() if x.strip()), "")
        title = (heading.group(1) if heading else line).strip()[:80]
        if title:
            derived["title"] = title
    if not fields.get("lang"):
        derived["lang"] = detect_lang(body[:20_000])
    if not fields.get("id"):
        given = fields.get("lang")
        lang = given if given in ("zh", "en") else derived.get("lang") or detect_lang(body)
        slug = _slug(path.stem)
        if slug:
            derived["id"] = slug if slug.endswith(f"-{lang}") else f"{slug}-{lang}"[:128]
    return derived


def _slug(name: str) -> str:
    if _CJK_CHAR.search(name):
        from pypinyin import Style, lazy_pinyin  # 0.2 s, only for a Chinese file name

        name = " ".join(lazy_pinyin(name, style=Style.NORMAL))
    return _SLUG_JUNK.sub("-", name.lower()).strip("-")[:100].strip("-")


def _decode_text(path: Path, data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise EncodingError(path, "the text is UTF-16, not UTF-8. Save it as UTF-8 and try again")
    if b"\x00" in data[:65536]:
        raise BinaryFileError(path, "this is a binary file, not text (it contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        hint = ""
        try:
            data.decode("gb18030")
            hint = " It looks like GBK/GB18030 text."
        except UnicodeDecodeError:
            pass
        raise EncodingError(
            path,
            f"the text is not UTF-8 (bad byte at offset {exc.start}).{hint} "
            "Save it as UTF-8 and try again",
        ) from exc
    sample = text[:65536]
    if sample and len(_CONTROL.findall(sample)) / len(sample) > 0.01:
        raise BinaryFileError(path, "this looks like binary data, not text (control characters)")
    if not text.strip():
        raise EmptyFileError(path, "the file has only blank space")
    return text


class _FrontMatterLoader(yaml.SafeLoader):
    """Safe YAML that leaves dates as text, so the metadata model checks them and an
    impossible date (2024-02-30) is reported against its field."""


_FrontMatterLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _split_front_matter(path: Path, text: str) -> tuple[dict[str, Any], str]:
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        loaded = yaml.load(match.group(1), Loader=_FrontMatterLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise MetadataError(path, "front matter", f"invalid YAML: {exc}") from exc
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise MetadataError(path, "front matter", "must be a mapping of `field: value` lines")
    return {str(k): v for k, v in loaded.items()}, text[match.end() :]


def _validate_meta(path: Path, fields: dict[str, Any], derived: Mapping[str, str]) -> DocMeta:
    """The metadata, or one error naming every missing or invalid field at once, with what
    was derived from the file and a block to copy."""
    given = {name: value for name, value in fields.items() if value not in (None, "")}
    try:
        return DocMeta.model_validate(given)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(p) for p in item["loc"]) or "front matter"
            if item["type"] == "missing":
                problems.append((where, "is required but missing"))
            else:
                problems.append((where, f"{item['msg']} (got {item.get('input')!r})"))
        failure = error
    (field, reason), *more = problems
    hint = _metadata_hint(path, fields, derived, [name for name, _ in problems])
    raise MetadataError(path, field, reason, more=more, hint=hint, derived=derived) from failure


_EXAMPLES = {
    "authority": "某市人力资源和社会保障局",
    "issued": "2025-03-01",
    "region": "national",
    "title": "文件标题",
    "lang": "zh",
    "id": "my-notice-zh",
}


def _metadata_hint(
    path: Path, fields: Mapping[str, Any], derived: Mapping[str, str], wrong: list[str]
) -> str:
    lines = []
    if derived:
        shown = ", ".join(f"{name} {value!r}" for name, value in derived.items())
        lines.append(f"Derived from the file: {shown}.")
    todo = [name for name in REQUIRED_FIELDS if name in wrong]
    block = [f"{name}: {_EXAMPLES.get(name, '…')}" for name in todo]
    if path.suffix.lower() in TEXT_SUFFIXES:
        lines.append("Add front matter at the top of the file, e.g.:")
        lines.extend(["---", *block, "---"])
    flags = " ".join(f"--{name} {_EXAMPLES.get(name, '…')!r}" for name in todo)
    lines.append(f"Or: gradguide kb ingest {path.name} {flags}")
    return "\n".join(lines)


def split_sections(body: str, title: str) -> list[Section]:
    """Cut Markdown text at headings; each section keeps its heading path."""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    buffer: list[str] = []
    in_fence = False

    def flush() -> None:
        text = "\n".join(buffer).strip()
        buffer.clear()
        if text:
            headings = [h for _, h in stack] or [title]
            sections.append(Section(headings=headings, text=re.sub(r"\n{3,}", "\n\n", text)))

    for line in body.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match:
            flush()
            level = len(match.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, match.group(2).strip()))
        else:
            buffer.append(line)
    flush()
    return sections


class _HtmlText(HTMLParser):
    _BLOCK: ClassVar[set[str]] = {
        "p",
        "div",
        "li",
        "tr",
        "br",
        "section",
        "article",
        "table",
        "ul",
        "ol",
        "dd",
        "dt",
    }
    _SKIP: ClassVar[set[str]] = {"script", "style", "noscript", "template", "svg"}
    _CELL: ClassVar[set[str]] = {"td", "th"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: str | None = None
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self._SKIP:
            self._skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in self._BLOCK:
            self.parts.append("\n")
        elif tag in self._CELL:
            self.parts.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif re.fullmatch(r"h[1-6]", tag) or tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = (self.title or "") + data.strip()
        elif not self._skip:
            self.parts.append(re.sub(r"[ \t\r\n]+", " ", data))


_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_HIDDEN_BLOCK = re.compile(r"<(script|style|template)\b[^>]*>.*?(?:</\1\s*>|\Z)", re.S | re.I)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")


def _strip_markup(body: str) -> str:
    """Markdown and text documents: HTML comments, scripts and styles are not content (a
    reader never sees them, so no graduate should be quoted them); other tags are
    unwrapped to their text."""
    body = _COMMENT.sub("", body)
    body = _HIDDEN_BLOCK.sub("", body)
    return _TAG.sub("", body)


def _unescape_section(section: Section) -> Section:
    """A Markdown section as read: entities outside code become their characters (after
    ``_strip_markup``, so an escaped ``&lt;script&gt;`` is text, never markup)."""
    return Section(
        headings=[_unescape_markdown(h) for h in section.headings],
        text=_unescape_markdown(section.text),
    )


def _unescape_markdown(text: str) -> str:
    """``html.unescape`` outside fenced code blocks and `code spans`, which Markdown shows
    as written."""
    lines: list[str] = []
    in_fence = False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            lines.append(line)
        elif in_fence:
            lines.append(line)
        else:
            pieces = _CODE_SPAN.split(line)
            spans = [m.group(0) for m in _CODE_SPAN.finditer(line)]
            out = [html.unescape(pieces[0])]
            # split() also returns each span's backtick group: step over it
            for span, after in zip(spans, pieces[2::2], strict=True):
                out += [span, html.unescape(after)]
            lines.append("".join(out))
    return "\n".join(lines)


def _html_to_markdown(text: str) -> tuple[str | None, str]:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).splitlines()]
    return parser.title or None, "\n".join(lines)


def _pdf_to_text(path: Path, data: bytes, max_inflated: int) -> tuple[str | None, str]:
    read = read_pdf(path, data, max_inflated)
    text = "\n\n".join(p.strip() for p in read.pages)
    if not text.strip():
        raise EmptyFileError(
            path, "the PDF has no extractable text (a scanned image? run OCR on it first)"
        )
    return read.title, text


def _docx_to_markdown(path: Path, data: bytes) -> tuple[str | None, str]:
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table as DocxTable

    try:
        document = docx.Document(io.BytesIO(data))
        lines: list[str] = []
        for block in document.iter_inner_content():  # paragraphs and tables, in order
            if isinstance(block, DocxTable):
                for row in block.rows:
                    lines.append(" | ".join(cell.text.strip() for cell in row.cells))
                continue
            text = block.text.strip()
            if not text:
                continue
            style = (block.style.name if block.style is not None else "") or ""
            match = re.match(r"(?:Heading|标题)\s*(\d)", style)
            if style == "Title":
                lines.append(f"# {text}")
            elif match:
                lines.append("#" * min(6, int(match.group(1))) + " " + text)
            else:
                lines.append(text)
        title = document.core_properties.title or None
    except (PackageNotFoundError, zipfile.BadZipFile) as exc:
        raise CorruptFileError(path, f"the DOCX cannot be read ({exc})") from exc
    except Exception as exc:  # damaged XML inside an intact zip, and the like
        raise CorruptFileError(
            path, f"the DOCX cannot be read, it is damaged ({type(exc).__name__}: {exc})"
        ) from exc
    return title, "\n\n".join(lines)
