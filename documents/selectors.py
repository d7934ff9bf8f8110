"""Reads shared by the admin and the management commands."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone
from django_celery_results.models import TaskResult

from documents.models import Chunk, Document

INGEST_TASK_NAME = "ingest_pdf_task"


def document_task_result(document: Document) -> TaskResult | None:
    """The TaskResult of the document's latest ingestion task, if the worker stored one."""
    if not document.last_task_id:
        return None
    return TaskResult.objects.filter(task_id=document.last_task_id).first()


def document_chunks_preview(document: Document, *, limit: int) -> list[Chunk]:
    """The first ``limit`` chunks of a document, in order (embeddings not loaded)."""
    return list(
        Chunk.objects.filter(document=document).order_by("ordinal").defer("embedding")[:limit]
    )


def documents_by_ids(document_ids: Sequence[int]) -> QuerySet[Document]:
    """Documents with the given ids (order not guaranteed)."""
    return Document.objects.filter(pk__in=list(document_ids))


def stuck_q(cutoff: datetime) -> Q:
    """Queued since before ``cutoff``, or processing since before it."""
    return Q(status=Document.Status.QUEUED, updated_at__lt=cutoff) | Q(
        status=Document.Status.PROCESSING, processing_started_at__lt=cutoff
    )


def stuck_documents(*, older_than: timedelta) -> QuerySet[Document]:
    """Documents that should have finished by now: their message or worker was lost."""
    return Document.objects.filter(stuck_q(timezone.now() - older_than))


def chunk_search(
    query: str, *, k: int = 5, mode: str = "hybrid", document_ids: Sequence[int] | None = None
) -> list[dict]:
    """The best chunks for ``query`` with document, pages, score and text (see RAGService)."""
    from documents import ingestion

    return ingestion.search(query, k=k, mode=mode, document_ids=document_ids)


def search_modes() -> tuple[str, ...]:
    """The search modes, the default first."""
    from documents import ingestion

    return tuple(ingestion.SEARCH_MODES)


def current_embedder_name() -> str:
    """The embedder new ingestions use (documents embedded by another one are stale)."""
    from documents import ingestion

    return ingestion.current_embedder()[0]


def stale_documents(*, embedder: str | None = None) -> QuerySet[Document]:
    """Ready documents whose chunks another embedder made: their vectors are in another space."""
    current = embedder or current_embedder_name()
    return Document.objects.filter(status=Document.Status.READY).exclude(embedder=current)


def document_task_runs(document: Document, *, limit: int = 20) -> list[TaskResult]:
    """The document's ingestion runs stored by django-celery-results, newest first."""
    return list(
        TaskResult.objects.filter(
            task_name=INGEST_TASK_NAME, task_args=ingest_task_args(document.pk)
        ).order_by("-date_created")[:limit]
    )


def ingest_task_args(document_id: int) -> str:
    """``task_args`` as django-celery-results stores them for ``ingest_pdf_task(document_id)``:
    the JSON of the arguments' JSON."""
    return json.dumps(json.dumps([document_id]))


def task_document_id(result: TaskResult) -> int | None:
    """The document an ``ingest_pdf_task`` result belongs to (None for other tasks)."""
    if result.task_name != INGEST_TASK_NAME or not result.task_args:
        return None
    try:
        args = json.loads(json.loads(result.task_args))
    except (TypeError, ValueError):
        return None
    return args[0] if isinstance(args, list) and args and isinstance(args[0], int) else None
