"""The seed pattern's ingestion, kept only as the benchmark's baseline (bench/ingest.py)."""

from __future__ import annotations

import os
import time
from functools import lru_cache
from typing import Any

from sqlalchemy import delete, insert, update

from bench.patterns import seed_loop
from documents.ingestion import rag_config
from documents.models import Document
from rag import store
from rag.chunking import chunk_pages
from rag.config import EmbedderConfig
from rag.embedder_factory import get_embedder
from rag.embedding import default_model_path
from rag.parsing import PdfDocument


@lru_cache(maxsize=1)
def _stock_model() -> Any:
    """sentence-transformers as it comes (torch, float32, its own threads), once per process."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(default_model_path()), device="cpu")


async def _ingest(document_id: int, path: str) -> int:
    config = rag_config()
    engine = store.create_engine(config.database_url, pool_size=1)  # a new engine per task
    # The project's embedder only for its tokenizer and name (the same chunks); vectors come from
    # the stock model, called on the loop as the seed does, without this project's threads.
    embedder = get_embedder(EmbedderConfig(kind="local", local_runtime="torch"))
    model = _stock_model()
    try:
        with open(path, "rb") as fh:
            pdf = PdfDocument(fh, max_pages=config.max_pages)
            chunks = list(
                chunk_pages(
                    pdf.pages(),
                    embedder.tokenizer,
                    chunk_tokens=config.chunk_tokens,
                    overlap_tokens=config.chunk_overlap_tokens,
                )
            )
        async with engine.begin() as conn:
            await conn.execute(
                delete(store.ChunkRow).where(store.ChunkRow.document_id == document_id)
            )
            for chunk in chunks:  # one embedding call and one INSERT per chunk
                vector = model.encode(chunk.text, normalize_embeddings=True).tolist()
                await conn.execute(
                    insert(store.ChunkRow).values(
                        document_id=document_id,
                        ordinal=chunk.ordinal,
                        page_start=chunk.page_start,
                        page_end=chunk.page_end,
                        text=chunk.text,
                        token_count=chunk.token_count,
                        ocr=chunk.ocr,
                        ocr_confidence=chunk.ocr_confidence,
                        embedder=embedder.name,
                        embedding=vector,
                    )
                )
            await conn.execute(
                update(store.DocumentRow)
                .where(store.DocumentRow.id == document_id)
                .values(page_count=pdf.page_count, chunk_count=len(chunks))
            )
        return len(chunks)
    finally:
        await engine.dispose()


def seed_ingest_document(document_id: int) -> dict:
    """Run one seed-style ingestion with the ``get_event_loop`` dance."""
    document = Document.objects.get(pk=document_id)
    loop = seed_loop()
    chunks = loop.run_until_complete(_ingest(document_id, document.file.path))
    return {"chunks": chunks, "done": time.time()}
