"""A prefork worker child above CELERY_WORKER_MAX_MEMORY_PER_CHILD after a task is replaced, so
what one huge document made it hold is given back to the host."""

from __future__ import annotations

import time

import psutil
import pytest

from tests.integration.conftest import private_worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WORKER_ENV = {"CELERY_EXTRA_IMPORTS": "tests.worker_tasks"}
RESULT_TIMEOUT = 60.0


def probe_pid() -> int:
    """Run the probe task (a database round-trip through the bridge) and return its child's pid."""
    from fca_site.celery import app

    return app.send_task("tests.probe").get(timeout=RESULT_TIMEOUT)["pid"]


def pool_children(worker) -> set[int]:
    return {child.pid for child in psutil.Process(worker.process.pid).children()}


def wait_for_children(worker, ready, *, timeout: float = 30.0) -> set[int]:
    """The worker's pool children once ``ready(children)`` holds (a replaced child is forked
    again by the parent shortly after the old one exits)."""
    deadline = time.monotonic() + timeout
    while True:
        children = pool_children(worker)
        if ready(children):
            return children
        if time.monotonic() > deadline:
            raise AssertionError(f"worker children stayed {children}")
        time.sleep(0.1)


def test_a_child_over_the_memory_limit_is_replaced_after_its_task(tmp_path):
    # 1 KiB: every child is over it after any task, as a child is after a huge document.
    env = {**WORKER_ENV, "CELERY_WORKER_MAX_MEMORY_PER_CHILD": "1"}
    with private_worker(tmp_path, concurrency=1, extra_env=env) as worker:
        first = probe_pid()
        second = probe_pid()
        # The child that ran the second task is over the limit too: it goes, a new one comes.
        children = wait_for_children(worker, lambda c: len(c) == 1 and second not in c)

    # billiard's "exceeding memory limit" line goes to a logger with no handler, so the
    # replacement is seen in the processes: each task ran in a child of its own.
    assert first != second
    assert first not in children


def test_a_child_under_the_memory_limit_is_kept(tmp_path):
    """The default limit (1 GiB) leaves a child of ordinary size in place: the same process runs
    the next task, keeping its loaded model and connections."""
    with private_worker(tmp_path, concurrency=1, extra_env=WORKER_ENV) as worker:
        first = probe_pid()
        second = probe_pid()
        children = pool_children(worker)

    assert first == second
    assert children == {first}
