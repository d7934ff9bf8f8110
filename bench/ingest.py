"""Ingestion speed and memory against the embedder's own limit and the seed pattern, in one run.

Input: the largest real PDFs of ../shared/corpus, repeated (each copy made unique by a trailing
PDF comment, since equal bytes are one document) to about --pages pages.

1. limit: parse-only time, and embedder-only time over the exact chunk texts the pipeline makes
   (batched, model warm), for the default embedder (ONNX) and the reference (torch);
2. seed baseline: the seed pattern (loop dance, new engine per task, each chunk embedded and
   inserted on its own, torch) through a real prefork worker;
3. this project: the real ingest_pdf_task through a real prefork worker, concurrency 1 and 2.

Usage:  .venv/bin/python bench/ingest.py [--pages 300] [--skip-seed]
Prints pages/s, chunks/s and peak worker RSS (above the idle worker with the model loaded) for
each, then one line:
    e2e_vs_embed_limit=X.XX e2e_vs_seed=Y.YY fast_embedder_vs_reference=Z.ZZ
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import CORPUS, use_bench_database  # noqa: E402

BENCH_DATABASE = "fca_bench_ingest"
INPUTS = (
    "long-freeculture-book-352pages.pdf",
    "long-geotopo-german-117pages.pdf",
    "text-openoffice-55pages.pdf",
)


def pdf_inputs(paths: list[Path]) -> list[tuple[str, bytes, int]]:
    """(name, bytes, pages) of the given PDFs, e.g. Debian's r-doc-pdf fullrefman.pdf."""
    from pypdf import PdfReader

    return [(path.name, path.read_bytes(), len(PdfReader(str(path)).pages)) for path in paths]


def make_inputs(pages: int) -> list[tuple[str, bytes, int]]:
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


