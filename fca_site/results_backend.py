"""django-celery-results' database backend, with the states that only inform stored best-effort.

Celery stores STARTED in the database before a task's body runs, and RETRY after the retry's
message is already on its way. If the database is down at that moment, the store raises, Celery
ends the task as an internal error and acknowledges its message: the body, whose own retry
policy exists for exactly this outage, never runs, and the document waits for the stuck sweep.
Losing a STARTED or RETRY row is harmless (the next state overwrites it); losing the task is
not. Final states (SUCCESS, FAILURE) still raise, as before.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import states
from django.db import InterfaceError, OperationalError, connection
from django_celery_results.backends.database import DatabaseBackend as StockDatabaseBackend

logger = logging.getLogger(__name__)

# States that describe a task on its way, not its outcome.
INFORMATIONAL_STATES = frozenset({states.STARTED, states.RETRY})


class DatabaseBackend(StockDatabaseBackend):
    """The ``django-db`` backend; STARTED and RETRY are not worth a task when the database is
    unreachable (see the module's docstring)."""

    def store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: Any = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        try:
            return super().store_result(task_id, result, state, traceback, request, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            if state not in INFORMATIONAL_STATES:
                raise
            # A broken connection would fail the task's own first query too: start afresh.
            connection.close()
            logger.warning(
                "result state=%s not stored task_id=%s: database unavailable (%s)",
                state,
                task_id,
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
            )
            return result
