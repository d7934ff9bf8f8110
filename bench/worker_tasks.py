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
