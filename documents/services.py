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

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from documents import ingestion, selectors
from documents.models import Document
from documents.selectors import INGEST_TASK_NAME

logger = logging.getLogger(__name__)

Status = Document.Status


# --- status transitions ---------------------------------------------------------------------


def _transition(document_id: int, *, to: str, when: Q, **fields: Any) -> bool:
    """Move a document to status ``to`` if it matches ``when``; report whether it did.

    One UPDATE: PostgreSQL evaluates ``when`` on the row as it is when the update takes the
    row's lock, so a concurrent change is either seen or waited for, never overwritten.
    """
    updated = Document.objects.filter(when, pk=document_id).update(
        status=to, updated_at=timezone.now(), **fields
    )
    return bool(updated)


def _status_in(*statuses: str) -> Q:
    return Q(status__in=statuses)


ACTIVE = (Status.QUEUED, Status.PROCESSING)


def document_ingest_enqueue(
    *, document_ids: Sequence[int], force: bool = True, stuck_after: timedelta | None = None
) -> dict[int, str]:
    """Queue ingestion of documents; return ``{document_id: task_id}`` for those queued.

    New documents (queued, no task yet) and failed ones are queued; ready ones only with
    ``force``; queued or processing ones only when stuck (queued for longer than
    ``stuck_after``, or processing with no heartbeat for RAG_HEARTBEAT_STALE_SECONDS), else
    their task is on its way or running and they are left alone. The message is sent when the
    surrounding transaction commits, so a worker never receives an id it cannot see yet.
    """
    eligible = Q(status=Status.QUEUED, last_task_id="") | _status_in(Status.FAILED)
    if force:
        eligible |= _status_in(Status.READY)
    if stuck_after is not None:
        eligible |= selectors.stuck_q(queued_before=timezone.now() - stuck_after)
    queued: dict[int, str] = {}
    for document_id in document_ids:
        task_id = _requeue(document_id, when=eligible)
        if task_id:
            queued[document_id] = task_id
    logger.info("ingestion queued documents=%s", sorted(queued))
    return queued


def _requeue(document_id: int, *, when: Q) -> str | None:
    """Give the document a new task if it matches ``when``; send it on commit; its id or None.

    The task is sent by its registered name (explicit, so moving or renaming modules never
    breaks queued messages), so this module needs nothing from ``documents.tasks`` and routing
    stays Celery's.
    """
    task_id = str(uuid.uuid4())
    # A stuck document (still queued or processing) keeps its count of starts, so one that
    # keeps killing its worker reaches RAG_MAX_ATTEMPTS whoever requeues it; a finished one
    # (ready or failed) is reingested on purpose and counts from zero again.
    attempts = Case(When(status__in=ACTIVE, then=F("attempts")), default=Value(0))
    if not _transition(
        document_id, to=Status.QUEUED, when=when, last_task_id=task_id, attempts=attempts
    ):
        return None
    transaction.on_commit(
        lambda: current_app.send_task(INGEST_TASK_NAME, args=[document_id], task_id=task_id)
    )
    return task_id


def document_requeue_stuck(*, older_than: timedelta | None = None) -> selectors.StuckReport:
    """Find the stuck documents, say why each one is stuck, and enqueue each one again.

    The database and the broker, not a worker, say what is owed: a processing document whose
    heartbeat stopped (its worker died, or gave up during a database outage), a queued one
    whose message is gone (Redis flushed or restarted) or was never sent. ``older_than`` is
    how long a queued document may wait (see :func:`selectors.find_stuck`). Each requeue is
    conditional on what was seen, so a document that moved on meanwhile is left alone.
    """
    report = selectors.find_stuck(older_than=older_than)
    for found in report.found:
        found.task_id = _requeue(found.document_id, when=found.still_stuck)
    if report.requeued:
        logger.warning(
            "stuck documents requeued %s",
            "; ".join(
                f"document_id={f.document_id}: {f.reason}" for f in report.found if f.task_id
            ),
        )
    return report


# --- ingestion (runs in the worker) ---------------------------------------------------------


