"""Read a PDF page by page with pypdf, mapping whatever pypdf raises to a typed, permanent error.

pypdf raises more than its own exception types on real files (``ValueError``, ``TypeError``,
``NotImplementedError`` at open; ``DependencyError`` and ``DeprecationError``, which are not
``PyPdfError`` subclasses, during extraction). Failures are therefore classified by *where* they
happen: anything raised while opening the file means the file is corrupt; anything raised while
extracting one page means that page is unreadable, and the document is corrupt only when no page
yields text.

Pages are yielded one at a time so a caller never holds every page's text of a long document.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from pypdf import PasswordType, PdfReader

from rag.errors import CorruptPdfError, EncryptedPdfError, NotAPdfError, NoTextError, TooLargeError

logger = logging.getLogger(__name__)

PDF_MAGIC = b"%PDF-"
# The PDF header may follow up to 1 KiB of junk (ISO 32000-1, 7.5.2 / implementation note).
HEADER_SEARCH_BYTES = 1024
# pypdf keeps every object it has parsed (decoded content streams included) for the reader's
# lifetime; forgetting them every so many pages bounds memory on very long documents at the cost
# of parsing shared objects (fonts) again.
FORGET_PARSED_EVERY_PAGES = 50


# Where a page's text came from: pypdf's text layer (the primary parser), PDFium's text layer
# (the second reader, for files and pages pypdf cannot read), or OCR of the rendered page.
SOURCE_PYPDF = "pypdf"
SOURCE_PDFIUM = "pdfium"
SOURCE_OCR = "ocr"


@dataclass(frozen=True)
class Page:
    """The normalised text of one page; ``number`` is 1-based, as people cite pages.
    ``source`` says which reader produced the text; ``ocr_confidence`` is the mean word
    confidence (0-100) of an OCR'd page, None otherwise."""

    number: int
    text: str
    source: str = SOURCE_PYPDF
    ocr_confidence: float | None = None


@dataclass
class ExtractionStats:
    """What happened while reading the pages, for logs and error messages."""

    pages_read: int = 0
    pages_with_text: int = 0
    failed_pages: list[int] = field(default_factory=list)
    first_failure: str = ""
    page_sources: dict[str, int] = field(default_factory=dict)
    """Pages whose text came from each reader (``pypdf``, ``pdfium``, ``ocr``)."""
    page_readers: dict[str, str] = field(default_factory=dict)
    """Which pages each reader other than pypdf read, as ranges (``{"ocr": "3-5,9"}``); pypdf
    read the other pages with text."""
    skipped_pages: list[str] = field(default_factory=list)
    """Why pages were not OCR'd although they needed it ("page 3: ..."), at most a few."""


def add_page(ranges: str, number: int) -> str:
    """``ranges`` of page numbers (``"3-5,9"``) with page ``number`` added; pages are added in
    increasing order, as they are read."""
    if not ranges:
        return str(number)
    head, comma, last = ranges.rpartition(",")
    first, _, end = last.partition("-")
    if number == int(end or first) + 1:
        return f"{head}{comma}{first}-{number}"
    return f"{ranges},{number}"


def looks_like_pdf(head: bytes) -> bool:
    """Whether the first bytes of a file carry a PDF header."""
    return PDF_MAGIC in head[:HEADER_SEARCH_BYTES]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or "no details"
    return f"{type(exc).__name__}: {text[:300]}"


