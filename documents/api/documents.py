"""``/api/v1/documents``: upload through the intake, list, read, reingest, delete.

Async views; the database work of each runs in one synchronous function (Django's ORM is
synchronous underneath), the intake and the status rules staying those of the admin and
``manage.py ingest``. A document outside the key's collections answers 404, as if absent.
"""

from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from django.db import OperationalError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from kombu.exceptions import OperationalError as BrokerError
from ninja import File, Form, Path, Query, Router, Status, UploadedFile
from ninja.errors import HttpError

from documents import selectors, services
from documents.api.schemas import (
    MAX_ID,
    STATUS,
    DocumentListOut,
    DocumentOut,
    ErrorOut,
    ReingestOut,
    Slug,
    UploadOut,
)
from documents.intake import IntakeFile, Verdict, file_sha256, intake_files
from documents.models import DEFAULT_COLLECTION, ApiKey, Document

logger = logging.getLogger(__name__)

router = Router(tags=["documents"])

ERRORS = {code: ErrorOut for code in (400, 401, 403, 404, 409, 413, 429, 503)}
# An upload's rejection by its code (documents.intake.IntakeOutcome.code); others are 400. The
# storage's faults are the server's, not the upload's: 503, try again.
REJECTION_STATUS = {"too_large": 413, "storage_unavailable": 503, "storage_refused": 503}


def _visible(request: HttpRequest):
    api_key: ApiKey = request.auth  # type: ignore[attr-defined]
    return selectors.documents_visible_to(api_key.collections)


def _get_visible(request: HttpRequest, document_id: int) -> Document:
    document = _visible(request).filter(pk=document_id).first()
    if document is None:
        raise Http404(f"No document {document_id}.")
    return document


BYTES_REFUSED = "These bytes cannot be stored in this collection."


def _bytes_may_be_stored(api_key: ApiKey, file: UploadedFile) -> bool:
    """False when the file's bytes are already a document outside the key's collections."""
    existing = Document.objects.filter(sha256=file_sha256(file)).values_list("collection")
    return all(api_key.allows_collection(collection) for (collection,) in existing)


def _upload(request: HttpRequest, file: UploadedFile, collection: str, title: str | None):
    api_key: ApiKey = request.auth  # type: ignore[attr-defined]
    if not api_key.allows_collection(collection):
        raise HttpError(403, f"This key may not add documents to collection {collection!r}.")
    # Bytes are one document system-wide: when they are already a document the key cannot see,
    # refuse before the intake (which would queue a failed or stuck one again), saying nothing
    # of that document.
    if not _bytes_may_be_stored(api_key, file):
        raise HttpError(409, BYTES_REFUSED)
    item = IntakeFile(
        name=file.name or "upload.pdf", source=file, title=title, collection=collection
    )
    report = intake_files(files=[item])
    (outcome,) = report.outcomes
    if outcome.verdict == Verdict.REJECTED:
        status = REJECTION_STATUS.get(outcome.code, 400)
        raise HttpError(status, outcome.reason)
    document = Document.objects.get(pk=outcome.document_id)
    if not api_key.allows_collection(document.collection):  # created meanwhile by another upload
        raise HttpError(409, BYTES_REFUSED)
    created = outcome.verdict == Verdict.QUEUED
    body = {
        **DocumentOut.of(document),
        "duplicate": not created,
        "verdict": outcome.verdict.value,
        "reason": outcome.reason,
    }
    return Status(201 if created else 200, body)


