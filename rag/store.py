"""The tables the service reads and writes, the async engine, and the queries.

Django migrations own the schema (``documents/migrations``); this module only maps the same
tables, and ``tests/unit/test_schema_mapping.py`` proves the two agree. Nothing here creates a
table.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from rag.chunking import Chunk
from rag.errors import DocumentMissingError, EmbedderMismatchError

logger = logging.getLogger(__name__)

# Namespace of the advisory locks taken per document (first half of the two-int lock key), so
# they cannot collide with locks other code takes on the same database.
DOCUMENT_LOCK_NAMESPACE = 0x46CA
INSERT_BATCH_ROWS = 500


class Base(DeclarativeBase):
    """Declarative base for the mapped tables (never used to create them)."""


class DocumentRow(Base):
    """``documents_document``: the columns the service reads or writes."""

    __tablename__ = "documents_document"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    title: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    page_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    chunk_count: Mapped[int] = mapped_column(Integer)
    embedder: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ChunkRow(Base):
    """``documents_chunk``: one embedded piece of a document."""

    __tablename__ = "documents_chunk"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    document_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("documents_document.id"), index=True
    )
    ordinal: Mapped[int] = mapped_column(Integer)
    page_start: Mapped[int] = mapped_column(Integer)
    page_end: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer)
    embedder: Mapped[str] = mapped_column(String(200))
    # The dimension lives in the database column (set by the migration); see vector_dimensions.
    embedding: Mapped[list[float]] = mapped_column(Vector())


def create_engine(database_url: str, *, pool_size: int) -> AsyncEngine:
    """An async engine (psycopg 3) with a small pool; it belongs to the loop that uses it."""
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=0,
        # A connection that died with a database restart is replaced instead of failing a task.
        pool_pre_ping=True,
        pool_recycle=1800,
    )


async def vector_dimensions(conn: AsyncConnection) -> int | None:
    """The dimension of ``documents_chunk.embedding`` as the database declares it."""
    result = await conn.execute(
        text(
            "SELECT atttypmod FROM pg_attribute "
            "WHERE attrelid = 'documents_chunk'::regclass AND attname = 'embedding'"
        )
    )
    typmod = result.scalar_one_or_none()
    return None if typmod is None or typmod < 0 else int(typmod)


async def check_dimensions(conn: AsyncConnection, *, embedder: str, dimensions: int) -> None:
    """Refuse an embedder whose vectors do not fit the column, before any work is done."""
    column = await vector_dimensions(conn)
    if column is not None and column != dimensions:
        raise EmbedderMismatchError(
            f"The embedder {embedder} makes {dimensions}-dimensional vectors but the database "
            f"column holds {column}. Use an embedder of {column} dimensions, or set "
            f"RAG_EMBEDDING_DIMENSIONS={dimensions} on a new database and reingest."
        )


@dataclass(frozen=True)
class EmbeddedChunk:
    """A chunk with its vector, ready to insert."""

    chunk: Chunk
    embedding: Sequence[float]


async def replace_chunks(
    engine: AsyncEngine,
    *,
    document_id: int,
    chunks: Sequence[EmbeddedChunk],
    page_count: int,
    embedder: str,
) -> None:
    """Replace a document's chunks and counts in one transaction.

    Readers see either the old set or the new one, never a mix or a half-written set. A
    transaction-scoped advisory lock serialises two ingestions of the same document (a
    redelivered message racing the original): the second waits, then replaces the first's work
    with an identical set instead of adding to it.
    """
    async with engine.begin() as conn:
        await conn.execute(select(func.pg_advisory_xact_lock(DOCUMENT_LOCK_NAMESPACE, document_id)))
        exists = await conn.execute(
            select(DocumentRow.id).where(DocumentRow.id == document_id).with_for_update()
        )
        if exists.scalar_one_or_none() is None:
            raise DocumentMissingError(f"Document {document_id} no longer exists.")
        await conn.execute(delete(ChunkRow).where(ChunkRow.document_id == document_id))
        rows = [
            {
                "document_id": document_id,
                "ordinal": item.chunk.ordinal,
                "page_start": item.chunk.page_start,
                "page_end": item.chunk.page_end,
                "text": item.chunk.text,
                "token_count": item.chunk.token_count,
                "embedder": embedder,
                "embedding": list(item.embedding),
            }
            for item in chunks
        ]
        # executemany: SQLAlchemy sends these as multi-row INSERTs, not one statement per row.
        for start in range(0, len(rows), INSERT_BATCH_ROWS):
            await conn.execute(insert(ChunkRow), rows[start : start + INSERT_BATCH_ROWS])
        await conn.execute(
            update(DocumentRow)
            .where(DocumentRow.id == document_id)
            .values(
                page_count=page_count,
                chunk_count=len(rows),
                embedder=embedder,
                updated_at=func.now(),
            )
        )


async def backend_pid(conn: AsyncConnection) -> int:
    """The database server process serving ``conn`` (to observe connection reuse)."""
    return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
