"""Pages read in a child process: the same text and errors as in-process, within a time budget,
a page's text within its limit, a killed reader told from a broken file, and no orphans."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import sys
import time

import pytest

from rag import page_reader
from rag.config import RAGConfig
from rag.errors import (
    EncryptedPdfError,
    ReaderCrashedError,
    TooComplexError,
    TooLargeError,
)
from rag.page_sources import OcrSettings, PageSources
from rag.parsing import ExtractionStats
from rag.read_budget import ReadBudget
from tests import pdf_factory

# OCR has tests of its own (test_ocr.py); here it would only cost time.
CONFIG = RAGConfig(database_url="postgresql+psycopg:///unused", max_pages=1000, ocr="off")


def in_thread(path) -> tuple[list, ExtractionStats]:
    pdf = PageSources(path.read_bytes(), max_pages=1000, ocr=OcrSettings(mode="off"))
    return [pdf.read(index).page for index in range(pdf.page_count)], pdf.stats


async def in_process(
    data: bytes, *, stop_after: int | None = None, on_start=None, config: RAGConfig = CONFIG
):
    pages = []
    async with page_reader.open_pdf(data, config=config) as reader:
        async for page, seconds in reader.pages():
            assert seconds >= 0
            pages.append(page)
            if on_start and len(pages) == 1:
                on_start()
            if stop_after is not None and len(pages) == stop_after:
                break
    return pages, reader.stats


@pytest.fixture
def spawned(monkeypatch) -> list[asyncio.subprocess.Process]:
    """The reader processes started during the test."""
    processes = []
    create = asyncio.create_subprocess_exec

    async def recorded(*args, **kwargs):
        process = await create(*args, **kwargs)
        processes.append(process)
        return process

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recorded)
    return processes


@pytest.mark.parametrize(
    "name",
    [
        "long-geotopo-german-117pages.pdf",
        "broken-page-streams-16pages.pdf",  # pages that fail are recorded, not raised
        "encrypted-empty-password-dmca-18pages.pdf",
        "cjk-chinese-report-22pages.pdf",
    ],
)
def test_a_child_process_reads_what_a_thread_reads(corpus, name):
    path = corpus[name].path
    expected_pages, expected_stats = in_thread(path)
    pages, stats = asyncio.run(in_process(path.read_bytes()))
    assert pages == expected_pages
    assert stats == expected_stats


def test_an_unopenable_pdf_raises_the_same_error_as_in_a_thread(corpus):
    path = corpus["encrypted-needs-password-libreoffice.pdf"].path
    with pytest.raises(EncryptedPdfError) as in_thread_error:
        in_thread(path)
    with pytest.raises(EncryptedPdfError) as in_process_error:
        asyncio.run(in_process(path.read_bytes()))
    assert in_process_error.value.message == in_thread_error.value.message


def test_a_reader_killed_by_a_signal_is_a_crash_not_a_corrupt_file(corpus, spawned):
    data = corpus["long-geotopo-german-117pages.pdf"].path.read_bytes()
    reason = r"killed by SIGKILL after \d+ of 117 pages"
    with pytest.raises(ReaderCrashedError, match=reason) as caught:
        asyncio.run(in_process(data, on_start=lambda: spawned[0].send_signal(signal.SIGKILL)))
    assert caught.value.code == "crashed"


def test_a_reader_that_cannot_start_is_a_crash_not_a_corrupt_file(monkeypatch):
    # Before "ready" no byte of the PDF was sent: a broken environment, never the file's fault.
    create = asyncio.create_subprocess_exec

    async def broken(*args, **kwargs):
        return await create(sys.executable, "-c", "import sys; sys.exit(3)", **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", broken)
    with pytest.raises(ReaderCrashedError, match="exited with code 3 before it started"):
        asyncio.run(in_process(pdf_factory.text_pdf("Never read.")))


def test_stopping_early_leaves_no_reader_running(corpus, spawned):
    data = corpus["long-geotopo-german-117pages.pdf"].path.read_bytes()
    pages, _ = asyncio.run(in_process(data, stop_after=2))
    assert [page.number for page in pages] == [1, 2]
    assert len(spawned) == 1 and spawned[0].returncode is not None


def budget(**limits) -> RAGConfig:
    return dataclasses.replace(CONFIG, **limits)


def test_a_page_over_the_page_budget_is_stopped_mid_page(spawned):
    # About 4 s a page (more on a busy machine); the budget is 0.3 s.
    data = pdf_factory.slow_pages_pdf(150_000, pages=3)
    config = budget(parse_page_seconds=0.3, parse_base_seconds=100, parse_seconds_per_page=100)
    started = time.monotonic()
    with pytest.raises(TooComplexError) as caught:
        asyncio.run(in_process(data, config=config))
    assert time.monotonic() - started < 3, "the page was not stopped: it ran to its end"
    assert caught.value.code == "too_complex"
    assert caught.value.message.startswith("Page 1 of 3 took more than 0.3 s to read")
    assert "RAG_PARSE_PAGE_SECONDS" in caught.value.message
    assert spawned[0].returncode is not None


def test_a_document_whose_pages_are_all_slow_is_stopped_after_a_few(spawned):
    # About 0.12 s a page on a quiet EPYC, 200 pages: each page is within its own budget, but
    # reading falls behind the document's (0.5 s plus 0.02 s a page) within about 5 pages.
    data = pdf_factory.slow_pages_pdf(12_000, pages=200)
    config = budget(parse_page_seconds=30, parse_base_seconds=0.5, parse_seconds_per_page=0.02)
    with pytest.raises(TooComplexError) as caught:
        asyncio.run(in_process(data, config=config))
    message = caught.value.message
    assert message.startswith("Reading the PDF up to page ")
    assert "of 200 took more than" in message
    assert "RAG_PARSE_BASE_SECONDS=0.5 plus RAG_PARSE_SECONDS_PER_PAGE=0.02" in message
    stopped_at = int(message.split("up to page ")[1].split()[0])
    assert stopped_at < 20


def test_pages_each_within_the_rate_stop_at_the_documents_total(spawned):
    # About 0.12 s a page, 200 pages: well within a rate of 10 s a page, so only the total
    # (1 s of text reading, OCR not counted) can stop it, after about 8 pages.
    data = pdf_factory.slow_pages_pdf(12_000, pages=200)
    config = budget(
        parse_page_seconds=30,
        parse_base_seconds=100,
        parse_seconds_per_page=10,
        parse_max_seconds=1,
    )
    started = time.monotonic()
    with pytest.raises(TooComplexError) as caught:
        asyncio.run(in_process(data, config=config))
    assert time.monotonic() - started < 10, "the total did not stop the reader"
    message = caught.value.message
    assert message.startswith("Reading the PDF's text up to page ")
    assert message.endswith(
        "of 200 took more than 1 s in all (RAG_PARSE_MAX_SECONDS): its content is too complex "
        "to read in time."
    )
    assert int(message.split("up to page ")[1].split()[0]) < 100


def test_time_spent_waiting_for_the_consumer_is_not_counted(corpus):
    # 55 quick pages, a consumer slower than the whole budget: the budget counts reading only.
    data = corpus["text-openoffice-55pages.pdf"].path.read_bytes()
    config = budget(parse_page_seconds=5, parse_base_seconds=3, parse_seconds_per_page=0.1)

    async def slow_consumer():
        read = 0
        async with page_reader.open_pdf(data, config=config) as reader:
            async for _page, _seconds in reader.pages():
                read += 1
                await asyncio.sleep(0.15)  # a consumer busy embedding, 8 s in all
        return read

    assert asyncio.run(slow_consumer()) == 55


def test_a_page_over_the_text_limit_is_too_large_with_a_sentence():
    data = pdf_factory.expanding_text_pdf(50_000, pages=25)
    with pytest.raises(TooLargeError) as caught:
        asyncio.run(in_process(data, config=budget(max_page_chars=40_000)))
    assert caught.value.code == "too_large"
    assert caught.value.message == (
        "Page 1 holds 50,176 characters of text; the limit is 40,000 (RAG_MAX_PAGE_CHARS)."
    )


def test_a_line_over_the_stream_limit_is_too_large_not_an_internal_error(monkeypatch):
    # The child's own check comes first; were it ever bypassed, asyncio's line limit must still
    # end as a sentence, not as "ValueError: Separator is found, but chunk is longer than limit".
    monkeypatch.setattr(page_reader, "line_limit", lambda max_page_chars: 10_000)
    data = pdf_factory.expanding_text_pdf(50_000, pages=25)
    with pytest.raises(TooLargeError, match=r"Page 1 holds more text than the reader passes on"):
        asyncio.run(in_process(data))


def test_a_cancellation_that_comes_with_the_next_line_is_not_lost():
    # Python 3.11's wait_for returned the line and dropped the cancellation when both came in
    # the same loop iteration: the pipeline's reader stage then read on after being stopped.
    class Child:
        returncode = None

        def __init__(self) -> None:
            self.stdout = asyncio.StreamReader()

    async def cancelled_as_the_line_arrives() -> bool:
        child = Child()
        reader = page_reader.PageReader(child, CONFIG)  # type: ignore[arg-type]
        reader._budget.opened(3, 0.0)
        waiting = asyncio.create_task(reader._next_message())
        for _ in range(3):  # the task is now waiting for the line
            await asyncio.sleep(0)
        child.stdout.feed_data(b'{"ocr": 1, "reason": "x", "seconds": 0.1}\n')
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        return waiting.cancelled()

    assert asyncio.run(cancelled_as_the_line_arrives())


def test_the_budget_allows_a_recognition_whenever_the_child_waits_for_one():
    # 2 threads, so at most 4 pages read ahead; a page may take 1 s, its OCR 1 + 10 s.
    config = budget(parse_page_seconds=1, ocr_page_seconds=10, ocr_seconds_per_page=20)
    state = ReadBudget(config, ocr_threads=2, pages_ahead=4)
    state.opened(8, 0.1)
    assert state.step_limit() == 1  # reading page 1
    state.began_ocr(1, 0.1)
    assert state.step_limit() == 2  # rendering page 1, then reading page 2
    state.read_ahead(2, 0.1)
    assert state.step_limit() == 1  # reading page 3 while page 1 is recognised
    state.began_ocr(3, 0.1)
    assert state.waits_for_ocr() and state.step_limit() == 11  # both threads busy
    state.received(1, 0.0, 4.0)
    assert state.step_limit() == 1  # a thread is free: reading page 4
    state.read_ahead(4, 0.1)
    state.read_ahead(5, 0.1)
    assert state.waits_for_ocr() and state.step_limit() == 11  # pages 2-5 unsent: the limit
    for number in (2, 3, 4, 5):
        state.received(number, 0.0, 4.0 if number == 3 else 0.0)
    assert state.step_limit() == 1
    state.began_ocr(6, 0.1)
    assert not state.waits_for_ocr()  # a thread is free: reading page 7
    state.read_ahead(7, 0.1)
    state.began_ocr(8, 0.1)
    assert state.waits_for_ocr() and state.step_limit() == 11  # every page read, threads busy
    # The document's budget counts every page begun and every OCR begun.
    assert state.allowance() == pytest.approx(
        config.parse_base_seconds + config.parse_seconds_per_page * 9 + 20 * 4
    )
    with pytest.raises(TooComplexError, match="OCR of page 6 of 8 took more than 11 s"):
        state.received(6, 0.0, 11.5)
