"""Retrieval quality and latency of each search mode over the real corpus.

Ingests the readable PDFs of ../shared/corpus (once; kept in a separate database, fca_bench, on
the embedded server or beside DATABASE_URL's) with the configured embedder, then builds queries
from the chunks themselves: a sentence of a chunk, lightly paraphrased by dropping some of its
words. A query is answered when a hit is the right document and overlaps the chunk's pages.

Usage:  .venv/bin/python bench/retrieval.py [--queries 200] [--seed 7] [--embedder local]
            [--runtime auto] [--compare-with torch]
Prints recall@1 and recall@5 per mode and latency, then one line:
    recall5_vector=... recall5_text=... recall5_hybrid=... p95_ms=...
With --compare-with R, the same queries are answered from an index built with the local runtime
R (a run of its own, in a database of its own), and a last line gives the recall@5 drop of this
run's runtime against R, in points:
    recall5_drop_vector=... recall5_drop_hybrid=...
"""

from __future__ import annotations

import argparse
import io
import os
import random
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import use_bench_database  # noqa: E402

BENCH_DATABASE = "fca_bench"


@dataclass(frozen=True)
class Query:
    text: str
    document_id: int
    page_start: int
    page_end: int


def ingest_corpus(corpus_dir: Path) -> None:
    from devtools.corpus import load_manifest
    from documents import ingestion, intake, services
    from documents.models import Document

    current = ingestion.current_embedder()[0]
    readable = [
        entry
        for entry in load_manifest().values()
        if entry.page_count and entry.extractable_chars > 0 and entry.encrypted != "needs-password"
    ]
    for entry in sorted(readable, key=lambda e: e.filename):
        data = (corpus_dir / entry.filename).read_bytes()
        outcome = intake.document_create(file=io.BytesIO(data), name=entry.filename, size=len(data))
        document = outcome.document
        if document.status == Document.Status.READY and document.embedder == current:
            continue
        started = time.perf_counter()
        try:
            result = services.document_ingest(document_id=document.pk, task_id=None)
        except ingestion.PermanentIngestError as exc:
            sys.stderr.write(f"skipped {entry.filename}: {exc}\n")
            continue
        sys.stderr.write(
            f"ingested {entry.filename}: {result['chunks']} chunks "
            f"in {time.perf_counter() - started:.1f}s\n"
        )


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def build_queries(count: int, seed: int) -> list[Query]:
    """Sentences of randomly chosen chunks, with about a quarter of their words dropped."""
    from documents.models import Chunk

    rng = random.Random(seed)
    chunks = list(
        Chunk.objects.order_by("pk").values_list("document_id", "page_start", "page_end", "text")
    )
    rng.shuffle(chunks)
    queries: list[Query] = []
    for document_id, page_start, page_end, text in chunks:
        sentences = [s for s in _SENTENCE.split(text) if 8 <= len(s.split()) <= 40]
        if not sentences:
            continue
        words = rng.choice(sentences).split()
        kept = [w for i, w in enumerate(words) if i == 0 or rng.random() > 0.25]
        queries.append(Query(" ".join(kept), document_id, page_start, page_end))
        if len(queries) == count:
            break
    return queries


def evaluate(queries: list[Query], mode: str) -> dict[str, float]:
    from documents import ingestion

    at1 = at5 = 0
    latencies: list[float] = []
    for query in queries:
        started = time.perf_counter()
        hits = ingestion.search(query.text, k=5, mode=mode)
        latencies.append((time.perf_counter() - started) * 1000)
        right = [
            hit["document_id"] == query.document_id
            and hit["page_start"] <= query.page_end
            and hit["page_end"] >= query.page_start
            for hit in hits
        ]
        at1 += bool(right[:1] and right[0])
        at5 += any(right)
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "recall1": at1 / len(queries),
        "recall5": at5 / len(queries),
        "p50_ms": statistics.median(latencies),
        "p95_ms": quantiles[94],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200, help="queries to evaluate")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the query sample")
    parser.add_argument("--embedder", default=None, help="RAG_EMBEDDER for this run")
    parser.add_argument(
        "--runtime", default=None, help="RAG_LOCAL_RUNTIME for this run (auto, torch, ...)"
    )
    parser.add_argument(
        "--compare-with",
        default=None,
        metavar="RUNTIME",
        help="also run with this local runtime (e.g. torch, the reference) and print the drop",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=ROOT.parent / "shared" / "corpus",
        help="folder of the PDF corpus (with MANIFEST.tsv)",
    )
    args = parser.parse_args()
    args.environment = dict(os.environ)  # before this run points it at its own database
    if args.embedder:
        os.environ["RAG_EMBEDDER"] = args.embedder
    if args.runtime:
        os.environ["RAG_LOCAL_RUNTIME"] = args.runtime
    os.environ.setdefault("FCA_CORPUS_DIR", str(args.corpus))
    use_bench_database(database_for(os.environ.get("RAG_LOCAL_RUNTIME", "auto")))

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    ingest_corpus(args.corpus)
    queries = build_queries(args.queries, args.seed)
    from documents import ingestion

    for warm in queries[:5]:  # load the model and warm the caches
        ingestion.search(warm.text, k=5, mode="hybrid")

    results = {mode: evaluate(queries, mode) for mode in ("vector", "text", "hybrid")}
    out = sys.stdout
    out.write(f"\n{len(queries)} queries (sentences of chunks, ~25% of words dropped), k=5\n")
    out.write(f"{'mode':<8}{'recall@1':>10}{'recall@5':>10}{'p50 ms':>9}{'p95 ms':>9}\n")
    for mode, r in results.items():
        out.write(
            f"{mode:<8}{r['recall1']:>10.3f}{r['recall5']:>10.3f}"
            f"{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}\n"
        )
    out.write(
        f"\nrecall5_vector={results['vector']['recall5']:.3f}"
        f" recall5_text={results['text']['recall5']:.3f}"
        f" recall5_hybrid={results['hybrid']['recall5']:.3f}"
        f" p95_ms={results['hybrid']['p95_ms']:.1f}\n"
    )
    if args.compare_with:
        reference = run_reference(args)
        out.write(
            f"\n{args.compare_with} (reference): recall5_vector={reference['recall5_vector']:.3f}"
            f" recall5_hybrid={reference['recall5_hybrid']:.3f}\n"
            f"recall5_drop_vector="
            f"{100 * (reference['recall5_vector'] - results['vector']['recall5']):.1f}"
            f" recall5_drop_hybrid="
            f"{100 * (reference['recall5_hybrid'] - results['hybrid']['recall5']):.1f}\n"
        )


def database_for(runtime: str) -> str:
    """One bench database per local runtime: the embedder's name does not tell them apart."""
    from rag.embedding import resolve_local_runtime

    return f"{BENCH_DATABASE}_{resolve_local_runtime(runtime).replace('-', '_')}"


def run_reference(args: argparse.Namespace) -> dict[str, float]:
    """This benchmark's figures for another local runtime, from a run of its own."""
    command = [sys.executable, __file__, "--runtime", args.compare_with]
    command += ["--queries", str(args.queries), "--seed", str(args.seed)]
    command += ["--corpus", str(args.corpus)]
    output = subprocess.run(
        command, check=True, stdout=subprocess.PIPE, text=True, env=args.environment
    ).stdout
    summary = output.strip().splitlines()[-1]
    return {key: float(value) for key, value in (pair.split("=") for pair in summary.split())}


if __name__ == "__main__":
    main()
