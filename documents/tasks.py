"""Celery tasks: thin adapters from a message to one service call, plus the retry policy."""

from __future__ import annotations

import logging
import random
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError

from documents import services
from documents.ingestion import (
    DocumentMissingError,
    PermanentIngestError,
    ReaderCrashedError,
    TransientIngestError,
)
from documents.selectors import INGEST_TASK_NAME

logger = logging.getLogger(__name__)

# Worth retrying: the database (Django's connection or the service's) or the network failed.
# Never Exception: a bug retried five times is still a bug, only slower to report.
TRANSIENT_ERRORS = (TransientIngestError, OperationalError, InterfaceError)


def retry_delay(retries: int) -> float:
    """Exponential backoff with "equal" jitter: uniform in [step / 2, step], where step is
    min(cap, base * 2**retries). Never near zero: a retry sent straight back into the same
    outage fails before the task even starts (Celery records its STARTED state first).

    The cap is also at most half of RAG_HEARTBEAT_STALE_SECONDS: a document waiting for its
    retry stays processing without a heartbeat, and a longer wait would have the stuck-document
    sweep requeue it under a new task, superseding the retry."""
    cap = min(settings.RAG_RETRY_MAX_SECONDS, settings.RAG_HEARTBEAT_STALE_SECONDS / 2)
    step = min(cap, settings.RAG_RETRY_BASE_SECONDS * 2**retries)
    return random.uniform(step / 2, step)


@shared_task(
    name=INGEST_TASK_NAME,
    bind=True,
    # Acknowledge after the work: a message whose worker died is delivered again. Safe because
    # ingestion replaces a document's chunks atomically (running twice gives one set).
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=settings.RAG_TASK_MAX_RETRIES,
    # Bad input is an expected outcome: logged without a traceback, recorded as FAILURE.
    throws=(PermanentIngestError,),
)
def ingest_pdf_task(self: Task, document_id: int) -> dict[str, Any]:
    """Ingest the document ``document_id``: an id, never a path, which would mean nothing on
    another host and would let a message make a worker read any file."""
    try:
        return services.document_ingest(document_id=document_id, task_id=self.request.id)
    except DocumentMissingError as exc:
        # Deleted before or during its ingestion: an expected end, not a failure.
        logger.info("ingestion skipped document_id=%s: %s", document_id, exc)
        return {"status": "skipped", "document_id": document_id, "reason": "deleted"}
    except PermanentIngestError:
        # Already recorded on the document by the service; no retry can help.
        raise
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= self.max_retries:
            _record_failure(
                self, document_id, "transient", f"Gave up after {self.max_retries} retries: {exc}"
            )
            raise
        raise _retry(self, document_id, exc, max_retries=self.max_retries) from exc
    except ReaderCrashedError as exc:
        # The page reader was killed (out of memory, an operator): like a worker child that
        # died, try again; the service fails the document as "crashed" once its attempts reach
        # RAG_MAX_ATTEMPTS, so this bound only matters if retries outran the attempts.
        if self.request.retries >= settings.RAG_MAX_ATTEMPTS:
            _record_failure(self, document_id, exc.code, exc.message)
            raise
        raise _retry(self, document_id, exc, max_retries=settings.RAG_MAX_ATTEMPTS) from exc
    except SoftTimeLimitExceeded:
        _record_failure(
            self,
            document_id,
            "timeout",
            "Ingestion exceeded its time limit (CELERY_TASK_SOFT_TIME_LIMIT); the PDF is too "
            "slow to read.",
        )
        raise
    except Exception as exc:
        # Unexpected: record it on the document so nothing stays "processing", then let Celery
        # record the failure too.
        logger.exception("ingestion crashed document_id=%s", document_id)
        _record_failure(self, document_id, "internal", f"{type(exc).__name__}: {exc}")
        raise


def _retry(task: Task, document_id: int, exc: Exception, *, max_retries: int) -> Exception:
    """Send the task again after the backoff delay (``Task.retry`` raises its ``Retry``)."""
    countdown = retry_delay(task.request.retries)
    logger.warning(
        "ingestion retry document_id=%s retry=%d countdown=%.1fs error=%s: %s",
        document_id,
        task.request.retries + 1,
        countdown,
        type(exc).__name__,
        exc,
    )
    return task.retry(exc=exc, countdown=countdown, max_retries=max_retries)


def _record_failure(task: Task, document_id: int, code: str, message: str) -> None:
    """Record the failure if the document is still this task's (a superseded run's failure
    must not end the newer one)."""
    try:
        services.document_mark_failed(
            document_id=document_id, code=code, message=message, task_id=task.request.id
        )
    except (OperationalError, InterfaceError):
        # The database is what failed: the document stays visibly in progress, its heartbeat
        # stops, and the stuck-document sweep requeues it once the database is back.
        logger.exception("could not record failure document_id=%s code=%s", document_id, code)


@shared_task(name="requeue_stuck_documents_task")
def requeue_stuck_documents_task() -> dict[str, Any]:
    """The stuck-document sweep (periodic, under celery beat; see README): requeue documents
    whose ingestion died or whose message was lost, and say why for each."""
    report = services.document_requeue_stuck()
    return {
        "requeued": {str(found.document_id): found.reason for found in report.requeued},
        "checked": {"queued": report.queued, "processing": report.processing},
        "broker_checked": report.broker_checked,
    }
