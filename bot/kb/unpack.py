"""Compressed and encrypted documents, read safely: a DOCX (a zip) or a PDF may unpack to
far more than the upload limit allows on disk (a 1 MiB DOCX can hold 1 GiB), and a PDF may
need a password.

- A zip is measured before anything parses it (``check_zip``): first the sizes its central
  directory declares, added up, which refuses an ordinary bomb without inflating a byte; then
  each part is actually inflated, chunk by chunk and discarded, and must come to exactly the
  size it declares, which refuses a crafted archive whose headers understate a part.
- A PDF (``read_pdf``) is read with pypdf's per-stream output caps lowered to the limit, and
  the streams text extraction decodes (page contents and the forms they draw) are decoded
  and counted first: together they must stay under the limit too.
- An encrypted PDF that needs a password, or an encryption pypdf cannot undo here (AES
  without the ``cryptography`` package), is refused with what to do; one that opens without
  a password (restrictions only) is read.

Memory stays bounded by the limit (GRADGUIDE_MAX_INFLATED_MB) plus one chunk. Every refusal
is an ``IngestError`` whose reason is in Chinese and in English ("zh / en", from
prompts/messages.yaml): it reaches people through the command line, the console's upload
page and the Telegram admin upload, none of which passes the reader's language down here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import CorruptFileError, EncryptedFileError, InflatedTooLargeError
from bot.prompts import Messages

if TYPE_CHECKING:
    from pypdf import PdfReader
    from pypdf.generic import StreamObject

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
"""An OLE compound file: how Word saves a password-protected .docx, and a Word 97-2003 .doc."""

CHUNK = 1 << 16
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., name length, extra length


def in_both_languages(key: str, **values: object) -> str:
    """A catalogue message as "zh / en"."""
    messages = Messages.load()
    return f"{messages.get(key, 'zh', **values)} / {messages.get(key, 'en', **values)}"


def too_large(path: Path, limit: int) -> InflatedTooLargeError:
    return InflatedTooLargeError(
        path, in_both_languages("kb_inflated_too_large", limit=f"{limit / 1_048_576:g}")
    )


# -- zip (DOCX) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ZipMeasure:
    """What a zip that passed ``check_zip`` unpacks to."""

    parts: int
    inflated: int
    """Bytes, all parts together: what they declare, and what they actually inflate to."""


def check_zip(path: Path, data: bytes, limit: int, kind: str = "DOCX") -> ZipMeasure:
    """Refuse a zip that unpacks to more than ``limit`` bytes, or whose parts do not unpack
    to the sizes they declare; otherwise say what it unpacks to. Nothing is kept: each part
    is inflated a chunk at a time and the chunk dropped."""
    if data.startswith(OLE_MAGIC):
        raise EncryptedFileError(path, in_both_languages("kb_docx_encrypted"))
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise CorruptFileError(path, f"the {kind} cannot be read ({exc})") from exc
    with archive:
        parts = archive.infolist()
        if sum(part.file_size for part in parts) > limit:
            raise too_large(path, limit)
        for part in parts:
            if part.flag_bits & 0x1:
                raise EncryptedFileError(path, in_both_languages("kb_docx_encrypted"))
            if _inflated_size(path, archive, data, part) != part.file_size:
                raise CorruptFileError(
                    path,
                    in_both_languages(
                        "kb_inflated_mismatch", part=part.filename, declared=part.file_size
                    ),
                )
    # Every part came to its declared size, and those add up to no more than the limit.
    return ZipMeasure(parts=len(parts), inflated=sum(part.file_size for part in parts))


def _inflated_size(path: Path, archive: zipfile.ZipFile, data: bytes, part: zipfile.ZipInfo) -> int:
    """The bytes ``part`` actually inflates to, counted up to one chunk past what it declares
    (so a part that holds more is found without inflating it all)."""
    cap = part.file_size
    if part.compress_type == zipfile.ZIP_STORED:
        return part.compress_size
    if part.compress_type != zipfile.ZIP_DEFLATED:  # bzip2, lzma: zipfile stops at the size
        return _count_through_zipfile(path, archive, part, cap)
    raw = memoryview(data)[_data_offset(path, data, part) :][: part.compress_size]
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    count = position = 0
    try:
        while count <= cap and not inflater.eof:
            if inflater.unconsumed_tail:
                feed = inflater.unconsumed_tail
            elif position < len(raw):
                feed = bytes(raw[position : position + CHUNK])
                position += CHUNK
            else:
                break
            count += len(inflater.decompress(feed, CHUNK))
    except zlib.error as exc:
        raise CorruptFileError(path, f"its part {part.filename} is damaged ({exc})") from exc
    return count


def _count_through_zipfile(
    path: Path, archive: zipfile.ZipFile, part: zipfile.ZipInfo, cap: int
) -> int:
    count = 0
    try:
        with archive.open(part) as stream:
            while count <= cap and (chunk := stream.read(CHUNK)):
                count += len(chunk)
    except (zipfile.BadZipFile, NotImplementedError, EOFError, OSError, ValueError) as exc:
        raise CorruptFileError(path, f"its part {part.filename} cannot be read ({exc})") from exc
    return count


def _data_offset(path: Path, data: bytes, part: zipfile.ZipInfo) -> int:
    header = data[part.header_offset : part.header_offset + _LOCAL_HEADER.size]
    if len(header) < _LOCAL_HEADER.size:
        raise CorruptFileError(path, f"its part {part.filename} is cut off")
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    if signature != b"PK\x03\x04":
        raise CorruptFileError(path, f"its part {part.filename} has no local header")
    return int(part.header_offset) + _LOCAL_HEADER.size + int(name_length) + int(extra_length)


# -- PDF ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PdfText:
    title: str | None
    pages: list[str]
    inflated: int
    """Bytes decoded from the page contents and the forms they draw, all together."""


_STREAM_CAPS = (
    "zlib_maximum_output_length",
    "lzw_maximum_output_length",
    "run_length_maximum_output_length",
    "brotli_maximum_output_length",
    "array_based_stream_maximum_output_length",
    "stream_decoding_work_maximum_length",
)
_ENCRYPT = re.compile(rb"/Encrypt\b")


@contextlib.contextmanager
def _pdf_stream_caps(limit: int) -> Iterator[None]:
    """pypdf's per-stream output caps lowered to ``limit`` for this thread's reading (a
    context variable: other threads reading PDFs at the same time keep their own). pypdf
    before 6.x has no per-context configuration: its own 75 MB caps stand."""
    try:
        from pypdf import Configuration, apply_configuration
    except ImportError:  # pragma: no cover - older pypdf
        yield
        return
    known = {field.name for field in dataclasses.fields(Configuration)}
    caps: dict[str, Any] = {name: limit for name in _STREAM_CAPS if name in known}
    with apply_configuration(None, **caps):
        yield


def read_pdf(path: Path, data: bytes, limit: int) -> PdfText:
    """The text of each page and the document title, or an ``IngestError``: encrypted
    (needs a password, or AES without ``cryptography``), unpacks past ``limit``, or
    damaged."""
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError, PyPdfError

    encrypted = bool(_ENCRYPT.search(data))
    with _pdf_stream_caps(limit):
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            encrypted = reader.is_encrypted
            if encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
                raise EncryptedFileError(path, in_both_languages("kb_pdf_encrypted"))
            inflated = _decode_drawn_streams(path, reader, limit)
            pages = [page.extract_text() or "" for page in reader.pages]
            title = reader.metadata.title if reader.metadata else None
        except (FileNotDecryptedError, DependencyError, NotImplementedError) as exc:
            # AES without `cryptography`, or a security handler pypdf does not implement;
            # without encryption these name a missing decoder (Brotli, JBIG2).
            if encrypted:
                raise EncryptedFileError(path, in_both_languages("kb_pdf_encrypted")) from exc
            raise CorruptFileError(path, f"the PDF cannot be read ({exc})") from exc
        except LimitReachedError as exc:
            if re.search(r"decompress|decoding", str(exc), re.I):
                raise too_large(path, limit) from exc
            raise CorruptFileError(path, f"the PDF is beyond a safety limit ({exc})") from exc
        except (PyPdfError, ValueError, KeyError, TypeError, OSError, AttributeError) as exc:
            raise CorruptFileError(path, f"the PDF cannot be read ({exc})") from exc
    return PdfText(str(title) if title else None, pages, inflated)


def _decode_drawn_streams(path: Path, reader: PdfReader, limit: int) -> int:
    """Decode what text extraction will decode (pypdf keeps each decoded stream on its
    object, so extraction does not decode it again), counting the bytes: refused past
    ``limit`` all together. A stream drawn by several pages is counted once."""
    total = 0
    seen: set[int] = set()
    for page in reader.pages:
        for stream in _drawn_streams(page, seen):
            total += len(stream.get_data())
            if total > limit:
                raise too_large(path, limit)
    return total


def _drawn_streams(page: Any, seen: set[int]) -> Iterator[StreamObject]:
    from pypdf.generic import ArrayObject, DictionaryObject, StreamObject

    contents = page.get("/Contents")
    contents = contents.get_object() if contents is not None else None
    items = list(contents) if isinstance(contents, ArrayObject) else [contents]
    pending: list[Any] = [page.get("/Resources")]
    for item in items:
        stream = item.get_object() if item is not None else None
        if isinstance(stream, StreamObject) and id(stream) not in seen:
            seen.add(id(stream))
            yield stream
    while pending:  # form XObjects, and the forms they draw in turn
        resources = pending.pop()
        resources = resources.get_object() if resources is not None else None
        if not isinstance(resources, DictionaryObject):
            continue
        xobjects = resources.get("/XObject")
        xobjects = xobjects.get_object() if xobjects is not None else None
        if not isinstance(xobjects, DictionaryObject):
            continue
        for reference in xobjects.values():
            form = reference.get_object()
            if (
                isinstance(form, StreamObject)
                and form.get("/Subtype") == "/Form"
                and id(form) not in seen
            ):
                seen.add(id(form))
                yield form
                pending.append(form.get("/Resources"))
