"""Hostile PDFs for the cases the corpus lacks (pathological structures), built on
devtools.pdf_factory; ``text_pdf`` is named here too for the tests that take every PDF from here."""

from __future__ import annotations

from devtools.pdf_factory import one_page_pdf, text_pdf

__all__ = ["deeply_nested_pdf", "huge_content_stream_pdf", "text_pdf"]


def huge_content_stream_pdf(operators: int = 8_000_000) -> bytes:
    """A page whose content stream inflates to tens of MB of text operators (a zip bomb)."""
    return one_page_pdf(b"BT /F1 12 Tf 72 700 Td " + b"(x) Tj " * operators + b"ET")


def deeply_nested_pdf(depth: int = 200_000) -> bytes:
    """A page dictionary holding an array nested ``depth`` levels deep."""
    nested = b"[" * depth + b"]" * depth
    return one_page_pdf(
        b"BT /F1 12 Tf 72 700 Td (hello) Tj ET", page_extra=b"/Deep " + nested + b" "
    )
