"""The measuring passes of bench/ingest.py: parse only, embed only, and the meters they use.

Parse only reads every page as the page reader's child does (``rag.page_sources``: pypdf,
PDFium where pypdf fails, the per-page decision whether OCR is needed, OCR where it is), in
this process, one page after the other, so its CPU seconds are the parsing work the pipeline
cannot avoid. Embed only runs the embedder over the exact chunk texts the pipeline makes. Their
CPU seconds over the cores give the work floor the pipeline is measured against.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import threading
import time
from typing import Any

from bench import common

Inputs = list[tuple[str, bytes, int]]


class PeakRss:
    """Samples the resident memory of a process tree in the background; keeps the peak.

    The sampler runs on the cores it measures, so it must stay cheap: listing a tree's
    processes reads every process of the machine (about 2.5 ms), reading the RSS of the known
    ones almost nothing. The tree is listed every ``TREE_EVERY`` seconds, the RSS read every
    ``SAMPLE_EVERY``.
    """

    SAMPLE_EVERY = 0.1
    TREE_EVERY = 1.0

    def __init__(self, pid: int) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _tree(self) -> list[Any]:
        import psutil

        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []  # the worker is gone (a failed run): nothing of it is resident

    def current(self, processes: list[Any] | None = None) -> int:
        """Resident bytes of the tree now (of ``processes``, when given, instead of listing
        the tree again)."""
        import psutil

        total = 0
        for process in processes if processes is not None else self._tree():
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def _sample(self) -> None:
        processes, listed = self._tree(), time.monotonic()
        while not self._stop.wait(self.SAMPLE_EVERY):
            if time.monotonic() - listed >= self.TREE_EVERY:
                processes, listed = self._tree(), time.monotonic()
            self.peak = max(self.peak, self.current(processes))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


def cpu_seconds(root: Any) -> float:
    """CPU seconds used so far by a process tree, children already reaped included."""
    import psutil

    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def database_server() -> Any:
    """The embedded PostgreSQL's postmaster (None when DATABASE_URL names another server)."""
    import psutil

    from fca_site import embedded_db

    if not common.uses_embedded_server:
        return None
    pid_file = embedded_db.default_data_dir() / "postmaster.pid"
    try:
        return psutil.Process(int(pid_file.read_text().split()[0]))
    except (OSError, ValueError, psutil.NoSuchProcess):
        return None


def parse_only(inputs: Inputs, config: Any) -> tuple[list[list[Any]], dict[str, float]]:
    """Every input's pages, read as the page reader's child reads them (same sources, same OCR
    decision per page, under ``config.ocr``); and the seconds and CPU seconds it took."""
    from rag.page_sources import OcrSettings, PageSources

    ocr = OcrSettings(
        mode=config.ocr,
        languages=config.ocr_languages,
        tessdata=config.ocr_tessdata,
        dpi=config.ocr_dpi,
        max_pixels=config.ocr_max_pixels,
        page_seconds=config.ocr_page_seconds,
    )
    documents: list[list[Any]] = []
    ocr_pages = 0
    cpu_started, started = time.process_time(), time.perf_counter()
    for _, data, _ in inputs:
        sources = PageSources(data, max_pages=config.max_pages, ocr=ocr)
        pages = []
        for index in range(sources.page_count):
            read = sources.read(index)
            ocr_pages += read.ocr_seconds > 0
            pages.append(read.page)
        sources.close()
        documents.append(pages)
    return documents, {
        "parse_seconds": time.perf_counter() - started,
        "parse_cpu": time.process_time() - cpu_started,
        "ocr_pages": ocr_pages,
    }


def chunk_only(documents: list[list[Any]], config: Any, tokenizer: Any) -> tuple[list, float]:
    """The chunks the pipeline makes of the pages, and the CPU seconds chunking took."""
    from rag.chunking import chunk_pages

    cpu_started = time.process_time()
    chunks = [
        chunk
        for pages in documents
        for chunk in chunk_pages(
            pages,
            tokenizer,
            chunk_tokens=config.chunk_tokens,
            overlap_tokens=config.chunk_overlap_tokens,
            max_chars=config.chunk_max_chars,
        )
    ]
    return chunks, time.process_time() - cpu_started


