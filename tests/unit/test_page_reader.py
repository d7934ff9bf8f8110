"""Pages read in a child process: the same text and errors as in a thread, and no orphans."""

from __future__ import annotations

import asyncio
import signal

import pytest

from rag import page_reader
from rag.errors import CorruptPdfError, EncryptedPdfError
from rag.parsing import ExtractionStats, PdfDocument


def in_thread(path) -> tuple[list, ExtractionStats]:
    with path.open("rb") as fh:
        pdf = PdfDocument(fh, max_pages=1000)
        return list(pdf.pages()), pdf.stats


async def in_process(data: bytes, *, stop_after: int | None = None, on_start=None):
    stats = ExtractionStats()
    pages = []
    stream = page_reader.read_pages(data, max_pages=1000, stats=stats)
    try:
        async for page, seconds in stream:
            assert seconds >= 0
            pages.append(page)
            if on_start and len(pages) == 1:
                on_start()
            if stop_after is not None and len(pages) == stop_after:
                break
    finally:
        await stream.aclose()
    return pages, stats


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


def test_a_reader_that_dies_is_a_readable_failure(corpus, spawned):
    data = corpus["long-geotopo-german-117pages.pdf"].path.read_bytes()
    reason = r"stopped after \d+ of 117 pages \(killed by SIGKILL\)"
    with pytest.raises(CorruptPdfError, match=reason):
        asyncio.run(in_process(data, on_start=lambda: spawned[0].send_signal(signal.SIGKILL)))


def test_stopping_early_leaves_no_reader_running(corpus, spawned):
    data = corpus["long-geotopo-german-117pages.pdf"].path.read_bytes()
    pages, _ = asyncio.run(in_process(data, stop_after=2))
    assert [page.number for page in pages] == [1, 2]
    assert len(spawned) == 1 and spawned[0].returncode is not None
