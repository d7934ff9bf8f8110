"""Memory a process freed, handed back to the system.

glibc keeps freed memory in per-thread arenas; a worker whose threads embed batches (or a page
reader whose threads ran Tesseract) would otherwise keep it for the rest of its life.
"""

from __future__ import annotations

import ctypes
import time
from typing import Any


def _load_malloc_trim() -> Any:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: its allocator behaves differently anyway
        return None


_malloc_trim = _load_malloc_trim()


# Seconds between two hand-backs of freed memory (see release_free_memory).
RELEASE_EVERY_SECONDS = 5.0
_released_at = float("-inf")


def release_free_memory(*, force: bool = False) -> bool:
    """Hand memory freed by the last batches back to the system (glibc keeps it otherwise), at
    most once every :data:`RELEASE_EVERY_SECONDS` unless ``force``; whether it did.

    A batch's activations take tens of MB per thread and are freed right after; glibc keeps
    that memory in per-thread arenas, so a worker's resident size would settle about 100 MB
    higher than it needs (measured: peak 289 -> 194 MB above idle over a 352-page book). Not
    after every batch: ``malloc_trim`` walks every arena under its lock (the lanes' allocations
    wait) and the next batch faults the same pages back in; after each of the book's 64 batches
    it cost about 7% of the embedder's CPU seconds (profiled: 1.5 s in the trim alone).
    """
    global _released_at
    if _malloc_trim is None:
        return False
    now = time.monotonic()
    if not force and now - _released_at < RELEASE_EVERY_SECONDS:
        return False
    _released_at = now
    _malloc_trim(0)
    return True
