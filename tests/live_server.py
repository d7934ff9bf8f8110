"""Start and stop the project's web servers as subprocesses on the test database: the
development server (``manage.py runserver``, for the browser tests) and gunicorn (as in
docker-compose.yml)."""

from __future__ import annotations

import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devtools.workers import (
    ProjectProcess,
    project_env,
    spawn,
    stop_process_group,
    wait_until_ready,
)

SERVER_START_TIMEOUT = 60.0
SERVER_STOP_TIMEOUT = 10.0


@dataclass
class LiveServer(ProjectProcess):
    """A running web server subprocess, its address and where its log goes."""

    url: str


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start_server(
    log_dir: Path, *, broker_url: str, queue: str, extra_env: dict | None = None
) -> LiveServer:
    """Run ``manage.py runserver --noreload`` on a free loopback port against the database
    Django is connected to; wait until the login page answers (or fail with the server's log).

    DEBUG stays off, as in production: WhiteNoise serves the admin's static files.
    """
    port = free_port()
    command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    return _serve(command, port, log_dir, "runserver", broker_url, queue, extra_env)


def start_gunicorn(
    log_dir: Path,
    *,
    broker_url: str,
    queue: str,
    worker_class: str = "sync",
    extra_env: dict | None = None,
) -> LiveServer:
    """Run gunicorn with the project's ``gunicorn.conf.py`` (as docker-compose.yml does) on a
    free loopback port: ``sync`` workers serve ``fca_site.wsgi``, the ``asgi`` worker serves
    ``fca_site.asgi``. Waits until the login page answers."""
    port = free_port()
    app = "fca_site.asgi:application" if worker_class == "asgi" else "fca_site.wsgi:application"
    command = [
        sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
        "--bind", f"127.0.0.1:{port}", "--workers", "1", "--worker-class", worker_class, app,
    ]  # fmt: skip
    return _serve(command, port, log_dir, f"gunicorn-{worker_class}", broker_url, queue, extra_env)


def _serve(
    command: list[str],
    port: int,
    log_dir: Path,
    what: str,
    broker_url: str,
    queue: str,
    extra_env: dict | None,
) -> LiveServer:
    url = f"http://127.0.0.1:{port}"
    env = project_env(
        broker_url=broker_url, queue=queue, extra_env={"DJANGO_DEBUG": "0", **(extra_env or {})}
    )
    log_path = log_dir / f"{what}-{port}.log"
    server = LiveServer(
        process=spawn(command, env=env, log_path=log_path), log_path=log_path, url=url
    )
    wait_until_ready(
        server,
        lambda: _answers(f"{url}/admin/login/"),
        what=what,
        timeout=SERVER_START_TIMEOUT,
        poll_every=0.3,
        stop_timeout=SERVER_STOP_TIMEOUT,
    )
    return server


def stop_server(server: LiveServer) -> None:
    """SIGTERM, then SIGKILL if it lingers."""
    stop_process_group(server, timeout=SERVER_STOP_TIMEOUT)
