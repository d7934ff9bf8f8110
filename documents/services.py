"""Business logic for documents: create, enqueue, ingest, and every status change.

This is the only module that writes ``Document.status``; each change goes through
:func:`_transition`, a conditional update that reports whether it happened, so two processes
cannot both believe they moved the same document.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import IO, Any

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from documents import ingestion, selectors
from documents.models import Document
from documents.selectors import INGEST_TASK_NAME
from documents.storage import document_upload_path

logger = logging.getLogger(__name__)

Status = Document.Status
HASH_BLOCK = 1024 * 1024


# --- validation and creation ----------------------------------------------------------------


def file_sha256(file: IO[bytes]) -> str:
    """SHA-256 of a file's bytes, read in blocks; the file is rewound afterwards."""
    digest = hashlib.sha256()
    file.seek(0)
    for block in iter(lambda: file.read(HASH_BLOCK), b""):
        digest.update(block)
    file.seek(0)
    return digest.hexdigest()


def validate_pdf_file(file: IO[bytes], *, size: int) -> None:
    """Raise :class:`ValidationError` unless ``file`` is a non-empty PDF within the size limit.

    The check reads the bytes (the PDF header), never trusts the name or the browser's type.
    """
    limit = settings.RAG_MAX_UPLOAD_BYTES
    if size == 0:
        raise ValidationError("The file is empty.", code="empty")
    if size > limit:
        raise ValidationError(
            "The file is %(size)s MB; the limit is %(limit)s MB.",
            code="too_large",
            params={"size": round(size / 1e6, 1), "limit": round(limit / 1e6, 1)},
        )
    file.seek(0)
    head = file.read(ingestion.PDF_HEADER_BYTES)
    file.seek(0)
    if not ingestion.looks_like_pdf(head):
        raise ValidationError(
            "The file is not a PDF (its bytes have no PDF header).", code="not_pdf"
        )


@dataclass(frozen=True)
class CreateOutcome:
    """The document for an uploaded file, and whether this upload created it."""

    document: Document
    created: bool


def document_create(*, file: IO[bytes], name: str, size: int) -> CreateOutcome:
    """Find or create the Document for these bytes, storing the file when it is new.

    ``name`` only becomes the title; the stored name comes from the content hash. Raises
    :class:`ValidationError` for a file that is not an acceptable PDF; nothing is written then.
    """
    validate_pdf_file(file, size=size)
    sha256 = file_sha256(file)
    existing = Document.objects.filter(sha256=sha256).first()
    if existing is not None:
        return CreateOutcome(existing, created=False)
    document = Document(title=_title_from_name(name), sha256=sha256, size_bytes=size)
    stored_name = document_upload_path(document, "")
    try:
        with transaction.atomic():
            if document.file.storage.exists(stored_name):
                # Content-addressed: a file under this name holds these very bytes (left by an
                # upload whose transaction failed, or a deleted document). Reuse it.
                document.file.name = stored_name
            else:
                document.file.save(stored_name, File(file), save=False)
            document.save()
    except IntegrityError:
        # The same bytes were uploaded concurrently and the other upload won: it is one document.
        # Both uploads wrote the same bytes to the same hash-derived name, so nothing is lost.
        return CreateOutcome(Document.objects.get(sha256=sha256), created=False)
    logger.info("document created document_id=%d sha256=%s size=%d", document.pk, sha256, size)
    return CreateOutcome(document, created=True)


class UploadVerdict(StrEnum):
    """What became of one uploaded file."""

    QUEUED = "queued"  # new: stored and queued for ingestion
    PRESENT = "present"  # its bytes were already a document: nothing stored
    REPEATED = "repeated"  # the same bytes as another file of this upload
    REJECTED = "rejected"  # not an acceptable PDF: nothing stored


@dataclass(frozen=True)
class FileOutcome:
    """One uploaded file, its verdict, and its document (None when rejected)."""

    name: str
    size: int
    verdict: UploadVerdict
    document_id: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class UploadReport:
    """The outcome of every file of an upload, in the order given, and whether the broker took
    the new documents' messages (when it did not, they wait for the stuck-document sweep)."""

    files: list[FileOutcome] = field(default_factory=list)
    enqueued: bool = True


def documents_upload(*, files: Sequence[File]) -> UploadReport:
    """Store and queue each acceptable file of an upload; judge every file on its own.

    A file that is not an acceptable PDF is rejected with the reason and nothing of it is
    written; the other files go ahead. Bytes already present are reported with their document,
    never stored twice.
    """
    outcomes: list[FileOutcome] = []
    created_ids: list[int] = []
    for uploaded in files:
        name = uploaded.name or "unnamed.pdf"
        size = uploaded.size or 0
        try:
            created = document_create(file=uploaded, name=name, size=size)
        except ValidationError as exc:
            reason = " ".join(exc.messages)
            outcomes.append(FileOutcome(name, size, UploadVerdict.REJECTED, reason=reason))
            continue
        document_id = created.document.pk
        if created.created:
            created_ids.append(document_id)
            verdict = UploadVerdict.QUEUED
        elif document_id in created_ids:
            verdict = UploadVerdict.REPEATED
        else:
            verdict = UploadVerdict.PRESENT
        outcomes.append(FileOutcome(name, size, verdict, document_id=document_id))
    try:
        document_ingest_enqueue(document_ids=created_ids)
    except BrokerError:
        # The documents are stored and QUEUED: the stuck-document sweep sends them later.
        logger.exception("enqueue failed: broker unreachable documents=%s", created_ids)
        return UploadReport(files=outcomes, enqueued=False)
    logger.info(
        "upload stored files=%d queued=%d rejected=%d",
        len(outcomes),
        len(created_ids),
        sum(o.verdict == UploadVerdict.REJECTED for o in outcomes),
    )
    return UploadReport(files=outcomes)


def _title_from_name(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base.lower().endswith(".pdf"):
        base = base[:-4]
    title = " ".join(base.replace("_", " ").split())
    return (title or "Untitled")[:255]


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

    The task is sent by its registered name (stable by design, see DESIGN.md decision 1), so
    this module needs nothing from ``documents.tasks`` and routing stays Celery's.
    """
    task_id = str(uuid.uuid4())
    if not _transition(document_id, to=Status.QUEUED, when=when, last_task_id=task_id, attempts=0):
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
        _finish_failed(document.pk, run_id, code="crashed", message=message)
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


def _finish_failed(document_id: int, task_id: str, *, code: str, message: str) -> bool:
    """Record a failure found by the run that holds the lock (see :func:`_finished_by`)."""
    return _mark_failed(document_id, when=_finished_by(task_id), code=code, message=message)


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


def _mark_failed(document_id: int, *, when: Q, code: str, message: str) -> bool:
    recorded = _transition(
        document_id, to=Status.FAILED, when=when, error_code=code[:32], error_message=message
    )
    logger.warning(
        "ingestion failed document_id=%d code=%s recorded=%s message=%s",
        document_id,
        code,
        recorded,
        message,
    )
    return recorded
