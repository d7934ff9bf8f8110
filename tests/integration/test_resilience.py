"""Nothing lost, nothing duplicated: killed workers, duplicate deliveries, a database restart,
lost broker messages, the whole corpus, and pathological PDFs, all on real workers."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone
from django_celery_results.models import TaskResult

from documents import intake, services
from documents.ingestion import rag_config
from documents.models import Document
from documents.tasks import ingest_pdf_task
from fca_site import embedded_db
from fca_site.celery import app
from rag import page_reader
from rag.chunking import chunk_pages
from rag.config import EmbedderConfig
from rag.embedding import HashEmbedder
from rag.parsing import Page
from rag.store import DOCUMENT_LOCK_NAMESPACE
from tests import pdf_factory, workers
from tests.conftest import TEST_BROKER_URL, TEST_QUEUE
from tests.integration.conftest import private_worker
from tests.waiting import wait_for_log, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BOOK = "long-freeculture-book-352pages.pdf"
# Files pypdf cannot read (or reads no text from) and PDFium can (issue 14).
PDFIUM_READS = {"broken-no-startxref-recoverable.pdf", "broken-page-streams-16pages.pdf"}


def add_document(path: Path | None = None, *, data: bytes | None = None, name: str = "") -> int:
    """Create a document from a file or bytes and queue it (published at once: autocommit)."""
    data = data if data is not None else path.read_bytes()
    outcome = intake.document_create(
        file=io.BytesIO(data), name=name or (path.name if path else "doc.pdf"), size=len(data)
    )
    services.document_ingest_enqueue(document_ids=[outcome.document.pk])
    return outcome.document.pk


def expected_chunk_count(path: Path) -> int:
    """What an undisturbed ingestion produces: the worker's page reader (pypdf, PDFium, OCR as
    configured) and the worker's tokenizer and sizes."""
    config = rag_config()

    async def read_pages() -> list[Page]:
        async with page_reader.open_pdf(path.read_bytes(), config=config) as reader:
            return [page async for page, _seconds in reader.pages()]

    chunks = chunk_pages(
        asyncio.run(read_pages()),
        HashEmbedder(EmbedderConfig(kind="hash")).tokenizer,
        chunk_tokens=config.chunk_tokens,
        overlap_tokens=config.chunk_overlap_tokens,
        max_chars=config.chunk_max_chars,
    )
    return sum(1 for _ in chunks)


def wait_for_status(document_id: int, status: str, timeout: float = 60.0) -> None:
    wait_until(
        lambda: Document.objects.get(pk=document_id).status == status,
        f"document {document_id} reaching {status}",
        timeout,
    )


@contextmanager
def chunk_replacement_held(document_id: int) -> Iterator[Callable[[], bool]]:
    """Hold the lock rag takes to replace a document's chunks: an ingestion of it runs up to
    that point (PROCESSING, heartbeat, pages read) and waits there until the block ends.
    Yields a probe: is an ingestion waiting for it now?"""
    key = [DOCUMENT_LOCK_NAMESPACE, document_id]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", key)

    def waited_on() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND classid = %s AND objid = %s AND objsubid = 2",
                key,
            )
            return cursor.fetchone()[0] > 0

    try:
        yield waited_on
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)


def task_result(task_id: str) -> dict | None:
    """The stored result of a finished task (None until it finished)."""
    record = TaskResult.objects.filter(task_id=task_id, status="SUCCESS").first()
    return json.loads(record.result) if record else None


def assert_one_clean_set(document: Document, expected: int) -> None:
    assert document.status == Document.Status.READY, document.error_message
    ordinals = list(document.chunks.order_by("ordinal").values_list("ordinal", flat=True))
    assert ordinals == list(range(expected))
    assert document.chunk_count == expected


def test_killing_the_worker_child_mid_ingestion_redelivers_and_ends_with_one_clean_set(
    tmp_path, corpus, wait_for_documents
):
    path = corpus[BOOK].path
    with private_worker(tmp_path, concurrency=1) as worker:
        document_id = add_document(path)
        wait_until(lambda: Document.objects.get(pk=document_id).pages_done > 0, "pages embedded")
        (child,) = psutil.Process(worker.process.pid).children()
        child.kill()
        (document,) = wait_for_documents([document_id], timeout=180)

    assert_one_clean_set(document, expected_chunk_count(path))
    assert document.attempts == 2, "the killed ingestion was not delivered again"
    assert "SIGKILL" in worker.log()


