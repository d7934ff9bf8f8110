"""The search queries: nearest chunks by vector, full-text ranking, and rank fusion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Integer, Text, cast, func, literal, select, true
from sqlalchemy.dialects.postgresql import REGCONFIG, TSQUERY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rag.store import TEXT_SEARCH_CONFIG, ChunkRow, DocumentRow

RRF_K = 60


@dataclass(frozen=True)
class SearchHit:
    """One retrieved chunk with its citation."""

    chunk_id: int
    document_id: int
    title: str
    page_start: int
    page_end: int
    score: float
    text: str
    collection: str = ""
    text_chars: int | None = None
    """Length of the chunk's whole text when ``text`` is only its start (None: it is whole)."""
    ocr: bool = False
    """Whether any of the chunk's text was read by OCR (it may hold recognition errors)."""
    ocr_confidence: float | None = None
    """Mean OCR confidence (0-100) of its OCR'd words."""


@dataclass(frozen=True)
class SearchFilters:
    """Which documents a search may return: each given condition must hold (an empty list
    matches nothing, None places no condition). Applied in SQL, inside the index scans."""

    document_ids: Sequence[int] | None = None
    collections: Sequence[str] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def is_empty(self) -> bool:
        return (
            self.document_ids is None
            and self.collections is None
            and self.created_after is None
            and self.created_before is None
        )

    def matches_nothing(self) -> bool:
        return (self.document_ids is not None and not self.document_ids) or (
            self.collections is not None and not self.collections
        )

    def conditions(self) -> list[ColumnElement[bool]]:
        """The conditions on ``documents_chunk`` joined with ``documents_document``."""
        found: list[ColumnElement[bool]] = []
        if self.document_ids is not None:
            found.append(ChunkRow.document_id.in_(list(self.document_ids)))
        if self.collections is not None:
            found.append(DocumentRow.collection.in_(list(self.collections)))
        if self.created_after is not None:
            found.append(DocumentRow.created_at >= self.created_after)
        if self.created_before is not None:
            found.append(DocumentRow.created_at < self.created_before)
        return found


NO_FILTERS = SearchFilters()


def _hit_columns(text_chars: int | None):
    """The columns of a hit; with ``text_chars``, only that much of the text, and its length."""
    text = ChunkRow.text if text_chars is None else func.substr(ChunkRow.text, 1, text_chars)
    whole = literal(None, Integer) if text_chars is None else func.length(ChunkRow.text)
    return (
        ChunkRow.id,
        ChunkRow.document_id,
        DocumentRow.title,
        ChunkRow.page_start,
        ChunkRow.page_end,
        text.label("text"),
        DocumentRow.collection,
        whole.label("text_chars"),
        ChunkRow.ocr,
        ChunkRow.ocr_confidence,
    )


def _hit(row, score: float) -> SearchHit:
    return SearchHit(
        chunk_id=row.id,
        document_id=row.document_id,
        title=row.title,
        page_start=row.page_start,
        page_end=row.page_end,
        score=float(score),
        text=row.text,
        collection=row.collection,
        text_chars=row.text_chars,
        ocr=row.ocr,
        ocr_confidence=row.ocr_confidence,
    )


async def search_vector(
    engine: AsyncEngine,
    embedding: Sequence[float],
    *,
    k: int,
    ef_search: int,
    filters: SearchFilters = NO_FILTERS,
    text_chars: int | None = None,
) -> list[SearchHit]:
    """Nearest chunks by cosine distance through the HNSW index; score = cosine similarity.

    ``text_chars``: read only that many characters of each hit's text, and its whole length.
    """
    if filters.matches_nothing():
        return []
    distance = ChunkRow.embedding.cosine_distance(list(embedding))
    query = (
        select(*_hit_columns(text_chars), (1 - distance).label("score"))
        .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
        .where(*filters.conditions())
        .order_by(distance)
        .limit(k)
    )
    async with engine.begin() as conn:
        # Both settings last for this transaction only. ef_search trades speed for recall; with
        # a filter, iterative scans keep reading the index until k rows pass it (pgvector 0.8).
        await conn.execute(select(func.set_config("hnsw.ef_search", str(ef_search), True)))
        if not filters.is_empty():
            await conn.execute(
                select(func.set_config("hnsw.iterative_scan", "relaxed_order", True))
            )
        rows = (await conn.execute(query)).all()
    return [_hit(row, row.score) for row in rows]


async def search_text_tiers(
    engine: AsyncEngine,
    query_text: str,
    *,
    k: int,
    filters: SearchFilters = NO_FILTERS,
    min_hits: int | None = None,
    text_chars: int | None = None,
) -> tuple[list[SearchHit], list[SearchHit]]:
    """Chunks holding every word of the query, then (only when there are fewer than
    ``min_hits``, default ``k``, of those) other chunks holding any of the words.

    Matching every word is selective and so fast on a large index, and precise; matching any
    word alone would rank a large part of the index for common words. ``text_chars``: as for
    :func:`search_vector`.
    """
    if filters.matches_nothing():
        return [], []
    async with engine.connect() as conn:
        every_word = await _text_hits(
            conn, query_text, k=k, any_word=False, filters=filters, text_chars=text_chars
        )
        any_word: list[SearchHit] = []
        if len(every_word) < (k if min_hits is None else min_hits):
            seen = {hit.chunk_id for hit in every_word}
            more = await _text_hits(
                conn, query_text, k=k, any_word=True, filters=filters, text_chars=text_chars
            )
            any_word = [hit for hit in more if hit.chunk_id not in seen][: k - len(every_word)]
    return every_word, any_word


async def _text_hits(
    conn: AsyncConnection,
    query_text: str,
    *,
    k: int,
    any_word: bool,
    filters: SearchFilters,
    text_chars: int | None,
) -> list[SearchHit]:
    # plainto_tsquery ANDs the words; replacing '&' by '|' ORs them.
    tsquery = func.plainto_tsquery(cast(TEXT_SEARCH_CONFIG, REGCONFIG), query_text)
    if any_word:
        tsquery = cast(func.replace(cast(tsquery, Text), "&", "|"), TSQUERY)
    words = select(tsquery.label("query")).subquery("q")
    score = func.ts_rank_cd(ChunkRow.search_vector, words.c.query).label("score")
    statement = (
        select(*_hit_columns(text_chars), score)
        .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
        .join(words, true())
        .where(
            cast(words.c.query, Text) != "",
            ChunkRow.search_vector.op("@@")(words.c.query),
            *filters.conditions(),
        )
        .order_by(score.desc(), ChunkRow.id)
        .limit(k)
    )
    rows = (await conn.execute(statement)).all()
    return [_hit(row, row.score) for row in rows]


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[SearchHit]],
    *,
    k: int,
    weights: Sequence[float] | None = None,
    rrf_k: int = RRF_K,
) -> list[SearchHit]:
    """Fuse ranked lists: each hit scores the sum of weight / (rrf_k + rank) over the lists."""
    weights = weights or [1.0] * len(rankings)
    scores: dict[int, float] = {}
    hits: dict[int, SearchHit] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + weight / (rrf_k + rank)
            hits.setdefault(hit.chunk_id, hit)
    ordered = sorted(scores, key=lambda chunk_id: (-scores[chunk_id], chunk_id))[:k]
    return [
        SearchHit(**{**hits[chunk_id].__dict__, "score": scores[chunk_id]}) for chunk_id in ordered
    ]
