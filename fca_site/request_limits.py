"""Request bodies over the upload limit are refused before they are read, under WSGI and ASGI.

Django itself does not bound a body that carries files: ``DATA_UPLOAD_MAX_MEMORY_SIZE`` counts
form fields only, and the multipart parser streams each file to a temporary file before any
form or service sees its size. So the limit sits in front of the body:

- WSGI (runserver, gunicorn's sync workers): :class:`RequestBodyLimitMiddleware`, first in
  ``MIDDLEWARE``. Django builds the request without reading the body, so a ``Content-Length``
  over the limit is answered with 413 while the body is still on the socket. A body without
  ``Content-Length`` (chunked) is never read by Django's WSGI handler at all (it reads
  ``Content-Length`` bytes, here none), so it is answered with 411 instead of being taken for
  an empty form.
- ASGI: Django's ``ASGIHandler`` reads the whole body into a temporary file before any
  middleware runs, so :class:`RequestBodyLimitASGI` wraps the application (``fca_site.asgi``):
  it answers a ``Content-Length`` over the limit with 413 before the first ``receive()``, and
  counts the bytes of a chunked body as they arrive, stopping at the limit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def max_request_bytes() -> int:
    """The largest request body accepted (``RAG_MAX_REQUEST_BYTES``), read at each request so
    a changed setting applies at once."""
    return settings.RAG_MAX_REQUEST_BYTES


def too_large_message(limit: int) -> str:
    """The 413 body: short, and says what the limit is."""
    return (
        f"Request body too large: at most {limit} bytes ({limit / 1_000_000:.1f} MB) per "
        "request. Nothing was stored.\n"
    )


LENGTH_REQUIRED_MESSAGE = (
    "A request body needs a Content-Length header here (chunked bodies are not accepted by "
    "this server). Nothing was stored.\n"
)


def declared_length(value: str | bytes | None) -> int | None:
    """The ``Content-Length`` as a number, or None when absent or not a number (the HTTP
    server rejects a malformed one before the application sees it)."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def plain_response(message: str, *, status: int) -> HttpResponse:
    """A short text answer with its length stated: this middleware runs outside the one that
    would add it, and runserver would otherwise end the body by closing the connection, which
    it does only after reading the rest of the request body."""
    response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    response["Content-Length"] = str(len(response.content))
    return response


class RequestBodyLimitMiddleware:
    """Answer 413 to a request whose ``Content-Length`` is over the limit (and 411 to a chunked
    body under WSGI) before anything reads the body. Put it first in ``MIDDLEWARE``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        refusal = self.refusal(request)
        if iscoroutinefunction(self):
            return self._async_call(request, refusal)
        return refusal or self.get_response(request)

    async def _async_call(self, request: HttpRequest, refusal: HttpResponse | None):
        return refusal or await self.get_response(request)

    @staticmethod
    def refusal(request: HttpRequest) -> HttpResponse | None:
        limit = max_request_bytes()
        length = declared_length(request.META.get("CONTENT_LENGTH") or None)
        if length is not None and length > limit:
            logger.warning(
                "request refused path=%s content_length=%d limit=%d", request.path, length, limit
            )
            return plain_response(too_large_message(limit), status=413)
        chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
        # Django's WSGI request reads Content-Length bytes: none for a chunked body. Under ASGI
        # the body is already read (and bounded by RequestBodyLimitASGI).
        if chunked and length is None and "wsgi.input" in request.META:
            logger.warning("request refused path=%s chunked body under WSGI", request.path)
            return plain_response(LENGTH_REQUIRED_MESSAGE, status=411)
        return None


class RequestBodyLimitASGI:
    """ASGI wrapper: refuse a body over the limit with 413, reading at most the limit of it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = max_request_bytes()
        headers = dict(scope.get("headers") or [])
        length = declared_length(headers.get(b"content-length"))
        if length is not None and length > limit:
            logger.warning(
                "request refused path=%s content_length=%d limit=%d", scope["path"], length, limit
            )
            await self._send_too_large(send, limit)
            return
        received = 0
        cut = False
        response_started = False

        async def bounded_receive() -> Message:
            nonlocal received, cut
            if cut:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Django's handler treats a disconnect as an aborted request: it closes its
                    # temporary body file and returns without a response, which we then send.
                    cut = True
                    return {"type": "http.disconnect"}
            return message

        async def recording_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        await self.app(scope, bounded_receive, recording_send)
        if cut and not response_started:
            logger.warning(
                "request refused path=%s body passed limit=%d while streaming", scope["path"], limit
            )
            await self._send_too_large(send, limit)

    @staticmethod
    async def _send_too_large(send: Send, limit: int) -> None:
        body = too_large_message(limit).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