def test_two_deliveries_at_the_same_moment_one_runs_and_the_other_gives_way(
    tmp_path, corpus, wait_for_documents
):
    path = corpus["text-pdflatex-4pages.pdf"].path
    with private_worker(tmp_path, concurrency=2) as worker, ExitStack() as held:
        queue = app.conf.task_routes["*"]["queue"]
        with workers.consuming_paused(worker, queue):
            document_id = add_document(path)
            task_id = Document.objects.get(pk=document_id).last_task_id
            # A redelivery of the very same message: both wait in the queue, then the two
            # worker children take one each at once.
            ingest_pdf_task.apply_async(args=[document_id], task_id=task_id)
            # The run that wins the ingestion lock is held just before replacing the chunks,
            # so the other one certainly finds the lock taken.
            ingestion_waits = held.enter_context(chunk_replacement_held(document_id))
        wait_until(ingestion_waits, "one ingestion reaching the chunk replacement")
        wait_for_log(worker, f"task_id={task_id}: already running")
        document = Document.objects.get(pk=document_id)
        assert (document.status, document.attempts) == (Document.Status.PROCESSING, 1)
        held.close()
        (document,) = wait_for_documents([document_id])
        wait_until(
            lambda: worker.log().count(f"ingest_pdf_task[{task_id}] succeeded") == 2,
            "both deliveries finishing",
        )

    assert_one_clean_set(document, expected_chunk_count(path))
    assert document.attempts == 1, "the second delivery ran the ingestion too"
    assert worker.log().count(f"ingest_pdf_task[{task_id}] succeeded") == 2


def test_a_message_superseded_as_it_starts_does_nothing(tmp_path, corpus, wait_for_documents):
    path = corpus["text-pdflatex-4pages.pdf"].path
    with private_worker(tmp_path, concurrency=1) as worker:
        queue = app.conf.task_routes["*"]["queue"]
        with workers.consuming_paused(worker, queue):
            document_id = add_document(path)
            first = Document.objects.get(pk=document_id).last_task_id
        with transaction.atomic():
            # Hold the document's row: the first task gets past every read and waits in the
            # UPDATE that marks the document PROCESSING; a reingest supersedes it meanwhile.
            Document.objects.select_for_update().get(pk=document_id)
            wait_until(row_update_waiting, "the first task waiting to mark it processing")
            queued = services.document_ingest_enqueue(
                document_ids=[document_id], stuck_after=timedelta(0)
            )
        second = queued[document_id]
        (document,) = wait_for_documents([document_id])
        wait_until(lambda: task_result(first) is not None, "the first task finishing")

    assert task_result(first) == {
        "status": "skipped",
        "document_id": document_id,
        "reason": f"superseded by task {second}",
    }
    assert task_result(second)["status"] == "success"
    assert_one_clean_set(document, expected_chunk_count(path))
    assert (document.attempts, document.last_task_id) == (1, second)
    # The superseded first run must not take the document back from the newer message.
    assert f"ingestion keeps document_id={document_id} " not in worker.log()


def row_update_waiting() -> bool:
    """Is another connection to the test database waiting for a lock (the row we hold)?"""
    with connection.cursor() as cursor:
        # Inside a transaction PostgreSQL keeps its first view of pg_stat_activity: drop it.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        return any(query.startswith("UPDATE") for (query,) in cursor.fetchall())


def test_requeue_stuck_leaves_a_running_ingestion_alone_and_it_ends_ready(
    tmp_path, corpus, wait_for_documents
):
    path = corpus["text-pdflatex-4pages.pdf"].path
    with private_worker(tmp_path, concurrency=2):
        document_id = add_document(path)
        task_id = Document.objects.get(pk=document_id).last_task_id
        with chunk_replacement_held(document_id) as ingestion_waits:
            wait_until(ingestion_waits, "the ingestion reaching the chunk replacement")
            out = io.StringIO()
            call_command("ingest", "--requeue-stuck", "--older-than", "0", stdout=out)
            assert "No stuck documents (1 processing, all with a recent heartbeat" in (
                out.getvalue()
            )
        (document,) = wait_for_documents([document_id])

    assert_one_clean_set(document, expected_chunk_count(path))
    assert (document.last_task_id, document.attempts) == (task_id, 1)


