"""Nothing lost, nothing duplicated: killed workers, a database restart, the whole corpus, and
pathological PDFs, all on real workers."""

from __future__ import annotations

import io
import json
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django_celery_results.models import TaskResult

from documents.models import Document
from documents.tasks import ingest_pdf_task
from fca_site import embedded_db
from fca_site.celery import app
from tests import pdf_factory, workers
from tests.integration.conftest import private_worker
from tests.integration.ingest_helpers import (
    BOOK,
    PDFIUM_READS,
    add_document,
    assert_one_clean_set,
    expected_chunk_count,
    wait_for_status,
)
from tests.waiting import wait_for_log, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


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
