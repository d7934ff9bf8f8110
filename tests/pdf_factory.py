"""Small hand-written PDFs for the cases the corpus lacks (pathological structures)."""

from __future__ import annotations

import io
import zlib

_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def _pdf(objects: list[bytes]) -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


def _stream(data: bytes) -> bytes:
    packed = zlib.compress(data, 9)
    header = f"<< /Length {len(packed)} /Filter /FlateDecode >>\nstream\n".encode()
    return header + packed + b"\nendstream"


def one_page_pdf(content: bytes, *, page_extra: bytes = b"") -> bytes:
    """A one-page PDF with the given content stream (Flate-compressed) and Helvetica as F1."""
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> " + page_extra + b">>",
            _stream(content),
            _FONT,
        ]
    )


def text_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` (ASCII)."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return one_page_pdf(f"BT /F1 12 Tf 72 700 Td ({escaped}) Tj ET".encode())


def huge_content_stream_pdf(operators: int = 8_000_000) -> bytes:
    """A page whose content stream inflates to tens of MB of text operators (a zip bomb)."""
    return one_page_pdf(b"BT /F1 12 Tf 72 700 Td " + b"(x) Tj " * operators + b"ET")


def deeply_nested_pdf(depth: int = 200_000) -> bytes:
    """A page dictionary holding an array nested ``depth`` levels deep."""
    nested = b"[" * depth + b"]" * depth
    return one_page_pdf(
        b"BT /F1 12 Tf 72 700 Td (hello) Tj ET", page_extra=b"/Deep " + nested + b" "
    )


def shared_stream_pdf(content: bytes, *, pages: int, font: bytes = _FONT, extra=()) -> bytes:
    """``pages`` pages that all draw the one content stream ``content`` (stored once): a small
    file whose every page costs as much to read as the stream does. Objects in ``extra`` come
    after the font, from object 5 on."""
    first_page = 5 + len(extra)
    kids = " ".join(f"{first_page + i} 0 R" for i in range(pages)).encode()
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
        b"/Resources << /Font << /F1 4 0 R >> >> >>"
    )
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [" + kids + b"] /Count " + str(pages).encode() + b" >>",
            _stream(content),
            font,
            *extra,
            *([page] * pages),
        ]
    )


def long_word_pdf(chars: int, *, pages: int) -> bytes:
    """Pages sharing one stream that shows a single "word" of ``chars`` letters (no spaces)."""
    return shared_stream_pdf(b"BT /F1 12 Tf 72 700 Td (" + b"A" * chars + b") Tj ET", pages=pages)


def slow_pages_pdf(operators: int, *, pages: int) -> bytes:
    """Pages sharing one stream of ``operators`` small text operators: legitimate text, slow to
    parse (pypdf handles each operator in Python, about 15 µs apiece)."""
    return shared_stream_pdf(
        b"BT /F1 12 Tf 72 700 Td " + b"(word ) Tj " * operators + b"ET", pages=pages
    )


# pypdf's longest /ToUnicode destination, in characters (1,024 hex digits of UTF-16).
_EXPANSION = 256


def expanding_text_pdf(chars: int, *, pages: int) -> bytes:
    """Pages showing about ``chars`` characters of text each, cheaply: the font's /ToUnicode
    map turns each byte shown into 256 letters, so the stream is 256 times shorter than the
    text and quick to parse."""
    cmap = (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Expand def "
        b"1 begincodespacerange <00> <FF> endcodespacerange 1 beginbfchar <41> <"
        + b"0042" * _EXPANSION
        + b"> endbfchar endcmap end end"
    )
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 5 0 R >>"
    shown = b"A" * -(-chars // _EXPANSION)
    return shared_stream_pdf(
        b"BT /F1 12 Tf 72 700 Td (" + shown + b") Tj ET",
        pages=pages,
        font=font,
        extra=[_stream(cmap)],
    )
