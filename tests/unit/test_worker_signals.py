"""Which pools the worker accepts, decided before it consumes anything."""

from __future__ import annotations

import types

import pytest

from documents.worker_signals import refuse_unsupported_pool


def worker_with_pool(module: str) -> object:
    pool_cls = type("TaskPool", (), {"__module__": module})
    return types.SimpleNamespace(pool_cls=pool_cls)


@pytest.mark.parametrize(
    "module",
    ["celery.concurrency.prefork", "celery.concurrency.solo", "celery.concurrency.thread"],
)
def test_supported_pools_start(module):
    refuse_unsupported_pool(sender=worker_with_pool(module))


@pytest.mark.parametrize("name", ["gevent", "eventlet"])
def test_green_thread_pools_stop_the_worker_with_a_clear_message(name):
    with pytest.raises(SystemExit, match=f"The worker pool '{name}' is not supported"):
        refuse_unsupported_pool(sender=worker_with_pool(f"celery.concurrency.{name}"))
