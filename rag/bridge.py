"""Run the async service from synchronous code (Celery tasks, management commands).

One long-lived event loop per process (per thread, for Celery's threads pool), created on first
use and reused by every later call. Resources bound to a loop (the async engine and its pooled
connections) are registered with :func:`loop_resource` and live exactly as long as the loop:
creating a loop per call (``asyncio.run``, ``async_to_sync``) would mean a new connection pool
and new connections per task, and an engine used from a second loop fails with "attached to a
different loop".

The loop is never taken from ``asyncio.get_event_loop()`` (deprecated when no loop runs, and
an error in any thread but the main one); each thread owns an :class:`asyncio.Runner`.

After ``fork()`` the child notices the pid change and builds its own loop and resources; the
parent's are left untouched (an engine is dropped with ``dispose(close=False)``, which does not
close the connections the parent still uses).

When something interrupts the loop from outside the coroutine (Celery's soft time limit,
``KeyboardInterrupt``, ``SystemExit``), the running coroutine is cancelled and given
``UNWIND_SECONDS`` to unwind (its ``finally`` blocks run, its transaction rolls back) before
the interruption is re-raised; the loop is then clean for the next call.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

UNWIND_SECONDS = 10.0

Closer = Callable[[Any], Awaitable[None]]
Forgetter = Callable[[Any], None]


class _LoopState:
    """A thread's runner and the resources bound to its loop."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.thread_id = threading.get_ident()
        self.runner = asyncio.Runner()
        self.loop = self.runner.get_loop()
        # key -> (resource, async closer, sync forgetter used after fork)
        self.resources: dict[Hashable, tuple[Any, Closer | None, Forgetter | None]] = {}


_local = threading.local()
_states: dict[int, _LoopState] = {}
_states_lock = threading.Lock()
# Loops given up on: after a fork, the parent's (closing them in the child would tear down
# state the parent still uses), and loops whose task would not unwind. They stay referenced so
# that garbage collection never "closes" them either.
_inherited: list[_LoopState] = []


def _after_fork_in_child() -> None:
    global _states_lock, _portal_lock
    _states_lock = threading.Lock()
    _portal_lock = threading.Lock()
    for state in _states.values():
        for resource, _closer, forget in state.resources.values():
            if forget is not None:
                forget(resource)
        _inherited.append(state)
    _states.clear()
    if hasattr(_local, "state"):
        del _local.state


os.register_at_fork(after_in_child=_after_fork_in_child)


def _current_state() -> _LoopState:
    state: _LoopState | None = getattr(_local, "state", None)
    if state is not None and state.pid == os.getpid():
        return state
    state = _LoopState()
    _local.state = state
    with _states_lock:
        _states[state.thread_id] = state
    logger.debug("bridge: new event loop %#x pid=%d", id(state.loop), state.pid)
    return state


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on this thread's long-lived loop and return its result.

    Raises :class:`RuntimeError` when called from inside a running event loop: blocking there
    would deadlock the loop. Async code should ``await`` the coroutine instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()
        raise RuntimeError(
            "rag.bridge.run() was called from inside a running event loop. It blocks until the "
            "coroutine finishes, which would deadlock that loop: `await` the coroutine directly "
            "instead (or call this from synchronous code, such as a Celery task)."
        )
    state = _current_state()
    task = state.loop.create_task(coro)
    try:
        return state.loop.run_until_complete(task)
    except BaseException as exc:
        if not task.done():
            # Interrupted from outside the coroutine (a signal handler raised while the loop
            # waited): the task is still pending on the loop. Unwind it before re-raising.
            if not _cancel_and_unwind(state.loop, task):
                _abandon(state)
            logger.warning("bridge: interrupted by %s; coroutine cancelled", type(exc).__name__)
        raise


