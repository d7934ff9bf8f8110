"""An embedder for any OpenAI-compatible ``/v1/embeddings`` endpoint.

Batched requests, a bounded number in flight, timeouts, retries on 429, 5xx and network errors
with backoff that honours ``Retry-After``, and a clear permanent error on any other 4xx. The
HTTP client belongs to the bridge's event loop (one per worker process or thread) and is closed
with it.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from collections.abc import Sequence
from typing import Any

import httpx

from rag import bridge
from rag.config import EmbedderConfig
from rag.errors import EmbedderMismatchError, PermanentIngestError, TransientIngestError
from rag.tokens import SimpleTokenizer

logger = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
# A word is rarely more than two tokens of a BPE tokenizer: count words at half the limit.
WORDS_PER_TOKEN_LIMIT = 0.5


class EmbedderRequestError(PermanentIngestError):
    """The embeddings endpoint refused the request (bad key, model or input)."""

    code = "embedder_rejected"


class OpenAIEmbedder:
    """Embeddings from a remote OpenAI-compatible service."""

    def __init__(self, config: EmbedderConfig) -> None:
        if not config.openai_base_url:
            raise ValueError("RAG_OPENAI_BASE_URL must be set for RAG_EMBEDDER=openai.")
        self.config = config
        self.base_url = config.openai_base_url.rstrip("/")
        self.dimensions = config.dimensions
        self.name = f"openai/{config.openai_model}"
        # The remote tokenizer is unknown here: size chunks in words, at a margin below its limit.
        self.tokenizer = SimpleTokenizer(
            max_tokens=max(16, int(config.openai_max_tokens * WORDS_PER_TOKEN_LIMIT))
        )

    def _new_client(self) -> httpx.AsyncClient:
        headers = {"Content-Type": "application/json"}
        if self.config.openai_api_key:
            headers["Authorization"] = f"Bearer {self.config.openai_api_key}"
        return httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=self.config.openai_timeout
        )

    def _client(self) -> httpx.AsyncClient:
        return bridge.loop_resource(
            ("openai-client", self.base_url, self.config.openai_api_key),
            self._new_client,
            close=lambda client: client.aclose(),
        )

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        size = max(1, self.config.batch_size)
        batches = [list(texts[i : i + size]) for i in range(0, len(texts), size)]
        limit = asyncio.Semaphore(max(1, self.config.openai_concurrency))
        if bridge.owns_running_loop():
            client = self._client()
            results = await asyncio.gather(*(self._post(client, b, limit) for b in batches))
        else:
            async with self._new_client() as client:
                results = await asyncio.gather(*(self._post(client, b, limit) for b in batches))
        return [vector for batch in results for vector in batch]

    async def _post(
        self, client: httpx.AsyncClient, texts: list[str], limit: asyncio.Semaphore
    ) -> list[list[float]]:
        body: dict[str, Any] = {"model": self.config.openai_model, "input": texts}
        if self.config.openai_send_dimensions:
            body["dimensions"] = self.dimensions
        attempt = 0
        while True:
            async with limit:
                try:
                    response = await client.post("/embeddings", json=body)
                except httpx.TransportError as exc:
                    response, failure = None, f"{type(exc).__name__}: {exc}"
                else:
                    failure = f"HTTP {response.status_code}"
            if response is not None and response.status_code < 400:
                return self._vectors(response, len(texts))
            if response is not None and not _retryable(response.status_code):
                raise EmbedderRequestError(
                    f"The embeddings endpoint {self.base_url} refused the request "
                    f"(HTTP {response.status_code}): {response.text[:300]}"
                )
            if attempt >= self.config.openai_max_retries:
                raise TransientIngestError(
                    f"The embeddings endpoint {self.base_url} kept failing ({failure}) "
                    f"after {attempt} retries."
                )
            delay = _retry_after(response) if response is not None else None
            if delay is None:
                delay = random.uniform(0, min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2**attempt))
            logger.warning("embeddings retry=%d in %.2fs after %s", attempt + 1, delay, failure)
            await asyncio.sleep(delay)
            attempt += 1

    def _vectors(self, response: httpx.Response, expected: int) -> list[list[float]]:
        data = sorted(response.json()["data"], key=lambda item: item["index"])
        if len(data) != expected:
            raise TransientIngestError(
                f"The embeddings endpoint returned {len(data)} vectors for {expected} inputs."
            )
        vectors = []
        for item in data:
            vector = [float(v) for v in item["embedding"]]
            if len(vector) != self.dimensions:
                raise EmbedderMismatchError(
                    f"The model {self.config.openai_model} returned {len(vector)}-dimensional "
                    f"vectors; the database column holds {self.dimensions}. Set "
                    "RAG_EMBEDDING_DIMENSIONS to match on a new database, or choose a model of "
                    f"{self.dimensions} dimensions (RAG_OPENAI_SEND_DIMENSIONS=1 if it can "
                    "shorten its vectors)."
                )
            norm = math.sqrt(sum(v * v for v in vector)) or 1.0
            vectors.append([v / norm for v in vector])
        return vectors


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), if any."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())
