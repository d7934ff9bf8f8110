"""Probe tasks the integration tests load into a real worker (``CELERY_EXTRA_IMPORTS``).

They exercise the bridge the way ingestion does: synchronous Celery task -> ``rag.bridge.run``
-> the loop's shared async engine.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from celery import shared_task
from sqlalchemy import text

from devtools.database import backend_pid
from documents.ingestion import rag_config
from rag import bridge
from rag.errors import CorruptPdfError
from rag.service import engine_for


async def _probe(config) -> dict:
    engine = engine_for(config)
    async with engine.connect() as conn:
        backend = await backend_pid(conn)
    return {
        "pid": os.getpid(),
        "thread": threading.get_ident(),
        "loop": id(asyncio.get_running_loop()),
        "backend": backend,
        "engine": id(engine),
    }


@shared_task(name="tests.probe")
def probe() -> dict:
    """One database round-trip through the bridge; report who ran it on which loop."""
    return bridge.run(_probe(rag_config()))


async def _stuck(config, document_id: int, marker: str, finally_file: str) -> None:
    engine = engine_for(config)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE documents_document SET title = :t WHERE id = :d"),
                {"t": marker, "d": document_id},
            )
            await asyncio.sleep(60)
    finally:
        Path(finally_file).write_text(f"finally ran in pid {os.getpid()}")


@shared_task(name="tests.stuck_in_transaction", soft_time_limit=1, time_limit=30)
def stuck_in_transaction(document_id: int, marker: str, finally_file: str) -> None:
    """Write inside a transaction, then wait forever: the soft time limit must interrupt it."""
    bridge.run(_stuck(rag_config(), document_id, marker, finally_file))


async def _fail() -> None:
    await asyncio.sleep(0)
    raise CorruptPdfError("The PDF structure cannot be read (probe).")


@shared_task(name="tests.permanent_error")
def permanent_error() -> None:
    """A coroutine that raises a permanent ingestion error."""
    bridge.run(_fail())