class PdfDocument:
    """An opened, decrypted PDF whose pages can be read one at a time.

    Raises :class:`NotAPdfError`, :class:`CorruptPdfError`, :class:`EncryptedPdfError` or
    :class:`TooLargeError` from the constructor.
    """

    def __init__(self, stream: BinaryIO, *, max_pages: int) -> None:
        head = stream.read(HEADER_SEARCH_BYTES)
        if not head:
            raise CorruptPdfError("The file is empty (0 bytes).")
        if not looks_like_pdf(head):
            raise NotAPdfError("The file is not a PDF (no %PDF- header in its first 1 KiB).")
        stream.seek(0)
        try:
            self._reader = PdfReader(stream)
        except Exception as exc:
            # pypdf's own errors and the ValueError/TypeError/NotImplementedError it lets escape
            # all mean the same to us: the file's structure cannot be read.
            raise CorruptPdfError(f"The PDF structure cannot be read ({_describe(exc)}).") from exc
        self._decrypt()
        try:
            self.page_count = len(self._reader.pages)
        except Exception as exc:  # the page tree: same reason as PdfReader above
            raise CorruptPdfError(f"The PDF page tree cannot be read ({_describe(exc)}).") from exc
        if self.page_count == 0:
            raise CorruptPdfError("The PDF has no pages.")
        if self.page_count > max_pages:
            raise TooLargeError(
                f"The PDF has {self.page_count} pages; the limit is {max_pages} (RAG_MAX_PAGES)."
            )
        self.stats = ExtractionStats()

    def _decrypt(self) -> None:
        if not self._reader.is_encrypted:
            return
        try:
            result = self._reader.decrypt("")
        except Exception as exc:  # unsupported ciphers: NotImplementedError, DependencyError...
            raise EncryptedPdfError(
                f"The PDF is encrypted with a method that cannot be read ({_describe(exc)})."
            ) from exc
        if result == PasswordType.NOT_DECRYPTED:
            raise EncryptedPdfError("The PDF is encrypted and needs a password to open.")

    def pages(self) -> Iterator[Page]:
        """Yield each page's normalised text; a page that cannot be read yields empty text."""
        for index in range(self.page_count):
            yield self.read_page(index)

    def read_page(self, index: int) -> Page:
        """Extract one page (0-based ``index``); failures are recorded, not raised."""
        number = index + 1
        self.stats.pages_read += 1
        try:
            raw = self._reader.pages[index].extract_text() or ""
        except Exception as exc:  # noqa: BLE001 - pypdf raises types outside PyPdfError here
            # One unreadable page must not lose the others; see the module docstring. Recorded in
            # stats (first_failure) and logged; the document fails when no page yields text.
            logger.warning("page=%d extraction_failed error=%r", number, _describe(exc))
            self.stats.failed_pages.append(number)
            if not self.stats.first_failure:
                self.stats.first_failure = _describe(exc)
            return Page(number=number, text="")
        finally:
            if self.stats.pages_read % FORGET_PARSED_EVERY_PAGES == 0:
                self._reader.resolved_objects.clear()
        text = normalize_text(raw)
        if text:
            self.stats.pages_with_text += 1
        return Page(number=number, text=text)

    def no_text_error(self) -> CorruptPdfError | NoTextError:
        """The error that explains why no text came out of the whole document."""
        return no_text_error(self.stats, self.page_count)


def no_text_error(stats: ExtractionStats, page_count: int) -> CorruptPdfError | NoTextError:
    """The error that explains why no text came out of a whole document of ``page_count``."""
    if stats.skipped_pages and not stats.failed_pages:
        return NoTextError(
            f"No text could be read on any of the {page_count} pages; OCR skipped "
            f"{stats.skipped_pages[0]}."
        )
    if stats.failed_pages:
        return CorruptPdfError(
            f"No text could be read: {len(stats.failed_pages)} of {page_count} pages "
            f"failed to extract (first error: {stats.first_failure})."
        )
    return NoTextError(
        f"The PDF has no extractable text on any of its {page_count} pages "
        "(and OCR, where it ran, found none: a blank page, or a drawing)."
    )


# A letter, a hyphen at the end of a line, and a lower-case letter: a word split by the layout.
# ("2019-\n2020" and "Jean-\nPierre" are left alone.)
_HYPHEN_BREAK = re.compile(r"([^\W\d_])-[ \t]*\r?\n[ \t]*(?=[^\W\d_])(?=[^A-Z])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_WHITESPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Normalise extracted text without losing words.

    NFKC folds ligatures and full-width forms (``ﬁ`` -> ``fi``) so search matches what people
    type; words hyphenated across a line break are joined; control characters (PostgreSQL text
    cannot hold NUL) are dropped; runs of whitespace become one space.
    """
    text = unicodedata.normalize("NFKC", text)
    text = _HYPHEN_BREAK.sub(r"\1", text)
    text = _CONTROL.sub(" ", text)
    return _WHITESPACE.sub(" ", text).strip()
