"""Ingestion speed and memory against the embedder's own limit and the seed pattern, in one run.

Input: the largest real PDFs of ../shared/corpus, repeated (each copy made unique by a trailing
PDF comment, since equal bytes are one document) to about --pages pages.

1. limit (bench/ingest_passes.py): parse-only time and CPU seconds (every page read as the page
   reader's child reads it), and embedder-only time and CPU seconds over the exact chunk texts
   the pipeline makes (model warm, batched and with as many calls in flight as the pipeline
   keeps), for the default runtime, the reference (torch, float32) and the other local runtimes;
   the work floor is (embed-only CPU-s + parse-only CPU-s) / cores;
2. seed baseline: the seed pattern (loop dance, new engine per task, each chunk embedded and
   inserted on its own, torch) through a real prefork worker;
3. this project: the real ingest_pdf_task through a real prefork worker, concurrency 1 and 2.

Usage:  .venv/bin/python bench/ingest.py [--pages 300] [--skip-seed] [--repeat 3]
Prints pages/s, chunks/s and peak worker RSS (above the idle worker with the model loaded) for
each (with --repeat, the median time of that many passes); the CPU seconds of each, and for this
project's runs the worker's CPU seconds per stage as its ingestions counted them (beside the
same work measured alone) and the seconds the embedder waited for chunks; then one line:
    e2e_vs_work_floor=W.WW e2e_vs_embed_limit=X.XX e2e_vs_seed=Y.YY
    fast_embedder_vs_reference=Z.ZZ int8_vs_default=V.VV
(V: embed-only time of the default runtime over that of the opt-in int8 runtime; above 1, int8
is faster. Each runtime's agreement with the reference is printed above it.)
"""

from __future__ import annotations

import argparse
import io
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import CORPUS, use_bench_database  # noqa: E402
from bench.ingest_passes import (  # noqa: E402
    Inputs,
    PeakRss,
    cpu_seconds,
    database_server,
    limits,
    merge_inputs,
)

BENCH_DATABASE = "fca_bench_ingest"
INPUTS = (
    "long-freeculture-book-352pages.pdf",
    "long-geotopo-german-117pages.pdf",
    "text-openoffice-55pages.pdf",
)


def pdf_inputs(paths: list[Path]) -> Inputs:
    """(name, bytes, pages) of the given PDFs, e.g. Debian's r-doc-pdf fullrefman.pdf."""
    from pypdf import PdfReader

    return [(path.name, path.read_bytes(), len(PdfReader(str(path)).pages)) for path in paths]


def make_inputs(pages: int) -> Inputs:
    """(name, bytes, pages) copies of the large corpus PDFs adding up to about ``pages``."""
    from pypdf import PdfReader

    originals = []
    for name in INPUTS:
        data = (CORPUS / name).read_bytes()
        originals.append((name, data, len(PdfReader(io.BytesIO(data)).pages)))
    inputs, total, copy = [], 0, 0
    while total < pages:
        name, data, count = originals[copy % len(originals)]
        inputs.append((f"{copy}-{name}", data + f"\n%bench copy {copy}\n".encode(), count))
        total += count
        copy += 1
    return inputs


