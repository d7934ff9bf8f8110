"""Read a PDF in a child process, within a time budget, its pages streamed back as they come.

pypdf is pure Python: in a thread of the worker it holds the GIL most of the time it runs, and
the embedder's threads, which need the GIL between their operations, wait for it (measured
here: embedding beside a busy reader thread took about 3 times as long as alone; beside a
reader process, no longer). And a page cannot be stopped in a thread, while a process can be
killed: a tiny file can hold a content stream that costs minutes per page to parse. So every
document is read by a child process, and the parent only receives text.

Each step is timed, and the document as a whole, by the budget in :mod:`rag.read_budget`:
over it, the child is killed and the document fails as ``too_complex``.

OCR (``rag.page_sources``, ``rag.ocr``, ``rag.ocr_pool``) runs in the child too: its main thread
reads each page's text layer and renders the pages that need OCR (pypdf and PDFium, which is not
thread-safe, stay in that thread), and up to ``ocr_threads`` pages are recognised at once, each
in a thread with a Tesseract of its own (by default one per core the worker may run on). While
they are, the main thread reads ahead, up to ``pages_ahead`` (:data:`PAGES_AHEAD_PER_THREAD`
per thread) pages not yet sent; pages are still sent in page order.

Protocol: the child writes ``{"ready": true}`` once started (its interpreter start is not
parsing, so the budget starts after it); the parent then writes the PDF's bytes to the child's
stdin and closes it; the child writes JSON lines to stdout: ``{"pages": N, "seconds": ...}``
once opened (or ``{"error": <class name>, "message": ...}`` and nothing more), then, as it
reads each page in order, ``{"ocr": n, "reason": ..., "seconds": ...}`` when page n needs OCR
(its text layer read; the child renders it next, then hands it to a recognition thread), or
``{"read": n, "seconds": ...}`` when page n is read while pages before it are still in OCR, and
for each page in order, once it is read and recognised, ``{"page": n, "text": ..., "source":
..., "ocr_confidence": ..., "seconds": ..., "ocr_seconds": ..., "cpu": ..., "ocr_cpu": ...}``
(or an error, for a page over ``max_page_chars``), then ``{"stats": {...}}``. A page's seconds
are counted once: in its ``ocr`` or ``read`` message if it had one, else in its ``page``
message. ``cpu`` and ``ocr_cpu`` are the CPU seconds of the child's threads
(``time.thread_time``) reading the page's text layer, and rendering and recognising it. A pipe
holds only a few pages, so the child reads no further ahead than the consumer allows.

A child killed by a signal (out of memory, an operator) raises :class:`ReaderCrashedError`,
which is retried like a worker that died; a child that exits otherwise before the end is a
corrupt file.

The child is ``python -m rag.page_reader_child SETTINGS_JSON`` (started by :func:`open_pdf`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rag import errors
from rag.config import RAGConfig
from rag.errors import (
    CorruptPdfError,
    NoTextError,
    PermanentIngestError,
    ReaderCrashedError,
    TooLargeError,
)
from rag.page_sources import OcrSettings
from rag.parsing import ExtractionStats, Page, no_text_error
from rag.read_budget import ReadBudget

logger = logging.getLogger(__name__)

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
# Seconds a new reader may take to start (an interpreter and its imports; longer on a busy
# machine). Not parsing, so not part of the parsing budget.
STARTUP_SECONDS = 60.0
# Room in one JSON line beside the page's text (the keys and the seconds).
_LINE_OVERHEAD = 2**16
# Pages the child may have read and not yet sent, per OCR thread: room for a text page between
# two scanned pages without leaving a thread idle, and a bound on the text held meanwhile.
PAGES_AHEAD_PER_THREAD = 2


def ocr_threads(config: RAGConfig) -> int:
    """Pages the reader recognises at once: ``RAGConfig.ocr_threads``, else one per CPU this
    process may run on."""
    return max(1, config.ocr_threads or len(os.sched_getaffinity(0)))


def line_limit(max_page_chars: int) -> int:
    """Bytes one JSON line may take: a page at the character limit, at the most 4 bytes of
    UTF-8 per character (normalised text holds no control characters, so none becomes a
    6-byte ``\\uXXXX`` escape; quotes and backslashes take 2)."""
    return 4 * max_page_chars + _LINE_OVERHEAD


class PageReader:
    """A PDF opened by a child process: its page count, then its pages through :meth:`pages`.

    Made by :func:`open_pdf`, which also stops the child.
    """

    def __init__(
        self, process: asyncio.subprocess.Process, config: RAGConfig, *, ocr_threads: int = 1
    ) -> None:
        self._process = process
        self._config = config
        self._budget = ReadBudget(
            config, ocr_threads=ocr_threads, pages_ahead=PAGES_AHEAD_PER_THREAD * ocr_threads
        )
        self.ocr_pages = 0
        self.ocr_seconds = 0.0
        self.cpu_seconds = 0.0  # the child's, opening the file and reading text layers
        self.ocr_cpu_seconds = 0.0
        self.stats = ExtractionStats()

    @property
    def page_count(self) -> int:
        """The document's pages (0 until the child has opened it)."""
        return self._budget.page_count

    async def _open(self, data: bytes) -> None:
        assert self._process.stdin is not None and self._process.stdout is not None
        # The budget counts parsing only: wait for the child to be ready before sending the PDF.
        try:
            async with asyncio.timeout(STARTUP_SECONDS):  # not wait_for: see _next_message
                ready = await self._process.stdout.readline()
        except TimeoutError:
            self.kill()
            raise ReaderCrashedError(
                f"The PDF reader did not start within {STARTUP_SECONDS:g} s; the document is "
                "tried again."
            ) from None
        if not ready.endswith(b"\n"):
            code = await self._process.wait()
            if code < 0:
                raise self._died(code)
            # No byte of the PDF was sent yet: the reader's environment is at fault, not the file.
            raise ReaderCrashedError(
                f"The PDF reader exited with code {code} before it started (see the worker's "
                "log); the document is tried again."
            )
        # A child that dies before reading everything is reported by the next message (EOF).
        try:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._process.stdin.write(data)
                await self._process.stdin.drain()
        finally:
            self._process.stdin.close()
        message = await self._next_message()
        self.cpu_seconds += message["cpu"]
        self._budget.opened(message["pages"], message["seconds"])

    async def pages(self) -> AsyncIterator[tuple[Page, float]]:
        """Yield ``(page, seconds spent parsing it)`` in page order (OCR's seconds add up in
        :attr:`ocr_seconds`); fill :attr:`stats` at the end. Raises the child's
        :class:`~rag.errors.PermanentIngestError` (a page over the text limit),
        :class:`~rag.errors.TooComplexError` over budget,
        :class:`~rag.errors.ReaderCrashedError` if the child is killed."""
        while True:
            message = await self._next_message()
            if "stats" in message:
                for name, value in message["stats"].items():
                    setattr(self.stats, name, value)
                return
            if "ocr" in message:
                self._budget.began_ocr(message["ocr"], message["seconds"])
                continue
            if "read" in message:
                self._budget.read_ahead(message["read"], message["seconds"])
                continue
            self._budget.received(message["page"], message["seconds"], message["ocr_seconds"])
            if message["ocr_seconds"]:
                self.ocr_pages += 1
                self.ocr_seconds += message["ocr_seconds"]
            self.cpu_seconds += message["cpu"]
            self.ocr_cpu_seconds += message["ocr_cpu"]
            page = Page(
                number=message["page"],
                text=message["text"],
                source=message["source"],
                ocr_confidence=message["ocr_confidence"],
            )
            yield page, message["seconds"]

    def no_text_error(self) -> CorruptPdfError | NoTextError:
        """The error that explains why no text came out of the whole document."""
        return no_text_error(self.stats, self.page_count)

    async def _next_message(self) -> dict[str, Any]:
        """The child's next message, waited for no longer than the budget left."""
        assert self._process.stdout is not None
        page_left, document_left = self._budget.time_left()
        try:
            # asyncio.timeout, not wait_for: in Python 3.11 wait_for swallows a cancellation that
            # comes in the same loop iteration as the line (CPython gh-86296), and the pipeline's
            # reader stage would read on after being stopped.
            async with asyncio.timeout(max(0.0, min(page_left, document_left))):
                line = await self._process.stdout.readline()
        except TimeoutError:
            self.kill()
            raise self._budget.timed_out(page_left, document_left) from None
        except ValueError as exc:
            # asyncio's StreamReader refuses a line over its limit (LimitOverrunError).
            self.kill()
            raise TooLargeError(
                f"Page {self._budget.pages_read + 1} holds more text than the reader passes on "
                f"({line_limit(self._config.max_page_chars):,} bytes; RAG_MAX_PAGE_CHARS)."
            ) from exc
        if not line.endswith(b"\n"):
            # The end of the output, possibly in the middle of a line: the child is gone.
            raise self._died(await self._process.wait())
        message = json.loads(line)
        if "error" in message:
            raise _error_class(message["error"])(message["message"])
        return message

    def _died(self, code: int) -> ReaderCrashedError | CorruptPdfError:
        where = f"after {self._budget.pages_read} of {self.page_count or '?'} pages"
        if code < 0:
            return ReaderCrashedError(
                f"The PDF reader was killed by {_signal_name(-code)} {where} (out of memory, "
                "or stopped from outside); the document is tried again."
            )
        return CorruptPdfError(
            f"The PDF reader stopped {where} (exit code {code}): the file is pathological, or "
            "memory ran out."
        )

    def kill(self) -> None:
        """Stop the child now (it may be in the middle of a page)."""
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()