def test_a_requeue_during_a_run_is_answered_by_that_run(tmp_path, corpus, wait_for_documents):
    # However a requeue of a running ingestion comes about (here its heartbeat looks stale,
    # as after a long pause), the document ends in one final state that matches its chunks.
    path = corpus["text-pdflatex-4pages.pdf"].path
    with private_worker(tmp_path, concurrency=2) as worker:
        document_id = add_document(path)
        first = Document.objects.get(pk=document_id).last_task_id
        with chunk_replacement_held(document_id) as ingestion_waits:
            wait_until(ingestion_waits, "the ingestion reaching the chunk replacement")
            with transaction.atomic():
                Document.objects.filter(pk=document_id).update(
                    heartbeat_at=timezone.now() - timedelta(hours=1)
                )
                report = services.document_requeue_stuck()
            (found,) = report.found
            assert (found.document_id, found.reason) == (
                document_id,
                "processing, no heartbeat for 60 min",
            )
            second = found.task_id
            # The new message reaches the other worker child while the first run holds the
            # document: it gives way.
            wait_until(lambda: task_result(second) is not None, "the requeued task finishing")
            assert task_result(second)["reason"] == "already running"
            assert Document.objects.get(pk=document_id).status == Document.Status.QUEUED
        (document,) = wait_for_documents([document_id])

    assert_one_clean_set(document, expected_chunk_count(path))
    assert document.last_task_id == first  # the run that wrote the chunks
    assert task_result(first)["status"] == "success"
    assert "result not recorded" not in worker.log()


@pytest.mark.skipif(
    not settings.EMBEDDED_DEVELOPMENT, reason="stops and restarts the embedded PostgreSQL"
)
def test_a_database_restart_during_ingestion_is_retried_and_nothing_is_duplicated(
    tmp_path, corpus, wait_for_documents
):
    path = corpus[BOOK].path
    # The first retry comes 2 to 4 s later: the database is back by then.
    retry_fast = {"RAG_RETRY_BASE_SECONDS": "4", "RAG_RETRY_MAX_SECONDS": "8"}
    with private_worker(tmp_path, concurrency=1, extra_env=retry_fast) as worker:
        document_id = add_document(path)
        wait_for_status(document_id, Document.Status.PROCESSING)
        connection.close()
        assert embedded_db.stop()
        try:
            wait_for_log(worker, f"ingestion retry document_id={document_id}")
        finally:
            embedded_db.ensure_running()
        (document,) = wait_for_documents([document_id], timeout=180)

    assert_one_clean_set(document, expected_chunk_count(path))


@pytest.mark.skipif(
    not settings.EMBEDDED_DEVELOPMENT, reason="stops and restarts the embedded PostgreSQL"
)
def test_a_task_taken_while_the_database_is_down_is_retried_not_lost(
    tmp_path, corpus, wait_for_documents
):
    # Celery stores the STARTED state in the database before the task body runs; with the
    # database down that store must not end the task before its own retry policy can act.
    path = corpus["text-pdflatex-4pages.pdf"].path
    retry_fast = {"RAG_RETRY_BASE_SECONDS": "4", "RAG_RETRY_MAX_SECONDS": "8"}
    with private_worker(tmp_path, concurrency=1, extra_env=retry_fast) as worker:
        queue = app.conf.task_routes["*"]["queue"]  # the private worker's own
        with workers.consuming_paused(worker, queue):
            document_id = add_document(path)
            connection.close()
            assert embedded_db.stop()
        try:
            wait_for_log(worker, f"ingestion retry document_id={document_id}")
            assert "result state=STARTED not stored" in worker.log()
        finally:
            embedded_db.ensure_running()
        (document,) = wait_for_documents([document_id], timeout=120)

    assert_one_clean_set(document, expected_chunk_count(path))