def _cancel_and_unwind(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> bool:
    """Cancel an interrupted task and let it run its cleanup, within a bound.

    Returns whether the task finished; a task that did not would run on, unowned, during the
    next call, so the caller then gives up the whole loop.
    """
    task.cancel()
    try:
        loop.run_until_complete(asyncio.wait([task], timeout=UNWIND_SECONDS))
    except BaseException:
        # A second interruption while unwinding: give up on a clean unwind, keep the first one.
        logger.exception("bridge: interrupted again while unwinding a cancelled task")
        return False
    if not task.done():
        logger.error("bridge: task did not unwind within %.0fs after cancellation", UNWIND_SECONDS)
        return False
    if not task.cancelled() and task.exception() is not None:
        logger.warning("bridge: cancelled task ended with %r", task.exception())
    return True


def _abandon(state: _LoopState) -> None:
    """Drop a loop whose task would not unwind; the next call builds a fresh one."""
    for resource, _closer, forget in state.resources.values():
        if forget is not None:
            forget(resource)
    _inherited.append(state)
    with _states_lock:
        if _states.get(state.thread_id) is state:
            del _states[state.thread_id]
    if getattr(_local, "state", None) is state:
        del _local.state


class _Portal:
    """A daemon thread running a bridge loop forever, for callers on short-lived threads."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._serve, name="rag-bridge-portal", daemon=True)
        self.thread.start()
        self.ready.wait()

    def _serve(self) -> None:
        state = _current_state()
        self.loop = state.loop
        state.loop.call_soon(self.ready.set)
        state.loop.run_forever()


_portal: _Portal | None = None
_portal_lock = threading.Lock()


def run_threadsafe(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the process's portal loop (a long-lived background thread) and wait.

    For callers whose threads come and go, such as a threaded web server creating a thread per
    request: :func:`run` would give each of those threads a loop and an engine of its own that
    nobody closes. Here every caller shares one loop and one connection pool per process.
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    portal = _current_portal()
    if running is not None:
        coro.close()
        raise RuntimeError(
            "rag.bridge.run_threadsafe() was called from inside a running event loop: `await` "
            "the coroutine directly instead."
        )
    assert portal.loop is not None
    return asyncio.run_coroutine_threadsafe(coro, portal.loop).result(timeout)


async def run_on_portal(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` run on the process's portal loop.

    For a coroutine whose own loop is about to end, such as an async view served over WSGI
    (Django gives each such request a loop of its own): the engine it uses belongs to the
    portal's loop and outlives the request's.
    """
    portal = _current_portal()
    assert portal.loop is not None
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, portal.loop))


def _current_portal() -> _Portal:
    global _portal
    with _portal_lock:
        if _portal is None or _portal.pid != os.getpid() or not _portal.thread.is_alive():
            _portal = _Portal()
        return _portal


def _stop_portal() -> None:
    global _portal
    with _portal_lock:
        portal, _portal = _portal, None
    if portal is None or portal.pid != os.getpid() or portal.loop is None:
        return
    portal.loop.call_soon_threadsafe(portal.loop.stop)
    portal.thread.join(UNWIND_SECONDS)


def loop_resource(
    key: Hashable,
    factory: Callable[[], T],
    *,
    close: Callable[[T], Awaitable[None]] | None = None,
    forget_after_fork: Callable[[T], None] | None = None,
) -> T:
    """The resource ``key`` of the running bridge loop, created by ``factory`` on first use.

    Call it from a coroutine that :func:`run` is running. ``close`` is awaited when the loop
    shuts down; ``forget_after_fork`` is called in a forked child for a resource the parent
    created (it must not do I/O on it).
    """
    if not owns_running_loop():
        raise RuntimeError("rag.bridge.loop_resource() must be called inside rag.bridge.run().")
    state: _LoopState = _local.state
    entry = state.resources.get(key)
    if entry is None:
        entry = (factory(), close, forget_after_fork)
        state.resources[key] = entry
    return entry[0]


def owns_running_loop() -> bool:
    """Whether the running event loop is this thread's bridge loop (so loop_resource works)."""
    state: _LoopState | None = getattr(_local, "state", None)
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return False
    return state is not None and state.pid == os.getpid() and running is state.loop


def close_current() -> None:
    """Close this thread's bridge loop and its resources: for a thread of the caller's own that
    used :func:`run` and is about to end, whose loop, engine and connections would otherwise stay
    open until :func:`shutdown`. Call it on that thread, outside any running loop.

    Part of the bridge's API for code that uses ``rag`` on its own; the project's threads do not
    need it (Celery's threads pool keeps its threads for the worker's life, closed by
    :func:`shutdown`, and web requests go through the portal, :func:`run_threadsafe`).
    """
    state: _LoopState | None = getattr(_local, "state", None)
    if state is None:
        return
    del _local.state
    with _states_lock:
        if _states.get(state.thread_id) is state:
            del _states[state.thread_id]
    _close_state(state)


def shutdown() -> None:
    """Close every bridge loop of this process: resources first, then async generators, the
    default executor and the loop itself. Safe to call more than once.

    Meant for process shutdown, when no task runs; a loop still running in another thread is
    left alone (closing it under its thread would break the task it runs).
    """
    _stop_portal()
    with _states_lock:
        states = list(_states.values())
    for state in states:
        if state.loop.is_running():
            logger.warning("bridge: loop of thread %d still running at shutdown", state.thread_id)
            continue
        with _states_lock:
            _states.pop(state.thread_id, None)
        _close_state(state)
    if getattr(_local, "state", None) is not None and _local.state.pid == os.getpid():
        if _local.state.loop.is_closed():
            del _local.state


def _close_state(state: _LoopState) -> None:
    if state.pid != os.getpid():
        return
    for key, (resource, closer, _forget) in list(state.resources.items()):
        if closer is None:
            continue
        try:
            state.runner.run(closer(resource))
        except Exception:  # logged with its traceback; one closer failing must not stop the rest
            logger.exception("bridge: closing %r failed", key)
    closed = len(state.resources)
    state.resources.clear()
    state.runner.close()
    logger.info(
        "bridge: closed event loop %#x pid=%d resources=%d", id(state.loop), state.pid, closed
    )
