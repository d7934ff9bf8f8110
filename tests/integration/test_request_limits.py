"""A request body over the limit is refused before it is read, by every server the project runs
on: runserver and gunicorn's sync workers (WSGI, as in docker-compose.yml) and gunicorn's asgi
worker (``fca_site.asgi``). A real HTTP client talks to a real server subprocess, logged in as
staff with a valid CSRF token, so a body under the limit would be stored (the control test)."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.test import Client

from documents.models import Document
from tests.conftest import TEST_BROKER_URL, TEST_QUEUE
from tests.live_server import LiveServer, start_gunicorn, start_server, stop_server
from tests.pdf_factory import text_pdf

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MAX_REQUEST_BYTES = 300_000
SERVER_ENV = {"RAG_MAX_UPLOAD_BYTES": "200000", "RAG_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES)}
UPLOAD_PATH = "/admin/documents/document/upload/"
BOUNDARY = "fca-limit-test"
ONE_GIB = 1 << 30
# The refusal must come at once: reading even the allowed part of a 1 GiB body is not needed.
ANSWER_WITHIN_SECONDS = 5.0
# Unmasked 32-character CSRF secret, sent as both the cookie and the form field.
CSRF_TOKEN = "Q" * 16 + "w" * 16


@dataclass(frozen=True)
class ServerKind:
    name: str
    asgi: bool

    def start(self, log_dir: Path) -> LiveServer:
        options = {"broker_url": TEST_BROKER_URL, "queue": TEST_QUEUE, "extra_env": SERVER_ENV}
        if self.name == "runserver":
            return start_server(log_dir, **options)
        return start_gunicorn(log_dir, worker_class="asgi" if self.asgi else "sync", **options)


SERVERS = [
    ServerKind("runserver", asgi=False),
    ServerKind("gunicorn-sync", asgi=False),
    ServerKind("gunicorn-asgi", asgi=True),
]


@pytest.fixture(scope="module", params=SERVERS, ids=lambda kind: kind.name)
def server(request, django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator:
    kind: ServerKind = request.param
    with django_db_blocker.unblock():
        running = kind.start(tmp_path_factory.mktemp(f"{kind.name}-logs"))
    yield kind, running
    stop_server(running)


@pytest.fixture
def session_cookie(django_user_model) -> str:
    """Cookies of a logged-in superuser (the session lives in the shared test database)."""
    user = django_user_model.objects.create_superuser("limits", "l@example.com", "pw-limits-1")
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def media_files() -> set[Path]:
    return {path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()}


def multipart_head(filename: str) -> bytes:
    return (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="csrfmiddlewaretoken"\r\n\r\n'
        f"{CSRF_TOKEN}\r\n"
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="files"; filename="{filename}"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()


def multipart_tail() -> bytes:
    return f"\r\n--{BOUNDARY}--\r\n".encode()


def open_upload(running: LiveServer, cookie: str, headers: dict[str, str]):
    """An upload POST with its headers sent and its body not yet."""
    address = urlparse(running.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.putrequest("POST", UPLOAD_PATH)
    connection.putheader("Cookie", f"{cookie}; {settings.CSRF_COOKIE_NAME}={CSRF_TOKEN}")
    connection.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    return connection


def test_a_body_under_the_limit_is_stored(server, session_cookie):
    """The control: the same client, session and CSRF token get a small PDF stored, so the
    refusals below come from the limit and nothing else."""
    kind, running = server
    body = multipart_head("small.pdf") + text_pdf("within the limit") + multipart_tail()
    connection = open_upload(running, session_cookie, {"Content-Length": str(len(body))})
    connection.send(body)
    response = connection.getresponse()
    response.read()
    connection.close()

    assert response.status == 302, running.log()[-3000:]
    assert "batch=" in response.getheader("Location", "")
    assert Document.objects.count() == 1


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(
    server, session_cookie
):
    kind, running = server
    files_before = media_files()
    started = time.monotonic()
    connection = open_upload(running, session_cookie, {"Content-Length": str(ONE_GIB)})
    # A few bytes of the announced gibibyte; the rest never comes.
    connection.send(multipart_head("huge.pdf") + b"%PDF-1.7\n")
    response = connection.getresponse()
    body = response.read().decode()
    elapsed = time.monotonic() - started
    connection.close()

    assert response.status == 413, body
    assert f"at most {MAX_REQUEST_BYTES} bytes" in body
    assert "Nothing was stored" in body
    assert elapsed < ANSWER_WITHIN_SECONDS
    assert Document.objects.count() == 0
    assert media_files() == files_before


def test_a_chunked_body_over_the_limit_is_not_read_past_the_limit(server, session_cookie):
    """A body without Content-Length: under ASGI it is counted as it arrives and refused with 413
    once past the limit, without waiting for its end (which never comes here); Django's WSGI
    handler cannot read a chunked body at all, so WSGI servers answer 411 at once."""
    kind, running = server
    files_before = media_files()
    connection = open_upload(running, session_cookie, {"Transfer-Encoding": "chunked"})
    payload = multipart_head("chunked.pdf") + b"%PDF-1.7\n" + b"0" * (MAX_REQUEST_BYTES + 65536)
    piece = 16384
    try:
        for start in range(0, len(payload), piece):
            data = payload[start : start + piece]
            connection.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed before taking the rest: what is asserted below
    # No terminating zero-length chunk: a server waiting for the end of the body would hang.
    started = time.monotonic()
    response = connection.getresponse()
    body = response.read().decode()
    elapsed = time.monotonic() - started
    connection.close()

    if kind.asgi:
        assert response.status == 413, body
        assert f"at most {MAX_REQUEST_BYTES} bytes" in body
    else:
        assert response.status == 411, body
        assert "Content-Length" in body
    assert elapsed < ANSWER_WITHIN_SECONDS
    assert Document.objects.count() == 0
    assert media_files() == files_before
