"""Start and stop the project's development web server (``manage.py runserver``) as a subprocess
on the test database, for the browser tests."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.workers import ROOT, project_env

SERVER_START_TIMEOUT = 60.0
SERVER_STOP_TIMEOUT = 10.0


@dataclass
class LiveServer:
    """A running web server subprocess, its address and where its log goes."""

    process: subprocess.Popen
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


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
    url = f"http://127.0.0.1:{port}"
    env = project_env(
        broker_url=broker_url, queue=queue, extra_env={"DJANGO_DEBUG": "0", **(extra_env or {})}
    )
    log_path = log_dir / f"runserver-{port}.log"
    command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = LiveServer(process=process, url=url, log_path=log_path)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"runserver exited with {process.returncode}:\n{server.log()}")
        if _answers(f"{url}/admin/login/"):
            return server
        time.sleep(0.3)
    stop_server(server)
    raise RuntimeError(f"runserver did not answer within {SERVER_START_TIMEOUT}s:\n{server.log()}")


def stop_server(server: LiveServer) -> None:
    """SIGTERM, then SIGKILL if it lingers."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(5)
