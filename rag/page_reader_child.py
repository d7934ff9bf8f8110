"""The page reader's child process: PDF bytes on stdin, JSON lines on stdout.

Started by :func:`rag.page_reader.open_pdf` as ``python -m rag.page_reader_child SETTINGS``
(never by hand); the protocol is described in :mod:`rag.page_reader`, the worker's side of it.
The main thread reads the PDF (pypdf, PDFium: text layers and rendering) and sends every
message; only recognition runs in other threads (:mod:`rag.ocr_pool`).
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

from rag.errors import PermanentIngestError, TooLargeError
from rag.ocr_pool import Recognition
from rag.page_sources import OcrSettings, PageRead, PageSources
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


@dataclass
class _Waiting:
    """A page read but not sent yet: its recognition may be under way."""

    read: PageRead
    cpu: float
    reason: str | None = None
    recognition: Future[Recognition] | None = None


class _PageSender:
    """Sends pages in page order, each once it is read and its recognition, if any, is done."""

    def __init__(self, pdf: PageSources, out: io.TextIOBase, max_page_chars: int) -> None:
        self._pdf = pdf
        self._out = out
        self._max_page_chars = max_page_chars
        self.waiting: deque[_Waiting] = deque()
        # Pages announced for OCR and not sent yet: no more page images than this exist.
        self.in_ocr = 0

    def add(self, page: _Waiting) -> None:
        self.waiting.append(page)
        self.in_ocr += page.reason is not None

    def send_ready(self, *, wait: bool = False) -> bool:
        """Send the pages whose turn has come and that are done (waiting for the first one's
        recognition with ``wait``); False when one was over the text limit (error sent)."""
        while self.waiting:
            head = self.waiting[0]
            if head.recognition is not None:
                if not (wait or head.recognition.done()):
                    return True
                self._pdf.finish_ocr(head.read, head.reason or "", head.recognition.result())
            wait = False
            self.waiting.popleft()
            self.in_ocr -= head.reason is not None
            if not self.send(head.read, head.cpu):
                return False
        return True

    def send(self, read: PageRead, cpu: float) -> bool:
        """Send one page (with the seconds not sent in its announcement); False when it was over
        the text limit."""
        if _too_large(self._out, read.page, self._max_page_chars):
            return False
        self._pdf.count(read)
        page = read.page
        _emit(
            self._out,
            {
                "page": page.number,
                "text": page.text,
                "source": page.source,
                "ocr_confidence": page.ocr_confidence,
                "seconds": read.parse_seconds,
                "ocr_seconds": read.ocr_seconds,
                "cpu": cpu,
                "ocr_cpu": read.ocr_cpu,
            },
        )
        return True


def read_pages(
    pdf: PageSources, out: io.TextIOBase, *, max_page_chars: int, pages_ahead: int
) -> bool:
    """Send every page of ``pdf`` in order, recognising up to ``pdf.ocr_threads`` pages at once
    (see :mod:`rag.page_reader` for the messages); False when a page was over the text limit.

    The next page is read only while fewer than that many pages are in OCR and fewer than
    ``pages_ahead`` wait to be sent; otherwise the first waiting page's recognition is awaited.
    So at most that many page images exist at once, and the parent, which counts the same,
    knows when the child waits for a recognition rather than reads.
    """
    sender = _PageSender(pdf, out, max_page_chars)
    threads = max(1, pdf.ocr_threads)
    for index in range(pdf.page_count):
        while sender.waiting and (sender.in_ocr >= threads or len(sender.waiting) >= pages_ahead):
            if not sender.send_ready(wait=True):
                return False
        cpu_started = time.thread_time()
        read = pdf.read_text(index)
        if _too_large(out, read.page, max_page_chars):
            return False
        reason = pdf.ocr_reason(read)
        page = _Waiting(read, cpu=time.thread_time() - cpu_started, reason=reason)
        number = index + 1
        if reason:
            # The parent now counts this page as in OCR: rendered here, then recognised.
            _emit(out, {"ocr": number, "reason": reason, "seconds": read.parse_seconds})
            read.parse_seconds = 0.0  # counted
            image = pdf.render(read)
            if image is not None:
                page.recognition = pdf.recognise(image)
                del image  # the pool holds it until it is read, no longer
            sender.add(page)
        elif sender.waiting:
            # Its turn comes after pages still in OCR: its seconds are counted now.
            _emit(out, {"read": number, "seconds": read.parse_seconds})
            read.parse_seconds = 0.0
            sender.add(page)
        elif not sender.send(read, page.cpu):
            return False
        else:
            pdf.release_ocr_engines()  # a text page, nothing in OCR: a scanned cover's are freed
        if not sender.send_ready():
            return False
    while sender.waiting:
        if not sender.send_ready(wait=True):
            return False
    return True


def main(argv: list[str]) -> int:
    """The child: PDF bytes on stdin, JSON lines on stdout (see the module docstring)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    settings = json.loads(argv[0])
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
    try:
        done = read_pages(
            pdf,
            out,
            max_page_chars=settings["max_page_chars"],
            pages_ahead=settings["pages_ahead"],
        )
        if done:
            _emit(out, {"stats": vars(pdf.stats)})
    finally:
        pdf.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:
        # The reader stopped listening (cancelled, or failed downstream): nothing to report.
        os._exit(1)