def test_messages_lost_from_redis_are_recovered_by_requeue_stuck(
    celery_worker, corpus, wait_for_documents
):
    from fca_site.celery import app

    names = ["text-pdflatex-4pages.pdf", "text-google-docs-1page.pdf", "rtl-hebrew-table-1page.pdf"]
    destination = [celery_worker.nodename]
    app.control.cancel_consumer(TEST_QUEUE, destination=destination, reply=True)
    try:
        ids = [add_document(corpus[name].path) for name in names]
        broker = redis.Redis.from_url(TEST_BROKER_URL)
        lost = [key for key in broker.scan_iter(f"{TEST_QUEUE}*")]
        assert lost, "the queued messages were not in Redis"
        broker.delete(*lost)  # what a Redis restart without persistence does to them
    finally:
        app.control.add_consumer(TEST_QUEUE, destination=destination, reply=True)
    assert set(Document.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"queued"}

    out = io.StringIO()
    call_command(
        "ingest",
        "--requeue-stuck",
        "--older-than",
        "0",
        "--wait",
        "--json",
        stdout=out,
        stderr=io.StringIO(),
    )
    report = json.loads(out.getvalue())
    assert sorted(item["document_id"] for item in report) == sorted(ids)
    assert {item["status"] for item in report} == {"ready"}
    assert {d.status for d in wait_for_documents(ids)} == {Document.Status.READY}


def test_every_corpus_file_ends_as_its_manifest_implies(celery_worker, corpus):
    folder = next(iter(corpus.values())).path.parent
    out = io.StringIO()
    with pytest.raises(CommandError, match="failed or were rejected"):
        call_command(
            "ingest",
            str(folder),
            "--wait",
            "--json",
            "--timeout",
            "600",
            stdout=out,
            stderr=io.StringIO(),
        )
    report = {Path(item["path"]).name: item for item in json.loads(out.getvalue())}
    assert set(report) == set(corpus)
    for name, entry in corpus.items():
        outcome = report[name]
        readable = (
            entry.page_count is not None
            and entry.extractable_chars > 0
            and entry.encrypted != "needs-password"
        )
        # Pages that pypdf gives no text for: scans (OCR), and the files PDFium is known to
        # read where pypdf cannot (MANIFEST: "qpdf and poppler reconstruct 1 page of text";
        # "extract_text raises on 14 pages").
        rescued = {
            "ocr": name.startswith("scanned-") and not readable,
            "pdfium": name in PDFIUM_READS,
        }
        sources = (
            Document.objects.get(pk=outcome["document_id"]).page_sources
            if outcome.get("document_id")
            else {}
        )
        if entry.path.stat().st_size == 0:
            # Refused by the command before any document is made (the upload form does too).
            assert outcome["status"] == "rejected", (name, outcome)
            assert "empty" in outcome["error"]
        elif readable:
            assert outcome["status"] == "ready", (name, outcome)
            assert outcome["pages"] == entry.page_count, name
            assert outcome["chunks"] > 0, name
        elif any(rescued.values()):
            assert outcome["status"] == "ready", (name, outcome)
            assert outcome["chunks"] > 0, name
            for source, expected in rescued.items():
                if expected:
                    assert sources.get(source, 0) > 0, (name, sources)
        elif outcome["status"] == "ready":
            # Another file a second reader or OCR could read: only their pages made chunks.
            assert sources and set(sources) <= {"pdfium", "ocr"}, (name, sources)
        else:
            assert outcome["status"] == "failed", (name, outcome)
            code = outcome["error"].split(":", 1)[0]
            if entry.encrypted == "needs-password" and "ValueError" not in entry.pages:
                assert code == "encrypted", (name, outcome)
            else:
                assert code in {"corrupt", "no_text", "encrypted"}, (name, outcome)
    assert not Document.objects.filter(status__in=["queued", "processing"]).exists()
    log = celery_worker.log()
    assert "WorkerLostError" not in log and "exited with" not in log


