"""Business logic for documents: create, enqueue, ingest, and every status change.

This is the only module that writes ``Document.status``; each change goes through
:func:`_transition`, a conditional update that reports whether it happened, so two processes
cannot both believe they moved the same document.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from documents import ingestion
from documents.models import Document
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


def _title_from_name(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base.lower().endswith(".pdf"):
        base = base[:-4]
    title = " ".join(base.replace("_", " ").split())
    return (title or "Untitled")[:255]


# --- status transitions ---------------------------------------------------------------------


def _transition(document_id: int, *, to: str, when: Q, **fields: Any) -> bool:
    """Move a document to status ``to`` if it matches ``when``; report whether it did."""
    updated = Document.objects.filter(when, pk=document_id).update(
        status=to, updated_at=timezone.now(), **fields
    )
    return bool(updated)


def _status_in(*statuses: str) -> Q:
    return Q(status__in=statuses)


def document_ingest_enqueue(*, document_ids: Sequence[int], force: bool = True) -> dict[int, str]:
    """Queue ingestion of documents; return ``{document_id: task_id}`` for those queued.

    New documents (queued, no task yet) and failed ones are queued; ready ones only with
    ``force``. A document whose task is already queued or running is left alone. The message is
    sent when the surrounding transaction commits, so a worker never receives an id it cannot
    see yet.
    """
    from documents.tasks import ingest_pdf_task

    eligible = Q(status=Status.QUEUED, last_task_id="") | _status_in(Status.FAILED)
    if force:
        eligible |= _status_in(Status.READY)
    queued: dict[int, str] = {}
    for document_id in document_ids:
        task_id = str(uuid.uuid4())
        if not _transition(document_id, to=Status.QUEUED, when=eligible, last_task_id=task_id):
            continue
        queued[document_id] = task_id
        transaction.on_commit(
            lambda d=document_id, t=task_id: ingest_pdf_task.apply_async(args=[d], task_id=t)
        )
    logger.info("ingestion queued documents=%s", sorted(queued))
    return queued


# --- ingestion (runs in the worker) ---------------------------------------------------------


def document_ingest(*, document_id: int, task_id: str | None) -> dict[str, Any]:
    """Ingest one document: the body of ``ingest_pdf_task``.

    Returns the JSON-friendly result. A permanent error marks the document FAILED and is
    re-raised (so Celery records a failure); a transient one leaves the document PROCESSING and
    is re-raised for the task to retry.
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
    _transition(
        document_id,
        to=Status.PROCESSING,
        when=Q(),
        processing_started_at=timezone.now(),
    )
    try:
        result = ingestion.ingest_document(document)
    except ingestion.PermanentIngestError as exc:
        document_mark_failed(document_id=document_id, code=exc.code, message=exc.message)
        raise
    document_mark_ready(document_id=document_id, result=result)
    return {"status": "success", **result}


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
