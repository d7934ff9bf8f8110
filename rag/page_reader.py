"""Read a PDF's pages in a child process, streamed back to the event loop as they come.

pypdf is pure Python: in a thread of the worker it holds the GIL most of the time it runs, and
the embedder's threads, which need the GIL between their operations, wait for it (measured
here: embedding beside a busy reader thread took about 3 times as long as alone; beside a
reader process, no longer). A child process reads instead, and the parent only receives text.

Protocol: the parent writes the PDF's bytes to the child's stdin and closes it; the child
writes JSON lines to stdout: ``{"pages": N}`` once opened (or ``{"error": <class name>,
"message": ...}`` and nothing more), then ``{"page": n, "text": ..., "seconds": ...}`` for each
page in order, then ``{"stats": {...}}``. A pipe holds only a few pages, so the child reads no
further ahead than the consumer allows.

Run as ``python -m rag.page_reader MAX_PAGES`` (by :func:`read_pages`, never by hand).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

from rag import errors
from rag.errors import CorruptPdfError, PermanentIngestError
from rag.parsing import ExtractionStats, Page, PdfDocument

logger = logging.getLogger(__name__)

# One JSON line holds one page's text; pages of several MB of text exist.
LINE_LIMIT = 64 * 2**20
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


async def read_pages(
    data: bytes, *, max_pages: int, stats: ExtractionStats
) -> AsyncIterator[tuple[Page, float]]:
    """Yield ``(page, seconds spent reading it)`` from a child process, in page order.

    ``stats`` is filled in from the child's own once every page is read. Raises the child's
    :class:`~rag.errors.PermanentIngestError` if it cannot open the PDF, and
    :class:`~rag.errors.CorruptPdfError` if it dies on the way. Closing the iterator early
    (cancellation, an error downstream) kills the child.
    """
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")])),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rag.page_reader",
        str(max_pages),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        limit=LINE_LIMIT,
    )
    assert process.stdin is not None and process.stdout is not None
    page_count = 0
    pages_read = 0
    try:
        process.stdin.write(data)
        await process.stdin.drain()
        process.stdin.close()
        while line := await process.stdout.readline():
            message = json.loads(line)
            if "page" in message:
                pages_read += 1
                yield Page(number=message["page"], text=message["text"]), message["seconds"]
            elif "pages" in message:
                page_count = message["pages"]
            elif "stats" in message:
                for name, value in message["stats"].items():
                    setattr(stats, name, value)
                return
            elif "error" in message:
                raise _error_class(message["error"])(message["message"])
        code = await process.wait()
        raise CorruptPdfError(
            f"The PDF reader stopped after {pages_read} of {page_count or '?'} pages "
            f"({_exit_reason(code)}): the file is pathological, or memory ran out."
        )
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def _error_class(name: str) -> type[PermanentIngestError]:
    found = getattr(errors, name, None)
    if isinstance(found, type) and issubclass(found, PermanentIngestError):
        return found
    return CorruptPdfError


def _exit_reason(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


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


def main(argv: list[str]) -> int:
    """The child: PDF bytes on stdin, JSON lines on stdout (see the module docstring)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    max_pages = int(argv[0])
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n")
    data = sys.stdin.buffer.read()
    try:
        pdf = PdfDocument(io.BytesIO(data), max_pages=max_pages)
    except PermanentIngestError as exc:
        _emit(out, {"error": type(exc).__name__, "message": exc.message})
        return 0
    _emit(out, {"pages": pdf.page_count})
    for index in range(pdf.page_count):
        started = time.perf_counter()
        page = pdf.read_page(index)
        _emit(
            out,
            {"page": page.number, "text": page.text, "seconds": time.perf_counter() - started},
        )
    _emit(out, {"stats": vars(pdf.stats)})
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:
        # The reader stopped listening (cancelled, or failed downstream): nothing to report.
        os._exit(1)