@contextlib.asynccontextmanager
async def open_pdf(data: bytes, *, config: RAGConfig) -> AsyncIterator[PageReader]:
    """Open the PDF in ``data`` in a child process; the reader is yielded once the child knows
    the page count. The child is killed when the block ends, whatever happened in it.

    Raises what the child reports (:class:`~rag.errors.NotAPdfError`,
    :class:`~rag.errors.EncryptedPdfError`, :class:`~rag.errors.TooLargeError`, ...) and the
    reader's own errors (see :meth:`PageReader.pages`).
    """
    threads = ocr_threads(config)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")])),
    }
    settings = {
        "max_pages": config.max_pages,
        "max_page_chars": config.max_page_chars,
        "pages_ahead": PAGES_AHEAD_PER_THREAD * threads,
        "ocr": asdict(
            OcrSettings(
                mode=config.ocr,
                languages=config.ocr_languages,
                tessdata=config.ocr_tessdata,
                dpi=config.ocr_dpi,
                max_pixels=config.ocr_max_pixels,
                page_seconds=config.ocr_page_seconds,
                threads=threads,
            )
        ),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rag.page_reader_child",
        json.dumps(settings),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        limit=line_limit(config.max_page_chars),
    )
    reader = PageReader(process, config, ocr_threads=threads)
    try:
        await reader._open(data)
        del data  # the child has the bytes; a long ingestion need not keep them
        yield reader
    finally:
        reader.kill()
        await _drain(process.stdout)
        await process.wait()


async def _drain(stdout: asyncio.StreamReader | None) -> None:
    """Read what a stopped child left in its pipe, up to the end.

    ``Process.wait()`` returns only once the pipes are closed, and a stream whose buffer is full
    (a line over the limit was refused mid-way) stops reading from the pipe: the end would never
    be seen. Reading in blocks keeps the pipe moving; it holds at most what the pipe held.
    """
    if stdout is None:
        return
    while await stdout.read(2**16):
        pass


def _error_class(name: str) -> type[PermanentIngestError]:
    found = getattr(errors, name, None)
    if isinstance(found, type) and issubclass(found, PermanentIngestError):
        return found
    return CorruptPdfError


def _signal_name(number: int) -> str:
    with contextlib.suppress(ValueError):
        return signal.Signals(number).name
    return f"signal {number}"
