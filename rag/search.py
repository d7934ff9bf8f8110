"""The search queries: nearest chunks by vector, full-text ranking, and rank fusion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, text
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
    ocr: bool = False
    """Whether any of the chunk's text was read by OCR (it may hold recognition errors)."""
    ocr_confidence: float | None = None
    """Mean OCR confidence (0-100) of its OCR'd words."""


def _hit_columns():
    return (
        ChunkRow.id,
        ChunkRow.document_id,
        DocumentRow.title,
        ChunkRow.page_start,
        ChunkRow.page_end,
        ChunkRow.text,
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
        ocr=row.ocr,
        ocr_confidence=row.ocr_confidence,
    )


async def search_vector(
    engine: AsyncEngine,
    embedding: Sequence[float],
    *,
    k: int,
    ef_search: int,
    document_ids: Sequence[int] | None = None,
) -> list[SearchHit]:
    """Nearest chunks by cosine distance through the HNSW index; score = cosine similarity."""
    distance = ChunkRow.embedding.cosine_distance(list(embedding))
    query = (
        select(*_hit_columns(), (1 - distance).label("score"))
        .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
        .order_by(distance)
        .limit(k)
    )
    if document_ids:
        query = query.where(ChunkRow.document_id.in_(list(document_ids)))
    async with engine.begin() as conn:
        # Both settings last for this transaction only. ef_search trades speed for recall; with
        # a filter, iterative scans keep reading the index until k rows pass it (pgvector 0.8).
        await conn.execute(select(func.set_config("hnsw.ef_search", str(ef_search), True)))
        if document_ids:
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
    document_ids: Sequence[int] | None = None,
    min_hits: int | None = None,
) -> tuple[list[SearchHit], list[SearchHit]]:
    """Chunks holding every word of the query, then (only when there are fewer than
    ``min_hits``, default ``k``, of those) other chunks holding any of the words.

    Matching every word is selective and so fast on a large index, and precise; matching any
    word alone would rank a large part of the index for common words.
    """
    async with engine.connect() as conn:
        every_word = await _text_hits(
            conn, query_text, k=k, any_word=False, document_ids=document_ids
        )
        any_word: list[SearchHit] = []
        if len(every_word) < (k if min_hits is None else min_hits):
            seen = {hit.chunk_id for hit in every_word}
            more = await _text_hits(conn, query_text, k=k, any_word=True, document_ids=document_ids)
            any_word = [hit for hit in more if hit.chunk_id not in seen][: k - len(every_word)]
    return every_word, any_word


async def _text_hits(
    conn: AsyncConnection,
    query_text: str,
    *,
    k: int,
    any_word: bool,
    document_ids: Sequence[int] | None,
) -> list[SearchHit]:
    # plainto_tsquery ANDs the words; replacing '&' by '|' ORs them.
    tsquery = "plainto_tsquery(CAST(:config AS regconfig), :q)"
    if any_word:
        tsquery = f"replace({tsquery}::text, '&', '|')::tsquery"
    statement = text(
        "SELECT c.id, c.document_id, d.title, c.page_start, c.page_end, c.text, c.ocr, "
        "c.ocr_confidence, "
        "ts_rank_cd(c.search_vector, q.query) AS score "
        "FROM documents_chunk c JOIN documents_document d ON d.id = c.document_id, "
        f"(SELECT {tsquery} AS query) q "
        "WHERE q.query::text <> '' AND c.search_vector @@ q.query "
        + ("AND c.document_id = ANY(:ids) " if document_ids else "")
        + "ORDER BY score DESC, c.id LIMIT :k"
    )
    params: dict[str, object] = {"config": TEXT_SEARCH_CONFIG, "q": query_text, "k": k}
    if document_ids:
        params["ids"] = list(document_ids)
    rows = (await conn.execute(statement, params)).all()
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
