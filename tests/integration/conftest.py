"""A real Celery worker subprocess (prefork pool) on real Redis and the test database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools import workers
from devtools.workers import Worker, stop_worker
from tests.conftest import TEST_BROKER_URL, TEST_QUEUE

# The session's shared worker, ``celery_worker``, is in tests/conftest.py: the browser tests
# use it too.


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
