"""One ingestion per document, whatever arrives: duplicate deliveries, superseded messages and
requeues of a running ingestion, synchronised through the database's own locks on real workers."""

from __future__ import annotations

import io
from contextlib import ExitStack
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from documents import services
from documents.models import Document
from documents.tasks import ingest_pdf_task
from fca_site.celery import app
from tests import workers
from tests.integration.conftest import private_worker
from tests.integration.ingest_helpers import (
    add_document,
    assert_one_clean_set,
    chunk_replacement_held,
    expected_chunk_count,
    row_update_waiting,
    task_result,
)
from tests.waiting import wait_for_log, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


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
