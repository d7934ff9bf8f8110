"""Recognition of several page images at once, in threads of the page reader's child, each
thread with a Tesseract engine of its own.

The libtesseract in tesserocr's wheel is built without OpenMP (``readelf -d`` lists no libgomp
among its libraries): one recognition runs on one core, whatever ``OMP_*`` says. So the reader
recognises up to ``threads`` pages at once instead. tesserocr releases the GIL in
``Recognize``, and engines share nothing, so each thread runs on a core of its own (measured on
a quiet 2-core machine: 8 scanned pages in 12.3-14.2 s with 2 threads against 23.2-24.9 s with
1; see the README's OCR section). An engine is never used by two threads at once: a thread
takes an idle one, or makes one, and gives it back when its page is read.

Only recognition runs here. Rendering stays in the thread that reads the PDF (PDFium is not
thread-safe): it hands over a finished image, which the pool holds until its page is read.

Engines are freed (and their memory handed back to the system) when the reader meets a page that
needs no OCR while none is being recognised (:meth:`OcrPool.release_idle`): a text document with
a scanned cover would otherwise keep two models and their page buffers for the rest of a long
ingestion (measured on a 1,048-page PDF with three OCR'd pages: peak RSS above idle 461 MB
before, 410 MB after, 329 MB with OCR off). A scanned document keeps its engines from page to
page; making one again takes about 0.04 s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from rag.memory import release_free_memory
from rag.ocr import OcrEngine, OcrSkipped, OcrText


@dataclass(frozen=True)
class Recognition:
    """What became of one page image: the text Tesseract found, or why there is none
    (``error``), and the seconds and CPU seconds its thread spent on it."""

    found: OcrText | None
    error: str
    seconds: float
    cpu: float


class OcrPool:
    """Up to ``threads`` recognitions at once, engines made by ``make_engine`` when needed."""

    def __init__(self, threads: int, make_engine: Callable[[], OcrEngine]) -> None:
        self.threads = max(1, threads)
        self._make_engine = make_engine
        self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="ocr")
        self._lock = threading.Lock()
        self._making = threading.Lock()
        # Every engine not reading a page. Only a recognition holds one, so when none runs (no
        # page pending, or the executor shut down) this is every engine there is.
        self._idle: list[OcrEngine] = []
        self._pending = 0  # pages submitted and not yet read

    def submit(self, image: Any) -> Future[Recognition]:
        """Recognise a page image (PIL) in a thread of the pool; the future never raises."""
        # Handed over in a list the thread empties: the executor keeps its arguments until after
        # the future is done, and the image must be gone by then (at most ``threads`` exist).
        with self._lock:
            self._pending += 1
        return self._executor.submit(self._recognise, [image])

    def _recognise(self, handed_over: list[Any]) -> Recognition:
        started, cpu_started = time.perf_counter(), time.thread_time()
        image = handed_over.pop()
        found, error = None, ""
        engine = None
        try:
            engine = self._take()
            found = engine.read(image)
        except OcrSkipped as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - Tesseract raises types of its own
            # One page that cannot be read must not lose the others; its reason is recorded.
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        finally:
            del image
            with self._lock:
                if engine is not None:
                    self._idle.append(engine)
                self._pending -= 1
        # Tesseract built without OpenMP computes in the calling thread only: the thread's CPU
        # time is the page's, whatever the other threads do meanwhile.
        return Recognition(
            found=found,
            error=error,
            seconds=time.perf_counter() - started,
            cpu=time.thread_time() - cpu_started,
        )

    def release_idle(self) -> None:
        """Free every engine, if no page is submitted and not yet read (else nothing)."""
        with self._making:  # never beside a model being loaded
            with self._lock:
                if self._pending:
                    return
                freed, self._idle = self._idle, []
            for engine in freed:
                engine.close()
        if freed:
            release_free_memory(force=True)

    def _take(self) -> OcrEngine:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        # One at a time: Tesseract's loading of a model is not documented as safe beside another
        # one (nor beside freeing one, see release_idle); it happens once per thread and document
        # part that needs OCR.
        with self._making:
            return self._make_engine()

    def close(self) -> None:
        """Wait for the recognitions under way (forget those not started), then free every
        engine's memory (the models)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            freed, self._idle = self._idle, []
        for engine in freed:
            engine.close()
