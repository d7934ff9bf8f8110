"""The page reader's child process: PDF bytes on stdin, JSON lines on stdout.

Started by :func:`rag.page_reader.open_pdf` as ``python -m rag.page_reader_child SETTINGS``
(never by hand); the protocol is described in :mod:`rag.page_reader`, the worker's side of it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import threading
import time

from rag.errors import PermanentIngestError, TooLargeError
from rag.page_sources import OcrSettings, PageSources
from rag.parsing import Page


def _exit_with_parent() -> None:
    """Stop when the worker that started this process is gone (a hard time limit kills it)."""
    parent = os.getppid()
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _emit(out: io.TextIOBase, message: dict) -> None:
    out.write(json.dumps(message, ensure_ascii=False) + "\n")
    out.flush()


def _too_large(out: io.TextIOBase, page: Page, max_page_chars: int) -> bool:
    """Report a page over ``max_page_chars`` (the document fails); whether it was."""
    if len(page.text) <= max_page_chars:
        return False
    message = (
        f"Page {page.number} holds {len(page.text):,} characters of text; the limit "
        f"is {max_page_chars:,} (RAG_MAX_PAGE_CHARS)."
    )
    _emit(out, {"error": TooLargeError.__name__, "message": message})
    return True


def main(argv: list[str]) -> int:
    """The child: PDF bytes on stdin, JSON lines on stdout (see the module docstring)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    settings = json.loads(argv[0])
    max_page_chars = settings["max_page_chars"]
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n")
    _emit(out, {"ready": True})
    data = sys.stdin.buffer.read()
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        pdf = PageSources(data, max_pages=settings["max_pages"], ocr=OcrSettings(**settings["ocr"]))
    except PermanentIngestError as exc:
        _emit(out, {"error": type(exc).__name__, "message": exc.message})
        return 0
    del data
    opened = {"pages": pdf.page_count, "seconds": time.perf_counter() - started}
    _emit(out, {**opened, "cpu": time.process_time() - cpu_started})
    for index in range(pdf.page_count):
        cpu_started = time.process_time()
        read = pdf.read_text(index)
        if _too_large(out, read.page, max_page_chars):
            return 0
        reason = pdf.ocr_reason(read)
        ocr_cpu = 0.0
        if reason:
            # The parent now allows the step OCR's budget instead of parsing's.
            _emit(out, {"ocr": index + 1, "reason": reason, "seconds": read.parse_seconds})
            read.parse_seconds = 0.0  # counted
            ocr_started = time.process_time()
            pdf.ocr(read, reason)
            ocr_cpu = time.process_time() - ocr_started
            if _too_large(out, read.page, max_page_chars):
                return 0
        pdf.count(read)
        page = read.page
        _emit(
            out,
            {
                "page": page.number,
                "text": page.text,
                "source": page.source,
                "ocr_confidence": page.ocr_confidence,
                "seconds": read.parse_seconds,
                "ocr_seconds": read.ocr_seconds,
                "cpu": time.process_time() - cpu_started - ocr_cpu,
                "ocr_cpu": ocr_cpu,
            },
        )
    _emit(out, {"stats": vars(pdf.stats)})
    pdf.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:
        # The reader stopped listening (cancelled, or failed downstream): nothing to report.
        os._exit(1)
