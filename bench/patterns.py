"""The ways to call an async database round-trip from synchronous code that bench/bridge.py
compares. Each ``*_call`` runs one ``SELECT pg_backend_pid()`` and returns the backend pid.

``seed_call`` is the common pattern the bridge replaces: take the thread's event loop with
``asyncio.get_event_loop()`` (make one if there is none or it is closed), build a new service,
hence a new engine and new connections, for every call, and ``run_until_complete``.
"""

from __future__ import annotations

import asyncio
import warnings

from asgiref.sync import async_to_sync
from sqlalchemy.ext.asyncio import AsyncEngine

from devtools.database import backend_pid
from rag import bridge, store
from rag.config import RAGConfig
from rag.service import engine_for


async def _round_trip(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return await backend_pid(conn)


async def _round_trip_own_engine(config: RAGConfig) -> int:
    engine = store.create_engine(config.database_url, pool_size=config.pool_size)
    try:
        return await _round_trip(engine)
    finally:
        await engine.dispose()


async def _round_trip_bridge(config: RAGConfig) -> int:
    return await _round_trip(engine_for(config))


def bridge_call(config: RAGConfig) -> int:
    """This project: the long-lived loop and its engine."""
    return bridge.run(_round_trip_bridge(config))


def seed_loop() -> asyncio.AbstractEventLoop:
    """The seed pattern's loop dance: the thread's loop, or a new one if none or closed."""
    with warnings.catch_warnings():
        # The pattern's own deprecation (no current event loop) is part of what it is.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
    if loop.is_closed():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    return loop


def seed_call(config: RAGConfig) -> int:
    """The loop dance, and a new engine per call."""
    return seed_loop().run_until_complete(_round_trip_own_engine(config))


def asyncio_run_call(config: RAGConfig) -> int:
    """A new loop per call (``asyncio.run``), so a new engine per call."""
    return asyncio.run(_round_trip_own_engine(config))


def async_to_sync_call(config: RAGConfig) -> int:
    """asgiref's ``async_to_sync``: a new loop per call here too, so a new engine per call."""
    return async_to_sync(_round_trip_own_engine)(config)


PATTERNS = {
    "bridge": bridge_call,
    "seed": seed_call,
    "asyncio.run": asyncio_run_call,
    "async_to_sync": async_to_sync_call,
}
