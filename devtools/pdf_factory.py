"""Small hand-written PDFs, written byte by byte (no PDF library, so any structure is possible)."""

from __future__ import annotations

import io
import zlib

HELVETICA = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def pdf_from_objects(objects: list[bytes]) -> bytes:
    """A PDF file of these objects (numbered from 1; object 1 is the catalog), with its xref."""
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


def stream_object(data: bytes) -> bytes:
    """A Flate-compressed stream object holding ``data``."""
    packed = zlib.compress(data, 9)
    header = f"<< /Length {len(packed)} /Filter /FlateDecode >>\nstream\n".encode()
    return header + packed + b"\nendstream"


def one_page_pdf(content: bytes, *, page_extra: bytes = b"") -> bytes:
    """A one-page PDF with the given content stream (Flate-compressed) and Helvetica as F1."""
    return pdf_from_objects(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> " + page_extra + b">>",
            stream_object(content),
            HELVETICA,
        ]
    )


def text_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` (ASCII)."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return one_page_pdf(f"BT /F1 12 Tf 72 700 Td ({escaped}) Tj ET".encode())
