"""What the resilience, ingestion-lock and recovery tests share: documents queued through the
intake, the chunk count an undisturbed ingestion makes, and waits on the database's own state."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection
from django_celery_results.models import TaskResult

from documents import intake, services
from documents.ingestion import rag_config
from documents.models import Document
from rag import page_reader
from rag.chunking import chunk_pages
from rag.config import EmbedderConfig
from rag.embedding import HashEmbedder
from rag.parsing import Page
from rag.store import DOCUMENT_LOCK_NAMESPACE
from tests.waiting import wait_until

BOOK = "long-freeculture-book-352pages.pdf"
# Files pypdf cannot read (or reads no text from) and PDFium can.
PDFIUM_READS = {"broken-no-startxref-recoverable.pdf", "broken-page-streams-16pages.pdf"}


def add_document(path: Path | None = None, *, data: bytes | None = None, name: str = "") -> int:
    """Create a document from a file or bytes and queue it (published at once: autocommit)."""
    data = data if data is not None else path.read_bytes()
    outcome = intake.document_create(
        file=io.BytesIO(data), name=name or (path.name if path else "doc.pdf"), size=len(data)
    )
    services.document_ingest_enqueue(document_ids=[outcome.document.pk])
    return outcome.document.pk


def expected_chunk_count(path: Path) -> int:
    """What an undisturbed ingestion produces: the worker's page reader (pypdf, PDFium, OCR as
    configured) and the worker's tokenizer and sizes."""
    config = rag_config()

    async def read_pages() -> list[Page]:
        async with page_reader.open_pdf(path.read_bytes(), config=config) as reader:
            return [page async for page, _seconds in reader.pages()]

    chunks = chunk_pages(
        asyncio.run(read_pages()),
        HashEmbedder(EmbedderConfig(kind="hash")).tokenizer,
        chunk_tokens=config.chunk_tokens,
        overlap_tokens=config.chunk_overlap_tokens,
        max_chars=config.chunk_max_chars,
    )
    return sum(1 for _ in chunks)


def wait_for_status(document_id: int, status: str, timeout: float = 60.0) -> None:
    wait_until(
        lambda: Document.objects.get(pk=document_id).status == status,
        f"document {document_id} reaching {status}",
        timeout,
    )


@contextmanager
def chunk_replacement_held(document_id: int) -> Iterator[Callable[[], bool]]:
    """Hold the lock rag takes to replace a document's chunks: an ingestion of it runs up to
    that point (PROCESSING, heartbeat, pages read) and waits there until the block ends.
    Yields a probe: is an ingestion waiting for it now?"""
    key = [DOCUMENT_LOCK_NAMESPACE, document_id]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", key)

    def waited_on() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND classid = %s AND objid = %s AND objsubid = 2",
                key,
            )
            return cursor.fetchone()[0] > 0

    try:
        yield waited_on
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)


def task_result(task_id: str) -> dict | None:
    """The stored result of a finished task (None until it finished)."""
    record = TaskResult.objects.filter(task_id=task_id, status="SUCCESS").first()
    return json.loads(record.result) if record else None


def assert_one_clean_set(document: Document, expected: int) -> None:
    assert document.status == Document.Status.READY, document.error_message
    ordinals = list(document.chunks.order_by("ordinal").values_list("ordinal", flat=True))
    assert ordinals == list(range(expected))
    assert document.chunk_count == expected


def row_update_waiting() -> bool:
    """Is another connection to the test database waiting for a lock (the row we hold)?"""
    with connection.cursor() as cursor:
        # Inside a transaction PostgreSQL keeps its first view of pg_stat_activity: drop it.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        return any(query.startswith("UPDATE") for (query,) in cursor.fetchall())
