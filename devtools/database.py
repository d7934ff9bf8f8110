"""Database probes for tests and benchmarks."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def backend_pid(conn: AsyncConnection) -> int:
    """The database server process serving ``conn`` (to observe connection reuse)."""
    return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
