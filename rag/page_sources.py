"""Each page's text from the best reader that has it: pypdf, then PDFium, then OCR.

pypdf stays the primary parser. PDFium (pypdfium2) is the second reader: it opens files pypdf
cannot (a missing cross-reference table, an invalid page tree) and extracts pages whose streams
pypdf cannot decode. OCR (``rag.ocr``) reads a page whose text layer is missing, too thin for the
page's ink, or garbage (see :func:`ocr_reason`), per ``RAGConfig.ocr``:

- ``auto``: only those pages;
- ``force``: every page (its text layer is replaced by what OCR reads);
- ``off``: never.

PDFium is opened only when a page needs it (most text PDFs never do). Runs in the page reader's
child process (``rag.page_reader``), never in the worker's own: text layers and rendering in
the calling thread (PDFium is not thread-safe), recognition in the threads of ``rag.ocr_pool``.
"""

from __future__ import annotations

import io
import logging
import time
import unicodedata
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rag.errors import CorruptPdfError, TooLargeError
from rag.parsing import (
    SOURCE_OCR,
    SOURCE_PDFIUM,
    SOURCE_PYPDF,
    ExtractionStats,
    Page,
    PdfDocument,
    add_page,
    normalize_text,
)

if TYPE_CHECKING:
    from rag.ocr_pool import OcrPool, Recognition

logger = logging.getLogger(__name__)

OCR_MODES = ("auto", "force", "off")
# A text layer shorter than this over a page mostly covered by images is a scan with a few stray
# words (a stamp, a page number, a header added by the scanner): the page is OCR'd.
THIN_TEXT_CHARS = 100
# Share of the page's area that images must cover for its text layer to count as thin.
IMAGE_COVERAGE = 0.5
# A text layer is garbage when at least this share of its visible characters are U+FFFD,
# private-use or unassigned code points (fonts without a Unicode map) ...
BAD_CHAR_SHARE = 0.2
# ... or when no script family holds this share of its letters (a soup of Greek, Tamil,
# Cyrillic and Thaana letters is a font's glyph codes, not a language). Real text of any
# language is mostly one script family (with some Latin).
DOMINANT_SCRIPT_SHARE = 0.5
# Garbage is only judged on text at least this long (a few symbols prove nothing), and on its
# first characters only (a page may hold megabytes; its start tells as much).
MIN_JUDGED_CHARS = 20
JUDGED_CHARS = 20_000
# Script families: Japanese mixes three scripts, Korean may mix Hangul with Han characters.
_SCRIPT_FAMILY = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "HANGUL": "CJK", "IDEOGRAPHIC": "CJK"}
THIN_REASON = "thin text layer over images"
# Reasons kept for skipped pages (enough to explain a failure; a long scan could skip many).
MAX_SKIP_REASONS = 20


@dataclass(frozen=True)
class OcrSettings:
    """What the child needs to know about OCR (built from ``RAGConfig``)."""

    mode: str = "auto"
    languages: str = "eng"
    tessdata: str = ""
    dpi: int = 300
    max_pixels: int = 40_000_000
    page_seconds: float = 120.0
    threads: int = 1
    """Pages recognised at once, each in a thread with its own Tesseract."""


@dataclass
class PageRead:
    """One page as read, with the seconds spent parsing text and running OCR (rendering and
    recognition), and OCR's CPU seconds."""

    page: Page
    parse_seconds: float = 0.0
    ocr_seconds: float = 0.0
    ocr_cpu: float = 0.0
    notes: list[str] = field(default_factory=list)


def _script_family(char: str) -> str:
    name = unicodedata.name(char, "")
    head = name.split(" ", 1)[0]
    return _SCRIPT_FAMILY.get(head, head)


def is_garbage(text: str) -> bool:
    """Whether a text layer is mostly replacement or unmapped characters, or a soup of scripts
    (see :data:`BAD_CHAR_SHARE` and :data:`DOMINANT_SCRIPT_SHARE`)."""
    visible = [char for char in text[:JUDGED_CHARS] if not char.isspace()]
    if len(visible) < MIN_JUDGED_CHARS:
        return False
    bad = sum(
        1 for char in visible if char == "\ufffd" or unicodedata.category(char) in ("Co", "Cn")
    )
    if bad >= BAD_CHAR_SHARE * len(visible):
        return True
    families: dict[str, int] = {}
    for char in visible:
        if char.isalpha():
            family = _script_family(char)
            families[family] = families.get(family, 0) + 1
    letters = sum(families.values())
    return letters >= MIN_JUDGED_CHARS and max(families.values()) < DOMINANT_SCRIPT_SHARE * letters


def ocr_reason(text: str, image_coverage: float | None) -> str | None:
    """Why ``auto`` OCRs a page with this text layer, or None when the layer is good.
    ``image_coverage`` (share of the page under images) is only needed for short text."""
    if not text:
        return "no text layer"
    if is_garbage(text):
        return "garbage text layer"
    if len(text) < THIN_TEXT_CHARS and (image_coverage or 0.0) >= IMAGE_COVERAGE:
        return THIN_REASON
    return None


