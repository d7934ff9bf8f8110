"""asyncio helpers for the pipeline's stages: ending a queue, stopping tasks, timing calls."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)

# Seconds between cancellations of a task that is still running after the previous one.
RECANCEL_EVERY_SECONDS = 1.0


def end_queue_now(queue: asyncio.Queue[Any]) -> None:
    """Put the end marker (None) without waiting, for a producer that is failing or cancelled.

    The consumer may be gone, so never wait for room; make room instead, so that a consumer
    still reading sees the end rather than waiting forever.
    """
    while queue.full():
        queue.get_nowait()
    queue.put_nowait(None)


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], *, every: float = RECANCEL_EVERY_SECONDS
) -> None:
    """Cancel ``tasks`` and return once every one has ended, cancelling again, each ``every``
    seconds, those still running. What they raised is retrieved, not raised: the caller holds
    the error that ended the work, theirs only follow from it.

    One cancellation is not always enough: a task can swallow it and run on into a wait that
    nothing will end (Python 3.11's ``asyncio.wait_for`` returns the result when its future
    completes in the same loop iteration as the cancellation, CPython gh-86296; a reader stage
    then waits forever to hand a page to a consumer that is gone).

    A cancellation of the caller while it waits does not cut the wait short (the tasks would be
    left running, unowned): it is raised once they have ended.
    """
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    interrupted: asyncio.CancelledError | None = None
    rounds = 0
    while pending:
        if rounds:  # a clean-up that takes long, or a cancellation that was lost
            logger.warning(
                "tasks still running %.0f s after cancellation, cancelled again: %s",
                rounds * every,
                ", ".join(sorted(task.get_name() for task in pending)),
            )
        for task in pending:
            task.cancel()
        rounds += 1
        try:
            _, pending = await asyncio.wait(pending, timeout=every)
        except asyncio.CancelledError as exc:
            interrupted = exc
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: asyncio would log it as never retrieved
    if interrupted is not None:
        raise interrupted


class BusyClock:
    """Wall-clock seconds during which at least one tracked call was running."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._running = 0
        self._since = 0.0

    async def track(self, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await call(*args)``, counted as busy time. Made here, not by the caller, so a task
        cancelled before it starts leaves no coroutine that was never awaited."""
        if not self._running:
            self._since = time.perf_counter()
        self._running += 1
        try:
            return await call(*args)
        finally:
            self._running -= 1
            if not self._running:
                self.seconds += time.perf_counter() - self._since
