"""Bearer API keys and the per-key rate limit.

The count lives in Redis through Django's cache (alias ``api_rate``), not in the database: it
changes on every request, and an atomic INCR with an expiry costs Redis next to nothing, while
a database row would take a write and a row lock per request. Every worker process shares the
count. Fixed windows of RAG_API_RATE_WINDOW_SECONDS: simple, and Retry-After is exact.
"""

from __future__ import annotations

import logging
import math
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest
from ninja.security import HttpBearer
from redis.exceptions import RedisError

from documents.api_keys import api_key_authenticate
from documents.models import ApiKey

logger = logging.getLogger(__name__)


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


def _authenticate(token: str) -> ApiKey | None:
    api_key = api_key_authenticate(token)
    if api_key is not None:
        wait = rate_limit_wait(api_key.prefix)
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
        # One thread hop for the lookup, the last-used write and the count.
        return await sync_to_async(_authenticate)(token.strip())

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        return _authenticate(token)
