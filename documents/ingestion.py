"""The one bridge between Django and the ``rag`` package.

Builds the service's configuration from Django settings and the live database connection,
opens the document's file through Django's storage API, and runs the async service through
``rag.bridge`` (one long-lived event loop per worker process or thread). No other module of
the Django side imports ``rag``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, BinaryIO

from django.conf import settings
from django.db import connections

from fca_site.database import database_url
from rag import bridge, store
from rag.config import EmbedderConfig, RAGConfig
from rag.embedder_factory import get_embedder
from rag.errors import (
    DocumentMissingError,
    IngestError,
    PermanentIngestError,
    ReaderCrashedError,
    StoredFileMissingError,
    TransientIngestError,
)
from rag.ocr import language_problem
from rag.page_sources import OCR_MODES
from rag.parsing import HEADER_SEARCH_BYTES as PDF_HEADER_BYTES
from rag.parsing import looks_like_pdf
from rag.service import SEARCH_MODES, service_for

if TYPE_CHECKING:
    from documents.models import Document

__all__ = [
    "PDF_HEADER_BYTES",
    "SEARCH_MODES",
    "DocumentMissingError",
    "IngestError",
    "PermanentIngestError",
    "ReaderCrashedError",
    "TransientIngestError",
    "current_embedder",
    "embedder_mismatch",
    "ocr_mode_problem",
    "ocr_problem",
    "ingest_document",
    "looks_like_pdf",
    "rag_config",
    "search",
    "shutdown",
]


def async_database_url(alias: str = "default") -> str:
    """The SQLAlchemy URL (async psycopg driver) of a Django database connection.

    Read from the live connection settings, not from ``settings.DATABASES``, so a test run (which
    renames the database to ``test_...``) and the worker it starts point at the same database.
    """
    return database_url(connections[alias].settings_dict, driver="postgresql+psycopg")


def rag_config() -> RAGConfig:
    """The service configuration, from Django settings."""
    return RAGConfig(
        database_url=async_database_url(),
        embedder=EmbedderConfig(
            kind=settings.RAG_EMBEDDER,
            model_path=settings.RAG_LOCAL_MODEL_PATH,
            dimensions=settings.RAG_EMBEDDING_DIMENSIONS,
            batch_size=settings.RAG_EMBED_BATCH_SIZE,
            torch_threads=settings.RAG_TORCH_THREADS,
            local_runtime=settings.RAG_LOCAL_RUNTIME,
            onnx_cache_dir=settings.RAG_ONNX_CACHE_DIR,
            openai_base_url=settings.RAG_OPENAI_BASE_URL,
            openai_model=settings.RAG_OPENAI_MODEL,
            openai_api_key=settings.RAG_OPENAI_API_KEY,
            openai_concurrency=settings.RAG_OPENAI_CONCURRENCY,
            openai_timeout=settings.RAG_OPENAI_TIMEOUT,
            openai_max_retries=settings.RAG_OPENAI_MAX_RETRIES,
            openai_max_tokens=settings.RAG_OPENAI_MAX_TOKENS,
            openai_send_dimensions=settings.RAG_OPENAI_SEND_DIMENSIONS,
        ),
        chunk_tokens=settings.RAG_CHUNK_TOKENS,
        chunk_overlap_tokens=settings.RAG_CHUNK_OVERLAP_TOKENS,
        chunk_max_chars=settings.RAG_CHUNK_MAX_CHARS,
        pool_size=settings.RAG_DB_POOL_SIZE,
        max_pages=settings.RAG_MAX_PAGES,
        max_page_chars=settings.RAG_MAX_PAGE_CHARS,
        parse_page_seconds=settings.RAG_PARSE_PAGE_SECONDS,
        parse_base_seconds=settings.RAG_PARSE_BASE_SECONDS,
        parse_seconds_per_page=settings.RAG_PARSE_SECONDS_PER_PAGE,
        ocr=settings.RAG_OCR,
        ocr_languages=settings.RAG_OCR_LANGUAGES,
        ocr_tessdata=settings.RAG_OCR_TESSDATA,
        ocr_dpi=settings.RAG_OCR_DPI,
        ocr_max_pixels=settings.RAG_OCR_MAX_PIXELS,
        ocr_page_seconds=settings.RAG_OCR_PAGE_SECONDS,
        ocr_seconds_per_page=settings.RAG_OCR_SECONDS_PER_PAGE,
        ocr_threads=settings.RAG_OCR_THREADS,
        hnsw_ef_search=settings.RAG_HNSW_EF_SEARCH,
    )


async def _ingest(config: RAGConfig, document_id: int, stream: BinaryIO) -> dict[str, Any]:
    result = await service_for(config).ingest_pdf(document_id=document_id, stream=stream)
    return result.as_dict()


def ingest_document(document: Document) -> dict[str, Any]:
    """Ingest a document's stored file; return the service's JSON-friendly result.

    Raises the ``rag.errors`` types: permanent for bad input, transient for the environment.
    """
    config = rag_config()
    try:
        stream = document.file.open("rb")
    except FileNotFoundError as exc:
        raise StoredFileMissingError(
            f"The stored file {document.file.name!r} is missing from storage: check that this "
            "worker sees the same storage as the web process (DJANGO_MEDIA_ROOT)."
        ) from exc
    with stream:
        return bridge.run(_ingest(config, document.pk, stream))


async def _search(
    config: RAGConfig, query: str, k: int, mode: str, document_ids: Sequence[int] | None
) -> list[dict[str, Any]]:
    hits = await service_for(config).search(query, k=k, mode=mode, document_ids=document_ids)
    return [asdict(hit) for hit in hits]


def search(
    query: str, *, k: int = 5, mode: str = "hybrid", document_ids: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """Search the chunks; each hit is a dict with chunk_id, document_id, title, page_start,
    page_end, score and text. Safe from any thread (web requests share one loop per process).
    """
    return bridge.run_threadsafe(_search(rag_config(), query, k, mode, document_ids))


def current_embedder() -> tuple[str, int]:
    """Name and dimension of the configured embedder (no model is loaded to find out)."""
    embedder = get_embedder(rag_config().embedder)
    return embedder.name, embedder.dimensions


def embedder_mismatch() -> str | None:
    """Why the configured embedder's vectors do not fit ``documents_chunk.embedding``, or None.

    The same rule and sentence as the service's own check before each ingestion, asked over
    Django's connection: system checks and a worker's start-up run before any event loop.
    Raises Django's ``DatabaseError`` when the database cannot be asked.
    """
    with connections["default"].cursor() as cursor:
        cursor.execute(store.VECTOR_DIMENSIONS_SQL)
        row = cursor.fetchone()
    name, dimensions = current_embedder()
    return store.dimension_mismatch(row and row[0], embedder=name, dimensions=dimensions)


def ocr_mode_problem() -> str | None:
    """Why ``RAG_OCR`` is not a mode, or None."""
    if settings.RAG_OCR not in OCR_MODES:
        return f"RAG_OCR={settings.RAG_OCR!r}: expected one of {', '.join(OCR_MODES)}."
    return None


def ocr_problem() -> str | None:
    """Why OCR cannot run as configured (a mode that does not exist, a language not
    installed), or None. Asked when a worker starts: never discovered mid-task."""
    problem = ocr_mode_problem()
    if problem:
        return problem
    if settings.RAG_OCR == "off":
        return None
    return language_problem(settings.RAG_OCR_LANGUAGES, settings.RAG_OCR_TESSDATA)


def shutdown() -> None:
    """Close the bridge's event loops and engines (worker process shutdown)."""
    bridge.shutdown()
