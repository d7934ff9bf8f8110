"""Bearer API keys and the per-key rate limit.

Keys: a request's key is looked up by its hash; an accepted key is remembered in this process
for RAG_API_KEY_CACHE_SECONDS (5 s), so a search does not open a database connection to
authenticate (under ASGI each request's synchronous code runs on a thread of its own, and a
connection per request is most of a search's cost). A revocation therefore takes effect within
that time in every process (at once in the one that revoked).

The rate count lives in Redis through Django's cache (alias ``api_rate``), not in the database:
it changes on every request, an atomic INCR with an expiry costs Redis next to nothing, while a
row would take a write and a row lock per request; every worker process shares the count.
Fixed windows of RAG_API_RATE_WINDOW_SECONDS: simple, and Retry-After is exact.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest
from ninja.security import HttpBearer
from redis.exceptions import RedisError

from documents.api_keys import api_key_authenticate, api_key_hash, looks_like_key
from documents.models import ApiKey

logger = logging.getLogger(__name__)

# The rate count runs on a few long-lived threads: Django's cache clients are per thread, so
# each keeps its Redis connections instead of one new client per request thread.
_counting = ThreadPoolExecutor(max_workers=4, thread_name_prefix="api-rate")


class RateLimited(Exception):
    """The key used up its requests for this window."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Rate limit exceeded: retry in {retry_after} s.")
        self.retry_after = retry_after


def rate_limit_wait(key_prefix: str) -> int | None:
    """Count one request of the key; seconds to wait if it is over the limit, else None.

    When Redis cannot be reached the request is let through (logged): the limit protects the
    service, and refusing every request would be the outage it protects against.
    """
    limit, window = settings.RAG_API_RATE_LIMIT, settings.RAG_API_RATE_WINDOW_SECONDS
    if limit <= 0 or window <= 0:
        return None
    now = time.time()
    slot = int(now // window)
    counter = f"{key_prefix}:{window}:{slot}"
    cache = caches["api_rate"]
    try:
        cache.add(counter, 0, timeout=window + 1)
        count = cache.incr(counter)
    except ValueError:  # the counter expired between add and incr: this is its first request
        cache.add(counter, 1, timeout=window + 1)
        count = 1
    except RedisError as exc:
        logger.warning("api rate limit not counted (Redis unavailable): %s", exc)
        return None
    if count > limit:
        return max(1, math.ceil((slot + 1) * window - now))
    return None


@dataclass(frozen=True)
class _Remembered:
    api_key: ApiKey
    until: float


_accepted: dict[str, _Remembered] = {}
_accepted_lock = threading.Lock()


def forget_accepted_keys() -> None:
    """Forget the keys this process accepted (after a revocation here)."""
    with _accepted_lock:
        _accepted.clear()


async def authenticate(token: str) -> ApiKey | None:
    """The active key for ``token`` (None: unknown or revoked); counts the request."""
    if not looks_like_key(token):
        return None
    digest = api_key_hash(token)
    remembered = _accepted.get(digest)
    if remembered is not None and remembered.until > time.monotonic():
        api_key = remembered.api_key
    else:
        api_key = await sync_to_async(api_key_authenticate)(token)
        if api_key is None:
            return None
        ttl = settings.RAG_API_KEY_CACHE_SECONDS
        with _accepted_lock:
            _accepted[digest] = _Remembered(api_key, time.monotonic() + ttl)
    if settings.RAG_API_RATE_LIMIT > 0:
        wait = await sync_to_async(rate_limit_wait, thread_sensitive=False, executor=_counting)(
            api_key.prefix
        )
        if wait is not None:
            raise RateLimited(wait)
    return api_key


class ApiKeyAuth(HttpBearer):
    """``Authorization: Bearer <key>``: the request's ``auth`` is the :class:`ApiKey`."""

    async def __call__(self, request: HttpRequest) -> ApiKey | None:  # type: ignore[override]
        header = request.headers.get(self.header, "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return await authenticate(token.strip())

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        raise NotImplementedError("ApiKeyAuth is asynchronous: see __call__.")