def image_coverage(page: Any) -> float:
    """Share of a PDFium page's area covered by image objects (overlaps counted twice, capped
    at 1)."""
    import pypdfium2.raw as pdfium_c

    width, height = page.get_size()
    if width <= 0 or height <= 0:
        return 0.0
    covered = 0.0
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=4):
        left, bottom, right, top = obj.get_bounds()
        covered += max(0.0, min(right, width) - max(left, 0.0)) * max(
            0.0, min(top, height) - max(bottom, 0.0)
        )
    return min(1.0, covered / (width * height))


class PageSources:
    """A PDF opened by pypdf (or, failing that, PDFium), read page by page with fallbacks.

    Raises what :class:`~rag.parsing.PdfDocument` raises, except a :class:`CorruptPdfError`
    that PDFium can overcome.
    """

    def __init__(self, data: bytes, *, max_pages: int, ocr: OcrSettings) -> None:
        self._data = data
        self._ocr_settings = ocr
        self._pdfium: Any = None
        self._pdfium_failed = ""
        self._pool: OcrPool | None = None
        self._pypdf: PdfDocument | None = None
        exc_message = ""
        try:
            self._pypdf = PdfDocument(io.BytesIO(data), max_pages=max_pages)
        except CorruptPdfError as exc:
            pdfium = self._open_pdfium()
            if pdfium is None or len(pdfium) == 0:
                raise
            exc_message = exc.message
            logger.warning("pypdf cannot open the file (%s); PDFium reads it", exc_message)
            if len(pdfium) > max_pages:
                raise TooLargeError(
                    f"The PDF has {len(pdfium)} pages; the limit is {max_pages} (RAG_MAX_PAGES)."
                ) from exc
        self.page_count = self._pypdf.page_count if self._pypdf else len(self._pdfium)
        self.stats = self._pypdf.stats if self._pypdf else ExtractionStats()
        if self._pypdf is None:
            # Pages nothing reads count as failed with this cause: the file is corrupt.
            self.stats.first_failure = f"pypdf: {exc_message}"

    @property
    def ocr_threads(self) -> int:
        """Pages recognised at once (:attr:`OcrSettings.threads`)."""
        return self._ocr_settings.threads

    def _open_pdfium(self) -> Any:
        """PDFium's view of the file, opened once; None when PDFium cannot open it either."""
        if self._pdfium is None and not self._pdfium_failed:
            import pypdfium2

            try:
                self._pdfium = pypdfium2.PdfDocument(self._data)
            except pypdfium2.PdfiumError as exc:
                self._pdfium_failed = str(exc) or type(exc).__name__
                logger.warning("PDFium cannot open the file: %s", self._pdfium_failed)
        return self._pdfium

    def read(self, index: int) -> PageRead:
        """Read page ``index`` (0-based) from the best source, OCR included; never raises."""
        result = self.read_text(index)
        reason = self.ocr_reason(result)
        if reason:
            self.ocr(result, reason)
        self.count(result)
        return result

    def read_text(self, index: int) -> PageRead:
        """Page ``index`` (0-based) from its text layer: pypdf's, else PDFium's."""
        number = index + 1
        started = time.perf_counter()
        text, source = "", SOURCE_PYPDF
        if self._pypdf is not None:
            text = self._pypdf.read_page(index).text
            pypdf_failed = number in self.stats.failed_pages
        else:
            self.stats.pages_read += 1
            pypdf_failed = True
        if pypdf_failed:
            text, source = self._pdfium_text(index), SOURCE_PDFIUM
            if text:
                self.stats.pages_with_text += 1
                if self._pypdf is not None:
                    self.stats.failed_pages.remove(number)  # read after all
            elif self._pypdf is None:
                self.stats.failed_pages.append(number)  # unless OCR reads it
        result = PageRead(page=Page(number=number, text=text, source=source))
        result.parse_seconds = time.perf_counter() - started
        return result

    def count(self, result: PageRead) -> None:
        """Count the page in :attr:`stats` under the source its text finally came from, and
        note its number under any source but pypdf (pages are counted in page order)."""
        page = result.page
        if page.text:
            sources = self.stats.page_sources
            sources[page.source] = sources.get(page.source, 0) + 1
            if page.source != SOURCE_PYPDF:
                readers = self.stats.page_readers
                readers[page.source] = add_page(readers.get(page.source, ""), page.number)

    def _pdfium_text(self, index: int) -> str:
        pdfium = self._open_pdfium()
        if pdfium is None:
            return ""
        import pypdfium2

        try:
            page = pdfium[index]
            textpage = page.get_textpage()
            return normalize_text(textpage.get_text_bounded())
        except pypdfium2.PdfiumError as exc:
            logger.warning("page=%d pdfium_extraction_failed error=%s", index + 1, exc)
            return ""

    def ocr_reason(self, result: PageRead) -> str | None:
        """Why the page needs OCR under the configured mode, or None. Its seconds (opening
        PDFium, measuring the images of a short page) are added to the page's parsing, so the
        budget counts them."""
        started = time.perf_counter()
        try:
            return self._ocr_reason(result)
        finally:
            result.parse_seconds += time.perf_counter() - started

    def _ocr_reason(self, result: PageRead) -> str | None:
        index, text = result.page.number - 1, result.page.text
        mode = self._ocr_settings.mode
        if mode == "off":
            return None
        if mode == "force":
            return "RAG_OCR=force"
        if text and len(text) >= THIN_TEXT_CHARS:
            return ocr_reason(text, None)  # long enough: only garbage counts, no need of PDFium
        pdfium = self._open_pdfium()
        coverage = None
        if pdfium is not None and text:
            import pypdfium2

            try:
                coverage = image_coverage(pdfium[index])
            except pypdfium2.PdfiumError:
                coverage = None
        return ocr_reason(text, coverage)

    def ocr(self, result: PageRead, reason: str) -> None:
        """Replace the page's text by what OCR reads, when it reads anything (and count the
        seconds spent); waits for the recognition."""
        image = self.render(result)
        if image is not None:
            recognition = self.recognise(image)
            del image  # the pool holds it until the page is read, no longer
            self.finish_ocr(result, reason, recognition.result())

    def render(self, result: PageRead) -> Any | None:
        """The page's image for OCR, drawn in this thread (PDFium is not thread-safe); None when
        it cannot be drawn (the reason is recorded). Its seconds count as the page's OCR."""
        from rag import ocr

        number = result.page.number
        started, cpu_started = time.perf_counter(), time.thread_time()
        try:
            pdfium = self._open_pdfium()
            if pdfium is None:
                self._skip(number, f"PDFium cannot render the file ({self._pdfium_failed})")
                return None
            settings = self._ocr_settings
            return ocr.render_page(
                pdfium[number - 1], dpi=settings.dpi, max_pixels=settings.max_pixels
            )
        except ocr.OcrSkipped as exc:
            self._skip(number, str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - PDFium raises types of its own
            # One page that cannot be rendered must not lose the others; recorded.
            self._skip(number, f"{type(exc).__name__}: {str(exc)[:200]}")
            return None
        finally:
            result.ocr_seconds += time.perf_counter() - started
            result.ocr_cpu += time.thread_time() - cpu_started

    def recognise(self, image: Any) -> Future[Recognition]:
        """Recognition of a rendered page in one of :attr:`OcrSettings.threads` threads, each
        with its own Tesseract (made on first use)."""
        if self._pool is None:
            from rag import ocr
            from rag.ocr_pool import OcrPool

            settings = self._ocr_settings
            self._pool = OcrPool(
                settings.threads,
                lambda: ocr.OcrEngine(
                    languages=settings.languages,
                    tessdata=settings.tessdata,
                    page_seconds=settings.page_seconds,
                ),
            )
        return self._pool.submit(image)

    def release_ocr_engines(self) -> None:
        """Free the OCR engines when no page is being recognised (see
        :meth:`rag.ocr_pool.OcrPool.release_idle`); called after a page that needs no OCR."""
        if self._pool is not None:
            self._pool.release_idle()

    def finish_ocr(self, result: PageRead, reason: str, recognition: Recognition) -> None:
        """Take what recognition read as the page's text when it is better than the text layer
        (counting its seconds); record why when it read nothing."""
        number = result.page.number
        result.ocr_seconds += recognition.seconds
        result.ocr_cpu += recognition.cpu
        found = recognition.found
        if found is None:
            self._skip(number, recognition.error)
            return
        text = normalize_text(found.text)
        logger.info(
            "page=%d ocr reason=%r words=%d confidence=%s",
            number,
            reason,
            found.words,
            found.confidence,
        )
        # A thin text layer that OCR cannot better (a page that only looked scanned) is kept.
        if not text or (reason == THIN_REASON and len(text) < len(result.page.text)):
            return
        if not result.page.text:
            self.stats.pages_with_text += 1
            if number in self.stats.failed_pages:
                self.stats.failed_pages.remove(number)
        result.page = Page(
            number=number, text=text, source=SOURCE_OCR, ocr_confidence=found.confidence
        )

    def _skip(self, number: int, reason: str) -> None:
        logger.warning("page=%d ocr_skipped reason=%s", number, reason)
        if len(self.stats.skipped_pages) < MAX_SKIP_REASONS:
            self.stats.skipped_pages.append(f"page {number}: {reason}")

    def close(self) -> None:
        """Free PDFium's document and every Tesseract's models (once their pages are read)."""
        if self._pool is not None:
            self._pool.close()
        if self._pdfium is not None:
            self._pdfium.close()