class PeakRss:
    """Samples the resident memory of a process tree in the background; keeps the peak."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def current(self) -> int:
        import psutil

        total = 0
        for process in [self.root, *self.root.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(0.1)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def limits(inputs: list[tuple[str, bytes, int]]) -> dict[str, float]:
    """Parse-only seconds, and embedder-only seconds (ONNX and torch) over the chunk texts."""
    from documents.ingestion import rag_config
    from rag.chunking import chunk_pages
    from rag.embedding import get_embedder
    from rag.parsing import PdfDocument

    config = rag_config()
    fast = get_embedder(config.embedder)
    reference = get_embedder(
        type(config.embedder)(**{**config.embedder.__dict__, "local_runtime": "torch"})
    )
    started = time.perf_counter()
    texts: list[str] = []
    for _, data, _ in inputs:
        pdf = PdfDocument(io.BytesIO(data), max_pages=config.max_pages)
        texts += [
            chunk.text
            for chunk in chunk_pages(
                pdf.pages(),
                fast.tokenizer,
                chunk_tokens=config.chunk_tokens,
                overlap_tokens=config.chunk_overlap_tokens,
            )
        ]
    parse_seconds = time.perf_counter() - started
    figures = {"parse_seconds": parse_seconds, "chunks": len(texts)}
    for label, embedder in (("embed_seconds", fast), ("reference_embed_seconds", reference)):
        asyncio.run(embedder.embed(texts[:32]))  # warm: load the model
        started = time.perf_counter()
        batch = config.embedder.batch_size
        for start in range(0, len(texts), batch):
            asyncio.run(embedder.embed(texts[start : start + batch]))
        figures[label] = time.perf_counter() - started
    return figures


def run_worker(
    inputs: list[tuple[str, bytes, int]], *, concurrency: int, seed: bool, log_dir: Path
) -> dict[str, float]:
    """Ingest every input through a real worker; seconds, and peak RSS above idle."""
    from django.conf import settings

    from documents import services
    from documents.models import Chunk, Document
    from fca_site.celery import app
    from tests.workers import route_all_tasks, start_worker, stop_worker

    Chunk.objects.all().delete()
    Document.objects.all().delete()
    ids = []
    for name, data, _ in inputs:
        outcome = services.document_create(file=io.BytesIO(data), name=name, size=len(data))
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
        from tests.pdf_factory import text_pdf

        small = text_pdf("A one-page document that loads the model before measuring.")
        warm = services.document_create(
            file=io.BytesIO(small), name="warm.pdf", size=len(small)
        ).document
        if seed:
            app.send_task("bench.seed_ingest", args=[warm.pk]).get(timeout=1800)
        else:
            services.document_ingest_enqueue(document_ids=[warm.pk])
            _wait_ready([warm.pk])
        with PeakRss(worker.process.pid) as memory:
            idle = memory.current()
            started = time.perf_counter()
            if seed:
                results = [app.send_task("bench.seed_ingest", args=[i]) for i in ids]
                for result in results:
                    result.get(timeout=3600)
            else:
                Document.objects.filter(pk__in=ids).update(status="failed")
                services.document_ingest_enqueue(document_ids=ids)
                _wait_ready(ids)
            seconds = time.perf_counter() - started
        chunks = sum(Document.objects.filter(pk__in=ids).values_list("chunk_count", flat=True))
    finally:
        stop_worker(worker)
    return {"seconds": seconds, "chunks": chunks, "peak_rss_mb": (memory.peak - idle) / 2**20}


def _wait_ready(ids: list[int]) -> None:
    from documents.models import Document

    while Document.objects.filter(pk__in=ids).exclude(status__in=["ready", "failed"]).exists():
        time.sleep(0.2)
    failed = list(
        Document.objects.filter(pk__in=ids, status="failed").values_list("pk", "error_message")
    )
    if failed:
        raise RuntimeError(f"ingestion failed: {failed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300, help="pages to ingest (about)")
    parser.add_argument("--skip-seed", action="store_true", help="skip the slow seed baseline")
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

    limit = limits(inputs)
    runs: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as log_dir:
        if not args.skip_seed:
            runs["seed (conc 1)"] = run_worker(
                inputs, concurrency=1, seed=True, log_dir=Path(log_dir)
            )
        runs["project (conc 1)"] = run_worker(
            inputs, concurrency=1, seed=False, log_dir=Path(log_dir)
        )
        runs["project (conc 2)"] = run_worker(
            inputs, concurrency=2, seed=False, log_dir=Path(log_dir)
        )

    out = sys.stdout
    out.write(f"\n{len(inputs)} PDFs, {pages} pages, {limit['chunks']} chunks\n")
    out.write(f"{'what':<26}{'seconds':>9}{'pages/s':>9}{'chunks/s':>10}{'peak RSS MB':>13}\n")
    rows = [
        ("parse only", limit["parse_seconds"], None),
        ("embed only (default)", limit["embed_seconds"], None),
        ("embed only (torch ref.)", limit["reference_embed_seconds"], None),
    ] + [(name, run["seconds"], run["peak_rss_mb"]) for name, run in runs.items()]
    for name, seconds, rss in rows:
        rss_text = f"{rss:>13.0f}" if rss is not None else f"{'':>13}"
        out.write(
            f"{name:<26}{seconds:>9.1f}{pages / seconds:>9.1f}"
            f"{limit['chunks'] / seconds:>10.1f}{rss_text}\n"
        )
    e2e = runs["project (conc 1)"]["seconds"]
    vs_seed = runs["seed (conc 1)"]["seconds"] / e2e if "seed (conc 1)" in runs else float("nan")
    out.write(
        f"\ne2e_vs_embed_limit={e2e / limit['embed_seconds']:.2f}"
        f" e2e_vs_seed={vs_seed:.2f}"
        f" fast_embedder_vs_reference="
        f"{limit['reference_embed_seconds'] / limit['embed_seconds']:.2f}\n"
    )


if __name__ == "__main__":
    main()
