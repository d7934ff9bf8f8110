"""Tasks a benchmark worker loads (CELERY_EXTRA_IMPORTS=bench.worker_tasks)."""

from __future__ import annotations

import time

from celery import shared_task

from bench.patterns import bridge_call, seed_call
from documents.ingestion import rag_config


@shared_task(name="bench.bridge_round_trip")
def bridge_round_trip() -> dict:
    """One database round-trip through the bridge."""
    return {"backend": bridge_call(rag_config()), "done": time.time()}


@shared_task(name="bench.seed_round_trip")
def seed_round_trip() -> dict:
    """One database round-trip through the seed pattern."""
    return {"backend": seed_call(rag_config()), "done": time.time()}


@shared_task(name="bench.seed_ingest")
def seed_ingest(document_id: int) -> dict:
    """Ingestion the way the seed pattern does it: the loop dance, a new engine per task, and
    every chunk embedded and inserted on its own (no batching, no overlap)."""
    from bench.seed_ingest import seed_ingest_document

    return seed_ingest_document(document_id)
