"""Worker controls only the tests need (the worker itself is started by devtools.workers)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from devtools.workers import Worker


@contextmanager
def consuming_paused(worker: Worker, queue: str) -> Iterator[None]:
    """Stop the worker taking messages from ``queue`` until the block ends (they wait in Redis),
    so a test can see documents queued before they move on."""
    from fca_site.celery import app

    destination = [worker.nodename]
    replies = app.control.cancel_consumer(queue, destination=destination, reply=True, timeout=5)
    if not replies:
        raise RuntimeError(f"worker {worker.nodename} did not stop consuming {queue}")
    try:
        yield
    finally:
        replies = app.control.add_consumer(queue, destination=destination, reply=True, timeout=5)
        if not replies:
            raise RuntimeError(f"worker {worker.nodename} did not resume consuming {queue}")
