"""OCR of pages: when ``auto`` reads a page, how a page is rendered within the pixel cap, what
Tesseract reads on a scan made here, the second reader (PDFium), bad images, and the check of
installed languages."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from devtools.scans import joined_pdf, scanned_text_pdf
from rag import ocr, page_reader
from rag.chunking import Chunker
from rag.config import EmbedderConfig, RAGConfig
from rag.embedding import HashEmbedder
from rag.page_sources import (
    THIN_REASON,
    OcrSettings,
    PageSources,
    is_garbage,
    ocr_reason,
)
from rag.parsing import SOURCE_OCR, SOURCE_PDFIUM, SOURCE_PYPDF, Page
from tests import pdf_factory

# Tesseract's English model (Debian's tesseract-ocr-eng, installed by scripts/setup.sh).
needs_tesseract = pytest.mark.skipif(
    "eng" not in ocr.installed_languages(ocr.tessdata_dir("")),
    reason="Tesseract's English model is not installed (tesseract-ocr-eng)",
)

WORDS = ["Invoice 4471 from Quillfeather Logistics", "The zephyr shipment arrived on Tuesday."]
PROSE = "The committee approved the budget for the new library after a long debate. " * 3


def read_all(data: bytes, **settings) -> PageSources:
    pdf = PageSources(data, max_pages=100, ocr=OcrSettings(**settings))
    pdf.pages = [pdf.read(index) for index in range(pdf.page_count)]
    return pdf


# --- when auto reads a page -------------------------------------------------------------------


def test_a_glyph_soup_without_unicode_map_is_garbage(corpus):
    from pypdf import PdfReader

    reader = PdfReader(corpus["garbled-japanese-empty-password-1page.pdf"].path)
    reader.decrypt("")
    assert is_garbage(reader.pages[0].extract_text())


def test_real_text_in_any_one_script_is_not_garbage(corpus):
    from pypdf import PdfReader

    chinese = PdfReader(corpus["cjk-chinese-report-22pages.pdf"].path).pages[0].extract_text()
    assert not is_garbage(chinese)
    assert not is_garbage(PROSE)
    assert not is_garbage("Straße, café, naïve: Ünïcödé Latin is one script " * 2)
    assert not is_garbage("Kyōto 京都 ひらがな カタカナ の 日本語 テキスト です " * 2)


def test_mostly_replacement_characters_are_garbage():
    assert is_garbage("\ufffd\ufffd a \ufffd\ufffd\ufffd b " * 10)
    assert not is_garbage("\ufffd")  # too short to judge


def test_auto_reads_empty_garbage_and_thin_layers_over_images_only():
    assert ocr_reason("", None) == "no text layer"
    assert ocr_reason("\ue000\ue001" * 20, None) == "garbage text layer"
    assert ocr_reason("Page 3", 0.95) == THIN_REASON
    assert ocr_reason("Page 3", 0.1) is None  # a short page of text, no scan under it
    assert ocr_reason(PROSE, 0.95) is None  # plenty of text over a picture: kept


# --- rendering within the pixel cap -----------------------------------------------------------


def test_a_page_renders_at_the_configured_dpi_when_it_fits():
    assert ocr.render_scale(612, 792, dpi=300, max_pixels=40_000_000) == pytest.approx(300 / 72)


def test_a_page_over_the_pixel_cap_renders_at_a_lower_dpi_that_fits():
    scale = ocr.render_scale(36 * 72, 48 * 72, dpi=300, max_pixels=40_000_000)  # a poster
    assert 100 / 72 <= scale < 300 / 72
    assert (36 * 72 * scale) * (48 * 72 * scale) <= 40_000_000


def test_a_page_that_fits_only_under_100_dpi_is_skipped_with_the_reason():
    with pytest.raises(ocr.OcrSkipped, match="RAG_OCR_MAX_PIXELS"):
        ocr.render_scale(14400, 14400, dpi=300, max_pixels=40_000_000)
    with pytest.raises(ocr.OcrSkipped, match="too small"):
        ocr.render_scale(2, 2, dpi=300, max_pixels=40_000_000)


# --- OCR of a scan made here ------------------------------------------------------------------


@needs_tesseract
def test_a_scanned_page_is_read_by_ocr_with_its_confidence():
    pdf = read_all(scanned_text_pdf(WORDS))
    (read,) = pdf.pages
    assert read.page.source == SOURCE_OCR
    for word in ("Quillfeather", "Logistics", "zephyr", "Tuesday", "4471"):
        assert word in read.page.text
    assert 60 < read.page.ocr_confidence <= 100
    assert read.ocr_seconds > 0
    assert pdf.stats.page_sources == {"ocr": 1}


@needs_tesseract
def test_ocr_off_leaves_a_scan_without_text_and_force_reads_a_text_page():
    (off,) = read_all(scanned_text_pdf(WORDS), mode="off").pages
    assert off.page.text == "" and off.ocr_seconds == 0
    (forced,) = read_all(pdf_factory.text_pdf("Forced reading of Quillfeather"), mode="force").pages
    assert forced.page.source == SOURCE_OCR
    assert "Quillfeather" in forced.page.text


def test_a_text_page_is_not_ocrd_in_auto():
    (read,) = read_all(pdf_factory.text_pdf(PROSE)).pages
    assert read.page.source == SOURCE_PYPDF and read.ocr_seconds == 0


@needs_tesseract
@pytest.mark.parametrize("make", [pdf_factory.corrupt_image_pdf, pdf_factory.two_pixel_image_pdf])
def test_a_bad_image_yields_no_text_and_no_error(make):
    pdf = read_all(make())
    assert [read.page.text for read in pdf.pages] == [""]
    assert pdf.stats.pages_with_text == 0


def test_an_enormous_page_is_skipped_with_the_reason_in_the_no_text_error():
    pdf = read_all(pdf_factory.enormous_page_pdf())
    assert pdf.stats.skipped_pages == [
        "page 1: it measures 200 x 200 in: even at 100 dpi it would take 400 million pixels, "
        "over the cap of 40 million (RAG_OCR_MAX_PIXELS)"
    ]
    from rag.parsing import no_text_error

    error = no_text_error(pdf.stats, pdf.page_count)
    assert error.code == "no_text"
    assert "RAG_OCR_MAX_PIXELS" in error.message


@needs_tesseract
def test_recognition_over_its_budget_skips_the_page():
    pdf = read_all(scanned_text_pdf(WORDS * 20), page_seconds=0.001)
    assert pdf.pages[0].page.text == ""
    assert "RAG_OCR_PAGE_SECONDS" in pdf.stats.skipped_pages[0]


# --- the second reader ------------------------------------------------------------------------


def test_pdfium_reads_a_file_pypdf_cannot_open(corpus):
    pdf = read_all(corpus["broken-no-startxref-recoverable.pdf"].path.read_bytes(), mode="off")
    (read,) = pdf.pages
    assert read.page.source == SOURCE_PDFIUM
    assert "Hello World" in read.page.text


def test_pdfium_reads_pages_whose_streams_pypdf_cannot_decode(corpus):
    data = corpus["broken-page-streams-16pages.pdf"].path.read_bytes()
    pdf = read_all(data, mode="off")
    from_pdfium = [read.page.number for read in pdf.pages if read.page.source == SOURCE_PDFIUM]
    with_text = [read.page.number for read in pdf.pages if read.page.text]
    assert pdf.stats.page_sources.get("pdfium", 0) >= 3
    assert set(with_text) <= set(from_pdfium) | {12, 16}
    assert not set(with_text) & set(pdf.stats.failed_pages)


# --- through the reader process, into chunks --------------------------------------------------


@needs_tesseract
def test_the_reader_process_passes_ocr_pages_and_their_seconds():
    config = RAGConfig(database_url="postgresql+psycopg:///unused")

    async def read() -> tuple[list[Page], page_reader.PageReader]:
        async with page_reader.open_pdf(scanned_text_pdf(WORDS), config=config) as reader:
            return [page async for page, _ in reader.pages()], reader

    pages, reader = asyncio.run(read())
    assert [page.source for page in pages] == [SOURCE_OCR]
    assert "Quillfeather" in pages[0].text
    assert reader.ocr_pages == 1 and reader.ocr_seconds > 0
    assert reader.stats.page_sources == {"ocr": 1}
    assert reader.stats.page_readers == {"ocr": "1"}


def runs(numbers: list[int]) -> str:
    """Increasing page numbers as "first-last" runs joined by commas."""
    parts = []
    for _, run in itertools.groupby(enumerate(numbers), key=lambda pair: pair[1] - pair[0]):
        run_numbers = [number for _, number in run]
        first, last = run_numbers[0], run_numbers[-1]
        parts.append(str(first) if first == last else f"{first}-{last}")
    return ",".join(parts)


@needs_tesseract
def test_a_file_read_by_three_readers_records_which_read_each_page(corpus):
    # Page 1 has a text layer; pages 2-17 are a file some of whose page streams pypdf cannot
    # decode (PDFium reads a few of them); pages 18 and 19 are scans.
    data = joined_pdf(
        [
            pdf_factory.text_pdf(PROSE),
            corpus["broken-page-streams-16pages.pdf"].path.read_bytes(),
            scanned_text_pdf(WORDS),
            scanned_text_pdf(WORDS[::-1]),
        ]
    )
    config = RAGConfig(database_url="postgresql+psycopg:///unused")

    async def read() -> tuple[list[Page], page_reader.PageReader]:
        async with page_reader.open_pdf(data, config=config) as reader:
            return [page async for page, _ in reader.pages()], reader

    pages, reader = asyncio.run(read())
    by_source: dict[str, list[int]] = {}
    for page in pages:
        if page.text:
            by_source.setdefault(page.source, []).append(page.number)
    assert by_source[SOURCE_OCR] == [18, 19]
    assert 1 in by_source[SOURCE_PYPDF]
    pdfium_pages = by_source[SOURCE_PDFIUM]
    assert len(pdfium_pages) >= 3 and set(pdfium_pages) <= set(range(2, 18))
    readers = reader.stats.page_readers
    assert readers["ocr"] == "18-19"
    assert readers["pdfium"] == runs(pdfium_pages)
    assert set(readers) == {"ocr", "pdfium"}  # pypdf's pages are the rest
    assert reader.stats.page_sources == {
        source: len(numbers) for source, numbers in by_source.items()
    }


def test_chunks_record_ocr_and_the_mean_confidence_of_their_words():
    tokenizer = HashEmbedder(EmbedderConfig(kind="hash")).tokenizer
    chunker = Chunker(tokenizer, chunk_tokens=500, overlap_tokens=0)
    pages = [
        Page(number=1, text="alpha " * 30, source=SOURCE_OCR, ocr_confidence=90.0),
        Page(number=2, text="beta " * 10, source=SOURCE_OCR, ocr_confidence=60.0),
        Page(number=3, text="gamma " * 10),
    ]
    chunks = [chunk for page in pages for chunk in chunker.add_page(page)]
    (chunk,) = [*chunks, *chunker.finish()]
    assert chunk.ocr is True
    assert chunk.ocr_confidence == pytest.approx((90 * 30 + 60 * 10) / 40, abs=0.01)
    text_only = Chunker(tokenizer, chunk_tokens=500, overlap_tokens=0)
    (plain,) = [*text_only.add_page(pages[2]), *text_only.finish()]
    assert plain.ocr is False and plain.ocr_confidence is None


# --- languages --------------------------------------------------------------------------------


@needs_tesseract
def test_installed_languages_pass_and_a_missing_one_is_named_with_its_package():
    assert ocr.language_problem("eng", "") is None
    problem = ocr.language_problem("eng+xyz", "")
    assert "OCR language(s) xyz (RAG_OCR_LANGUAGES=eng+xyz) not installed" in problem
    assert "tesseract-ocr-xyz" in problem
    assert "not installed" in ocr.language_problem("eng", "/nonexistent")


def test_garbage_is_judged_on_the_start_of_a_page_whatever_its_length():
    huge = "\ue000" * 20_000 + "plain words " * 2_000_000  # 24 M characters
    started = time.perf_counter()
    assert is_garbage(huge)
    assert time.perf_counter() - started < 1.0