def document_ingest(*, document_id: int, task_id: str | None) -> dict[str, Any]:
    """Ingest one document: the body of ``ingest_pdf_task``.

    Returns the JSON-friendly result. Only the holder of the document's ingestion lock runs,
    and only for the document's current task (checked in the same UPDATE that marks it
    PROCESSING); any other message does nothing and says why (``skipped``): a superseded one,
    a redelivery of a finished one, or a second delivery while an ingestion is running (that
    one finishes the document). A requeue that arrives while this run holds the lock is
    answered by this run (the stored file cannot change), so its outcome is recorded even then.
    A permanent error marks the document FAILED and is re-raised (so Celery records a failure);
    a transient one leaves it PROCESSING and is re-raised for the task to retry. ``task_id``
    None runs in this process whatever the document's task (in-process callers such as bench).
    """
    if not Document.objects.filter(pk=document_id).exists():
        raise ingestion.DocumentMissingError(f"Document {document_id} does not exist.")
    current = Q(last_task_id=task_id, status__in=ACTIVE) if task_id else Q()
    run_id = task_id or f"local-{uuid.uuid4()}"
    with ingestion_lock(document_id) as acquired:
        if not acquired:
            logger.info(
                "ingestion skipped document_id=%d task_id=%s: already running, the running "
                "ingestion finishes the document",
                document_id,
                task_id,
            )
            return _skipped(document_id, "already running")
        started = _transition(
            document_id,
            to=Status.PROCESSING,
            when=current,
            last_task_id=run_id,
            processing_started_at=timezone.now(),
            heartbeat_at=timezone.now(),
            attempts=F("attempts") + 1,
            pages_done=0,
        )
        document = Document.objects.filter(pk=document_id).first()
        if document is None:
            raise ingestion.DocumentMissingError(f"Document {document_id} does not exist.")
        if not started:
            reason = (
                f"superseded by task {document.last_task_id}"
                if document.last_task_id != run_id
                else f"already finished ({document.status})"
            )
            logger.info(
                "ingestion skipped document_id=%d task_id=%s: %s", document_id, task_id, reason
            )
            return _skipped(document_id, reason)
        try:
            result = _run_holding_lock(document, run_id)
        except Exception as exc:
            if not Document.objects.filter(pk=document_id).exists():
                # Deleted during the run (document_delete may have ended the session writing
                # its chunks, whatever error that surfaced as): nothing to record or retry.
                raise ingestion.DocumentMissingError(
                    f"Document {document_id} was deleted during its ingestion."
                ) from exc
            _keep_ownership(document_id, run_id)
            raise
        except BaseException:
            _keep_ownership(document_id, run_id)
            raise
    return result


def _run_holding_lock(document: Document, run_id: str) -> dict[str, Any]:
    if document.attempts > settings.RAG_MAX_ATTEMPTS:
        message = (
            f"Ingestion started {document.attempts - 1} times without finishing: the worker was "
            "killed each time (out of memory, or a crash while reading this PDF)."
        )
        # This start only records the verdict: it does not count as an attempt.
        _finish_failed(
            document.pk, run_id, code="crashed", message=message, attempts=F("attempts") - 1
        )
        raise ingestion.PermanentIngestError(message)
    try:
        result = ingestion.ingest_document(document)
    except ingestion.PermanentIngestError as exc:
        _finish_failed(document.pk, run_id, code=exc.code, message=exc.message)
        raise
    if not document_mark_ready(document_id=document.pk, task_id=run_id, result=result):
        now = Document.objects.filter(pk=document.pk).values_list("status", flat=True).first()
        logger.warning(
            "ingestion result not recorded document_id=%d task_id=%s: the document is %s",
            document.pk,
            run_id,
            now or "deleted",
        )
        return {**result, "status": "not_recorded", "document_status": now or "deleted"}
    return {"status": "success", **result}


def _skipped(document_id: int, reason: str) -> dict[str, Any]:
    return {"status": "skipped", "document_id": document_id, "reason": reason}


def _finished_by(task_id: str) -> Q:
    """The document is this run's to finish: its current task, or requeued while it held the
    ingestion lock (no other run could start meanwhile, and the stored file is the same)."""
    return Q(status=Status.PROCESSING, last_task_id=task_id) | Q(status=Status.QUEUED)


def _keep_ownership(document_id: int, task_id: str) -> None:
    """After an error that ends this run without a final state (a transient error to retry, a
    time limit, a crash), take back a document that was requeued meanwhile: the newer
    message, if it came, gave way to this run, which its retry or failure record now answers."""
    if _transition(
        document_id,
        to=Status.PROCESSING,
        when=Q(status=Status.QUEUED) & ~Q(last_task_id=task_id),
        last_task_id=task_id,
    ):
        logger.info(
            "ingestion keeps document_id=%d task_id=%s after a requeue", document_id, task_id
        )


# Key space of the session advisory lock held while a document is ingested (distinct from the
# transaction lock rag takes while replacing chunks, so the two never wait on each other).
INGEST_LOCK_NAMESPACE = 0x46CB


