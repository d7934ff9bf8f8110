"""Business logic for documents: enqueue, ingest, and every status change.

This is the only module that writes ``Document.status``; each change goes through
:func:`_transition`, a conditional update that reports whether it happened, so two processes
cannot both believe they moved the same document.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from documents import ingestion, selectors
from documents.models import Document

logger = logging.getLogger(__name__)

Status = Document.Status


# --- status transitions ---------------------------------------------------------------------


def _transition(document_id: int, *, to: str, when: Q, **fields: Any) -> bool:
    """Move a document to status ``to`` if it matches ``when``; report whether it did."""
    updated = Document.objects.filter(when, pk=document_id).update(
        status=to, updated_at=timezone.now(), **fields
    )
    return bool(updated)


def _status_in(*statuses: str) -> Q:
    return Q(status__in=statuses)


def document_ingest_enqueue(
    *, document_ids: Sequence[int], force: bool = True, stuck_after: timedelta | None = None
) -> dict[int, str]:
    """Queue ingestion of documents; return ``{document_id: task_id}`` for those queued.

    New documents (queued, no task yet) and failed ones are queued; ready ones only with
    ``force``; queued or processing ones only when stuck for longer than ``stuck_after`` (their
    message or worker was lost), else their task is on its way and they are left alone. The
    message is sent when the surrounding transaction commits, so a worker never receives an id
    it cannot see yet.
    """
    from documents.tasks import ingest_pdf_task

    eligible = Q(status=Status.QUEUED, last_task_id="") | _status_in(Status.FAILED)
    if force:
        eligible |= _status_in(Status.READY)
    if stuck_after is not None:
        eligible |= selectors.stuck_q(timezone.now() - stuck_after)
    queued: dict[int, str] = {}
    for document_id in document_ids:
        task_id = str(uuid.uuid4())
        if not _transition(
            document_id, to=Status.QUEUED, when=eligible, last_task_id=task_id, attempts=0
        ):
            continue
        queued[document_id] = task_id
        transaction.on_commit(
            lambda d=document_id, t=task_id: ingest_pdf_task.apply_async(args=[d], task_id=t)
        )
    logger.info("ingestion queued documents=%s", sorted(queued))
    return queued


def document_requeue_stuck(*, older_than: timedelta | None = None) -> dict[int, str]:
    """Enqueue again the documents queued or processing for longer than ``older_than``.

    The database, not the broker, says what is owed: a message lost with a Redis restart, or a
    worker killed without redelivery, leaves its document stuck, and this brings it back.
    """
    if older_than is None:
        older_than = timedelta(seconds=settings.RAG_STUCK_AFTER_SECONDS)
    ids = list(selectors.stuck_documents(older_than=older_than).values_list("pk", flat=True))
    queued = document_ingest_enqueue(document_ids=ids, force=False, stuck_after=older_than)
    if queued:
        logger.warning("stuck documents requeued documents=%s", sorted(queued))
    return queued


# --- ingestion (runs in the worker) ---------------------------------------------------------


def document_ingest(*, document_id: int, task_id: str | None) -> dict[str, Any]:
    """Ingest one document: the body of ``ingest_pdf_task``.

    Returns the JSON-friendly result. A permanent error marks the document FAILED and is
    re-raised (so Celery records a failure); a transient one leaves the document PROCESSING and
    is re-raised for the task to retry. A message for a document whose ingestion is running
    elsewhere (a redelivery racing the original) or that a newer task superseded does nothing.
    """
    document = Document.objects.filter(pk=document_id).first()
    if document is None:
        raise ingestion.DocumentMissingError(f"Document {document_id} does not exist.")
    if task_id and document.last_task_id and document.last_task_id != task_id:
        logger.info(
            "ingestion skipped document_id=%d task_id=%s superseded_by=%s",
            document_id,
            task_id,
            document.last_task_id,
        )
        return {"status": "skipped", "document_id": document_id, "reason": "superseded"}
    with ingestion_lock(document_id) as acquired:
        if not acquired:
            logger.info("ingestion skipped document_id=%d: already running", document_id)
            return {"status": "skipped", "document_id": document_id, "reason": "already running"}
        if document.attempts >= settings.RAG_MAX_ATTEMPTS:
            message = (
                f"Ingestion started {document.attempts} times without finishing: the worker was "
                "killed each time (out of memory, or a crash while reading this PDF)."
            )
            document_mark_failed(document_id=document_id, code="crashed", message=message)
            raise ingestion.PermanentIngestError(message)
        _transition(
            document_id,
            to=Status.PROCESSING,
            when=Q(),
            processing_started_at=timezone.now(),
            attempts=F("attempts") + 1,
            pages_done=0,
        )
        try:
            result = ingestion.ingest_document(document)
        except ingestion.PermanentIngestError as exc:
            document_mark_failed(document_id=document_id, code=exc.code, message=exc.message)
            raise
        document_mark_ready(document_id=document_id, result=result)
    return {"status": "success", **result}


# Key space of the session advisory lock held while a document is ingested (distinct from the
# transaction lock rag takes while replacing chunks, so the two never wait on each other).
INGEST_LOCK_NAMESPACE = 0x46CB


@contextmanager
def ingestion_lock(document_id: int) -> Iterator[bool]:
    """Hold a PostgreSQL session advisory lock for one document's ingestion, if free.

    Held on Django's connection for the whole ingestion; if the worker dies, the connection
    closes and PostgreSQL releases the lock, so a redelivered message can proceed.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [INGEST_LOCK_NAMESPACE, document_id])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_unlock(%s, %s)", [INGEST_LOCK_NAMESPACE, document_id]
                )


def document_mark_ready(*, document_id: int, result: dict[str, Any]) -> bool:
    """Record a successful ingestion (counts were written with the chunks)."""
    return _transition(
        document_id,
        to=Status.READY,
        when=_status_in(Status.PROCESSING),
        error_code="",
        error_message="",
        timings=result.get("seconds", {}),
        ingested_at=timezone.now(),
    )


def document_mark_failed(*, document_id: int, code: str, message: str) -> bool:
    """Record a failure with its code and readable reason.

    The previous chunks and counts are left as they were: a failed reingest keeps the last good
    version searchable.
    """
    logger.warning("ingestion failed document_id=%d code=%s message=%s", document_id, code, message)
    return _transition(
        document_id,
        to=Status.FAILED,
        when=_status_in(Status.QUEUED, Status.PROCESSING),
        error_code=code[:32],
        error_message=message,
    )
