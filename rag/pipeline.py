"""One ingestion, stage by stage: parse -> chunk -> embed -> replace the document's chunks.

The stages overlap (see :meth:`IngestPipeline._pipeline`) and hold only a few pages and batches
at a time; ``rag.service.RAGService.ingest_pdf`` runs one :class:`IngestPipeline` per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rag import page_reader, store
from rag.aio import BusyClock, cancel_and_wait, end_queue_now
from rag.batching import Batch, BatchFormer
from rag.chunking import Chunker
from rag.config import RAGConfig
from rag.embedding import Embedder
from rag.errors import TransientIngestError
from rag.memory import release_free_memory
from rag.parsing import Page

logger = logging.getLogger(__name__)

# Pages read ahead of the consumer: enough to keep the embedder fed, few enough to bound memory.
PAGES_AHEAD = 8
# Embedding calls kept in flight by one ingestion (see IngestPipeline._pipeline).
EMBED_CALLS_IN_FLIGHT = 2
# Seconds between progress updates of one ingestion (each is a small UPDATE of its own).
PROGRESS_EVERY_SECONDS = 1.0
# Seconds between heartbeats when no progress is published; well under the Django side's
# RAG_HEARTBEAT_STALE_SECONDS, after which a silent ingestion counts as dead.
HEARTBEAT_EVERY_SECONDS = 20.0


@dataclass
class IngestResult:
    """What one ingestion did, JSON-friendly through :meth:`as_dict`."""

    document_id: int
    pages: int
    chunks: int
    embedder: str
    seconds: dict[str, float] = field(default_factory=dict)
    """Seconds per stage; ``ocr`` adds up each OCR'd page's rendering and recognition, so with
    pages recognised at once it can exceed the time reading took."""
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    """CPU seconds per stage: ``parse`` and ``ocr`` (the reader child's own), ``embed`` (the
    embedder's lanes, for a local embedder), ``chunk`` (on the event loop's thread) and
    ``loop`` (the rest of that thread: opening, taking pages from the child, writing)."""
    failed_pages: list[int] = field(default_factory=list)
    page_sources: dict[str, int] = field(default_factory=dict)
    """Pages whose text came from each reader (``pypdf``, ``pdfium``, ``ocr``)."""
    page_readers: dict[str, str] = field(default_factory=dict)
    """Which pages each reader other than pypdf read, as ranges (``{"ocr": "3-5,9"}``)."""
    skipped_pages: list[str] = field(default_factory=list)
    """Pages OCR could not read, with the reason."""

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (the Celery task's return value stores it as JSON)."""
        return asdict(self)


class _Stopwatch:
    """Accumulates seconds, and CPU seconds where they can be measured, per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def add(self, stage: str, started: float) -> None:
        self.add_seconds(stage, time.perf_counter() - started)

    def add_seconds(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def add_cpu(self, stage: str, seconds: float) -> None:
        self.cpu[stage] = self.cpu.get(stage, 0.0) + seconds

    def rounded(self) -> dict[str, float]:
        return {stage: round(value, 4) for stage, value in self.seconds.items()}

    def rounded_cpu(self) -> dict[str, float]:
        return {stage: round(value, 4) for stage, value in self.cpu.items()}


class _Progress:
    """Publishes pages done of total on the document row, at most once per interval, and the
    heartbeat that shows the ingestion is alive (with each publication, and on a timer)."""

    def __init__(self, engine: AsyncEngine, document_id: int) -> None:
        self.engine = engine
        self.document_id = document_id
        self.page_count: int | None = None  # known once the PDF is open
        self.pages_done = 0
        self.published_at = float("-inf")
        # One publication at a time: they share the pool's second connection.
        self._publishing = asyncio.Lock()

    async def maybe_publish(self, pages_done: int) -> None:
        self.pages_done = pages_done
        if time.monotonic() - self.published_at >= PROGRESS_EVERY_SECONDS:
            await self.publish(pages_done)

    async def publish(self, pages_done: int) -> None:
        self.pages_done = pages_done
        async with self._publishing:
            self.published_at = time.monotonic()
            await store.record_progress(
                self.engine,
                document_id=self.document_id,
                pages_done=pages_done,
                page_count=self.page_count,
            )

    async def beat(self) -> None:
        """Publish every HEARTBEAT_EVERY_SECONDS until cancelled, so a slow page or a long
        embedding call still shows a live ingestion. A failed beat is logged and the next one
        tried: a lost database is the ingestion's own error to report."""
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)
            try:
                await self.publish(self.pages_done)
            except DBAPIError as exc:
                logger.warning("heartbeat not written document_id=%d: %s", self.document_id, exc)


