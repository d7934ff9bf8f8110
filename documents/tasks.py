"""Celery tasks: thin adapters from a message to one service call, plus the retry policy."""

from __future__ import annotations

import logging
import random
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from documents import services
from documents.ingestion import DocumentMissingError, PermanentIngestError, TransientIngestError

logger = logging.getLogger(__name__)

MAX_RETRIES = 5
RETRY_BASE_SECONDS = 5
RETRY_MAX_SECONDS = 300


def retry_delay(retries: int) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**retries)]."""
    return random.uniform(0, min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2**retries))


@shared_task(
    name="ingest_pdf_task",
    bind=True,
    # Acknowledge after the work: a message whose worker died is delivered again. Safe because
    # ingestion replaces a document's chunks atomically (running twice gives one set).
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
    # Bad input is an expected outcome: logged without a traceback, recorded as FAILURE.
    throws=(PermanentIngestError,),
)
def ingest_pdf_task(self: Task, document_id: int) -> dict[str, Any]:
    """Ingest the document ``document_id`` (an id, never a path; see DESIGN.md decision 1)."""
    try:
        return services.document_ingest(document_id=document_id, task_id=self.request.id)
    except DocumentMissingError:
        logger.warning("ingestion skipped: document_id=%s no longer exists", document_id)
        raise
    except PermanentIngestError:
        # Already recorded on the document by the service; no retry can help.
        raise
    except TransientIngestError as exc:
        if self.request.retries >= self.max_retries:
            services.document_mark_failed(
                document_id=document_id,
                code=exc.code,
                message=f"Gave up after {self.max_retries} retries: {exc.message}",
            )
            raise
        countdown = retry_delay(self.request.retries)
        logger.warning(
            "ingestion retry document_id=%s retry=%d countdown=%.1fs error=%s",
            document_id,
            self.request.retries + 1,
            countdown,
            exc,
        )
        raise self.retry(exc=exc, countdown=countdown) from exc
    except SoftTimeLimitExceeded:
        services.document_mark_failed(
            document_id=document_id,
            code="timeout",
            message="Ingestion exceeded its time limit (CELERY_TASK_SOFT_TIME_LIMIT).",
        )
        raise
    except Exception as exc:
        # Unexpected: record it on the document so nothing stays "processing", then let Celery
        # record the failure too.
        logger.exception("ingestion crashed document_id=%s", document_id)
        services.document_mark_failed(
            document_id=document_id, code="internal", message=f"{type(exc).__name__}: {exc}"
        )
        raise
