"""Reads shared by the admin and the management commands."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, IntegerField, JSONField, Q, QuerySet, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, TruncHour
from django.utils import timezone
from django_celery_results.models import TaskResult

from documents import broker_queue, ingestion
from documents.models import Chunk, Document

# The ingestion task's registered name (documents.tasks registers it under this name; services
# sends it by name): queued messages carry it, so it must not follow module moves or renames.
INGEST_TASK_NAME = "ingest_pdf_task"


def document_chunks_preview(document: Document, *, limit: int) -> list[Chunk]:
    """The first ``limit`` chunks of a document, in order (embeddings not loaded)."""
    return list(
        Chunk.objects.filter(document=document).order_by("ordinal").defer("embedding")[:limit]
    )


def documents_by_ids(document_ids: Sequence[int]) -> QuerySet[Document]:
    """Documents with the given ids (order not guaranteed)."""
    return Document.objects.filter(pk__in=list(document_ids))


# A queued document's message is sent when the transaction that queued it commits: one queued
# less than this ago may not have reached the broker yet, so its absence proves nothing.
MESSAGE_GRACE = timedelta(seconds=30)


def heartbeat_stale_after() -> timedelta:
    """How long a processing document may stay silent (no heartbeat) before it counts as dead."""
    return timedelta(seconds=settings.RAG_HEARTBEAT_STALE_SECONDS)


def silent_q(cutoff: datetime) -> Q:
    """Processing with no heartbeat since before ``cutoff`` (the start counts as the first)."""
    no_heartbeat = Q(heartbeat_at__isnull=True) & (
        Q(processing_started_at__lt=cutoff) | Q(processing_started_at__isnull=True)
    )
    return Q(status=Document.Status.PROCESSING) & (Q(heartbeat_at__lt=cutoff) | no_heartbeat)


def stuck_q(*, queued_before: datetime) -> Q:
    """Queued since before ``queued_before``, or processing and silent for longer than
    RAG_HEARTBEAT_STALE_SECONDS: what the database alone can tell (no broker read)."""
    silent_before = timezone.now() - heartbeat_stale_after()
    return Q(status=Document.Status.QUEUED, updated_at__lt=queued_before) | silent_q(silent_before)


def stuck_documents(*, older_than: timedelta) -> QuerySet[Document]:
    """Documents that should have finished by now: their message or worker was lost."""
    return Document.objects.filter(stuck_q(queued_before=timezone.now() - older_than))


def stuck_after() -> timedelta:
    """How long a document may stay queued before it counts as stuck (when the broker cannot
    be asked whether its message is still there)."""
    return timedelta(seconds=settings.RAG_STUCK_AFTER_SECONDS)


def document_is_stuck(document: Document, *, older_than: timedelta) -> bool:
    """The Python twin of :func:`stuck_q` for a document already loaded."""
    now = timezone.now()
    if document.status == Document.Status.QUEUED:
        return document.updated_at is not None and document.updated_at < now - older_than
    if document.status == Document.Status.PROCESSING:
        last_sign = document_last_sign_of_life(document)
        return last_sign is None or last_sign < now - heartbeat_stale_after()
    return False


def document_last_sign_of_life(document: Document) -> datetime | None:
    """When a processing document's ingestion last showed it was alive."""
    return document.heartbeat_at or document.processing_started_at


@dataclass
class StuckDocument:
    """A document found stuck, why, and (once requeued) its new task."""

    document_id: int
    reason: str
    # The requeue's condition: what made it stuck still holds (it did not move on meanwhile).
    still_stuck: Q
    task_id: str | None = None


@dataclass
class StuckReport:
    """What a search for stuck documents looked at, found, and requeued."""

    found: list[StuckDocument] = field(default_factory=list)
    queued: int = 0
    processing: int = 0
    broker_checked: bool = False

    @property
    def requeued(self) -> list[StuckDocument]:
        return [found for found in self.found if found.task_id]


def find_stuck(*, older_than: timedelta | None = None) -> StuckReport:
    """The stuck documents, each with the reason in words.

    - processing, and silent (no heartbeat) for RAG_HEARTBEAT_STALE_SECONDS: its worker died,
      was killed, or gave up during a database outage;
    - queued and never sent (no task id: the broker was unreachable);
    - queued, and its message is neither waiting in the broker nor delivered (Redis flushed or
      restarted without persistence). Only Redis can be read (documents.broker_queue); with
      another broker, queued for longer than ``older_than`` (RAG_STUCK_AFTER_SECONDS) instead.
    """
    older_than = stuck_after() if older_than is None else older_than
    now = timezone.now()
    report = StuckReport()
    silent_before = now - heartbeat_stale_after()
    for document in Document.objects.filter(status=Document.Status.PROCESSING).order_by("pk"):
        report.processing += 1
        last_sign = document_last_sign_of_life(document)
        if last_sign is None or last_sign < silent_before:
            silent = f"for {_minutes(now - last_sign)}" if last_sign else "ever"
            report.found.append(
                StuckDocument(
                    document.pk,
                    f"processing, no heartbeat {silent}",
                    silent_q(silent_before) & Q(last_task_id=document.last_task_id),
                )
            )
    sent_before = now - min(older_than, MESSAGE_GRACE)
    queued = list(Document.objects.filter(status=Document.Status.QUEUED).order_by("pk"))
    report.queued = len(queued)
    waiting = [d for d in queued if d.last_task_id and d.updated_at < sent_before]
    waiting_ids = {d.pk for d in waiting}
    in_broker = _task_ids_in_broker() if waiting else None
    if in_broker is not None and any(d.last_task_id not in in_broker for d in waiting):
        # Read twice: a message moving from the queue to the unacked hash is in neither for
        # an instant; one missing from both readings is gone.
        in_broker |= _task_ids_in_broker() or set()
    report.broker_checked = in_broker is not None
    for document in queued:
        same = Q(status=Document.Status.QUEUED, last_task_id=document.last_task_id)
        if not document.last_task_id and document.updated_at < sent_before:
            reason = "queued, never sent to the broker (it was unreachable)"
        elif document.pk not in waiting_ids:
            continue
        elif in_broker is not None and document.last_task_id not in in_broker:
            reason = "queued, its message is missing from the broker"
        elif in_broker is None and document.updated_at < now - older_than:
            reason = f"queued for {_minutes(now - document.updated_at)} (broker not inspectable)"
        else:
            continue
        report.found.append(StuckDocument(document.pk, reason, same))
    return report


