"""Celery worker signals: refuse unsupported pools, close the bridge's loops on shutdown."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_init, worker_process_shutdown, worker_shutdown

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


def close_bridge(**_kwargs: Any) -> None:
    """Dispose engines and close event loops before the process exits."""
    from documents import ingestion

    ingestion.shutdown()


def connect() -> None:
    """Connect the handlers (called once from the app config)."""
    worker_init.connect(refuse_unsupported_pool, weak=False, dispatch_uid="fca-refuse-pool")
    worker_process_shutdown.connect(close_bridge, weak=False, dispatch_uid="fca-close-child")
    worker_shutdown.connect(close_bridge, weak=False, dispatch_uid="fca-close-main")
