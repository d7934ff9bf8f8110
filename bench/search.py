"""Search latency per mode over 100,000 chunks, and HNSW recall@10 against exact search.

Chunks are sentences of the corpus (recombined) with vectors from the deterministic hash
embedder, written straight into a database of the benchmark's own (fca_bench_search); the HNSW
index is rebuilt after loading, as a bulk load would. Queries are other sentences.

Usage:  .venv/bin/python bench/search.py [--chunks 100000] [--queries 200]
Prints p50/p95 per mode and the recall, then one line:
    p95_ms_vector=... p95_ms_text=... p95_ms_hybrid=... hnsw_recall10=...
"""

from __future__ import annotations

import argparse
import io
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import CORPUS, use_bench_database  # noqa: E402

BENCH_DATABASE = "fca_bench_search"
DOCUMENTS = 100
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def corpus_sentences() -> list[str]:
    from rag.parsing import PdfDocument

    sentences: list[str] = []
    for name in ("long-freeculture-book-352pages.pdf", "text-openoffice-55pages.pdf"):
        pdf = PdfDocument(io.BytesIO((CORPUS / name).read_bytes()), max_pages=1000)
        for page in pdf.pages():
            sentences += [s for s in _SENTENCE.split(page.text) if 6 <= len(s.split()) <= 60]
    return sentences


def load(chunks: int, sentences: list[str], rng: random.Random) -> None:
    """Fill the database with ``chunks`` chunks over DOCUMENTS documents (once)."""
    from django.db import connection

    from documents.models import Chunk, Document
    from rag.config import EmbedderConfig
    from rag.embedding import HashEmbedder

    if Chunk.objects.count() == chunks:
        return
    Chunk.objects.all().delete()
    Document.objects.all().delete()
    embedder = HashEmbedder(EmbedderConfig(kind="hash"))
    per_document = chunks // DOCUMENTS
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS chunk_embedding_hnsw")
    for number in range(DOCUMENTS):
        document = Document.objects.create(
            title=f"bench document {number}",
            sha256=f"{number:064d}",
            size_bytes=1,
            status="ready",
            embedder=embedder.name,
        )
        rows = []
        for ordinal in range(per_document):
            text = " ".join(rng.sample(sentences, 3))
            rows.append(
                Chunk(
                    document=document,
                    ordinal=ordinal,
                    page_start=ordinal // 3 + 1,
                    page_end=ordinal // 3 + 1,
                    text=text,
                    token_count=len(text.split()),
                    embedder=embedder.name,
                    embedding=embedder.embed_one(text),
                )
            )
        Chunk.objects.bulk_create(rows, batch_size=1000)
        sys.stderr.write(f"\rloaded {(number + 1) * per_document} chunks")
    sys.stderr.write("\nbuilding the HNSW index...\n")
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute(
            "CREATE INDEX chunk_embedding_hnsw ON documents_chunk "
            "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
        cursor.execute("ANALYZE documents_chunk")


def exact_top10(vector: list[float]) -> list[int]:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(
            "SELECT id FROM documents_chunk ORDER BY embedding <=> %s::vector LIMIT 10",
            [str(vector)],
        )
        return [row[0] for row in cursor.fetchall()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks in the index")
    parser.add_argument("--queries", type=int, default=200, help="queries per mode")
    args = parser.parse_args()
    os.environ["RAG_EMBEDDER"] = "hash"
    use_bench_database(BENCH_DATABASE)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from documents import ingestion
    from rag.config import EmbedderConfig
    from rag.embedding import HashEmbedder

    rng = random.Random(11)
    sentences = corpus_sentences()
    load(args.chunks, sentences, rng)
    queries = [rng.choice(sentences) for _ in range(args.queries)]
    embedder = HashEmbedder(EmbedderConfig(kind="hash"))

    latencies: dict[str, list[float]] = {}
    for mode in ("vector", "text", "hybrid"):
        ingestion.search(queries[0], k=10, mode=mode)  # warm
        times = []
        for query in queries:
            started = time.perf_counter()
            ingestion.search(query, k=10, mode=mode)
            times.append((time.perf_counter() - started) * 1000)
        latencies[mode] = times

    overlap = []
    for query in queries:
        approximate = [hit["chunk_id"] for hit in ingestion.search(query, k=10, mode="vector")]
        exact = exact_top10(embedder.embed_one(query))
        overlap.append(len(set(approximate) & set(exact)) / 10)
    recall = statistics.mean(overlap)

    out = sys.stdout
    out.write(f"\n{args.chunks} chunks, {args.queries} queries, top 10\n")
    out.write(f"{'mode':<8}{'p50 ms':>9}{'p95 ms':>9}\n")
    p95 = {}
    for mode, times in latencies.items():
        p95[mode] = statistics.quantiles(times, n=100)[94]
        out.write(f"{mode:<8}{statistics.median(times):>9.1f}{p95[mode]:>9.1f}\n")
    out.write(f"HNSW recall@10 against exact search (ef_search default): {recall:.3f}\n")
    out.write(
        f"\np95_ms_vector={p95['vector']:.1f} p95_ms_text={p95['text']:.1f}"
        f" p95_ms_hybrid={p95['hybrid']:.1f} hnsw_recall10={recall:.3f}\n"
    )


if __name__ == "__main__":
    main()
