"""A real Celery worker subprocess (prefork pool) on real Redis and the test database."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest

from tests import workers
from tests.conftest import TEST_BROKER_URL, TEST_QUEUE
from tests.workers import Worker, stop_worker

# The session's shared worker: this test run's own broker database and queue.
start_worker = partial(workers.start_worker, broker_url=TEST_BROKER_URL, queue=TEST_QUEUE)


@contextmanager
def private_worker(log_dir: Path, **options) -> Iterator[Worker]:
    """A worker of the test's own, on a queue of its own; every task sent meanwhile goes there.

    Tests that kill, restart or time-limit a worker must not share it, nor have their messages
    taken by the session's worker.
    """
    from fca_site.celery import app

    queue = f"{TEST_QUEUE}-{uuid.uuid4().hex[:6]}"
    worker = workers.start_worker(log_dir, broker_url=TEST_BROKER_URL, queue=queue, **options)
    saved = app.conf.task_routes
    workers.route_all_tasks(app, {"*": {"queue": queue}})
    try:
        yield worker
    finally:
        workers.route_all_tasks(app, saved)
        stop_worker(worker)


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup, django_db_blocker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    """One prefork worker (concurrency 2) for the integration tests of this session."""
    log_dir = tmp_path_factory.mktemp("worker-logs")
    with django_db_blocker.unblock():
        worker = start_worker(log_dir)
    yield worker
    stop_worker(worker)


@pytest.fixture
def wait_for_documents() -> Callable[..., list]:
    """Poll the database until the documents are ready or failed; fail with their states."""
    from documents.models import Document

    def wait(document_ids: Sequence[int], *, timeout: float = 120.0) -> list[Document]:
        deadline = time.monotonic() + timeout
        finished = {Document.Status.READY, Document.Status.FAILED}
        while True:
            documents = list(Document.objects.filter(pk__in=document_ids).order_by("pk"))
            if len(documents) == len(document_ids) and all(d.status in finished for d in documents):
                return documents
            if time.monotonic() > deadline:
                states = {d.pk: d.status for d in documents}
                raise AssertionError(f"Documents not finished after {timeout}s: {states}")
            time.sleep(0.25)

    return wait
