"""RAGService: ingest one PDF (parse -> chunk -> embed -> replace chunks) on an async engine."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from rag import bridge, store
from rag.chunking import Chunk, Chunker
from rag.config import RAGConfig
from rag.embedding import Embedder, get_embedder
from rag.errors import TransientIngestError
from rag.parsing import PdfDocument

logger = logging.getLogger(__name__)


@dataclass
class IngestResult:
    """What one ingestion did, JSON-friendly through :meth:`as_dict`."""

    document_id: int
    pages: int
    chunks: int
    embedder: str
    seconds: dict[str, float] = field(default_factory=dict)
    failed_pages: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (the Celery task's return value stores it as JSON)."""
        return asdict(self)


class _Stopwatch:
    """Accumulates seconds per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, started: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started

    def rounded(self) -> dict[str, float]:
        return {stage: round(value, 4) for stage, value in self.seconds.items()}


SEARCH_MODES = ("hybrid", "vector", "text")


class RAGService:
    """The async service; one per event loop (it shares that loop's engine)."""

    def __init__(self, config: RAGConfig, *, engine: AsyncEngine, embedder: Embedder) -> None:
        self.config = config
        self.engine = engine
        self.embedder = embedder

    async def ingest_pdf(self, *, document_id: int, stream: BinaryIO) -> IngestResult:
        """Read, chunk and embed the PDF in ``stream``; replace the document's chunks.

        Raises a :class:`~rag.errors.PermanentIngestError` subclass for bad input (nothing is
        written, the previous chunks stay) and :class:`~rag.errors.TransientIngestError` when
        the database fails.
        """
        watch = _Stopwatch()
        total_started = time.perf_counter()
        try:
            async with self.engine.connect() as conn:
                await store.check_dimensions(
                    conn, embedder=self.embedder.name, dimensions=self.embedder.dimensions
                )
            started = time.perf_counter()
            # pypdf is synchronous and CPU-bound: parse in a thread, keep the loop responsive.
            pdf = await asyncio.to_thread(PdfDocument, stream, max_pages=self.config.max_pages)
            watch.add("parse", started)
            embedded = await self._chunk_and_embed(pdf, watch)
            if not embedded:
                raise pdf.no_text_error()
            started = time.perf_counter()
            await store.replace_chunks(
                self.engine,
                document_id=document_id,
                chunks=embedded,
                page_count=pdf.page_count,
                embedder=self.embedder.name,
            )
            watch.add("write", started)
        except DBAPIError as exc:
            # Only a lost or refused connection is worth retrying; a failing statement is a bug.
            if not (
                exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
            ):
                raise
            raise TransientIngestError(f"Database unavailable: {exc.orig or exc}") from exc
        watch.add("total", total_started)
        result = IngestResult(
            document_id=document_id,
            pages=pdf.page_count,
            chunks=len(embedded),
            embedder=self.embedder.name,
            seconds=watch.rounded(),
            failed_pages=list(pdf.stats.failed_pages),
        )
        logger.info(
            "ingested document_id=%d pages=%d chunks=%d failed_pages=%d seconds=%s",
            document_id,
            result.pages,
            result.chunks,
            len(result.failed_pages),
            result.seconds,
        )
        return result

    async def search(
        self,
        query: str,
        k: int = 5,
        mode: str = "hybrid",
        document_ids: Sequence[int] | None = None,
    ) -> list[store.SearchHit]:
        """The ``k`` chunks that best answer ``query``, with their documents and pages.

        ``vector``: cosine similarity of embeddings (HNSW index); ``text``: PostgreSQL full-text
        ranking; ``hybrid`` (default): both, fused by reciprocal rank fusion.
        """
        if mode not in SEARCH_MODES:
            raise ValueError(f"Unknown search mode {mode!r}: use one of {', '.join(SEARCH_MODES)}.")
        query = query.strip()
        if not query or k < 1:
            return []
        # Fusion needs more than k candidates from each side to rank well.
        depth = k if mode != "hybrid" else max(4 * k, 20)
        vector_hits: list[store.SearchHit] = []
        text_hits: list[store.SearchHit] = []
        if mode in ("vector", "hybrid"):
            (embedding,) = await self.embedder.embed([query])
            vector_hits = await store.search_vector(
                self.engine,
                embedding,
                k=depth,
                ef_search=max(self.config.hnsw_ef_search, depth),
                document_ids=document_ids,
            )
        if mode in ("text", "hybrid"):
            text_hits = await store.search_text(
                self.engine, query, k=depth, document_ids=document_ids
            )
        if mode == "vector":
            return vector_hits
        if mode == "text":
            return text_hits
        return store.reciprocal_rank_fusion([vector_hits, text_hits], k=k)

    async def _chunk_and_embed(
        self, pdf: PdfDocument, watch: _Stopwatch
    ) -> list[store.EmbeddedChunk]:
        chunker = Chunker(
            self.embedder.tokenizer,
            chunk_tokens=self.config.chunk_tokens,
            overlap_tokens=self.config.chunk_overlap_tokens,
        )
        batch_size = max(1, self.config.embedder.batch_size)
        pending: list[Chunk] = []
        embedded: list[store.EmbeddedChunk] = []

        async def flush() -> None:
            started = time.perf_counter()
            vectors = await self.embedder.embed([chunk.text for chunk in pending])
            watch.add("embed", started)
            embedded.extend(
                store.EmbeddedChunk(chunk=chunk, embedding=vector)
                for chunk, vector in zip(pending, vectors, strict=True)
            )
            pending.clear()

        for index in range(pdf.page_count):
            started = time.perf_counter()
            page = await asyncio.to_thread(pdf.read_page, index)
            watch.add("parse", started)
            started = time.perf_counter()
            new_chunks = list(chunker.add_page(page))
            watch.add("chunk", started)
            pending.extend(new_chunks)
            if len(pending) >= batch_size:
                await flush()
        pending.extend(chunker.finish())
        if pending:
            await flush()
        return embedded


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
