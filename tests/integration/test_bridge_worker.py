"""The bridge inside real Celery workers: one loop per process/thread, pooled connections,
safe interruption by the soft time limit, typed failures, clean shutdown, refused pools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict

import pytest
from django.conf import settings
from django_celery_results.models import TaskResult

from documents.models import Document
from tests.conftest import ROOT, TEST_QUEUE
from tests.integration.conftest import private_worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PROBES = 50
SHUTDOWN_NOISE = (
    "Task was destroyed but it is pending",
    "Event loop is closed",
    "unclosed",
    "ResourceWarning",
    "DeprecationWarning",
    "never awaited",
)
WORKER_ENV = {
    "CELERY_EXTRA_IMPORTS": "tests.worker_tasks",
    # Show every resource warning, and make any deprecated asyncio use in the bridge fatal.
    "PYTHONWARNINGS": "always::ResourceWarning,error::DeprecationWarning:rag.bridge",
    "PYTHONTRACEMALLOC": "0",
}


def send(name: str, *args):
    from fca_site.celery import app

    return app.send_task(name, args=list(args))


def assert_clean_shutdown(worker) -> None:
    log = worker.log()
    for phrase in SHUTDOWN_NOISE:
        assert phrase not in log, f"{phrase!r} in worker log:\n{log[-4000:]}"
    assert "bridge: closed event loop" in log, log[-4000:]


@pytest.mark.parametrize(
    ("pool", "concurrency"), [("prefork", 2), ("solo", 1), ("threads", 4)], ids=str
)
def test_every_process_and_thread_reuses_one_loop_and_its_pooled_connections(
    tmp_path, pool, concurrency
):
    with private_worker(
        tmp_path, pool=pool, concurrency=concurrency, extra_env=WORKER_ENV
    ) as worker:
        results = [send("tests.probe") for _ in range(PROBES)]
        probes = [r.get(timeout=120) for r in results]

    assert len(probes) == PROBES
    loops = defaultdict(set)
    backends = defaultdict(set)
    threads_per_pid = defaultdict(set)
    for probe in probes:
        key = (probe["pid"], probe["thread"])
        loops[key].add(probe["loop"])
        backends[key].add(probe["backend"])
        threads_per_pid[probe["pid"]].add(probe["thread"])
    assert all(len(ids) == 1 for ids in loops.values()), loops
    assert len(threads_per_pid) <= (concurrency if pool == "prefork" else 1)
    pool_size = settings.RAG_DB_POOL_SIZE
    assert all(len(pids) <= pool_size for pids in backends.values()), backends
    for pid, threads in threads_per_pid.items():
        per_process = set().union(*(backends[(pid, t)] for t in threads))
        assert len(per_process) <= pool_size * len(threads)
    if pool == "threads":
        assert len({next(iter(ids)) for ids in loops.values()}) == len(loops)
    assert_clean_shutdown(worker)


def test_soft_time_limit_cancels_the_coroutine_rolls_back_and_the_next_task_runs(tmp_path):
    document = Document.objects.create(
        title="original", sha256="e" * 64, size_bytes=1, file="x/e.pdf"
    )
    finally_file = tmp_path / "finally.txt"
    with private_worker(tmp_path, pool="prefork", concurrency=1, extra_env=WORKER_ENV) as worker:
        before = send("tests.probe").get(timeout=60)
        stuck = send("tests.stuck_in_transaction", document.pk, "uncommitted", str(finally_file))
        with pytest.raises(Exception) as caught:
            stuck.get(timeout=60)
        after = send("tests.probe").get(timeout=60)

    assert type(caught.value).__name__ == "SoftTimeLimitExceeded"
    record = TaskResult.objects.get(task_id=stuck.id)
    assert record.status == "FAILURE"
    assert json.loads(record.result)["exc_type"] == "SoftTimeLimitExceeded"
    document.refresh_from_db()
    assert document.title == "original", "the interrupted transaction was not rolled back"
    assert finally_file.read_text().startswith("finally ran")
    assert (after["pid"], after["loop"]) == (before["pid"], before["loop"])
    assert_clean_shutdown(worker)


def test_a_permanent_error_is_recorded_with_its_type_and_message(tmp_path):
    with private_worker(tmp_path, pool="prefork", concurrency=1, extra_env=WORKER_ENV):
        failing = send("tests.permanent_error")
        with pytest.raises(Exception) as caught:
            failing.get(timeout=60)
        send("tests.probe").get(timeout=60)
    assert type(caught.value).__name__ == "CorruptPdfError"
    payload = json.loads(TaskResult.objects.get(task_id=failing.id).result)
    assert payload["exc_type"] == "CorruptPdfError"
    assert payload["exc_message"] == ["The PDF structure cannot be read (probe)."]


def refused_worker_output(pool: str, env: dict[str, str]) -> str:
    """Start a worker that must refuse to start; return what it printed."""
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "fca_site", "worker", "--pool", pool],
        cwd=ROOT,
        env={**os.environ, "CELERY_QUEUE": TEST_QUEUE, "RAG_EMBEDDER": "hash", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    return result.stdout + result.stderr


@pytest.mark.parametrize("pool", ["gevent", "eventlet"])
def test_green_thread_pools_are_refused_at_start_with_a_clear_message(pool):
    pytest.importorskip(pool, reason=f"{pool} is not installed, so Celery cannot even load it")
    output = refused_worker_output(pool, {})
    assert f"The worker pool {pool!r} is not supported" in output


def test_a_worker_whose_embedder_does_not_fit_the_column_refuses_to_start():
    from django.db import connection

    from fca_site.database import database_url

    env = {
        "DATABASE_URL": database_url(connection.settings_dict),
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "RAG_EMBEDDING_DIMENSIONS": "64",
    }
    output = refused_worker_output("solo", env)
    assert "makes 64-dimensional vectors but the database column" in output
