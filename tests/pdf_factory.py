"""Hostile PDFs for the cases the corpus lacks (pathological structures), built on
devtools.pdf_factory; ``text_pdf`` is named here too for the tests that take every PDF from here."""

from __future__ import annotations

from devtools.pdf_factory import HELVETICA, one_page_pdf, pdf_from_objects, stream_object, text_pdf

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


def shared_stream_pdf(content: bytes, *, pages: int, font: bytes = HELVETICA, extra=()) -> bytes:
    """``pages`` pages that all draw the one content stream ``content`` (stored once): a small
    file whose every page costs as much to read as the stream does. Objects in ``extra`` come
    after the font, from object 5 on."""
    first_page = 5 + len(extra)
    kids = " ".join(f"{first_page + i} 0 R" for i in range(pages)).encode()
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
        b"/Resources << /Font << /F1 4 0 R >> >> >>"
    )
    return pdf_from_objects(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [" + kids + b"] /Count " + str(pages).encode() + b" >>",
            stream_object(content),
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
        extra=[stream_object(cmap)],
    )


def image_page_pdf(
    image: bytes,
    *,
    width_px: int,
    height_px: int,
    image_filter: str = "",
    media: tuple[int, int] = (612, 792),
) -> bytes:
    """One page (``media`` in points) covered by one grey image XObject of the given pixel
    size, its data stored as given (``image_filter``: ``/DCTDecode``..., or raw samples)."""
    width, height = media
    content = f"q {width} 0 0 {height} 0 0 cm /Im1 Do Q".encode()
    filter_entry = f"/Filter {image_filter} " if image_filter else ""
    image_object = (
        (
            f"<< /Type /XObject /Subtype /Image /Width {width_px} /Height {height_px} "
            f"/ColorSpace /DeviceGray /BitsPerComponent 8 {filter_entry}/Length {len(image)} >>\n"
            "stream\n"
        ).encode()
        + image
        + b"\nendstream"
    )
    return pdf_from_objects(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] /Contents 4 0 R "
            "/Resources << /XObject << /Im1 5 0 R >> >> >>".encode(),
            stream_object(content),
            image_object,
        ]
    )


def corrupt_image_pdf() -> bytes:
    """A page covered by a JPEG image whose data is garbage after its first marker."""
    garbage = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40
    return image_page_pdf(garbage, width_px=800, height_px=1000, image_filter="/DCTDecode")


def two_pixel_image_pdf() -> bytes:
    """A page covered by an image of two pixels (one black, one white)."""
    return image_page_pdf(b"\x00\xff", width_px=2, height_px=1)


def enormous_page_pdf() -> bytes:
    """A 200 x 200 inch page (the largest PDF allows) covered by an image: even at 100 dpi it
    would take 400 million pixels."""
    return image_page_pdf(bytes(range(256)) * 4, width_px=32, height_px=32, media=(14400, 14400))
