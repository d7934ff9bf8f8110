"""Pages recognised at once in the page reader's child: they still come in page order, at most
``ocr_threads`` are recognised (and held as images) at once and every engine is closed; the real
Tesseract reads each page of a scan in its threads; and the parent's budget follows the child:
it neither stops a child that reads ahead while pages are recognised nor lets a recognition run
past its limit."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import threading
import time
import weakref

import pytest

from devtools.scans import joined_pdf, scanned_text_pdf
from rag import ocr, page_reader, page_reader_child
from rag.config import RAGConfig
from rag.errors import TooComplexError
from rag.page_sources import OcrSettings, PageSources
from rag.parsing import SOURCE_OCR, SOURCE_PYPDF
from tests import pdf_factory

needs_tesseract = pytest.mark.skipif(
    "eng" not in ocr.installed_languages(ocr.tessdata_dir("")),
    reason="Tesseract's English model is not installed (tesseract-ocr-eng)",
)

PROSE = "The committee approved the budget for the new library after a long debate. " * 2
# Grey levels of the scanned pages: page n is 30 * n, so a stand-in engine can tell the pages.
GREY_STEP = 30


def layout_pdf(layout: str) -> bytes:
    """A PDF with a page per letter: ``S`` a scanned page (a grey image, no text layer), ``T``
    a page of text."""
    pages = []
    for number, kind in enumerate(layout, start=1):
        if kind == "S":
            grey = bytes([GREY_STEP * number]) * (40 * 50)
            pages.append(pdf_factory.image_page_pdf(grey, width_px=40, height_px=50))
        else:
            pages.append(pdf_factory.text_pdf(f"Page {number}. {PROSE}"))
    return joined_pdf(pages)


class Recorder:
    """Stand-in engines that read a grey page as its page number, count the recognitions under
    way, and wait until ``together`` of them are (a barrier: fails unless they run at once).
    Then each holds its image a moment longer, or until a page image more than ``together``
    exists: a child that renders ahead of its threads would do it meanwhile."""

    HOLD_SECONDS = 0.3

    def __init__(self, together: int) -> None:
        self.lock = threading.Lock()
        self.rendering = threading.Condition(self.lock)
        self.barrier = threading.Barrier(together)
        self.running = self.most_running = 0
        self.engines: list[Recorder.Engine] = []
        self.open_engines = self.most_open_engines = 0
        self.images = self.most_images = 0

    def engine(self, **_settings) -> Recorder.Engine:
        made = Recorder.Engine(self)
        with self.lock:
            self.engines.append(made)
            self.open_engines += 1
            self.most_open_engines = max(self.most_open_engines, self.open_engines)
        return made

    def rendered(self, image) -> None:
        """Count a page image until it is freed."""
        with self.rendering:
            self.images += 1
            self.most_images = max(self.most_images, self.images)
            self.rendering.notify_all()
        weakref.finalize(image, self._freed)

    def _freed(self) -> None:
        with self.lock:
            self.images -= 1

    class Engine:
        def __init__(self, recorder: Recorder) -> None:
            self.recorder = recorder
            self.closed = False

        def read(self, image) -> ocr.OcrText:
            recorder = self.recorder
            with recorder.lock:
                recorder.running += 1
                recorder.most_running = max(recorder.most_running, recorder.running)
            try:
                recorder.barrier.wait(timeout=30)
                with recorder.rendering:
                    recorder.rendering.wait_for(
                        lambda: recorder.images > recorder.barrier.parties,
                        timeout=Recorder.HOLD_SECONDS,
                    )
            finally:
                with recorder.lock:
                    recorder.running -= 1
            number = round(image.getpixel((image.width // 2, image.height // 2)) / GREY_STEP)
            return ocr.OcrText(text=f"Recognised page {number}. {PROSE}", confidence=80.0, words=9)

        def close(self) -> None:
            assert not self.closed
            self.closed = True
            with self.recorder.lock:
                self.recorder.open_engines -= 1


@pytest.fixture
def recorder(monkeypatch, request) -> Recorder:
    recorder = Recorder(together=request.param)
    monkeypatch.setattr(ocr, "OcrEngine", recorder.engine)
    render = ocr.render_page

    def counted(page, **settings):
        image = render(page, **settings)
        recorder.rendered(image)
        return image

    monkeypatch.setattr(ocr, "render_page", counted)
    return recorder


def child_messages(data: bytes, threads: int) -> list[dict]:
    """What the child sends for ``data``, read in this process with ``threads`` OCR threads."""
    out = io.StringIO()
    pdf = PageSources(data, max_pages=100, ocr=OcrSettings(dpi=100, threads=threads))
    try:
        assert page_reader_child.read_pages(
            pdf,
            out,
            max_page_chars=100_000,
            pages_ahead=page_reader.PAGES_AHEAD_PER_THREAD * threads,
        )
    finally:
        pdf.close()
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("recorder", "layout"), [(2, "STSTSS"), (3, "SSSSSS")], indirect=["recorder"]
)
def test_pages_come_in_order_with_at_most_k_recognised_and_held_at_once(recorder, layout):
    threads = recorder.barrier.parties
    messages = child_messages(layout_pdf(layout), threads)

    pages = [message for message in messages if "page" in message]
    assert [page["page"] for page in pages] == list(range(1, len(layout) + 1))
    for page, kind in zip(pages, layout, strict=True):
        if kind == "S":
            assert page["source"] == SOURCE_OCR
            assert page["text"].startswith(f"Recognised page {page['page']}. ")
        else:
            assert page["source"] == SOURCE_PYPDF
            assert page["text"].startswith(f"Page {page['page']}. ")
    # The barrier let no recognition through alone: K ran at once, and never more.
    assert recorder.most_running == threads
    assert recorder.most_images <= threads
    assert recorder.most_open_engines <= threads
    assert all(engine.closed for engine in recorder.engines)
    # Every scanned page's OCR is announced before its page, and its seconds counted once.
    order = [
        (kind, message[kind])
        for message in messages
        for kind in ("ocr", "read", "page")
        if kind in message
    ]
    for number, kind in enumerate(layout, start=1):
        if kind == "S":
            assert order.index(("ocr", number)) < order.index(("page", number))
    if layout == "STSTSS":
        # Page 2 was read while page 1 was recognised.
        assert order.index(("read", 2)) < order.index(("page", 1))


@needs_tesseract
def test_tesseract_reads_each_page_of_a_scan_in_its_threads():
    lines = {
        1: ["Invoice 4471 from Quillfeather Logistics"],
        3: ["The zephyr shipment arrived on Tuesday."],
        4: ["Marrowbridge cooperative orchard report"],
    }
    data = joined_pdf(
        [
            scanned_text_pdf(lines[1]),
            pdf_factory.text_pdf(f"Page 2. {PROSE}"),
            scanned_text_pdf(lines[3]),
            scanned_text_pdf(lines[4]),
        ]
    )
    config = RAGConfig(database_url="postgresql+psycopg:///unused", ocr_threads=2)

    async def read():
        async with page_reader.open_pdf(data, config=config) as reader:
            return [page async for page, _ in reader.pages()], reader

    pages, reader = asyncio.run(read())
    assert [page.number for page in pages] == [1, 2, 3, 4]
    assert [page.source for page in pages] == [SOURCE_OCR, SOURCE_PYPDF, SOURCE_OCR, SOURCE_OCR]
    for number, words in lines.items():
        for word in words[0].split()[1:3]:
            assert word in pages[number - 1].text
    assert reader.ocr_pages == 3
    assert reader.stats.page_sources == {"ocr": 3, "pypdf": 1}


# --- the parent's budget, with a child whose recognitions are stand-ins -----------------------

STUB_CONFIG = RAGConfig(
    database_url="postgresql+psycopg:///unused", ocr_dpi=100, ocr_threads=2, ocr_page_seconds=5
)


@pytest.fixture
def stub_child(monkeypatch) -> list[asyncio.subprocess.Process]:
    """Start tests.ocr_stub_child instead of the reader's child; the processes started."""
    processes = []
    create = asyncio.create_subprocess_exec

    async def stubbed(*args, **kwargs):
        args = tuple(
            "tests.ocr_stub_child" if arg == "rag.page_reader_child" else arg for arg in args
        )
        process = await create(*args, **kwargs)
        processes.append(process)
        return process

    monkeypatch.setattr(asyncio, "create_subprocess_exec", stubbed)
    return processes


