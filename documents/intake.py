"""One intake for every way a PDF comes in (admin upload, ``manage.py ingest``, the HTTP API).

Each file is checked by its bytes, stored once per content hash, and given one verdict by one
rule, so the same file meets the same fate whichever door it came through. Status changes and
enqueueing stay with :mod:`documents.services`; this module decides what to ask of them.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import IntegrityError, transaction
from kombu.exceptions import OperationalError as BrokerError

from documents import ingestion, selectors, services
from documents.models import DEFAULT_COLLECTION, Document
from documents.storage import (
    StorageFault,
    document_upload_path,
    storage_errors,
    storage_fault,
    storage_location,
)

logger = logging.getLogger(__name__)

Status = Document.Status
HASH_BLOCK = 1024 * 1024


class Verdict(StrEnum):
    """What became of one file given to the intake."""

    QUEUED = "queued"  # new bytes: stored and queued for ingestion
    REQUEUED = "requeued"  # known bytes whose document failed, was stuck, or was forced
    PRESENT = "present"  # known bytes, document ready: nothing stored, nothing sent
    IN_PROGRESS = "in_progress"  # known bytes, document queued or processing: on its way
    REPEATED = "repeated"  # the same bytes as an earlier file of the same intake
    REJECTED = "rejected"  # not an acceptable PDF, unreadable, or storage down: nothing written

    @property
    def label(self) -> str:
        """The words people read for this verdict (admin page, API)."""
        return VERDICT_LABELS[self]


VERDICT_LABELS = {
    Verdict.QUEUED: "Queued",
    Verdict.REQUEUED: "Queued again",
    Verdict.PRESENT: "Already present",
    Verdict.IN_PROGRESS: "Already in progress",
    Verdict.REPEATED: "Same file twice",
    Verdict.REJECTED: "Rejected",
}


@dataclass(frozen=True)
class IntakeFile:
    """One file to take in: an open binary file or a path on this machine.

    ``name`` is what the report calls it (an upload's file name, a command-line path); the title
    of a new document is ``title`` when given, else derived from ``name``; a new document goes
    into ``collection`` (a known document keeps its own). A path is opened only while its own
    file is handled, so a folder of thousands never holds thousands open.
    """

    name: str
    source: IO[bytes] | Path
    title: str | None = None
    collection: str = DEFAULT_COLLECTION


@dataclass(frozen=True)
class IntakeOutcome:
    """One file, its verdict, its document (None when rejected) and why, when there is more to
    say than the verdict (the rejection's reason, what made a document go again)."""

    name: str
    size: int
    verdict: Verdict
    document_id: int | None = None
    reason: str = ""
    # Why a file was rejected, for machines: empty, too_large, not_pdf, unreadable,
    # storage_unavailable (the file storage failed for a while: the same file may succeed later)
    # or storage_refused (the storage refuses this server: its configuration, logged).
    code: str = ""


@dataclass(frozen=True)
class IntakeReport:
    """Every file's outcome, in the order given, and whether the broker took the messages.

    When it did not, the documents are stored and QUEUED all the same: the stuck-document sweep
    sends them later.
    """

    outcomes: list[IntakeOutcome] = field(default_factory=list)
    messages_sent: bool = True


# --- the intake -------------------------------------------------------------------------------


def intake_files(*, files: Sequence[IntakeFile], force: bool = False) -> IntakeReport:
    """Check, store and queue each file; judge every file on its own.

    New bytes are stored and queued. Bytes already present follow their document's state: ready
    is left alone (queued again with ``force``), failed or stuck is queued again, queued or
    processing is on its way and left alone. The same bytes twice in one call are one document;
    a file that is not an acceptable PDF is rejected with the reason and nothing of it is
    written, while the others go ahead.
    """
    stuck_after = selectors.stuck_after()
    first_name: dict[int, str] = {}
    outcomes: list[IntakeOutcome] = []
    for item in files:
        outcome = _intake_one(item, force=force, stuck_after=stuck_after, first_name=first_name)
        if outcome.document_id is not None:
            first_name.setdefault(outcome.document_id, outcome.name)
        outcomes.append(outcome)
    wanted = [o.document_id for o in outcomes if o.verdict in (Verdict.QUEUED, Verdict.REQUEUED)]
    try:
        # Every status change is committed before the first message goes out, so a broker
        # outage leaves all of them QUEUED for the sweep rather than some still FAILED.
        with transaction.atomic():
            queued = services.document_ingest_enqueue(
                document_ids=wanted, force=force, stuck_after=stuck_after
            )
    except BrokerError:
        logger.exception("intake: broker unreachable, messages not sent documents=%s", wanted)
        return IntakeReport(outcomes=outcomes, messages_sent=False)
    missed = {document_id for document_id in wanted if document_id not in queued}
    if missed:
        outcomes = _settle_raced(outcomes, missed)
    report = IntakeReport(outcomes=outcomes)
    logger.info(
        "intake files=%d %s",
        len(outcomes),
        " ".join(f"{verdict}={n}" for verdict, n in Counter(o.verdict for o in outcomes).items()),
    )
    return report


def _intake_one(
    item: IntakeFile, *, force: bool, stuck_after: timedelta, first_name: dict[int, str]
) -> IntakeOutcome:
    size = 0
    try:
        with _opened(item.source) as file:
            size = _size_of(file)
            created = document_create(
                file=file, name=item.name, size=size, title=item.title, collection=item.collection
            )
    except StorageUnavailableError as exc:
        return IntakeOutcome(item.name, size, Verdict.REJECTED, reason=str(exc), code=exc.code)
    except OSError as exc:
        reason = f"Cannot read the file: {exc.strerror or exc}."
        return IntakeOutcome(item.name, size, Verdict.REJECTED, reason=reason, code="unreadable")
    except ValidationError as exc:
        reason = " ".join(exc.messages)
        return IntakeOutcome(item.name, size, Verdict.REJECTED, reason=reason, code=exc.code or "")
    document = created.document
    if document.pk in first_name:
        reason = f"The same bytes as {first_name[document.pk]}."
        return IntakeOutcome(item.name, size, Verdict.REPEATED, document.pk, reason)
    if created.created:
        return IntakeOutcome(item.name, size, Verdict.QUEUED, document.pk)
    verdict, reason = _known_bytes_verdict(document, force=force, stuck_after=stuck_after)
    return IntakeOutcome(item.name, size, verdict, document.pk, reason)


def _known_bytes_verdict(
    document: Document, *, force: bool, stuck_after: timedelta
) -> tuple[Verdict, str]:
    """The rule for bytes that are already a document: what to do, and why."""
    if document.status == Status.READY:
        if force:
            return Verdict.REQUEUED, "Reingest forced."
        return Verdict.PRESENT, ""
    if document.status == Status.FAILED:
        code = f" ({document.error_code})" if document.error_code else ""
        return Verdict.REQUEUED, f"Its last ingestion failed{code}."
    if selectors.document_is_stuck(document, older_than=stuck_after):
        if document.status == Status.PROCESSING:
            silent = round(selectors.heartbeat_stale_after().total_seconds() / 60)
            return Verdict.REQUEUED, f"It was stuck: processing, silent for over {silent} min."
        minutes = round(stuck_after.total_seconds() / 60)
        return Verdict.REQUEUED, f"It was stuck: queued for over {minutes} min."
    if document.status == Status.QUEUED and not document.last_task_id:
        return Verdict.REQUEUED, "Its message had never been sent."
    return Verdict.IN_PROGRESS, ""


def _settle_raced(outcomes: list[IntakeOutcome], missed: set[int]) -> list[IntakeOutcome]:
    """Documents meant to be queued that another request moved first: say what they are now."""
    documents = {d.pk: d for d in selectors.documents_by_ids(list(missed))}
    settled = []
    for outcome in outcomes:
        document = documents.get(outcome.document_id or 0)
        if outcome.document_id in missed and document is not None:
            verdict = Verdict.PRESENT if document.status == Status.READY else Verdict.IN_PROGRESS
            outcome = IntakeOutcome(outcome.name, outcome.size, verdict, outcome.document_id)
        settled.append(outcome)
    return settled


@contextmanager
def _opened(source: IO[bytes] | Path) -> Iterator[IO[bytes]]:
    if isinstance(source, Path):
        with source.open("rb") as file:
            yield file
    else:
        yield source


def _size_of(file: IO[bytes]) -> int:
    """The file's size from its bytes (never from what a client declared)."""
    file.seek(0, os.SEEK_END)
    size = file.tell()
    file.seek(0)
    return size


# --- validation and creation ------------------------------------------------------------------


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


class StorageUnavailableError(Exception):
    """The file storage did not store the file: for a while (``storage_unavailable``:
    unreachable, throttled, full) or until its configuration is fixed (``storage_refused``:
    access denied, no bucket); the uploader can do nothing about either but try later."""

    def __init__(self, message: str, *, code: str = "storage_unavailable") -> None:
        super().__init__(message)
        self.code = code


STORAGE_UNAVAILABLE = "File storage unavailable, try again."
STORAGE_REFUSED = (
    "File storage refused to store the file (a configuration fault of this server, logged for "
    "its administrators); try again later."
)


@dataclass(frozen=True)
class CreateResult:
    """The document for a file's bytes, and whether this call created it."""

    document: Document
    created: bool


def document_create(
    *,
    file: IO[bytes],
    name: str,
    size: int,
    title: str | None = None,
    collection: str = DEFAULT_COLLECTION,
) -> CreateResult:
    """Find or create the Document for these bytes, storing the file when it is new.

    ``title`` (else ``name``) only becomes the title; the stored name comes from the content
    hash. A new document goes into ``collection``; a known one is returned as it is. Raises
    :class:`ValidationError` for a file that is not an acceptable PDF, and
    :class:`StorageUnavailableError` when the file storage fails for a while; nothing is
    written then.
    Nothing is queued: :func:`intake_files` does that.
    """
    validate_pdf_file(file, size=size)
    sha256 = file_sha256(file)
    existing = Document.objects.filter(sha256=sha256).first()
    if existing is not None:
        return CreateResult(existing, created=False)
    document = Document(
        title=_clean_title(title) if title else _title_from_name(name),
        collection=collection,
        sha256=sha256,
        size_bytes=size,
    )
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
    except storage_errors() as exc:
        if storage_fault(exc) is StorageFault.TRANSIENT:
            logger.warning("upload not stored sha256=%s: file storage unavailable: %s", sha256, exc)
            raise StorageUnavailableError(STORAGE_UNAVAILABLE) from exc
        # Denied, no bucket, a read-only folder: this server's configuration, not the upload.
        logger.error(
            "upload not stored sha256=%s: file storage refused (%s): %s",
            sha256,
            storage_location(),
            exc,
            exc_info=exc,
        )
        raise StorageUnavailableError(STORAGE_REFUSED, code="storage_refused") from exc
    except IntegrityError:
        # The same bytes were uploaded concurrently and the other upload won: it is one document.
        # When both found no file and saved one, the storage gave this later save a free name
        # (FileSystemStorage, S3 with AWS_S3_FILE_OVERWRITE off add a suffix): that copy is
        # nobody's and goes.
        winner = Document.objects.get(sha256=sha256)
        if document.file.name and document.file.name != winner.file.name:
            document.file.storage.delete(document.file.name)
            logger.info("duplicate upload's file removed name=%s", document.file.name)
        return CreateResult(winner, created=False)
    logger.info("document created document_id=%d sha256=%s size=%d", document.pk, sha256, size)
    return CreateResult(document, created=True)


def _title_from_name(name: str) -> str:
    """A title from a file name or path: the base name without ``.pdf``, underscores as spaces."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base.lower().endswith(".pdf"):
        base = base[:-4]
    return _clean_title(base.replace("_", " "))


def _clean_title(title: str) -> str:
    # NUL cannot be stored in PostgreSQL text; a file name may carry one.
    return (" ".join(title.replace("\x00", " ").split()) or "Untitled")[:255]
