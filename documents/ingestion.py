"""The one bridge between Django and the ``rag`` package.

Builds the service's configuration from Django settings and the live database connection,
opens the document's file through Django's storage API, and runs the async service through
``rag.bridge`` (one long-lived event loop per worker process or thread). No other module of
the Django side imports ``rag``.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any, BinaryIO

from django.conf import settings
from django.db import connections

from documents import storage
from documents.highlight import CHUNK_TEXT_CHARS
from documents.spool import SpoolUnusableError, spooled
from documents.storage import StorageFault
from fca_site.database import database_url
from rag import bridge, store
from rag.config import EmbedderConfig, RAGConfig
from rag.embedder_factory import get_embedder
from rag.errors import (
    DocumentMissingError,
    IngestError,
    PermanentIngestError,
    ReaderCrashedError,
    StorageDeniedError,
    StoredFileMissingError,
    TransientIngestError,
)
from rag.ocr import language_problem
from rag.page_sources import OCR_MODES
from rag.parsing import HEADER_SEARCH_BYTES as PDF_HEADER_BYTES
from rag.parsing import looks_like_pdf
from rag.pipeline import HEARTBEAT_EVERY_SECONDS as HEARTBEAT_EVERY_SECONDS  # for checks
from rag.search import NO_FILTERS, SearchFilters
from rag.service import (
    SEARCH_MODES,
    close_running_loop_engines,
    service_for,
    service_on_running_loop,
)
from rag.store import DOCUMENT_LOCK_NAMESPACE

if TYPE_CHECKING:
    from documents.models import Document

__all__ = [
    "DOCUMENT_LOCK_NAMESPACE",
    "PDF_HEADER_BYTES",
    "SEARCH_MODES",
    "SearchFilters",
    "close_running_loop_engines",
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
    "search_async",
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
        parse_max_seconds=settings.RAG_PARSE_MAX_SECONDS,
        ocr=settings.RAG_OCR,
        ocr_languages=settings.RAG_OCR_LANGUAGES,
        ocr_tessdata=settings.RAG_OCR_TESSDATA,
        ocr_dpi=settings.RAG_OCR_DPI,
        ocr_max_pixels=settings.RAG_OCR_MAX_PIXELS,
        ocr_page_seconds=settings.RAG_OCR_PAGE_SECONDS,
        ocr_seconds_per_page=settings.RAG_OCR_SECONDS_PER_PAGE,
        ocr_threads=settings.RAG_OCR_THREADS,
        hnsw_ef_search=settings.RAG_HNSW_EF_SEARCH,
        hit_text_chars=CHUNK_TEXT_CHARS,
    )


async def _ingest(config: RAGConfig, document_id: int, stream: BinaryIO) -> dict[str, Any]:
    result = await service_for(config).ingest_pdf(document_id=document_id, stream=stream)
    return result.as_dict()


def ingest_document(document: Document) -> dict[str, Any]:
    """Ingest a document's stored file; return the service's JSON-friendly result.

    Raises the ``rag.errors`` types: permanent for bad input, transient for the environment.
    """
    config = rag_config()
    with ExitStack() as stack:
        try:
            stream = stack.enter_context(spooled(document.file.storage, document.file.name))
        except SpoolUnusableError as exc:
            # This host's folder or disk, not the file nor its storage: worth retrying (a disk
            # that filled up empties, a folder gets fixed); the sentence says what to fix.
            raise TransientIngestError(str(exc)) from exc
        except Exception as exc:
            error = _storage_error(exc, document.file.name)
            if error is None:
                raise
            raise error from exc
        return bridge.run(_ingest(config, document.pk, stream))


def _storage_error(exc: Exception, name: str) -> IngestError | None:
    """The ``rag.errors`` type a storage failure means (see :func:`storage.storage_fault`)."""
    where = storage.storage_location()
    fault = storage.storage_fault(exc)
    if fault is StorageFault.MISSING:
        return StoredFileMissingError(
            f"The stored file {name!r} is missing from storage ({where}): check that this worker "
            "uses the same storage as the web process (DJANGO_STORAGE and its settings)."
        )
    if fault is StorageFault.DENIED:
        return StorageDeniedError(
            f"The {where} refused to hand over {name!r} ({exc}): check the credentials and the "
            "bucket's policy, then reingest."
        )
    if fault is StorageFault.TRANSIENT:
        return TransientIngestError(f"File storage unavailable ({where}): {exc}")
    return None


async def _search(
    config: RAGConfig,
    query: str,
    k: int,
    mode: str,
    filters: SearchFilters,
    *,
    on_running_loop: bool = False,
) -> list[dict[str, Any]]:
    service = service_on_running_loop(config) if on_running_loop else service_for(config)
    hits = await service.search(query, k=k, mode=mode, filters=filters)
    return [asdict(hit) for hit in hits]


def search(
    query: str, *, k: int = 5, mode: str = "hybrid", filters: SearchFilters = NO_FILTERS
) -> list[dict[str, Any]]:
    """Search the chunks of the documents that pass ``filters``; each hit is a dict with
    chunk_id, document_id, title, collection, page_start, page_end, score, text (at most
    :data:`~documents.highlight.CHUNK_TEXT_CHARS` characters, read so from the database) and
    text_chars (the whole text's length). Safe from any thread (web requests share one loop per
    process).
    """
    return bridge.run_threadsafe(_search(rag_config(), query, k, mode, filters))


async def search_async(
    query: str, *, k: int, mode: str, filters: SearchFilters, on_server_loop: bool
) -> list[dict[str, Any]]:
    """Search from async code (the API's views); hits as :func:`search` gives them, with each
    document's collection.

    ``on_server_loop``: the running loop lasts as long as the process (an ASGI server's), so the
    service is awaited on it, with an engine of its own (RAG_API_DB_POOL_SIZE connections).
    Otherwise (an async view served over WSGI, whose loop ends with the request) it runs on the
    bridge's long-lived portal loop.
    """
    config = rag_config()
    if on_server_loop:
        config = replace(config, pool_size=settings.RAG_API_DB_POOL_SIZE)
        return await _search(config, query, k, mode, filters, on_running_loop=True)
    return await bridge.run_on_portal(_search(config, query, k, mode, filters))


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