def _task_ids_in_broker() -> set[str] | None:
    return broker_queue.task_ids_in_broker([broker_queue.queue_of(INGEST_TASK_NAME)])


def _minutes(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60} min" if seconds >= 120 else f"{seconds} s"


def document_chunks(
    document: Document, *, pdf_page: int | None = None, text: str = ""
) -> QuerySet[Chunk]:
    """A document's chunks in order (embeddings not loaded), optionally only those covering
    ``pdf_page`` or containing ``text`` (case-insensitive)."""
    chunks = Chunk.objects.filter(document=document).defer("embedding").order_by("ordinal")
    if pdf_page is not None:
        chunks = chunks.filter(page_start__lte=pdf_page, page_end__gte=pdf_page)
    if text:
        chunks = chunks.filter(text__icontains=text)
    return chunks


def status_counts() -> dict[str, int]:
    """Documents per status, every status present (zero when none)."""
    counts = {status.value: 0 for status in Document.Status}
    for row in Document.objects.order_by().values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    return counts


def recent_failures(*, limit: int) -> list[Document]:
    """The documents that failed most recently, newest first."""
    return list(
        Document.objects.filter(status=Document.Status.FAILED).order_by("-updated_at")[:limit]
    )


def active_documents(*, limit: int) -> list[Document]:
    """Documents being processed (longest running first), then those waiting in the queue."""
    processing = Document.objects.filter(status=Document.Status.PROCESSING).order_by(
        "processing_started_at"
    )
    queued = Document.objects.filter(status=Document.Status.QUEUED).order_by("updated_at")
    found = list(processing[:limit])
    return found + list(queued[: limit - len(found)])


def documents_progress(document_ids: Sequence[int]) -> list[Document]:
    """The documents whose progress a page is showing, in id order (unknown ids left out)."""
    return list(Document.objects.filter(pk__in=list(document_ids)).order_by("pk"))


def pages_ingested_per_hour(
    *, hours: int, now: datetime | None = None
) -> list[tuple[datetime, int]]:
    """Pages ingested per hour over the last ``hours`` hours, oldest hour first, every hour
    present (zero when idle).

    Counted from the successful ingestion runs django-celery-results stored (a reingest is work
    done too), by the hour each run finished, in the current time zone.
    """
    now = now or timezone.now()
    tz = timezone.get_current_timezone()
    current_hour = timezone.localtime(now, tz).replace(minute=0, second=0, microsecond=0)
    first_hour = current_hour - timedelta(hours=hours - 1)
    pages = Cast(KeyTextTransform("pages", Cast("result", JSONField())), IntegerField())
    rows = (
        TaskResult.objects.filter(
            task_name=INGEST_TASK_NAME,
            status="SUCCESS",
            date_done__gte=first_hour,
            date_done__lte=now,
            # Only results stored as JSON objects carry a page count (skipped runs have none).
            result__startswith="{",
        )
        .annotate(hour=TruncHour("date_done", tzinfo=tz))
        .order_by()
        .values("hour")
        .annotate(pages=Sum(pages))
    )
    by_hour = {row["hour"]: row["pages"] or 0 for row in rows}
    return [
        (hour, by_hour.get(hour, 0))
        for hour in (first_hour + timedelta(hours=i) for i in range(hours))
    ]


def documents_with_ocr_pages() -> QuerySet[Document]:
    """Documents whose latest ingestion read at least one page by OCR."""
    return Document.objects.filter(page_sources__ocr__gt=0)


def stale_documents(*, embedder: str | None = None) -> QuerySet[Document]:
    """Ready documents whose chunks another embedder made: their vectors are in another space."""
    if embedder is None:
        embedder = ingestion.current_embedder()[0]
    return Document.objects.filter(status=Document.Status.READY).exclude(embedder=embedder)


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


def documents_visible_to(collections: Sequence[str]) -> QuerySet[Document]:
    """The documents an API key limited to ``collections`` may see (all when empty); any other
    document does not exist for it."""
    documents = Document.objects.all()
    if collections:
        documents = documents.filter(collection__in=list(collections))
    return documents