async def read_numbers(data: bytes, config: RAGConfig) -> list[int]:
    async with page_reader.open_pdf(data, config=config) as reader:
        return [page.number async for page, _ in reader.pages()]


def test_a_child_reading_ahead_while_pages_are_recognised_is_not_stopped(monkeypatch, stub_child):
    # Each recognition takes 2 s, four times what a page may take to read: while page 1 is
    # recognised the child reads pages 2-4 ahead, then waits (4 pages unsent, its limit with 2
    # threads); pages 6 and 7 are recognised together, and the child waits for them at the end.
    monkeypatch.setenv("FCA_STUB_OCR", "2")
    config = dataclasses.replace(STUB_CONFIG, parse_page_seconds=0.5)
    assert asyncio.run(read_numbers(layout_pdf("STTTTSS"), config)) == [1, 2, 3, 4, 5, 6, 7]


def test_a_recognition_that_never_ends_is_stopped_by_the_parent(monkeypatch, stub_child):
    monkeypatch.setenv("FCA_STUB_OCR", "stuck")
    config = dataclasses.replace(STUB_CONFIG, parse_page_seconds=0.5, ocr_page_seconds=1.0)
    started = time.monotonic()
    with pytest.raises(TooComplexError) as caught:
        asyncio.run(read_numbers(layout_pdf("SST"), config))
    assert caught.value.message.startswith("OCR of page 1 of 3 took more than 1.5 s")
    assert "RAG_OCR_PAGE_SECONDS" in caught.value.message
    # Stopped at its limit (after the start-up, which is not counted), not at a later one.
    assert time.monotonic() - started < 20
    assert stub_child[0].returncode is not None


def test_the_pool_frees_its_engines_only_when_no_page_is_being_read():
    from PIL import Image

    from rag.ocr_pool import OcrPool

    gate = threading.Event()

    class GatedEngine:
        """Reads a page once the test opens the gate."""

        def __init__(self) -> None:
            self.closed = False

        def read(self, image) -> ocr.OcrText:
            assert gate.wait(timeout=30)
            return ocr.OcrText(text="A page.", confidence=90.0, words=2)

        def close(self) -> None:
            assert not self.closed
            self.closed = True

    made: list[GatedEngine] = []

    def make_engine() -> GatedEngine:
        made.append(GatedEngine())
        return made[-1]

    pool = OcrPool(2, make_engine)
    try:
        page = Image.new("L", (40, 50), 255)
        reading = pool.submit(page)
        pool.release_idle()  # a page is being read: its engine stays
        (engine,) = made
        gate.set()
        assert reading.result(timeout=30).found is not None
        assert not engine.closed  # kept for the next scanned page
        pool.release_idle()  # a text page came and nothing is read: freed
        assert engine.closed
        made_again = pool.submit(page.copy())
        assert made_again.result(timeout=30).found is not None
        assert len(made) == 2 and not made[1].closed
    finally:
        pool.close()
    assert all(engine.closed for engine in made)
