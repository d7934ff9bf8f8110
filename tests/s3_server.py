"""A real S3-compatible server for the tests: moto's standalone server, a subprocess on a free
port, and the settings that point the test process and its workers at one bucket of it."""

from __future__ import annotations

import os
import signal
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.workers import ProjectProcess, spawn, stop_process_group, wait_until_ready

ACCESS_KEY = "fca-test-access-key"
SECRET_KEY = "fca-test-secret-key"
REGION = "us-east-1"
KEY_PREFIX = "fca-tests"


@dataclass
class S3Server(ProjectProcess):
    """A running moto server and the bucket of this test run."""

    endpoint: str
    bucket: str

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client of this server (short timeouts: it may be paused)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
        )

    def key(self, name: str) -> str:
        """The object key of a stored file name (django-storages adds the prefix)."""
        return f"{KEY_PREFIX}/{name}"

    def exists(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client().head_object(Bucket=self.bucket, Key=self.key(name))
        except ClientError as exc:
            if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                return False
            raise
        return True

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment that points a project subprocess at this bucket, with short
        timeouts and no retries inside botocore, so an outage reaches the task quickly."""
        return {
            "DJANGO_STORAGE": "s3",
            "AWS_STORAGE_BUCKET_NAME": self.bucket,
            "AWS_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_S3_REGION_NAME": REGION,
            "AWS_LOCATION": KEY_PREFIX,
            "RAG_S3_CONNECT_TIMEOUT": "1",
            "RAG_S3_READ_TIMEOUT": "2",
            "RAG_S3_MAX_ATTEMPTS": "1",
            **overrides,
        }

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers (a hung endpoint)."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def enforce_auth(self, on: bool) -> None:
        """Turn moto's credential checks on (unknown access keys get 403) or off."""
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth",
            data=b"0" if on else b"inf",
            method="POST",
            # A form content type would make the server parse the body as a form and lose it.
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            assert response.status == 200


def _answers(server: S3Server) -> bool:
    from botocore.exceptions import BotoCoreError

    try:
        server.client().list_buckets()
    except BotoCoreError:
        return False
    return True


def start_s3_server(log_dir: Path, port: int, *, host: str = "127.0.0.1") -> S3Server:
    """Start ``moto_server`` on ``host``:``port``, create this run's bucket, and wait."""
    command = [str(Path(sys.executable).with_name("moto_server")), "-H", host, "-p", str(port)]
    log_path = log_dir / f"moto-{port}.log"
    server = S3Server(
        process=spawn(command, env={**os.environ}, log_path=log_path),
        log_path=log_path,
        endpoint=f"http://{host}:{port}",
        bucket=f"fca-test-{uuid.uuid4().hex[:8]}",
    )
    wait_until_ready(
        server, lambda: _answers(server), what="moto_server", timeout=30, poll_every=0.2,
        stop_timeout=5,
    )  # fmt: skip
    server.client().create_bucket(Bucket=server.bucket)
    return server


def stop_s3_server(server: S3Server) -> None:
    server.resume()  # a stopped process cannot act on SIGTERM
    stop_process_group(server, timeout=5)


@contextmanager
def s3_settings(server: S3Server, **overrides: Any) -> Iterator[None]:
    """This process's default storage is the server's bucket (as the web process would have
    it with the same environment) until the block ends."""
    from botocore.config import Config
    from django.conf import settings
    from django.test import override_settings

    env = server.env()
    values = {
        "DJANGO_STORAGE": "s3",
        "AWS_STORAGE_BUCKET_NAME": server.bucket,
        "AWS_S3_ENDPOINT_URL": server.endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_S3_REGION_NAME": REGION,
        "AWS_LOCATION": env["AWS_LOCATION"],
        "AWS_S3_CLIENT_CONFIG": Config(
            connect_timeout=1,
            read_timeout=2,
            retries={"mode": "standard", "max_attempts": 1},
            s3={"addressing_style": "path"},
        ),
        **overrides,
    }
    storages = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage"},
    }
    # STORAGES last: its change signal rebuilds default_storage from the settings above.
    with override_settings(**values), override_settings(STORAGES=storages):
        yield
