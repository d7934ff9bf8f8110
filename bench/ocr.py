"""OCR quality and speed: scans made from real text PDFs, ingested by a real worker.

Input: pages of the text PDFs of ../shared/corpus, drawn as images and saved as image-only
PDFs (no text layer): half clean (200 dpi), half degraded like a cheap office scanner (150 dpi,
a slight rotation, speckles, blur; devtools.scans.degrade). Each page's own text layer (pypdf)
is the ground truth.

1. this project: the documents ingested through the real ingest_pdf_task on a real prefork
   worker (--concurrency processes, 1 by default; each document's pages recognised as many at
   once as there are cores), the median of --repeat passes. At concurrency 1 each document's
   start (the reader's), its last page (one page left for two cores), embedding and writing
   leave cores idle between the recognitions; at 2, as docker-compose.yml runs, one document's
   recognitions fill them;
2. the limit: Tesseract alone (tesserocr, as many threads as cores, an engine each, loaded
   once) on the same page images as the pipeline renders them (rendering not timed);
3. word recall: the share of each page's distinct words of 4+ letters (ground truth) found in
   the chunks of its document, clean and degraded pages separately.

Usage:  .venv/bin/python bench/ocr.py [--pages 20] [--repeat 1] [--concurrency 1]
Last line:  ocr_word_recall_clean=X ocr_word_recall_noisy=Y ocr_vs_tesseract_limit=Z
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Pages recognised at once: one per core, as the worker does by default.
CORES = len(os.sched_getaffinity(0))

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import CORPUS, use_bench_database  # noqa: E402

# The corpus beside the checkout, or where FCA_CORPUS_DIR says (as for the tests).
CORPUS_DIR = Path(os.environ.get("FCA_CORPUS_DIR", CORPUS))
BENCH_DATABASE = "fca_bench_ocr"
SOURCES = (
    "text-pdflatex-4pages.pdf",
    "paper-tracemonkey-pldi09-14pages.pdf",
    "text-libreoffice-writer-1page.pdf",
    "text-google-docs-1page.pdf",
    "gov-federal-register-3col-15pages.pdf",
)
CLEAN_DPI = 200
PAGES_PER_DOCUMENT = 4
_WORD = re.compile(r"[^\W\d_]{4,}")


def words(text: str) -> set[str]:
    """Distinct words of 4+ letters, lower-cased (what recall is measured on)."""
    return {word.lower() for word in _WORD.findall(text)}


def source_pages(count: int) -> list[tuple[bytes, int, str]]:
    """(pdf bytes, page index, ground-truth text) of ``count`` pages, taken in turn from each
    source so that every layout is represented."""
    from pypdf import PdfReader

    from rag.parsing import normalize_text

    readers = [((CORPUS_DIR / name).read_bytes(), name) for name in SOURCES]
    opened = [(data, PdfReader(io.BytesIO(data))) for data, _ in readers]
    chosen, index = [], 0
    while len(chosen) < count:
        for data, reader in opened:
            if index < len(reader.pages) and len(chosen) < count:
                text = normalize_text(reader.pages[index].extract_text() or "")
                if len(words(text)) >= 20:  # a page with text to find
                    chosen.append((data, index, text))
        index += 1
    return chosen


def make_documents(count: int) -> dict[str, list[tuple[str, bytes, list[str]]]]:
    """Scanned documents per kind (clean, noisy): (name, image-only PDF, page texts)."""
    from devtools.scans import degrade, image_pdf, render_pages

    pages = source_pages(count)
    kinds: dict[str, list] = {"clean": [], "noisy": []}
    for number, (data, index, text) in enumerate(pages):
        (image,) = render_pages(data, dpi=CLEAN_DPI, pages=[index])
        if number % 2:
            kinds["noisy"].append((degrade(image, seed=number), CLEAN_DPI * 0.75, text))
        else:
            kinds["clean"].append((image, CLEAN_DPI, text))
    documents: dict[str, list] = {}
    for kind, scans in kinds.items():
        documents[kind] = []
        for start in range(0, len(scans), PAGES_PER_DOCUMENT):
            group = scans[start : start + PAGES_PER_DOCUMENT]
            pdf = image_pdf([image for image, _, _ in group], dpi=group[0][1])
            name = f"scan-{kind}-{start // PAGES_PER_DOCUMENT}.pdf"
            documents[kind].append((name, pdf, [text for _, _, text in group]))
    return documents


def tesseract_alone(pdfs: list[bytes], *, repeat: int) -> float:
    """Median seconds Tesseract alone takes on every page of ``pdfs``, rendered as the pipeline
    renders them (rendering not timed)."""
    import pypdfium2

    from rag import ocr
    from rag.config import RAGConfig
    from rag.ocr_pool import OcrPool

    config = RAGConfig(database_url="unused")
    images = []
    for data in pdfs:
        pdf = pypdfium2.PdfDocument(data)
        for index in range(len(pdf)):
            images.append(
                ocr.render_page(pdf[index], dpi=config.ocr_dpi, max_pixels=config.ocr_max_pixels)
            )
    pool = OcrPool(
        CORES,
        lambda: ocr.OcrEngine(
            languages=config.ocr_languages, tessdata="", page_seconds=config.ocr_page_seconds
        ),
    )
    passes = []
    for _ in range(repeat):
        started = time.perf_counter()
        for recognition in [pool.submit(image) for image in images]:
            recognition.result()
        passes.append(time.perf_counter() - started)
    pool.close()
    return statistics.median(passes)


def recall(documents: list[tuple[str, bytes, list[str]]]) -> float:
    """Share of the ground truth's distinct words found in each document's chunks."""
    from documents.models import Chunk, Document

    found = expected = 0
    for _, pdf, texts in documents:
        document = Document.objects.get(sha256=hashlib.sha256(pdf).hexdigest())
        chunk_words = words(
            " ".join(Chunk.objects.filter(document=document).values_list("text", flat=True))
        )
        truth = set().union(*(words(text) for text in texts))
        found += len(truth & chunk_words)
        expected += len(truth)
    return found / expected if expected else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20, help="pages to scan (half degraded)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="passes of the worker and of Tesseract (median)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="worker processes (docker-compose.yml and scripts/demo.sh run 2)",
    )
    args = parser.parse_args()
    use_bench_database(BENCH_DATABASE)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from bench.ingest import run_worker

    documents = make_documents(args.pages)
    every = [item for kind in documents.values() for item in kind]
    inputs = [(name, pdf, len(texts)) for name, pdf, texts in every]
    limit = tesseract_alone([pdf for _, pdf, _ in every], repeat=args.repeat)
    with tempfile.TemporaryDirectory() as log_dir:
        run = run_worker(
            inputs,
            concurrency=args.concurrency,
            seed=False,
            log_dir=Path(log_dir),
            repeat=args.repeat,
        )
    clean, noisy = recall(documents["clean"]), recall(documents["noisy"])
    pages = sum(count for _, _, count in inputs)
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line),
        "unknown CPU",
    )
    out = sys.stdout
    out.write(f"{cpu}, {CORES} cores; {pages} scanned pages; repeat {args.repeat}\n")
    out.write(
        f"Tesseract alone: {limit:.1f} s ({pages / limit:.2f} pages/s)\n"
        f"this project (worker, concurrency {args.concurrency}, e2e): {run['seconds']:.1f} s "
        f"({pages / run['seconds']:.2f} pages/s), {run['chunks']} chunks, "
        f"peak RSS above idle {run['peak_rss_mb']:.0f} MB\n"
        f"word recall: clean {clean:.3f}, degraded {noisy:.3f}\n"
    )
    out.write(
        f"ocr_word_recall_clean={clean:.3f} ocr_word_recall_noisy={noisy:.3f} "
        f"ocr_vs_tesseract_limit={run['seconds'] / limit:.2f}\n"
    )


if __name__ == "__main__":
    main()
