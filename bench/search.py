"""Search latency per mode over 100,000 chunks, and HNSW recall@10 against exact search.

Chunks are sentences of the corpus (recombined) with vectors from the deterministic hash
embedder, written straight into a database of the benchmark's own (fca_bench_search); the HNSW
index is rebuilt after loading, as a bulk load would. Queries are other sentences.

Usage:  .venv/bin/python bench/search.py [--chunks 100000] [--queries 200]
            [--ef-search 40,80,200] [--index-options "m = 16, ef_construction = 128"]
The index is the project's own (its definition is read from the database, as the migrations
made it); --index-options rebuilds it with other options, to explore.
Prints p50/p95 per mode and the recall (also at each --ef-search value), then one line:
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


INDEX = "chunk_embedding_hnsw"


def project_index() -> str:
    """The HNSW index as the project defines it (the model's Meta, which the migrations follow)."""
    from django.db import connection

    from documents.models import Chunk

    index = next(index for index in Chunk._meta.indexes if index.name == INDEX)
    with connection.schema_editor() as editor:
        return str(index.create_sql(Chunk, editor))


def built_index() -> str | None:
    """The definition the index was last built from by this benchmark (kept as its comment)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", [INDEX])
        return cursor.fetchone()[0]


def build_index(definition: str) -> None:
    from django.db import connection

    sys.stderr.write(f"building the HNSW index: {definition}\n")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {INDEX}")
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute(definition)
        cursor.execute(f"COMMENT ON INDEX {INDEX} IS %s", [definition])
        cursor.execute("ANALYZE documents_chunk")
    sys.stderr.write(f"built in {time.perf_counter() - started:.0f}s\n")


def with_options(definition: str, options: str) -> str:
    """``definition`` with its ``WITH (...)`` storage options replaced."""
    return re.sub(r"WITH \(.*\)", f"WITH ({options})", definition)


def load(chunks: int, sentences: list[str], rng: random.Random, definition: str) -> None:
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
        # Built once after loading, as a bulk load would: much faster than row by row.
        cursor.execute(f"DROP INDEX IF EXISTS {INDEX}")
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
    sys.stderr.write("\n")
    build_index(definition)


def exact_top10(vector: list[float]) -> list[int]:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(
            "SELECT id FROM documents_chunk ORDER BY embedding <=> %s::vector LIMIT 10",
            [str(vector)],
        )
        return [row[0] for row in cursor.fetchall()]


def prepare_index(chunks: int, rng: random.Random, *, index_options: str = "") -> list[str]:
    """Django set up on the bench database, holding ``chunks`` chunks (loaded once) and the
    project's vector index (``WITH index_options``, if given); the corpus sentences that the
    chunks and the queries are drawn from."""
    os.environ["RAG_EMBEDDER"] = "hash"
    use_bench_database(BENCH_DATABASE)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    sentences = corpus_sentences()
    definition = project_index()
    if index_options:
        definition = with_options(definition, index_options)
    load(chunks, sentences, rng, definition)
    if built_index() != definition:
        build_index(definition)
    return sentences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks in the index")
    parser.add_argument("--queries", type=int, default=200, help="queries per mode")
    parser.add_argument(
        "--ef-search", default="", help="also report recall at these ef_search values (40,200)"
    )
    parser.add_argument(
        "--index-options", default="", help="rebuild the index WITH these options first"
    )
    args = parser.parse_args()
    rng = random.Random(11)
    sentences = prepare_index(args.chunks, rng, index_options=args.index_options)
    from documents import ingestion
    from rag.config import EmbedderConfig
    from rag.embedding import HashEmbedder

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

    from django.conf import settings

    exact = [exact_top10(embedder.embed_one(query)) for query in queries]
    default_ef = settings.RAG_HNSW_EF_SEARCH
    ef_values = [int(v) for v in args.ef_search.split(",") if v] + [default_ef]
    recall_at: dict[int, float] = {}
    for ef in sorted(set(ef_values)):
        settings.RAG_HNSW_EF_SEARCH = ef
        overlap = []
        for query, best in zip(queries, exact, strict=True):
            found = [hit["chunk_id"] for hit in ingestion.search(query, k=10, mode="vector")]
            overlap.append(len(set(found) & set(best)) / 10)
        recall_at[ef] = statistics.mean(overlap)
    settings.RAG_HNSW_EF_SEARCH = default_ef
    recall = recall_at[default_ef]

    out = sys.stdout
    out.write(f"\n{args.chunks} chunks, {args.queries} queries, top 10\n")
    out.write(f"{'mode':<8}{'p50 ms':>9}{'p95 ms':>9}\n")
    p95 = {}
    for mode, times in latencies.items():
        p95[mode] = statistics.quantiles(times, n=100)[94]
        out.write(f"{mode:<8}{statistics.median(times):>9.1f}{p95[mode]:>9.1f}\n")
    out.write(f"index: {built_index()}\n")
    for ef, value in recall_at.items():
        label = " (default, RAG_HNSW_EF_SEARCH)" if ef == default_ef else ""
        out.write(f"HNSW recall@10 against exact search at ef_search {ef}{label}: {value:.3f}\n")
    out.write(
        f"\np95_ms_vector={p95['vector']:.1f} p95_ms_text={p95['text']:.1f}"
        f" p95_ms_hybrid={p95['hybrid']:.1f} hnsw_recall10={recall:.3f}\n"
    )


if __name__ == "__main__":
    main()