class IngestPipeline:
    """The stages of one ingestion, with the service's configuration, engine and embedder."""

    def __init__(self, config: RAGConfig, *, engine: AsyncEngine, embedder: Embedder) -> None:
        self.config = config
        self.engine = engine
        self.embedder = embedder

    async def ingest_pdf(self, *, document_id: int, stream: BinaryIO) -> IngestResult:
        """Read, chunk and embed the PDF in ``stream``; replace the document's chunks.

        The stages overlap: a child process (rag.page_reader) reads the next pages, within its
        time budget, and the loop chunks them while the model embeds the current batches in its
        threads, and the previous batch is written meanwhile, inside the transaction that swaps
        the old chunks for the new ones. Only a few pages and batches are held at a time,
        whatever the length of the document.

        Raises a :class:`~rag.errors.PermanentIngestError` subclass for bad input (the
        transaction rolls back: the previous chunks stay) and
        :class:`~rag.errors.TransientIngestError` when the database fails.
        """
        progress = _Progress(self.engine, document_id)
        heartbeat = asyncio.create_task(progress.beat(), name="heartbeat")
        try:
            return await self._ingest(document_id, stream, progress)
        finally:
            await cancel_and_wait([heartbeat])
            release_free_memory(force=True)  # the batches' memory, once the document is done

    async def _ingest(
        self, document_id: int, stream: BinaryIO, progress: _Progress
    ) -> IngestResult:
        watch = _Stopwatch()
        total_started = time.perf_counter()
        # This coroutine runs on the loop's thread: its CPU seconds are the loop's.
        loop_cpu_started = time.thread_time()
        # The lanes' counter is per embedder (per process); one ingestion runs at a time there.
        embed_cpu_started = getattr(self.embedder, "cpu_seconds", None)
        try:
            async with self.engine.connect() as conn:
                await store.check_dimensions(
                    conn, embedder=self.embedder.name, dimensions=self.embedder.dimensions
                )
            started = time.perf_counter()
            data = await asyncio.to_thread(stream.read)
            # Every document is read in a child process, which a budget can stop mid-page.
            async with page_reader.open_pdf(data, config=self.config) as pdf:
                del data
                watch.add("parse", started)
                progress.page_count = pdf.page_count
                await progress.publish(0)
                async with self.engine.begin() as conn:
                    await store.begin_replacement(conn, document_id=document_id)
                    chunk_count = await self._pipeline(conn, document_id, pdf, watch, progress)
                    if not chunk_count:
                        raise pdf.no_text_error()
                    await store.finish_replacement(
                        conn,
                        document_id=document_id,
                        page_count=pdf.page_count,
                        chunk_count=chunk_count,
                        embedder=self.embedder.name,
                        page_sources=pdf.stats.page_sources,
                        page_readers=pdf.stats.page_readers,
                    )
                if pdf.ocr_pages:
                    watch.add_seconds("ocr", pdf.ocr_seconds)
                watch.add_cpu("parse", pdf.cpu_seconds)
                if pdf.ocr_pages:
                    watch.add_cpu("ocr", pdf.ocr_cpu_seconds)
        except DBAPIError as exc:
            # Only a lost or refused connection is worth retrying; a failing statement is a bug.
            if not (
                exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
            ):
                raise
            raise TransientIngestError(f"Database unavailable: {exc.orig or exc}") from exc
        watch.add("total", total_started)
        if embed_cpu_started is not None:
            watch.add_cpu("embed", self.embedder.cpu_seconds - embed_cpu_started)
        loop_cpu = time.thread_time() - loop_cpu_started
        watch.add_cpu("loop", loop_cpu - watch.cpu.get("chunk", 0.0))
        result = IngestResult(
            document_id=document_id,
            pages=pdf.page_count,
            chunks=chunk_count,
            embedder=self.embedder.name,
            seconds=watch.rounded(),
            cpu_seconds=watch.rounded_cpu(),
            failed_pages=list(pdf.stats.failed_pages),
            page_sources=dict(pdf.stats.page_sources),
            page_readers=dict(pdf.stats.page_readers),
            skipped_pages=list(pdf.stats.skipped_pages),
        )
        logger.info(
            "ingested document_id=%d pages=%d chunks=%d failed_pages=%d page_sources=%s "
            "page_readers=%s seconds=%s cpu_seconds=%s",
            document_id,
            result.pages,
            result.chunks,
            len(result.failed_pages),
            result.page_sources,
            result.page_readers,
            result.seconds,
            result.cpu_seconds,
        )
        return result

    async def _pipeline(
        self,
        conn: AsyncConnection,
        document_id: int,
        pdf: page_reader.PageReader,
        watch: _Stopwatch,
        progress: _Progress,
    ) -> int:
        """Parse (child process) -> chunk (loop) -> embed (threads) -> write (loop), all
        overlapped; return the number of chunks written.

        Two embedding calls are kept in flight, so the embedder's threads find the next batch
        queued when they finish one, while the loop chunks the batch after it and writes the
        one before. ``embed`` is the time the embedder was busy, ``wait`` the time it was not.
        """
        pages: asyncio.Queue[Page | None] = asyncio.Queue(maxsize=PAGES_AHEAD)
        batches: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=1)
        reader = asyncio.create_task(self._read_pages(pdf, pages, watch), name="read pages")
        chunking = asyncio.create_task(self._chunk_batches(pages, batches, watch), name="chunk")
        busy = BusyClock()
        in_flight: deque[tuple[Batch, asyncio.Task[list[list[float]]]]] = deque()
        writing: asyncio.Task[None] | None = None
        written = 0
        started = time.perf_counter()

        async def write_oldest() -> None:
            nonlocal writing, written
            batch, embedding = in_flight[0]
            chunks = batch.chunks
            vectors = await embedding
            in_flight.popleft()  # only now: until it is done, the clean-up below must see it
            if writing is not None:
                await writing  # one write in flight: the connection serves one statement
            rows = [
                store.EmbeddedChunk(chunk=chunk, embedding=vector)
                for chunk, vector in zip(chunks, vectors, strict=True)
            ]
            writing = asyncio.create_task(self._write(conn, document_id, rows, watch), name="write")
            written += len(rows)
            if batch.pages_done is not None:
                await progress.maybe_publish(batch.pages_done)

        try:
            while (batch := await batches.get()) is not None:
                texts = [chunk.text for chunk in batch.chunks]
                embed_call = asyncio.create_task(
                    busy.track(self.embedder.embed, texts), name="embed"
                )
                in_flight.append((batch, embed_call))
                if len(in_flight) >= EMBED_CALLS_IN_FLIGHT:
                    await write_oldest()
            while in_flight:
                await write_oldest()
            if writing is not None:
                await writing
            await chunking
            await reader  # re-raise anything unexpected from the reader
        finally:
            # Those still running are stopped (the reader kills its child); the error that ends
            # the pipeline is the one propagating here, theirs only follow from it.
            await cancel_and_wait(
                task
                for task in (reader, chunking, writing, *(task for _, task in in_flight))
                if task is not None
            )
        watch.add_seconds("embed", busy.seconds)
        watch.add_seconds("wait", time.perf_counter() - started - busy.seconds)
        return written

    async def _chunk_batches(
        self,
        pages: asyncio.Queue[Page | None],
        batches: asyncio.Queue[Batch | None],
        watch: _Stopwatch,
    ) -> None:
        """Chunk pages as they come; hand over batches of the embedder's batch size, of chunks
        of similar length (rag.batching); None last."""
        chunker = Chunker(
            self.embedder.tokenizer,
            chunk_tokens=self.config.chunk_tokens,
            overlap_tokens=self.config.chunk_overlap_tokens,
            max_chars=self.config.chunk_max_chars,
        )
        former = BatchFormer(self.config.embedder.batch_size)
        try:
            while (page := await pages.get()) is not None:
                started, cpu_started = time.perf_counter(), time.thread_time()
                ready = former.add(chunker.add_page(page))
                watch.add("chunk", started)
                watch.add_cpu("chunk", time.thread_time() - cpu_started)
                for batch in ready:
                    await batches.put(batch)
            for batch in former.add(chunker.finish()) + former.finish():
                await batches.put(batch)
        except BaseException:
            end_queue_now(batches)
            raise
        await batches.put(None)

    async def _read_pages(
        self,
        pdf: page_reader.PageReader,
        pages: asyncio.Queue[Page | None],
        watch: _Stopwatch,
    ) -> None:
        """Read pages one by one, a few ahead of the consumer (bounded queue)."""
        try:
            async with contextlib.aclosing(pdf.pages()) as stream:
                async for page, seconds in stream:
                    watch.add_seconds("parse", seconds)
                    await pages.put(page)
        except BaseException:
            end_queue_now(pages)
            raise
        await pages.put(None)

    async def _write(
        self,
        conn: AsyncConnection,
        document_id: int,
        rows: list[store.EmbeddedChunk],
        watch: _Stopwatch,
    ) -> None:
        started = time.perf_counter()
        await store.copy_chunks(
            conn, document_id=document_id, chunks=rows, embedder=self.embedder.name
        )
        watch.add("write", started)