def limits(inputs: Inputs, *, repeat: int = 1) -> dict[str, Any]:
    """Parse-only and chunk-only seconds and CPU seconds; embedder-only seconds and CPU seconds
    over the chunk texts (the median of ``repeat`` passes) for the default local runtime, the
    reference (torch, float32) and the other runtimes (int8 included); and how well each one's
    vectors agree with the reference's (cosine similarity, mean and minimum)."""
    import dataclasses

    import numpy as np

    from documents.ingestion import rag_config
    from rag.embedder_factory import get_embedder
    from rag.embedding import LOCAL_RUNTIMES, cpu_computes_bfloat16, resolve_local_runtime

    config = rag_config()
    default = resolve_local_runtime(config.embedder.local_runtime)
    tokenizer = get_embedder(config.embedder).tokenizer
    documents, figures = parse_only(inputs, config)
    chunks, figures["chunk_cpu"] = chunk_only(documents, config, tokenizer)
    del documents
    texts = [chunk.text for chunk in chunks]
    figures["chunks"] = len(texts)
    vectors = {}
    runtimes = [default, "torch"] + [
        r for r in LOCAL_RUNTIMES if r not in (default, "torch", "auto")
    ]
    for runtime in runtimes:
        embedder = get_embedder(dataclasses.replace(config.embedder, local_runtime=runtime))
        asyncio.run(embedder.embed(texts[:32]))  # warm: load the model
        passes, cpu = [], []
        # Without bfloat16 in the CPU, torch emulates it several times slower than float32:
        # one pass shows it (auto never picks it there), more would add minutes.
        emulated = runtime == "torch-bf16" and not cpu_computes_bfloat16()
        for _ in range(1 if emulated else repeat):
            cpu_started = time.process_time()
            started = time.perf_counter()
            out = asyncio.run(embed_as_pipeline(embedder, chunks, config.embedder.batch_size))
            passes.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
        figures[f"embed_seconds[{runtime}]"] = statistics.median(passes)
        figures[f"embed_cpu[{runtime}]"] = statistics.median(cpu)
        vectors[runtime] = np.array(out)
    for runtime, found in vectors.items():
        agreement = (found * vectors["torch"]).sum(axis=1)
        figures[f"cosine_mean[{runtime}]"] = float(agreement.mean())
        figures[f"cosine_min[{runtime}]"] = float(agreement.min())
    figures["embed_seconds"] = figures[f"embed_seconds[{default}]"]
    figures["embed_cpu"] = figures[f"embed_cpu[{default}]"]
    figures["reference_embed_seconds"] = figures["embed_seconds[torch]"]
    figures["default_runtime"] = default
    return figures


async def embed_as_pipeline(embedder: Any, chunks: list[Any], batch: int) -> list[list[float]]:
    """Embed ``chunks`` in the batches the service forms (rag.batching), with the same calls
    kept in flight and nothing else to do: the embedder's own speed. Vectors in chunk order."""
    from collections import deque

    from rag.batching import BatchFormer
    from rag.pipeline import EMBED_CALLS_IN_FLIGHT

    # Batches are formed per document, as each ingestion does (its ordinals start at 0).
    position = {id(chunk): index for index, chunk in enumerate(chunks)}
    batches = []
    former = BatchFormer(batch)
    for chunk in chunks:
        if chunk.ordinal == 0:
            batches += former.finish()
        batches += former.add([chunk])
    batches += former.finish()
    in_flight: deque[tuple[list[int], asyncio.Task[list[list[float]]]]] = deque()
    out: list[list[float]] = [[] for _ in chunks]

    async def collect() -> None:
        indices, task = in_flight.popleft()
        for index, vector in zip(indices, await task, strict=True):
            out[index] = vector

    for formed in batches:
        texts = [chunk.text for chunk in formed.chunks]
        indices = [position[id(chunk)] for chunk in formed.chunks]
        in_flight.append((indices, asyncio.create_task(embedder.embed(texts))))
        if len(in_flight) >= EMBED_CALLS_IN_FLIGHT:
            await collect()
    while in_flight:
        await collect()
    return out


def merge_inputs(inputs: Inputs) -> Inputs:
    """The inputs as one long PDF (their pages one after the other), for the memory target."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for _, data, _ in inputs:
        writer.append(PdfReader(io.BytesIO(data)))
    out = io.BytesIO()
    writer.write(out)
    pages = sum(count for _, _, count in inputs)
    return [(f"merged-{pages}-pages.pdf", out.getvalue(), pages)]
