"""RAGService: the async entry points, ingest one PDF and search, on a loop's shared engine.

Ingestion runs in ``rag.pipeline``; the search queries are in ``rag.search``.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import BinaryIO

from sqlalchemy.ext.asyncio import AsyncEngine

from rag import bridge, store
from rag.config import RAGConfig
from rag.embedder_factory import get_embedder
from rag.embedding import Embedder
from rag.pipeline import IngestPipeline, IngestResult
from rag.search import (
    NO_FILTERS,
    SearchFilters,
    SearchHit,
    reciprocal_rank_fusion,
    search_text_tiers,
    search_vector,
)

SEARCH_MODES = ("hybrid", "vector", "text")
# Weight, in hybrid fusion, of full-text hits that contain every word of the query.
EVERY_WORD_WEIGHT = 2.0


class RAGService:
    """The async service; one per event loop (it shares that loop's engine)."""

    def __init__(self, config: RAGConfig, *, engine: AsyncEngine, embedder: Embedder) -> None:
        self.config = config
        self.engine = engine
        self.embedder = embedder

    async def ingest_pdf(self, *, document_id: int, stream: BinaryIO) -> IngestResult:
        """Read, chunk and embed the PDF in ``stream``; replace the document's chunks (see
        :meth:`rag.pipeline.IngestPipeline.ingest_pdf`)."""
        pipeline = IngestPipeline(self.config, engine=self.engine, embedder=self.embedder)
        return await pipeline.ingest_pdf(document_id=document_id, stream=stream)

    async def search(
        self,
        query: str,
        k: int = 5,
        mode: str = "hybrid",
        filters: SearchFilters = NO_FILTERS,
    ) -> list[SearchHit]:
        """The ``k`` chunks that best answer ``query``, with their documents and pages.

        ``vector``: cosine similarity of embeddings (HNSW index); ``text``: PostgreSQL full-text
        ranking; ``hybrid`` (default): both, fused by reciprocal rank fusion. Only chunks of
        documents that pass ``filters`` are returned.
        """
        if mode not in SEARCH_MODES:
            raise ValueError(f"Unknown search mode {mode!r}: use one of {', '.join(SEARCH_MODES)}.")
        query = query.strip()
        if not query or k < 1:
            return []
        # Fusion needs more than k candidates from each side to rank well.
        depth = k if mode != "hybrid" else max(4 * k, 20)
        vector_hits: list[SearchHit] = []
        every_word: list[SearchHit] = []
        any_word: list[SearchHit] = []
        if mode in ("vector", "hybrid"):
            (embedding,) = await self.embedder.embed([query])
            vector_hits = await search_vector(
                self.engine,
                embedding,
                k=depth,
                ef_search=max(self.config.hnsw_ef_search, depth),
                filters=filters,
                text_chars=self.config.hit_text_chars,
            )
        if mode in ("text", "hybrid"):
            every_word, any_word = await search_text_tiers(
                self.engine,
                query,
                k=depth,
                filters=filters,
                min_hits=k,
                text_chars=self.config.hit_text_chars,
            )
        if mode == "vector":
            return vector_hits
        if mode == "text":
            return (every_word + any_word)[:k]
        # A chunk holding every word of the query is strong evidence: it counts double.
        return reciprocal_rank_fusion(
            [vector_hits, every_word, any_word], k=k, weights=[1.0, EVERY_WORD_WEIGHT, 1.0]
        )


def engine_for(config: RAGConfig) -> AsyncEngine:
    """The async engine of the running bridge loop for ``config`` (created on first use)."""
    return bridge.loop_resource(
        ("engine", config.database_url, config.pool_size),
        lambda: store.create_engine(config.database_url, pool_size=config.pool_size),
        close=lambda engine: engine.dispose(),
        forget_after_fork=lambda engine: engine.sync_engine.dispose(close=False),
    )


def service_for(config: RAGConfig) -> RAGService:
    """The service for ``config`` on the running bridge loop (engine shared per loop)."""
    return RAGService(config, engine=engine_for(config), embedder=get_embedder(config.embedder))


# Engines of event loops this package does not own (an ASGI server's loop): one per loop and
# configuration, forgotten with the loop. An engine's pool is bound to the loop that made it.
_engines_by_loop: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, int], AsyncEngine]
] = weakref.WeakKeyDictionary()


def service_on_running_loop(config: RAGConfig) -> RAGService:
    """The service for ``config`` on the running event loop, whoever runs it.

    For async callers with a loop of their own, such as an ASGI server's: the service is
    awaited right there, with no thread hop. Inside ``rag.bridge.run`` it is the bridge's
    service. The engine lives as long as the loop (dispose it earlier with
    :func:`close_running_loop_engines`).
    """
    if bridge.owns_running_loop():
        return service_for(config)
    loop = asyncio.get_running_loop()
    engines = _engines_by_loop.setdefault(loop, {})
    key = (config.database_url, config.pool_size)
    engine = engines.get(key)
    if engine is None:
        engine = engines[key] = store.create_engine(config.database_url, pool_size=config.pool_size)
    return RAGService(config, engine=engine, embedder=get_embedder(config.embedder))


async def close_running_loop_engines() -> None:
    """Dispose the engines :func:`service_on_running_loop` made for the running loop (a loop
    that is about to end: a test's, or a server's at shutdown)."""
    engines = _engines_by_loop.pop(asyncio.get_running_loop(), {})
    for engine in engines.values():
        await engine.dispose()
