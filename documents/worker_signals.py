"""Celery worker signals: refuse to start with an unsupported pool, a mismatched embedder, an
unusable file storage or spool folder, or OCR that cannot run; remove dead processes' spool
files; close the bridge's loops on shutdown."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)

logger = logging.getLogger(__name__)

# The bridge runs one asyncio loop per process (prefork, solo) or per thread (threads).
# Green-thread pools monkey-patch the standard library underneath asyncio and psycopg.
SUPPORTED_POOLS = ("prefork", "solo", "threads")


def _pool_name(sender: Any) -> str:
    pool_cls = getattr(sender, "pool_cls", None)
    if isinstance(pool_cls, str):
        return pool_cls.rsplit(":", 1)[-1].rsplit(".", 1)[-1].lower()
    module = getattr(pool_cls, "__module__", "") or ""
    return module.rsplit(".", 1)[-1].lower()


def refuse_unsupported_pool(sender: Any = None, **_kwargs: Any) -> None:
    """Stop a worker started with gevent or eventlet, with a message that says what to use."""
    name = _pool_name(sender)
    aliases = {"processes": "prefork", "thread": "threads"}
    name = aliases.get(name, name)
    if name and name not in SUPPORTED_POOLS:
        message = (
            f"The worker pool {name!r} is not supported: ingestion runs an asyncio event loop per "
            f"process or thread. Use --pool prefork (default), solo or threads."
        )
        logger.critical(message)
        # Celery logs and ignores exceptions raised by signal handlers; SystemExit stops the
        # worker before it consumes a single message.
        raise SystemExit(message)


def refuse_mismatched_embedder(**_kwargs: Any) -> None:
    """Stop a worker whose embedder's vectors would not fit the database column, or whose
    stale-heartbeat threshold would have running ingestions requeued as stuck."""
    import django

    django.setup()
    from documents.checks import embedder_mismatch_errors, heartbeat_threshold_errors

    errors = heartbeat_threshold_errors() + embedder_mismatch_errors()
    if errors:
        message = errors[0].msg
        logger.critical(message)
        raise SystemExit(message)


def refuse_unusable_storage(**_kwargs: Any) -> None:
    """Stop a worker that cannot read the stored files (S3: bucket missing, credentials
    refused, endpoint unreachable): every task would fail."""
    from documents.storage import storage_problem

    problem = storage_problem()
    if problem:
        message = f"The worker cannot read stored files: {problem}"
        logger.critical(message)
        raise SystemExit(message)


def refuse_unusable_spool(**_kwargs: Any) -> None:
    """Stop a worker that cannot make its private copies of stored files (RAG_SPOOL_DIR): every
    task would fail."""
    from documents.spool import spool_problem

    problem = spool_problem()
    if problem:
        message = f"The worker cannot copy stored files to read them: {problem}"
        logger.critical(message)
        raise SystemExit(message)


def remove_stale_spool_files(**_kwargs: Any) -> None:
    """worker_init and worker_process_init: remove the spool files of processes that died
    mid-task (hard time limit, SIGKILL), such as the child this process replaces."""
    from documents import spool

    spool.remove_stale_spool_files()


def refuse_unusable_ocr(**_kwargs: Any) -> None:
    """Stop a worker whose OCR settings cannot work (a language pack not installed), rather
    than fail documents one by one."""
    import django

    django.setup()
    from documents.ingestion import ocr_problem

    problem = ocr_problem()
    if problem:
        logger.critical(problem)
        raise SystemExit(problem)


def check_worker_can_start(sender: Any = None, **kwargs: Any) -> None:
    """worker_init: the pool must be supported, the embedder must fit the database, the file
    storage and the spool folder must be usable and OCR must be able to run."""
    refuse_unsupported_pool(sender=sender, **kwargs)
    refuse_unusable_ocr()
    refuse_mismatched_embedder()
    refuse_unusable_storage()
    refuse_unusable_spool()
    remove_stale_spool_files()


def close_bridge(**_kwargs: Any) -> None:
    """Dispose engines and close event loops before the process exits."""
    from documents import ingestion

    ingestion.shutdown()


def connect() -> None:
    """Connect the handlers (called once from the app config)."""
    worker_init.connect(check_worker_can_start, weak=False, dispatch_uid="fca-worker-can-start")
    worker_process_init.connect(
        remove_stale_spool_files, weak=False, dispatch_uid="fca-remove-stale-spool"
    )
    worker_process_shutdown.connect(close_bridge, weak=False, dispatch_uid="fca-close-child")
    worker_shutdown.connect(close_bridge, weak=False, dispatch_uid="fca-close-main")
