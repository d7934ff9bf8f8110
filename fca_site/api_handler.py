"""The API's own ASGI handler: Django's, with the API's middleware (``API_MIDDLEWARE``).

Under ASGI Django runs every synchronous middleware method on a thread (``sync_to_async``),
one hop for each ``process_request``, ``process_view`` and ``process_response``, and the
site's chain (WhiteNoise, sessions, CSRF, authentication, messages, ...) is synchronous: about
fifteen thread hops a request, for things the API does not use (it authenticates with keys, not
cookies, and serves no static files). ``fca_site.asgi`` sends ``/api/`` here; the admin and the
rest keep ``MIDDLEWARE``. The requests' synchronous code runs on kept threads
(:class:`RequestThreads`). Under WSGI (runserver, gunicorn's sync workers) the API goes through
``MIDDLEWARE`` as everything else: there each method is a plain call.

Measured with bench/api.py (8 clients, hybrid search over 100,000 chunks, 2 cores of a Zen 3
EPYC): the server's CPU per search fell from about 22 ms to about 18 ms (the search itself
about 13).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponse
from django.middleware.security import SecurityMiddleware

# Idle request threads kept for the next requests; more are made while more requests run.
IDLE_REQUEST_THREADS = 16


class RequestThreads:
    """A thread for each running request's synchronous code, kept for later requests.

    Django gives every request a context of its own (``ThreadSensitiveContext``), whose
    synchronous calls (the request signals, a key looked up in the database, the upload's
    intake) all run on one thread: the request's, so its database connection is its own. By
    default asgiref makes that thread for the request and joins it afterwards in one more
    thread, two thread starts a request. Here a request takes an idle thread, held by it alone
    until it ends (one call at a time, as asgiref requires), and gives it back.
    """

    def __init__(self, keep_idle: int = IDLE_REQUEST_THREADS) -> None:
        self._keep_idle = keep_idle
        self._idle: list[ThreadPoolExecutor] = []
        self._lock = threading.Lock()  # one handler may serve more than one event loop

    @asynccontextmanager
    async def context(self) -> AsyncIterator[None]:
        with self._lock:
            executor = self._idle.pop() if self._idle else None
        if executor is None:
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-request")
        ended = False
        try:
            async with ThreadSensitiveContext(executor=executor):
                yield
            ended = True
        finally:
            # A request cut short (the client went away, the server stopping) may leave a call
            # running on its thread, and skipped the signal that closes its database connection:
            # that thread is not handed to the next request.
            with self._lock:
                keep = ended and len(self._idle) < self._keep_idle
                if keep:
                    self._idle.append(executor)
            if not keep:
                executor.shutdown(wait=False)  # its thread ends once idle; nothing waits


class ApiASGIHandler(ASGIHandler):
    """Django's ASGI handler, its chain built from ``settings.API_MIDDLEWARE``, its requests'
    synchronous code on kept threads (:class:`RequestThreads`)."""

    def __init__(self) -> None:
        super().__init__()
        self.request_threads = RequestThreads()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Django's own ThreadSensitiveContext, entered inside this one, then uses it.
        async with self.request_threads.context():
            await super().__call__(scope, receive, send)

    def load_middleware(self, is_async: bool = False) -> None:
        # Django builds the chain from settings.MIDDLEWARE and takes no list of its own: the
        # API's list stands in for it while this handler is built (once, at start-up).
        site_middleware = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = site_middleware


class InlineSecurityMiddleware(SecurityMiddleware):
    """Django's ``SecurityMiddleware`` (the same settings and headers), its two methods run
    inline on the event loop: they only read settings and set headers, so a thread hop each
    would cost more than they do.

    It also checks the Host header against ``ALLOWED_HOSTS`` (a 400 otherwise), which the
    site's chain does in ``CommonMiddleware`` and nothing in the API would otherwise do."""

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        request.get_host()  # raises DisallowedHost, answered 400 by Django's handler
        response = self.process_request(request)  # a redirect to HTTPS, or None
        response = response or await self.get_response(request)
        return self.process_response(request, response)