@router.post("/documents", response={**ERRORS, 200: UploadOut, 201: UploadOut})
async def upload_document(
    request: HttpRequest,
    file: File[UploadedFile],
    collection: Form[Slug | None] = None,
    title: Form[str | None] = None,
):
    """Upload a PDF (multipart ``file``): the same intake as the admin and ``manage.py
    ingest``. 201 with the new document; 200 with ``"duplicate": true`` when the bytes are
    already a document (failed or stuck ones are queued again); 400/413 with the reason when
    the file is refused, nothing written."""
    if title is not None:
        title = title.strip()[:255] or None
    if collection is None:
        api_key: ApiKey = request.auth  # type: ignore[attr-defined]
        collection = api_key.collections[0] if api_key.collections else DEFAULT_COLLECTION
    return await sync_to_async(_upload)(request, file, collection, title)


def _list(request: HttpRequest, status, collection, q, limit, offset) -> dict:
    documents = _visible(request).order_by("-created_at", "-pk")
    if status:
        documents = documents.filter(status=status)
    if collection:
        documents = documents.filter(collection=collection)
    if q:
        documents = documents.filter(title__icontains=q)
    items = [DocumentOut.of(d) for d in documents[offset : offset + limit]]
    return {"count": documents.count(), "limit": limit, "offset": offset, "items": items}


@router.get("/documents", response={200: DocumentListOut, **ERRORS})
async def list_documents(
    request: HttpRequest,
    status: Query[STATUS | None] = None,
    collection: Query[Slug | None] = None,
    q: Query[str | None] = None,
    limit: Query[int] = 20,
    offset: Query[int] = 0,
):
    """Documents, newest first: by ``status``, ``collection``, words of the title (``q``);
    ``limit`` (1-100) from ``offset``."""
    if not 1 <= limit <= 100 or not 0 <= offset <= 1_000_000:
        raise HttpError(400, "limit must be 1 to 100 and offset 0 to 1000000.")
    if q is not None and (len(q) > 200 or "\x00" in q):
        raise HttpError(400, "q must be at most 200 characters, without NUL.")
    return await sync_to_async(_list)(request, status, collection, q, limit, offset)


def _id_in_range(document_id: int) -> int:
    if not 1 <= document_id <= MAX_ID:
        raise Http404(f"No document {document_id}.")
    return document_id


@router.get("/documents/{document_id}", response={200: DocumentOut, **ERRORS})
async def get_document(request: HttpRequest, document_id: Path[int]):
    """One document: status, pages done of total, chunks, error code and message, timings."""
    document = await sync_to_async(_get_visible)(request, _id_in_range(document_id))
    return DocumentOut.of(document)


def _reingest(request: HttpRequest, document_id: int) -> Status:
    _get_visible(request, document_id)
    try:
        with transaction.atomic():
            queued = services.document_ingest_enqueue(
                document_ids=[document_id], force=True, stuck_after=selectors.stuck_after()
            )
    except BrokerError as exc:
        logger.warning("api reingest document_id=%d: broker unreachable: %s", document_id, exc)
        raise HttpError(503, "The queue is unreachable; the document will be sent later.") from exc
    document = _get_visible(request, document_id)
    return Status(202 if queued else 409, {**DocumentOut.of(document), "queued": bool(queued)})


@router.post(
    "/documents/{document_id}/reingest", response={**ERRORS, 202: ReingestOut, 409: ReingestOut}
)
async def reingest_document(request: HttpRequest, document_id: Path[int]):
    """Queue the document again (202); 409 when it is already queued or processing."""
    return await sync_to_async(_reingest)(request, _id_in_range(document_id))


def _delete(request: HttpRequest, document_id: int) -> None:
    _get_visible(request, document_id)
    try:
        services.document_delete(document_id=document_id)
    except OperationalError as exc:  # lock_timeout: the ingestion did not let go in time
        raise HttpError(503, "The document is busy; try again.") from exc


@router.delete("/documents/{document_id}", response={204: None, **ERRORS})
async def delete_document(request: HttpRequest, document_id: Path[int]):
    """Delete the document, its chunks and its stored file (204). It leaves search at once;
    an ingestion still running for it ends quietly."""
    await sync_to_async(_delete)(request, _id_in_range(document_id))
    return HttpResponse(status=204)