def run_worker(
    inputs: Inputs,
    *,
    concurrency: int,
    seed: bool,
    log_dir: Path,
    repeat: int = 1,
) -> dict[str, Any]:
    """Ingest every input through a real worker ``repeat`` times; the median seconds, and the
    peak RSS above idle over all passes."""
    from django.conf import settings

    from devtools.workers import route_all_tasks, start_worker, stop_worker
    from documents import intake, services
    from documents.models import Document
    from fca_site.celery import app

    _empty_chunks()
    Document.objects.all().delete()
    ids = []
    for name, data, _ in inputs:
        outcome = intake.document_create(file=io.BytesIO(data), name=name, size=len(data))
        ids.append(outcome.document.pk)
    queue = f"fca-bench-{uuid.uuid4().hex[:8]}"
    broker = settings.CELERY_BROKER_URL
    app.conf.broker_url = broker
    route_all_tasks(app, {"*": {"queue": queue}})
    extra = {
        "CELERY_EXTRA_IMPORTS": "bench.worker_tasks",
        "DJANGO_LOG_LEVEL": "WARNING",
        # The real embedder (the test helper defaults workers to the hash one).
        "RAG_EMBEDDER": settings.RAG_EMBEDDER,
    }
    worker = start_worker(
        log_dir, broker_url=broker, queue=queue, concurrency=concurrency, extra_env=extra
    )
    try:
        # Warm the child on a one-page PDF (model loaded, ONNX exported), then note idle RSS:
        # warming on the measured input itself would hide its memory in the idle figure.
        from devtools.pdf_factory import text_pdf

        small = text_pdf("A one-page document that loads the model before measuring.")
        warm = intake.document_create(
            file=io.BytesIO(small), name="warm.pdf", size=len(small)
        ).document
        if seed:
            app.send_task("bench.seed_ingest", args=[warm.pk]).get(timeout=1800)
        else:
            services.document_ingest_enqueue(document_ids=[warm.pk])
            _wait_ready([warm.pk])
        import psutil

        worker_tree = psutil.Process(worker.process.pid)
        server = database_server()
        passes: list[float] = []
        worker_cpu = database_cpu = 0.0
        stage_cpu: dict[str, float] = {}
        waited = {"embedder_wait": 0.0, "ocr_seconds": 0.0}
        with PeakRss(worker.process.pid) as memory:
            idle = memory.current()
            for _ in range(repeat):
                _empty_chunks()  # every pass starts alike
                cpu_before = cpu_seconds(worker_tree), cpu_seconds(server) if server else 0.0
                started = time.perf_counter()
                if seed:
                    results = [app.send_task("bench.seed_ingest", args=[i]) for i in ids]
                    for result in results:
                        result.get(timeout=3600)
                else:
                    Document.objects.filter(pk__in=ids).update(status="failed")
                    services.document_ingest_enqueue(document_ids=ids)
                    _wait_ready(ids)
                passes.append(time.perf_counter() - started)
                worker_cpu += cpu_seconds(worker_tree) - cpu_before[0]
                database_cpu += cpu_seconds(server) - cpu_before[1] if server else 0.0
                if not seed:
                    for result in _task_results(app, ids):
                        for stage, spent in result["cpu_seconds"].items():
                            stage_cpu[stage] = stage_cpu.get(stage, 0.0) + spent
                        waited["embedder_wait"] += result["seconds"].get("wait", 0.0)
                        waited["ocr_seconds"] += result["seconds"].get("ocr", 0.0)
        seconds = statistics.median(passes)
        chunks = sum(Document.objects.filter(pk__in=ids).values_list("chunk_count", flat=True))
    finally:
        stop_worker(worker)
    return {
        "seconds": seconds,
        "chunks": chunks,
        "peak_rss_mb": (memory.peak - idle) / 2**20,
        # CPU seconds of one pass (the average over the passes).
        "worker_cpu": worker_cpu / repeat,
        "database_cpu": database_cpu / repeat if server else float("nan"),
        # The pipeline's own account of a pass (IngestResult), averaged: CPU seconds per stage,
        # the seconds the embedder waited for chunks and OCR's seconds.
        "stage_cpu": {stage: spent / repeat for stage, spent in stage_cpu.items()},
        **{key: value / repeat for key, value in waited.items()},
    }


def _task_results(app: Any, ids: list[int]) -> list[dict[str, Any]]:
    """The results of the latest ingestion of these documents (``IngestResult.as_dict``), as the
    worker stored them, just after it marked each document ready."""
    from documents.models import Document

    task_ids = Document.objects.filter(pk__in=ids).values_list("last_task_id", flat=True)
    return [app.AsyncResult(task_id).get(timeout=60) for task_id in task_ids]


def _empty_chunks() -> None:
    """Delete every chunk and vacuum the table: the deleted rows stay in the HNSW graph until
    a vacuum, and each pass would insert into a graph grown by the passes before it."""
    from django.db import connection

    from documents.models import Chunk

    Chunk.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM {connection.ops.quote_name(Chunk._meta.db_table)}")


