"""A real Celery worker subprocess (prefork pool) on real Redis and the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import ROOT, TEST_BROKER_URL, TEST_QUEUE

WORKER_START_TIMEOUT = 90.0
WORKER_STOP_TIMEOUT = 30.0


def database_url_of(settings_dict: dict) -> str:
    """A DATABASE_URL for the database Django is connected to (the test database)."""
    user = quote(settings_dict.get("USER") or "")
    password = quote(settings_dict.get("PASSWORD") or "")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or ""
    name = settings_dict["NAME"]
    if host.startswith("/"):
        return f"postgresql://{auth}/{name}?host={quote(host, safe='/')}"
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgresql://{auth}{host}{port}/{name}"


@dataclass
class Worker:
    """A running worker subprocess and where its log goes."""

    process: subprocess.Popen
    nodename: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _ping(nodename: str) -> bool:
    from fca_site.celery import app

    replies = app.control.ping(destination=[nodename], timeout=1.0)
    return any(nodename in reply for reply in replies)


def start_worker(
    log_dir: Path, *, pool: str = "prefork", concurrency: int = 2, extra_env: dict | None = None
) -> Worker:
    """Start a worker on this run's queue and wait until it answers a ping."""
    from django.conf import settings
    from django.db import connection

    nodename = f"test-{uuid.uuid4().hex[:8]}@{os.uname().nodename}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of(connection.settings_dict),
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CELERY_BROKER_URL": TEST_BROKER_URL,
        "CELERY_QUEUE": TEST_QUEUE,
        "RAG_EMBEDDER": "hash",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    log_path = log_dir / f"worker-{nodename.split('@')[0]}.log"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "fca_site",
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--hostname",
        nodename,
        "--queues",
        TEST_QUEUE,
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    worker = Worker(process=process, nodename=nodename, log_path=log_path)
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Celery worker exited with {process.returncode}:\n{worker.log()}")
        if _ping(nodename):
            return worker
        time.sleep(0.5)
    stop_worker(worker)
    raise RuntimeError(
        f"Celery worker did not answer within {WORKER_START_TIMEOUT}s:\n{worker.log()}"
    )


def stop_worker(worker: Worker) -> None:
    """Warm shutdown (SIGTERM), then kill the whole process group if it lingers."""
    if worker.process.poll() is None:
        worker.process.send_signal(signal.SIGTERM)
        try:
            worker.process.wait(WORKER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(worker.process.pid, signal.SIGKILL)
            worker.process.wait(5)
    # Pool children share the group; none may outlive the test run.
    try:
        os.killpg(worker.process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


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
