"""What PostgreSQL spends per chunk written, and how much of it is index maintenance.

On bench/search.py's database (100,000 chunks with the project's indexes), --chunks new chunks
(three corpus sentences each, hash vectors, as the index holds) are written with the binary
COPY the ingestion uses, in one transaction that is then rolled back, in four shapes of the
table: as it is; without the HNSW index; without the full-text column and its GIN index (the
generated tsvector is computed on every insert); without either. The indexes and the column are
dropped inside that transaction (PostgreSQL's DDL is transactional), so the rollback restores
them without a rebuild. The figure is the CPU seconds of the database backend that ran the
COPY (read from /proc, so the database must run on this machine), per chunk, median of
--repeat rounds with the shapes in turn.

Usage:  .venv/bin/python bench/index_cost.py [--chunks 1000] [--repeat 5]
Last line:  pg_ms_per_chunk=A hnsw_ms_per_chunk=B fulltext_ms_per_chunk=C rest_ms_per_chunk=D
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.search import INDEX, prepare_index  # noqa: E402

FULLTEXT_INDEX = "chunk_search_vector_gin"
NO_HNSW = [f"DROP INDEX {INDEX}"]
NO_FULLTEXT = [
    f"DROP INDEX {FULLTEXT_INDEX}",
    "ALTER TABLE documents_chunk DROP COLUMN search_vector",
]
SHAPES = {
    "as is": [],
    "no HNSW": NO_HNSW,
    "no full text": NO_FULLTEXT,
    "neither": NO_HNSW + NO_FULLTEXT,
}


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def copy_rows(cursor, rows: list[tuple]) -> None:
    from rag import store

    with cursor.copy(store.COPY_CHUNKS_SQL) as copy:
        copy.set_types([wire for _, wire in store.COPY_COLUMNS])
        for row in rows:
            copy.write_row(row)


def measure(rows: list[tuple], statements: list[str]) -> tuple[float, float]:
    """(backend CPU seconds, wall seconds) of writing ``rows`` with the table reshaped by
    ``statements``; all of it rolled back."""
    import psycopg
    from django.db import connection

    connection.ensure_connection()
    raw = connection.connection
    with raw.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
        comm = Path(f"/proc/{backend}/comm")
        if not comm.exists() or not comm.read_text().startswith("postgres"):
            raise SystemExit(
                "The database must run on this machine, outside a container: the backend's CPU "
                "is read from /proc by its process id."
            )
        with raw.transaction() as transaction:
            for statement in statements:
                cursor.execute(statement)
            cpu_started, started = process_cpu_seconds(backend), time.perf_counter()
            # The HNSW and GIN work is done row by row during the COPY.
            copy_rows(cursor, rows)
            figures = process_cpu_seconds(backend) - cpu_started, time.perf_counter() - started
            raise psycopg.Rollback(transaction)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1000, help="chunks written per shape")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (median kept)")
    parser.add_argument("--base", type=int, default=100_000, help="chunks already indexed")
    args = parser.parse_args()
    rng = random.Random(5)
    sentences = prepare_index(args.base, rng)
    from documents.models import Document
    from rag import store
    from rag.config import EmbedderConfig
    from rag.embedding import HashEmbedder

    embedder = HashEmbedder(EmbedderConfig(kind="hash"))
    document = Document.objects.first()
    texts = [" ".join(rng.sample(sentences, 3)) for _ in range(args.chunks)]
    vectors = store.vector_binary([embedder.embed_one(text) for text in texts])
    rows = [
        (document.pk, 10_000_000 + i, 1, 1, text, len(text.split()), False, None, embedder.name, v)
        for i, (text, v) in enumerate(zip(texts, vectors, strict=True))
    ]
    measure(rows, [])  # warm: caches, the index's upper layers
    cpu: dict[str, list[float]] = {shape: [] for shape in SHAPES}
    wall: dict[str, list[float]] = {shape: [] for shape in SHAPES}
    for _ in range(args.repeat):
        for shape, statements in SHAPES.items():
            seconds, elapsed = measure(rows, statements)
            cpu[shape].append(seconds)
            wall[shape].append(elapsed)

    def per_chunk(values: list[float]) -> float:
        return statistics.median(values) / args.chunks * 1000

    out = sys.stdout
    out.write(f"\n{args.chunks} chunks written into {args.base:,}, median of {args.repeat}\n")
    out.write(f"{'table':<14}{'backend CPU ms/chunk':>22}{'wall ms/chunk':>15}\n")
    for shape in SHAPES:
        out.write(f"{shape:<14}{per_chunk(cpu[shape]):>22.3f}{per_chunk(wall[shape]):>15.3f}\n")
    total = per_chunk(cpu["as is"])
    hnsw = total - per_chunk(cpu["no HNSW"])
    fulltext = total - per_chunk(cpu["no full text"])
    rest = per_chunk(cpu["neither"])
    out.write(f"\npg_ms_per_chunk={total:.3f} hnsw_ms_per_chunk={hnsw:.3f} "
              f"fulltext_ms_per_chunk={fulltext:.3f} rest_ms_per_chunk={rest:.3f}\n")  # fmt: skip


if __name__ == "__main__":
    main()
