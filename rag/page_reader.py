"""Read a PDF in a child process, within a time budget, its pages streamed back as they come.

pypdf is pure Python: in a thread of the worker it holds the GIL most of the time it runs, and
the embedder's threads, which need the GIL between their operations, wait for it (measured
here: embedding beside a busy reader thread took about 3 times as long as alone; beside a
reader process, no longer). And a page cannot be stopped in a thread, while a process can be
killed: a tiny file can hold a content stream that costs minutes per page to parse. So every
document is read by a child process, and the parent only receives text.

The budget (``RAGConfig.parse_*``): opening the file and each page may take at most
``parse_page_seconds``; and reading may at no point have taken longer than
``parse_base_seconds`` plus ``parse_seconds_per_page`` for each page read so far (which bounds
the whole document by its pages, and stops a document whose every page is slow after a few of
them rather than at the task's time limit). Over budget, the child is killed and the document
fails as ``too_complex``. Seconds are the child's own, measured around its parsing: time the
child waits for the consumer (a full pipe) is not counted.

OCR (``rag.page_sources``, ``rag.ocr``) runs in the child too, and has a budget of its own: a
page's recognition may take ``ocr_page_seconds`` (Tesseract stops itself there and the page is
skipped; its rendering may take ``parse_page_seconds`` more), and each OCR'd page adds
``ocr_seconds_per_page`` to the document's budget. Tesseract uses ``ocr_threads`` threads
(OpenMP), by default every core the worker may run on.

Protocol: the child writes ``{"ready": true}`` once started (its interpreter start is not
parsing, so the budget starts after it); the parent then writes the PDF's bytes to the child's
stdin and closes it; the child writes JSON lines to stdout: ``{"pages": N, "seconds": ...}``
once opened (or ``{"error": <class name>, "message": ...}`` and nothing more), then for each
page in order ``{"ocr": n, "reason": ..., "seconds": ...}`` first if the page is OCR'd, and
``{"page": n, "text": ..., "source": ..., "ocr_confidence": ..., "seconds": ...,
"ocr_seconds": ..., "cpu": ..., "ocr_cpu": ...}`` (or an error, for a page over
``max_page_chars``), then ``{"stats": {...}}``. ``cpu`` and ``ocr_cpu`` are the child's own
CPU seconds (``time.process_time``, Tesseract's threads included) reading the text layer and
running OCR. A pipe holds only a few pages, so the child reads no further ahead than the
consumer allows.

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
    TooComplexError,
    TooLargeError,
)
from rag.page_sources import OcrSettings
from rag.parsing import ExtractionStats, Page, no_text_error

logger = logging.getLogger(__name__)

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
# Seconds a new reader may take to start (an interpreter and its imports; longer on a busy
# machine). Not parsing, so not part of the parsing budget.
STARTUP_SECONDS = 60.0
# Room in one JSON line beside the page's text (the keys and the seconds).
_LINE_OVERHEAD = 2**16


def line_limit(max_page_chars: int) -> int:
    """Bytes one JSON line may take: a page at the character limit, at the most 4 bytes of
    UTF-8 per character (normalised text holds no control characters, so none becomes a
    6-byte ``\\uXXXX`` escape; quotes and backslashes take 2)."""
    return 4 * max_page_chars + _LINE_OVERHEAD


class PageReader:
    """A PDF opened by a child process: its page count, then its pages through :meth:`pages`.

    Made by :func:`open_pdf`, which also stops the child.
    """

    def __init__(self, process: asyncio.subprocess.Process, config: RAGConfig) -> None:
        self._process = process
        self._config = config
        self.page_count = 0
        self.pages_read = 0
        self.ocr_pages = 0
        self.ocr_seconds = 0.0
        self._in_ocr = False  # the child is rendering and recognising the next page
        self.cpu_seconds = 0.0  # the child's, opening the file and reading text layers
        self.ocr_cpu_seconds = 0.0
        self.stats = ExtractionStats()
        self._spent = 0.0

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
        self.page_count = message["pages"]
        self.cpu_seconds += message["cpu"]
        self._account(message["seconds"])

    async def pages(self) -> AsyncIterator[tuple[Page, float]]:
        """Yield ``(page, seconds spent parsing it)`` in page order (OCR's seconds add up in
        :attr:`ocr_seconds`); fill :attr:`stats` at the end. Raises the child's
        :class:`~rag.errors.PermanentIngestError` (a page over the text limit),
        :class:`~rag.errors.TooComplexError` over budget,
        :class:`~rag.errors.ReaderCrashedError` if the child is killed."""
        while True:
            message = await self._next_message()
            if "ocr" in message:
                self._account(message["seconds"])
                self._in_ocr = True
                continue
            if "stats" in message:
                for name, value in message["stats"].items():
                    setattr(self.stats, name, value)
                return
            if message["ocr_seconds"] > self._step_limit():
                raise self._over_page_budget()
            self._in_ocr = False
            self.pages_read += 1
            if message["ocr_seconds"]:
                self.ocr_pages += 1
                self.ocr_seconds += message["ocr_seconds"]
            self._account(message["seconds"], message["ocr_seconds"])
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

    def _allowance(self) -> float:
        """Seconds reading may have taken once the step under way (open, or the next page)
        ends: the document's budget for the pages read by then."""
        config = self._config
        ocr_pages = self.ocr_pages + self._in_ocr
        return (
            config.parse_base_seconds
            + config.parse_seconds_per_page * (self.pages_read + 1)
            + config.ocr_seconds_per_page * ocr_pages
        )

    def _step_limit(self) -> float:
        """Longest the step under way may take: parsing a page, or rendering (as long as
        parsing may take) and recognising it."""
        config = self._config
        if self._in_ocr:
            return config.parse_page_seconds + config.ocr_page_seconds
        return config.parse_page_seconds

    def _account(self, seconds: float, ocr_seconds: float = 0.0) -> None:
        """Count a finished step's seconds (as the child measured them) against the budget."""
        self._spent += seconds + ocr_seconds
        if seconds > self._config.parse_page_seconds:
            raise self._over_page_budget()
        if self._spent > self._allowance():
            raise self._over_document_budget()

    async def _next_message(self) -> dict[str, Any]:
        """The child's next message, waited for no longer than the budget left."""
        assert self._process.stdout is not None
        page_left = self._step_limit()
        document_left = self._allowance() - self._spent
        try:
            # asyncio.timeout, not wait_for: in Python 3.11 wait_for swallows a cancellation that
            # comes in the same loop iteration as the line (CPython gh-86296), and the pipeline's
            # reader stage would read on after being stopped.
            async with asyncio.timeout(max(0.0, min(page_left, document_left))):
                line = await self._process.stdout.readline()
        except TimeoutError:
            self.kill()
            raise (
                self._over_page_budget()
                if page_left <= document_left
                else self._over_document_budget()
            ) from None
        except ValueError as exc:
            # asyncio's StreamReader refuses a line over its limit (LimitOverrunError).
            self.kill()
            raise TooLargeError(
                f"Page {self.pages_read + 1} holds more text than the reader passes on "
                f"({line_limit(self._config.max_page_chars):,} bytes; RAG_MAX_PAGE_CHARS)."
            ) from exc
        if not line.endswith(b"\n"):
            # The end of the output, possibly in the middle of a line: the child is gone.
            raise self._died(await self._process.wait())
        message = json.loads(line)
        if "error" in message:
            raise _error_class(message["error"])(message["message"])
        return message

    def _over_page_budget(self) -> TooComplexError:
        limit = self._step_limit()
        if not self.page_count:
            return TooComplexError(
                f"Opening the PDF took more than {limit:g} s (RAG_PARSE_PAGE_SECONDS): its "
                "structure is too complex to read in time."
            )
        if self._in_ocr:
            return TooComplexError(
                f"OCR of page {self.pages_read + 1} of {self.page_count} took more than "
                f"{limit:g} s (RAG_PARSE_PAGE_SECONDS to render it plus RAG_OCR_PAGE_SECONDS): "
                "the page image is too complex to read in time."
            )
        return TooComplexError(
            f"Page {self.pages_read + 1} of {self.page_count} took more than {limit:g} s to read "
            "(RAG_PARSE_PAGE_SECONDS): its content is too complex to read in time."
        )

    def _over_document_budget(self) -> TooComplexError:
        config = self._config
        step = (
            f"up to page {self.pages_read + 1} of {self.page_count}"
            if self.page_count
            else "to open it"
        )
        return TooComplexError(
            f"Reading the PDF {step} took more than {self._allowance():g} s (the budget: "
            f"RAG_PARSE_BASE_SECONDS={config.parse_base_seconds:g} plus "
            f"RAG_PARSE_SECONDS_PER_PAGE={config.parse_seconds_per_page:g} for each page, and "
            f"RAG_OCR_SECONDS_PER_PAGE={config.ocr_seconds_per_page:g} for each page OCR'd): "
            "its content is too complex to read in time."
        )

    def _died(self, code: int) -> ReaderCrashedError | CorruptPdfError:
        where = f"after {self.pages_read} of {self.page_count or '?'} pages"
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
    threads = str(config.ocr_threads or len(os.sched_getaffinity(0)))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")])),
        # Tesseract's parallel sections (OpenMP): as many threads as cores it is given.
        "OMP_THREAD_LIMIT": threads,
        "OMP_NUM_THREADS": threads,
    }
    settings = {
        "max_pages": config.max_pages,
        "max_page_chars": config.max_page_chars,
        "ocr": asdict(
            OcrSettings(
                mode=config.ocr,
                languages=config.ocr_languages,
                tessdata=config.ocr_tessdata,
                dpi=config.ocr_dpi,
                max_pixels=config.ocr_max_pixels,
                page_seconds=config.ocr_page_seconds,
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
    reader = PageReader(process, config)
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
