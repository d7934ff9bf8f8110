"""Optical character recognition of one PDF page: render it with PDFium, read it with Tesseract.

Rendering: pypdfium2 (PDFium, the renderer of Chrome) draws the page in grey at
``RAGConfig.ocr_dpi`` (300 by default, the resolution Tesseract is trained for). A page image
of lower resolution is upscaled by the rendering itself, since PDFium scales an embedded image
to the page. Memory is bounded by ``RAGConfig.ocr_max_pixels``: a page that would exceed it is
rendered at a lower resolution that fits, and skipped (with the reason recorded) when even
:data:`MIN_DPI` would not fit, since text below that resolution is not worth reading.

Recognition: Tesseract 5 through tesserocr (its C API, in this process): compared with the
``tesseract`` command line (pytesseract), it saves a process start, the loading of the model
and an image file per page (measured here: 2.0-2.8 s against 3.8 s per page at 300 dpi, one
thread each). The wheel's libtesseract is built without OpenMP: one recognition runs on one
core, so the reader recognises several pages at once instead, each in a thread with an engine
of its own (``rag.ocr_pool``), reused from page to page and freed when a page needs no OCR. A
page that takes longer
than ``RAGConfig.ocr_page_seconds`` is cancelled by Tesseract itself and skipped.

Tesseract and PDFium are loaded only where a page is rendered or read: in the page reader's
child process (``rag.page_sources``), never in the worker's own process, whose start-up check
(:func:`language_problem`) only looks for the language files.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # loaded only where a page is rendered (the reader's child process)
    from PIL.Image import Image
    from pypdfium2 import PdfPage

logger = logging.getLogger(__name__)

# Points per inch: PDF user space units.
POINTS_PER_INCH = 72
# Below this resolution, text of ordinary size is too small to read: a page that only fits the
# pixel cap below it is skipped rather than read badly.
MIN_DPI = 100
# Tesseract refuses images this small in either dimension (and they hold no text worth reading).
MIN_IMAGE_SIDE = 16
# Tesseract's adaptive (Sauvola) binarisation instead of its global Otsu threshold: on pages
# degraded like a cheap scan (150 dpi, rotated, speckled, blurred) it found 0.976 of the words
# against 0.913, for about 10% more time, and the same on clean pages (0.983 against 0.986).
THRESHOLDING_SAUVOLA = 2
# Where Debian's tesseract-ocr-<lang> packages put their models (tesserocr's wheel knows none).
DEBIAN_TESSDATA = "/usr/share/tesseract-ocr/5/tessdata"


@dataclass(frozen=True)
class OcrText:
    """What Tesseract read on one page: normalise ``text`` before use; ``confidence`` is the
    mean of its words' confidences (0-100, Tesseract's scale), None when it found no word."""

    text: str
    confidence: float | None
    words: int


class OcrSkipped(Exception):
    """A page that cannot be OCR'd (too large, too small, too slow); the message says why."""


def tessdata_dir(configured: str) -> str:
    """The folder of Tesseract's language models: the setting, else ``TESSDATA_PREFIX``, else
    Debian's."""
    return configured or os.environ.get("TESSDATA_PREFIX", "") or DEBIAN_TESSDATA


def installed_languages(tessdata: str) -> list[str]:
    """The languages whose models are in ``tessdata`` (``eng``, ``deu``, ...)."""
    folder = Path(tessdata)
    if not folder.is_dir():
        return []
    return sorted(path.stem for path in folder.glob("*.traineddata"))


def language_problem(languages: str, tessdata: str) -> str | None:
    """Why OCR cannot run with ``languages`` (``eng+deu``), or None when it can.

    Checked when a worker starts, so that a missing language pack stops the worker with this
    sentence instead of failing documents one by one.
    """
    # Found, not imported: the worker's own process never loads Tesseract (its reader does).
    if importlib.util.find_spec("tesserocr") is None:
        return "OCR is enabled (RAG_OCR) but the tesserocr package is not installed."
    folder = tessdata_dir(tessdata)
    installed = installed_languages(folder)
    wanted = [name for name in languages.split("+") if name]
    if not wanted:
        return "RAG_OCR_LANGUAGES is empty: name at least one Tesseract language (eng)."
    missing = [name for name in wanted if name not in installed]
    if missing:
        return (
            f"OCR language(s) {', '.join(missing)} (RAG_OCR_LANGUAGES={languages}) not installed "
            f"in {folder} (installed: {', '.join(installed) or 'none'}). Install Debian's "
            f"tesseract-ocr-{missing[0]} package (or set RAG_OCR_TESSDATA), or set RAG_OCR=off."
        )
    return None