def _wait_ready(ids: list[int]) -> None:
    from documents.models import Document

    while Document.objects.filter(pk__in=ids).exclude(status__in=["ready", "failed"]).exists():
        time.sleep(0.2)
    failed = list(
        Document.objects.filter(pk__in=ids, status="failed").values_list("pk", "error_message")
    )
    if failed:
        raise RuntimeError(f"ingestion failed: {failed}")


def stage_breakdown(run: dict[str, Any], limit: dict[str, Any]) -> str:
    """The worker's CPU seconds by stage, as the pipeline counted them, beside the same work
    measured alone: what each stage costs in the pipeline beyond its work floor share."""
    stages = dict(run["stage_cpu"])
    # Parse only measures reading and OCR together.
    stages["parse"] = stages.get("parse", 0.0) + stages.pop("ocr", 0.0)
    alone = {"embed": limit["embed_cpu"], "parse": limit["parse_cpu"], "chunk": limit["chunk_cpu"]}
    parts = [
        f"{stage} {spent:.1f}" + (f" (alone {alone[stage]:.1f})" if stage in alone else "")
        for stage, spent in sorted(stages.items())
    ]
    # Celery, Django, the bridge, the reader child's own start and its page transfer, and the
    # threads that are not lanes: what the worker spent that no stage counts.
    rest = run["worker_cpu"] - sum(stages.values())
    return (
        "by stage: "
        + ", ".join(parts)
        + f"; not in a stage {rest:.1f}. The embedder waited {run['embedder_wait']:.1f} s for"
        f" chunks (OCR took {run['ocr_seconds']:.1f} s: a page in OCR holds back the pages"
        " after it)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300, help="pages to ingest (about)")
    parser.add_argument("--skip-seed", action="store_true", help="skip the slow seed baseline")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="time each embed-only and worker run this many times and report the median "
        "(on a shared or noisy machine, e.g. 3)",
    )
    parser.add_argument(
        "--one-pdf",
        action="store_true",
        help="merge the copies into a single PDF (e.g. --pages 1000 --one-pdf --project-only: "
        "the worker's memory on a 1,000-page document)",
    )
    parser.add_argument(
        "--pdf",
        type=Path,
        action="append",
        help="ingest these PDFs instead of corpus copies (e.g. /usr/share/R/doc/manual/"
        "fullrefman.pdf from Debian's r-doc-pdf, for the memory of a very long document)",
    )
    parser.add_argument(
        "--project-only",
        action="store_true",
        help="only this project's worker at concurrency 1 (time and memory), no limits",
    )
    args = parser.parse_args()
    use_bench_database(BENCH_DATABASE)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    inputs = pdf_inputs(args.pdf) if args.pdf else make_inputs(args.pages)
    if args.one_pdf:
        inputs = merge_inputs(inputs)
    pages = sum(count for _, _, count in inputs)
    if args.project_only:
        with tempfile.TemporaryDirectory() as log_dir:
            run = run_worker(inputs, concurrency=1, seed=False, log_dir=Path(log_dir))
        sys.stdout.write(
            f"\n{len(inputs)} PDFs, {pages} pages, {run['chunks']} chunks: "
            f"{run['seconds']:.1f}s, {pages / run['seconds']:.1f} pages/s, "
            f"peak worker RSS above idle {run['peak_rss_mb']:.0f} MB\n"
        )
        return

    repeat = max(1, args.repeat)
    limit = limits(inputs, repeat=repeat)
    # Shown now too: the worker runs below take minutes.
    sys.stdout.write(f"limits: {limit}\n")
    sys.stdout.flush()
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as log_dir:
        if not args.skip_seed:
            runs["seed (conc 1)"] = run_worker(
                inputs, concurrency=1, seed=True, log_dir=Path(log_dir), repeat=repeat
            )
        for concurrency in (1, 2):
            runs[f"project (conc {concurrency})"] = run_worker(
                inputs, concurrency=concurrency, seed=False, log_dir=Path(log_dir), repeat=repeat
            )

    out = sys.stdout
    out.write(f"\n{len(inputs)} PDFs, {pages} pages, {limit['chunks']} chunks\n")
    out.write(f"{'what':<36}{'seconds':>9}{'pages/s':>9}{'chunks/s':>10}{'peak RSS MB':>13}\n")
    default = limit["default_runtime"]
    embed_rows = [
        (
            f"embed only ({runtime}{', default' if runtime == default else ''}"
            f"{', reference' if runtime == 'torch' else ''})",
            seconds,
            None,
        )
        for key, seconds in limit.items()
        if key.startswith("embed_seconds[")
        for runtime in [key[len("embed_seconds[") : -1]]
    ]
    rows = (
        [("parse only", limit["parse_seconds"], None)]
        + embed_rows
        + [(name, run["seconds"], run["peak_rss_mb"]) for name, run in runs.items()]
    )
    for name, seconds, rss in rows:
        rss_text = f"{rss:>13.0f}" if rss is not None else f"{'':>13}"
        out.write(
            f"{name:<36}{seconds:>9.1f}{pages / seconds:>9.1f}"
            f"{limit['chunks'] / seconds:>10.1f}{rss_text}\n"
        )
    for runtime in (
        key[len("cosine_mean[") : -1] for key in limit if key.startswith("cosine_mean[")
    ):
        if runtime != "torch":
            out.write(
                f"\n{runtime}{' (default)' if runtime == default else ''} vs torch reference:"
                f" cosine mean {limit[f'cosine_mean[{runtime}]']:.4f}"
                f" min {limit[f'cosine_min[{runtime}]']:.4f} over {limit['chunks']} chunks"
            )
    out.write("\n")
    cores = len(os.sched_getaffinity(0))
    out.write(f"\nCPU seconds ({cores} cores: at most {cores} per elapsed second)\n")
    out.write(
        f"  parse only: {limit['parse_cpu']:.1f} in {limit['parse_seconds']:.1f}"
        f" ({limit['ocr_pages']} pages OCR'd); chunking: {limit['chunk_cpu']:.1f}\n"
        f"  embed only ({default}): {limit['embed_cpu']:.1f} in {limit['embed_seconds']:.1f}\n"
    )
    for name, run in runs.items():
        out.write(
            f"  {name}: worker and its reader {run['worker_cpu']:.1f}, "
            f"PostgreSQL {run['database_cpu']:.1f}, in {run['seconds']:.1f}\n"
        )
        if run["stage_cpu"]:
            out.write(f"    {stage_breakdown(run, limit)}\n")
    e2e = runs["project (conc 1)"]["seconds"]
    # The work that cannot be avoided (the model over these chunks, pypdf over these pages),
    # packed perfectly on these cores. Chunking, tokenizing, moving pages between processes,
    # writing and PostgreSQL count against the pipeline.
    work_floor = (limit["embed_cpu"] + limit["parse_cpu"]) / cores
    # The least time the pipeline's own CPU seconds could take: what overlap can still win.
    project = runs["project (conc 1)"]
    database_cpu = 0.0 if math.isnan(project["database_cpu"]) else project["database_cpu"]
    own_floor = (project["worker_cpu"] + database_cpu) / cores
    out.write(
        f"  work floor on {cores} cores: {work_floor:.1f} s; the pipeline's own CPU seconds "
        f"over the cores: {own_floor:.1f} s; e2e {e2e:.1f} s\n"
    )
    vs_seed = runs["seed (conc 1)"]["seconds"] / e2e if "seed (conc 1)" in runs else float("nan")
    out.write(
        f"\ne2e_vs_work_floor={e2e / work_floor:.2f}"
        f" e2e_vs_embed_limit={e2e / limit['embed_seconds']:.2f}"
        f" e2e_vs_seed={vs_seed:.2f}"
        f" fast_embedder_vs_reference="
        f"{limit['reference_embed_seconds'] / limit['embed_seconds']:.2f}"
        f" int8_vs_default={limit['embed_seconds'] / limit['embed_seconds[int8]']:.2f}\n"
    )


if __name__ == "__main__":
    main()