def test_pathological_pdfs_fail_and_the_worker_goes_on(
    tmp_path, corpus, wait_for_documents, monkeypatch
):
    # Celery stamps a task's time limits into each message from the *sender's* settings, so the
    # web process and the workers share CELERY_TASK_*_TIME_LIMIT; here both get a short one.
    monkeypatch.setattr(ingest_pdf_task, "soft_time_limit", 3)
    monkeypatch.setattr(ingest_pdf_task, "time_limit", 60)
    monkeypatch.setattr(ingest_pdf_task, "_exec_options", None)  # Celery caches them per task
    limits = {"CELERY_TASK_SOFT_TIME_LIMIT": "3", "CELERY_TASK_TIME_LIMIT": "60"}
    with private_worker(tmp_path, concurrency=1, extra_env=limits) as worker:
        bomb = add_document(data=pdf_factory.huge_content_stream_pdf(), name="bomb.pdf")
        nested = add_document(data=pdf_factory.deeply_nested_pdf(), name="nested.pdf")
        slow = add_document(corpus["heavy-3mb-content-stream-1page.pdf"].path)
        fine = add_document(data=pdf_factory.text_pdf("The worker is still serving."), name="ok")
        documents = wait_for_documents([bomb, nested, slow, fine], timeout=240)

    outcome = {d.pk: (d.status, d.error_code) for d in documents}
    # pypdf's own token limit stops the bomb in about 4 s: either limit may win the race.
    assert outcome[bomb] in {("failed", "corrupt"), ("failed", "timeout")}
    # pypdf gives up on the nesting (corrupt); PDFium, the second reader, reads the page.
    assert outcome[nested] == ("ready", "")
    assert Document.objects.get(pk=nested).page_sources == {"pdfium": 1}
    assert outcome[slow] == ("failed", "timeout")
    assert outcome[fine] == ("ready", "")
    assert "SoftTimeLimitExceeded" in worker.log()
    assert "exited with" not in worker.log()


def test_a_task_for_a_deleted_document_ends_quietly_without_retry(celery_worker):
    result = ingest_pdf_task.apply_async(args=[987654321])
    outcome = result.get(timeout=60)
    assert outcome == {"status": "skipped", "document_id": 987654321, "reason": "deleted"}
    record = TaskResult.objects.get(task_id=result.id)
    assert record.status == "SUCCESS"
    assert f"ingest_pdf_task[{result.id}] retry" not in celery_worker.log()


def test_the_sweep_requeues_queued_documents_whose_messages_were_lost(
    tmp_path, corpus, wait_for_documents
):
    names = ["text-pdflatex-4pages.pdf", "text-google-docs-1page.pdf"]
    with private_worker(tmp_path, concurrency=2) as worker:
        queue = app.conf.task_routes["*"]["queue"]
        with workers.consuming_paused(worker, queue):
            ids = [add_document(corpus[name].path) for name in names]
            broker = redis.Redis.from_url(TEST_BROKER_URL)
            # This test's own queue only (the Redis is shared): a Redis restart without
            # persistence does the same to every queue.
            assert broker.llen(queue) == len(ids)
            broker.delete(queue)
            # Queued a minute ago: long enough for a message to have reached the broker.
            Document.objects.filter(pk__in=ids).update(
                updated_at=timezone.now() - timedelta(minutes=1)
            )
        # The periodic sweep, run by the worker as celery beat would send it.
        sweep = app.send_task("requeue_stuck_documents_task").get(timeout=60)
        documents = wait_for_documents(ids)

    assert sweep["broker_checked"] is True
    missing = "queued, its message is missing from the broker"
    assert sweep["requeued"] == {str(pk): missing for pk in ids}
    assert {d.status for d in documents} == {Document.Status.READY}


def test_the_sweep_requeues_a_processing_document_whose_heartbeat_stopped(
    celery_worker, corpus, wait_for_documents, settings
):
    # What a worker killed without redelivery, or one that gave up during a database outage
    # longer than its retries, leaves behind: processing, and silent.
    path = corpus["text-pdflatex-4pages.pdf"].path
    data = path.read_bytes()
    outcome = intake.document_create(file=io.BytesIO(data), name=path.name, size=len(data))
    document_id = outcome.document.pk
    Document.objects.filter(pk=document_id).update(
        status=Document.Status.PROCESSING,
        last_task_id="a-run-that-died",
        processing_started_at=timezone.now() - timedelta(minutes=20),
        heartbeat_at=timezone.now() - timedelta(minutes=10),
    )
    sweep = app.send_task("requeue_stuck_documents_task").get(timeout=60)
    (document,) = wait_for_documents([document_id])

    assert sweep["requeued"][str(document_id)] == "processing, no heartbeat for 10 min"
    assert_one_clean_set(document, expected_chunk_count(path))