def render_scale(width_pt: float, height_pt: float, *, dpi: int, max_pixels: int) -> float:
    """The scale (pixels per point) to render a page of this size at: ``dpi``, lowered to fit
    ``max_pixels``. Raises :class:`OcrSkipped` when only a resolution under :data:`MIN_DPI`
    would fit, or the image would be too small to read."""
    scale = dpi / POINTS_PER_INCH
    area = max(width_pt, 0.0) * max(height_pt, 0.0)
    if area * scale * scale > max_pixels:
        # A little under the exact root: rounding of the pixel sizes must not cross the cap.
        scale = math.sqrt(max_pixels / area) * 0.999
        if scale * POINTS_PER_INCH < MIN_DPI:
            min_scale = MIN_DPI / POINTS_PER_INCH
            raise OcrSkipped(
                f"it measures {width_pt / POINTS_PER_INCH:.0f} x {height_pt / POINTS_PER_INCH:.0f}"
                f" in: even at {MIN_DPI} dpi it would take "
                f"{area * min_scale * min_scale / 1e6:,.0f} million pixels, over the cap of "
                f"{max_pixels / 1e6:,.0f} million (RAG_OCR_MAX_PIXELS)"
            )
    if min(width_pt, height_pt) * scale < MIN_IMAGE_SIDE:
        raise OcrSkipped(
            f"it measures {width_pt:.0f} x {height_pt:.0f} pt, too small to hold readable text"
        )
    return scale


class OcrEngine:
    """Tesseract with its models loaded once, reading one page image at a time."""

    def __init__(self, *, languages: str, tessdata: str, page_seconds: float) -> None:
        import tesserocr

        self._api = tesserocr.PyTessBaseAPI(
            path=tessdata_dir(tessdata), lang=languages, psm=tesserocr.PSM.AUTO
        )
        self._api.SetVariable("thresholding_method", str(THRESHOLDING_SAUVOLA))
        self._timeout_ms = max(1, int(page_seconds * 1000))
        self.page_seconds = page_seconds

    def read(self, image: Image) -> OcrText:
        """Recognise the text of a page image. Raises :class:`OcrSkipped` when Tesseract takes
        longer than the page budget (it stops itself)."""
        self._api.SetImage(image)
        try:
            started = time.perf_counter()
            if not self._api.Recognize(timeout=self._timeout_ms):
                raise OcrSkipped(
                    f"recognition took longer than {self.page_seconds:g} s (RAG_OCR_PAGE_SECONDS)"
                    if time.perf_counter() - started >= self.page_seconds * 0.9
                    else "Tesseract could not read the page image"
                )
            text = self._api.GetUTF8Text() or ""
            confidences = [value for value in self._api.AllWordConfidences() if value >= 0]
        finally:
            # Tesseract keeps its copy of the image and its results until the next page; an idle
            # engine of the reader's pool need not hold a page's worth of memory.
            self._api.Clear()
        words = len(text.split())
        if not words or not confidences:
            return OcrText(text="", confidence=None, words=0)
        return OcrText(
            text=text, confidence=round(sum(confidences) / len(confidences), 2), words=words
        )

    def close(self) -> None:
        """Free Tesseract's memory (the models)."""
        self._api.End()


def render_page(page: PdfPage, *, dpi: int, max_pixels: int) -> Image:
    """The page drawn in grey for OCR (a PIL image of its own), within the pixel cap (see
    :func:`render_scale`)."""
    width, height = page.get_size()
    scale = render_scale(width, height, dpi=dpi, max_pixels=max_pixels)
    bitmap = page.render(scale=scale, grayscale=True, may_draw_forms=True)
    try:
        # A copy, not a view of PDFium's buffer: the image goes to a recognition thread, and the
        # bitmap must be freed here, in the thread that uses PDFium (which is not thread-safe),
        # not wherever the image's last reference happens to be dropped.
        return bitmap.to_pil().copy()
    finally:
        bitmap.close()
