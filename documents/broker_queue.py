"""Whether a queued document's message is still in the broker: Redis only, read-only.

Celery cannot say whether a message exists, so this reads kombu's Redis layout: each queue is
a list (one per priority step), and every message delivered but not acknowledged (running,
reserved, or waiting for its retry countdown: the ingestion task acknowledges late) is in the
``unacked`` hash until the worker acknowledges it or the visibility timeout restores it. For
any other broker, :func:`task_ids_in_broker` answers None and the stuck rules fall back to the
age of the queued document (RAG_STUCK_AFTER_SECONDS).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from celery import current_app

logger = logging.getLogger(__name__)


def queue_of(task_name: str) -> str:
    """The queue Celery routes ``task_name`` to (its routes, else the default queue)."""
    return current_app.amqp.router.route({}, task_name)["queue"].name


def task_ids_in_broker(queue_names: Iterable[str]) -> set[str] | None:
    """Ids of the tasks whose messages wait in these queues or are delivered and not yet
    acknowledged; None when the broker is not Redis (nothing to read)."""
    with current_app.connection_for_read() as connection:
        if connection.transport.driver_type != "redis":
            return None
        channel = connection.default_channel
        client = channel.client
        ids: set[str] = set()
        for queue in queue_names:
            for step in sorted(set(channel.priority_steps)):
                key = f"{queue}{channel.sep}{step}" if step else queue
                ids.update(_task_id(raw) for raw in client.lrange(key, 0, -1))
        for raw in client.hvals(channel.unacked_key):
            payload = json.loads(raw)
            ids.add(_task_id(payload[0]) if isinstance(payload, list) and payload else "")
    ids.discard("")
    return ids


def _task_id(message: bytes | str | dict) -> str:
    """The task id in a kombu message as stored by the Redis transport ("" when unreadable)."""
    try:
        data = json.loads(message) if isinstance(message, bytes | str) else message
        return str(data["headers"]["id"])
    except (ValueError, KeyError, TypeError):
        logger.warning("unreadable message in the broker: %.200r", message)
        return ""
