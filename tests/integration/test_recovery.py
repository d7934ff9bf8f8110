"""Recovery without an operator: messages lost from Redis and silent ingestions, found by
`ingest --requeue-stuck` and by the periodic sweep on real workers."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
import redis
from django.core.management import call_command
from django.utils import timezone

from documents import intake
from documents.models import Document
from fca_site.celery import app
from tests import workers
from tests.conftest import TEST_BROKER_URL, TEST_QUEUE
from tests.integration.conftest import private_worker
from tests.integration.ingest_helpers import (
    add_document,
    assert_one_clean_set,
    expected_chunk_count,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_messages_lost_from_redis_are_recovered_by_requeue_stuck(
    celery_worker, corpus, wait_for_documents
):
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
