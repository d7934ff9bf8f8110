"""Hostile files on real workers: a 10 MB word, pages too slow to parse, a killed page reader
and a page of more than 64 MB of text. Each fails with a clear code or is ingested within
bounds, and the worker goes on with the next document."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil
import pytest
from django.conf import settings
from django.db.models.functions import Length

from documents import intake, services
from documents.models import Chunk, Document
from tests import pdf_factory
from tests.integration.conftest import private_worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MB = 2**20


def add_document(data: bytes, name: str) -> int:
    """Create a document from bytes and queue it (published at once: autocommit)."""
    outcome = intake.document_create(file=io.BytesIO(data), name=name, size=len(data))
    services.document_ingest_enqueue(document_ids=[outcome.document.pk])
    return outcome.document.pk


def is_page_reader(process: psutil.Process) -> bool:
    try:
        return "rag.page_reader_child" in process.cmdline()
    except psutil.Error:
        return False


def page_readers(worker) -> list[psutil.Process]:
    """The page-reader processes under the worker (children of its pool children)."""
    tree = psutil.Process(worker.process.pid).children(recursive=True)
    return [process for process in tree if is_page_reader(process)]


@dataclass
class PeakMemory:
    """Highest resident memory seen, per role, while the block ran."""

    worker_child: int = 0
    page_reader: int = 0


@contextmanager
def peak_memory(worker, every: float = 0.02) -> Iterator[PeakMemory]:
    """Sample the RSS of the worker's pool child and of its page readers until the block ends."""
    peak = PeakMemory()
    done = threading.Event()

    def sample() -> None:
        main = psutil.Process(worker.process.pid)
        while not done.is_set():
            for child in main.children():
                try:
                    peak.worker_child = max(peak.worker_child, child.memory_info().rss)
                    for reader in child.children():
                        if is_page_reader(reader):
                            peak.page_reader = max(peak.page_reader, reader.memory_info().rss)
                except psutil.Error:
                    continue  # ended between the listing and the reading
            done.wait(every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def test_a_ten_megabyte_word_makes_bounded_chunks_in_flat_memory(tmp_path, wait_for_documents):
    # 11 KB: five pages share one content stream that shows a 10 MB word without a space.
    hostile = pdf_factory.long_word_pdf(10 * MB, pages=5)
    assert len(hostile) < 20_000
    with private_worker(tmp_path, concurrency=1) as worker:
        # Warm the pool child (imports, connections, embedder) before measuring its idle size.
        warm = add_document(pdf_factory.text_pdf("Warming up the worker."), "warm.pdf")
        wait_for_documents([warm])
        (child,) = psutil.Process(worker.process.pid).children()
        idle = child.memory_info().rss
        with peak_memory(worker) as peak:
            document_id = add_document(hostile, "long-word.pdf")
            (document,) = wait_for_documents([document_id], timeout=600)

    assert document.status == Document.Status.READY, document.error_message
    cap = settings.RAG_CHUNK_MAX_CHARS
    lengths = list(
        Chunk.objects.filter(document=document)
        .annotate(n=Length("text"))
        .values_list("n", flat=True)
    )
    assert lengths and max(lengths) <= cap
    # All 5 x 10 MB of the word are there, in chunks of about the cap (little overlap).
    assert sum(lengths) >= 5 * 10 * MB
    assert len(lengths) < 1.2 * 5 * 10 * MB / cap
    assert peak.page_reader > 0, "no page reader was seen"
    assert peak.worker_child - idle < 300 * MB, (peak.worker_child - idle) / MB
    assert peak.page_reader < 300 * MB, peak.page_reader / MB


def test_files_too_slow_to_parse_fail_as_too_complex_and_the_next_document_passes(
    tmp_path, wait_for_documents
):
    budgets = {
        "RAG_PARSE_PAGE_SECONDS": "1.5",
        # Room for opening the file on a busy machine, so the page budget is what stops page 1.
        "RAG_PARSE_BASE_SECONDS": "4",
        "RAG_PARSE_SECONDS_PER_PAGE": "0.1",
    }
    with private_worker(tmp_path, concurrency=1, extra_env=budgets) as worker:
        # A few seconds a page, from one shared stream of text operators (a 3-page file).
        slow_page = add_document(pdf_factory.slow_pages_pdf(150_000, pages=3), "slow-page.pdf")
        # About 0.4 s a page on a quiet EPYC, 100 pages: each page within its budget, the
        # document not (4 s + 0.1 s a page is spent after about 13 pages).
        slow_pages = add_document(pdf_factory.slow_pages_pdf(30_000, pages=100), "slow.pdf")
        fine = add_document(pdf_factory.text_pdf("Queued behind two hostile files."), "ok.pdf")
        documents = {d.pk: d for d in wait_for_documents([slow_page, slow_pages, fine])}

    one, many, ok = documents[slow_page], documents[slow_pages], documents[fine]
    assert (one.status, one.error_code) == ("failed", "too_complex")
    assert one.error_message.startswith("Page 1 of 3 took more than 1.5 s to read")
    assert "RAG_PARSE_PAGE_SECONDS" in one.error_message
    assert (many.status, many.error_code) == ("failed", "too_complex")
    assert many.error_message.startswith("Reading the PDF up to page ")
    assert "of 100 took more than" in many.error_message
    assert "RAG_PARSE_BASE_SECONDS=4 plus RAG_PARSE_SECONDS_PER_PAGE=0.1" in many.error_message
    assert int(many.error_message.split("up to page ")[1].split()[0]) < 50  # not near the end
    assert (ok.status, ok.chunk_count > 0) == ("ready", True)
    assert "SoftTimeLimitExceeded" not in worker.log()


def kill_readers(worker, document_id: int, *, times: int, timeout: float = 120.0) -> int:
    """Kill the document's page reader once it has been reading for a second, each time one
    appears, ``times`` times at most, while the document is not finished; return how many
    were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    finished = {Document.Status.READY, Document.Status.FAILED}
    while len(killed) < times:
        assert time.monotonic() < deadline, f"killed {len(killed)} readers of {times}"
        if Document.objects.get(pk=document_id).status in finished:
            break
        for reader in page_readers(worker):
            if reader.pid not in killed and time.time() - reader.create_time() > 1.0:
                reader.kill()
                killed.add(reader.pid)
        time.sleep(0.05)
    return len(killed)


def test_a_killed_page_reader_is_retried_and_repeated_kills_end_as_crashed(
    tmp_path, wait_for_documents
):
    retry_fast = {
        "RAG_RETRY_BASE_SECONDS": "0.5",
        "RAG_RETRY_MAX_SECONDS": "1",
        "RAG_MAX_ATTEMPTS": "3",
    }
    with private_worker(tmp_path, concurrency=1, extra_env=retry_fast) as worker:
        # A good PDF that takes a few seconds to read: 60 pages of about 0.1 s.
        good = add_document(pdf_factory.slow_pages_pdf(3_000, pages=60), "good.pdf")
        assert kill_readers(worker, good, times=1) == 1
        (once,) = wait_for_documents([good])

        unlucky = add_document(pdf_factory.slow_pages_pdf(3_000, pages=61), "unlucky.pdf")
        kills = kill_readers(worker, unlucky, times=10)
        (always,) = wait_for_documents([unlucky])
        log = worker.log()

    assert once.status == Document.Status.READY, once.error_message
    assert once.attempts == 2 and once.chunk_count > 0
    assert f"ingestion retry document_id={good}" in log
    assert "killed by SIGKILL" in log
    assert (always.status, always.error_code) == ("failed", "crashed")
    assert kills == always.attempts == 3
    assert "Ingestion started 3 times without finishing" in always.error_message


def test_a_page_of_more_than_64_mb_of_text_is_too_large_not_internal(
    celery_worker, wait_for_documents
):
    # 20 pages (read by the child process even before every document was) sharing a stream
    # whose font maps each byte to 256 letters: 68 M characters on the first page.
    chars = 68 * MB
    document_id = add_document(pdf_factory.expanding_text_pdf(chars, pages=20), "huge-page.pdf")
    (document,) = wait_for_documents([document_id], timeout=300)

    assert (document.status, document.error_code) == ("failed", "too_large")
    assert document.error_message == (
        f"Page 1 holds {chars:,} characters of text; the limit is "
        f"{settings.RAG_MAX_PAGE_CHARS:,} (RAG_MAX_PAGE_CHARS)."
    )
