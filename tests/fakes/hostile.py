"""Hostile documents built by the tests (nothing big is committed): zip and DOCX bombs whose
members inflate to a gigabyte from about a megabyte, PDFs with huge decompressed streams, and
encrypted PDFs.

A bomb is built without ever holding its inflated content: a repeated piece is deflated once,
with a full flush (no reference to earlier data, byte-aligned), and the compressed piece is
repeated; the CRC is computed piece by piece.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.fakes.documents import make_pdf, one_page, pdf_bytes

MIB = 1 << 20
GIB = 1 << 30

CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" '
    b'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/word/document.xml" ContentType="application/'
    b'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
PACKAGE_RELS = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    b'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)
DOCUMENT_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    b"<w:body><w:p><w:r><w:t>Graduate internships</w:t></w:r></w:p>"
)
DOCUMENT_TAIL = b"</w:body></w:document>"


@dataclass(frozen=True)
class Piece:
    """``data`` repeated ``times`` times."""

    data: bytes
    times: int = 1

    @property
    def size(self) -> int:
        return len(self.data) * self.times


@dataclass(frozen=True)
class Member:
    name: str
    pieces: Sequence[Piece]
    declared_size: int | None = None
    """What the zip's headers claim the member inflates to (None: the truth)."""


def _deflate(pieces: Sequence[Piece]) -> tuple[bytes, int, int]:
    """Raw deflate of the pieces in order: (compressed, crc32, inflated size)."""
    out = bytearray()
    crc = 0
    for piece in pieces:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        block = compressor.compress(piece.data) + compressor.flush(zlib.Z_FULL_FLUSH)
        for _ in range(piece.times):
            crc = zlib.crc32(piece.data, crc)
        out += block * piece.times
    out += b"\x03\x00"  # an empty final block
    return bytes(out), crc, sum(p.size for p in pieces)


def zip_bytes(members: Sequence[Member]) -> bytes:
    """A zip archive (deflated members, no zip64: each member under 4 GiB)."""
    body = bytearray()
    central = bytearray()
    for member in members:
        data, crc, size = _deflate(member.pieces)
        declared = size if member.declared_size is None else member.declared_size
        name = member.name.encode()
        offset = len(body)
        fields = (20, 0, 8, 0, 0x21, crc, len(data), declared, len(name))
        body += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", *fields, 0) + name + data
        central += (
            struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, *fields, 0, 0, 0, 0, 0, offset)
            + name
        )
    end = struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(body), 0
    )
    return bytes(body + central + end)


def docx_bomb(inflated: int = GIB, *, declared_size: int | None = None) -> bytes:
    """A well-formed DOCX whose document.xml inflates to about ``inflated`` bytes of blank
    space between two paragraphs (about 1 MiB compressed per GiB)."""
    padding = Piece(b" " * MIB, max(1, inflated // MIB))
    document = Member(
        "word/document.xml",
        [Piece(DOCUMENT_HEAD), padding, Piece(DOCUMENT_TAIL)],
        declared_size=declared_size,
    )
    return zip_bytes(
        [
            Member("[Content_Types].xml", [Piece(CONTENT_TYPES)]),
            Member("_rels/.rels", [Piece(PACKAGE_RELS)]),
            document,
        ]
    )


def small_docx(paragraphs: Sequence[str]) -> bytes:
    """A valid DOCX made the same way as the bombs (for the limit's other side)."""
    body = b"".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>".encode() for p in paragraphs)
    return zip_bytes(
        [
            Member("[Content_Types].xml", [Piece(CONTENT_TYPES)]),
            Member("_rels/.rels", [Piece(PACKAGE_RELS)]),
            Member("word/document.xml", [Piece(DOCUMENT_HEAD + body + DOCUMENT_TAIL)]),
        ]
    )


def pdf_bomb(pages: int = 16, inflated_per_page: int = 64 * MIB) -> bytes:
    """A PDF whose pages' content streams (FlateDecode) each inflate to
    ``inflated_per_page`` bytes of blank space around one line of text."""
    text = Piece(b"BT /F1 12 Tf 72 720 Td (Graduate internships) Tj ET\n")
    padding = Piece(b" " * MIB, max(1, inflated_per_page // MIB))
    raw, _, _ = _deflate([text, padding])
    adler = 1
    for piece in (text, padding):
        for _ in range(piece.times):
            adler = zlib.adler32(piece.data, adler)
    stream = b"\x78\xda" + raw + struct.pack(">I", adler)  # a zlib stream
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(pages)).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
    ]
    font = 3 + 2 * pages
    for i in range(pages):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>" % (font, 4 + 2 * i)
        )
        objects.append(
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream)
            + stream
            + b"\nendstream"
        )
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    return pdf_bytes(objects)


def aes256_encrypted_pdf() -> bytes:
    """A PDF whose trailer names an AES-256 (V5 R6) standard security handler. Checking
    any password against it needs AES, so readers without an AES implementation fail
    before reading a page (pypdf raises DependencyError without ``cryptography``)."""
    digest = hashlib.sha256(b"gradguide").digest()
    content = b"BT /F1 12 Tf 72 720 Td (Graduate internships) Tj ET"
    objects = [
        *one_page(content),
        b"<< /Filter /Standard /V 5 /R 6 /Length 256 /P -1028 "
        b"/CF << /StdCF << /AuthEvent /DocOpen /CFM /AESV3 /Length 32 >> >> "
        b"/StmF /StdCF /StrF /StdCF "
        b"/O <%s> /U <%s> /OE <%s> /UE <%s> /Perms <%s> >>"
        % (
            (digest + digest[:16]).hex().encode(),
            (digest[::-1] + digest[:16]).hex().encode(),
            digest.hex().encode(),
            digest[::-1].hex().encode(),
            digest[:16].hex().encode(),
        ),
    ]
    ident = b"<%s>" % digest[:16].hex().encode()
    return pdf_bytes(objects, b" /Encrypt 6 0 R /ID [%s %s]" % (ident, ident))


def rc4_encrypted_pdf(text: str, user_password: str, owner_password: str = "owner") -> bytes:
    """A one-page PDF encrypted with RC4-128 (pypdf writes it without extra packages)."""
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(text))))
    writer.encrypt(user_password, owner_password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