@contextmanager
def ingestion_lock(document_id: int) -> Iterator[bool]:
    """Hold a PostgreSQL session advisory lock for one document's ingestion, if free.

    Held on Django's connection for the whole ingestion; if the worker dies, the connection
    closes and PostgreSQL releases the lock, so a redelivered message can proceed. A second
    delivery never waits for it (that would hold a worker slot for a whole ingestion and
    spend its time limit): it gives way.
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


def document_mark_ready(*, document_id: int, task_id: str, result: dict[str, Any]) -> bool:
    """Record the successful ingestion by ``task_id`` (counts were written with the chunks);
    report whether it was recorded (not when the document is finished or deleted already)."""
    return _transition(
        document_id,
        to=Status.READY,
        when=_finished_by(task_id),
        last_task_id=task_id,
        error_code="",
        error_message="",
        timings=result.get("seconds", {}),
        ingested_at=timezone.now(),
    )


def _finish_failed(
    document_id: int, task_id: str, *, code: str, message: str, **fields: Any
) -> bool:
    """Record a failure found by the run that holds the lock (see :func:`_finished_by`), and
    that run as the document's task (it may have been requeued meanwhile), as a success is."""
    return _mark_failed(
        document_id,
        when=_finished_by(task_id),
        code=code,
        message=message,
        last_task_id=task_id,
        **fields,
    )


def document_mark_failed(
    *, document_id: int, code: str, message: str, task_id: str | None = None
) -> bool:
    """Record a failure with its code and readable reason; report whether it was recorded.

    With ``task_id``, only while the document is still that task's: the failure of a
    superseded run never ends a newer one. The previous chunks and counts are left as they
    were: a failed reingest keeps the last good version searchable.
    """
    when = _status_in(*ACTIVE)
    if task_id:
        when &= Q(last_task_id=task_id)
    return _mark_failed(document_id, when=when, code=code, message=message)


def _mark_failed(document_id: int, *, when: Q, code: str, message: str, **fields: Any) -> bool:
    recorded = _transition(
        document_id,
        to=Status.FAILED,
        when=when,
        error_code=code[:32],
        error_message=message,
        **fields,
    )
    logger.warning(
        "ingestion failed document_id=%d code=%s recorded=%s message=%s",
        document_id,
        code,
        recorded,
        message,
    )
    return recorded


# --- deletion -------------------------------------------------------------------------------


# Key space of the transaction advisory lock a deletion holds (see :func:`document_delete`).
DELETE_LOCK_NAMESPACE = 0x46CC


def document_delete(*, document_id: int) -> bool:
    """Delete a document, its chunks and (once committed) its stored file; report whether it
    existed. Its chunks leave search results with the commit.

    An ingestion replacing the document's chunks holds rag's transaction lock on it for the
    whole run, and its uncommitted chunks lock the document row: waiting would hold the request
    for a whole ingestion. So the database connection of that transaction is ended instead
    (its changes roll back), and the task, finding the document gone, ends quietly.
    """
    namespace = ingestion.DOCUMENT_LOCK_NAMESPACE
    with transaction.atomic():
        with connection.cursor() as cursor:
            # One deletion of a document at a time: a second one waits for the first to commit
            # and finds the document gone, rather than ending the first's session (which holds
            # the replacement lock too, once it has it).
            cursor.execute("SET LOCAL lock_timeout = '30s'")
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", [DELETE_LOCK_NAMESPACE, document_id]
            )
            if not Document.objects.filter(pk=document_id).exists():
                return False
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [namespace, document_id])
            if not cursor.fetchone()[0]:
                _end_replacement(cursor, document_id)
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [namespace, document_id])
        document = Document.objects.select_for_update().filter(pk=document_id).first()
        if document is None:
            return False
        # Its stored file goes once the deletion is committed (documents.signals, which keeps
        # a file that the same bytes uploaded again meanwhile are using).
        document.delete()
    logger.info("document deleted document_id=%d file=%s", document_id, document.file.name)
    return True


def _end_replacement(cursor: Any, document_id: int) -> None:
    """End the database sessions holding rag's replacement lock on the document."""
    cursor.execute(
        "SELECT pid, pg_terminate_backend(pid) FROM pg_locks "
        "WHERE locktype = 'advisory' AND classid = %s AND objid = %s AND objsubid = 2 "
        "AND granted AND pid <> pg_backend_pid()",
        [ingestion.DOCUMENT_LOCK_NAMESPACE, document_id],
    )
    ended = [pid for pid, _ in cursor.fetchall()]
    logger.warning(
        "document_id=%d: ended the ingestion writing its chunks (backend pids %s) to delete it",
        document_id,
        ended,
    )
