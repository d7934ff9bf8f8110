"""Start and stop real Celery worker subprocesses (used by the tests and by bench/), and what
every project subprocess shares: spawning with a log, waiting until ready, stopping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKER_START_TIMEOUT = 90.0
WORKER_STOP_TIMEOUT = 30.0


def project_env(*, broker_url: str, queue: str, extra_env: dict | None = None) -> dict[str, str]:
    """The environment of a project subprocess (worker, web server) that shares this test run's
    database, media folder, broker and queue, with the fast hash embedder."""
    from django.conf import settings
    from django.db import connection

    from fca_site.database import database_url

    return {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CELERY_BROKER_URL": broker_url,
        "CELERY_QUEUE": queue,
        "RAG_EMBEDDER": "hash",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }


@dataclass
class ProjectProcess:
    """A running project subprocess (worker, web server), in a session of its own, and the log
    file that takes its output."""

    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def spawn(command: list[str], *, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start ``command`` in the project folder, in a new session (so its whole process group can
    be killed), its output going to ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_until_ready(
    running: ProjectProcess,
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    poll_every: float,
    stop_timeout: float,
) -> None:
    """Return once ``ready()``; fail with the log if the process exits or ``timeout`` passes
    (stopping it first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"{what} exited with {running.process.returncode}:\n{running.log()}")
        if ready():
            return
        time.sleep(poll_every)
    stop_process_group(running, timeout=stop_timeout)
    raise RuntimeError(f"{what} did not answer within {timeout}s:\n{running.log()}")


def stop_process_group(running: ProjectProcess, *, timeout: float) -> None:
    """SIGTERM (a warm shutdown), then SIGKILL to the whole process group if it lingers. Pool
    children share the group; none may outlive the test run."""
    if running.process.poll() is None:
        running.process.send_signal(signal.SIGTERM)
        try:
            running.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(running.process.pid, signal.SIGKILL)
            running.process.wait(5)
    try:
        os.killpg(running.process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@dataclass
class Worker(ProjectProcess):
    """A running worker subprocess and where its log goes."""

    nodename: str


def _ping(nodename: str) -> bool:
    from fca_site.celery import app

    replies = app.control.ping(destination=[nodename], timeout=1.0)
    return any(nodename in reply for reply in replies)


def start_worker(
    log_dir: Path,
    *,
    broker_url: str,
    queue: str,
    pool: str = "prefork",
    concurrency: int = 2,
    extra_env: dict | None = None,
) -> Worker:
    """Start a worker on ``queue`` against the database Django is connected to; wait until it
    answers a ping (or fail with its log)."""
    nodename = f"test-{uuid.uuid4().hex[:8]}@{os.uname().nodename}"
    env = project_env(broker_url=broker_url, queue=queue, extra_env=extra_env)
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
        queue,
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]
    worker = Worker(
        process=spawn(command, env=env, log_path=log_path), log_path=log_path, nodename=nodename
    )
    wait_until_ready(
        worker,
        lambda: _ping(nodename),
        what="Celery worker",
        timeout=WORKER_START_TIMEOUT,
        poll_every=0.5,
        stop_timeout=WORKER_STOP_TIMEOUT,
    )
    return worker


def stop_worker(worker: Worker) -> None:
    """Warm shutdown (SIGTERM), then kill the whole process group if it lingers."""
    stop_process_group(worker, timeout=WORKER_STOP_TIMEOUT)


def route_all_tasks(app, routes: dict) -> None:
    """Set the Celery app's task routes now (the router is built once, from the routes of that
    moment, so it is rebuilt here)."""
    app.conf.task_routes = routes
    app.amqp.flush_routes()
    app.amqp.__dict__.pop("router", None)
