"""Small documents made by hand for loader tests."""

from __future__ import annotations

from collections.abc import Sequence


def make_pdf(text: str, info_title: str | None = None) -> bytes:
    """A minimal one-page PDF: Helvetica, one text line, a correct xref table."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    content = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1")
    objects = one_page(content)
    if info_title is not None:
        objects.append(b"<< /Title (%s) >>" % info_title.encode("latin-1"))
    info = b" /Info %d 0 R" % len(objects) if info_title is not None else b""
    return pdf_bytes(objects, info, version=b"1.4")


def one_page(content: bytes) -> list[bytes]:
    """The objects of a one-page PDF (catalogue, pages, page, Helvetica, the page's
    ``content`` stream), numbered from 1: append more objects after them."""
    return [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]


def pdf_bytes(
    objects: Sequence[bytes], trailer_extra: bytes = b"", version: bytes = b"1.7"
) -> bytes:
    """A PDF file of ``objects`` (numbered from 1, the first the catalogue) with its
    cross-reference table; ``trailer_extra`` goes into the trailer dictionary."""
    out = bytearray(b"%PDF-" + version + b"\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\n" % (len(objects) + 1, trailer_extra)
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)
