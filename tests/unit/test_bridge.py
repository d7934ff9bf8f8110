"""rag.bridge: one reused loop per thread, clear misuse errors, clean unwinding."""

from __future__ import annotations

import asyncio
import threading
import warnings

import pytest

from rag import bridge


async def running_loop_id() -> int:
    return id(asyncio.get_running_loop())


def test_calls_on_one_thread_share_one_loop():
    ids = {bridge.run(running_loop_id()) for _ in range(5)}
    assert len(ids) == 1


def test_each_thread_gets_its_own_loop():
    results: list[int] = []

    def work():
        results.append(bridge.run(running_loop_id()))
        results.append(bridge.run(running_loop_id()))
        bridge.close_current()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Results interleave across threads; each thread reused one loop, and loops differ.
    assert len(results) == 6
    assert len(set(results)) <= 3


def test_calling_from_inside_a_running_loop_raises_a_clear_error():
    async def misuse():
        bridge.run(running_loop_id())

    with pytest.raises(RuntimeError, match="from inside a running event loop"):
        asyncio.run(misuse())


def test_an_exception_propagates_and_the_loop_stays_usable():
    async def fail():
        raise ValueError("boom")

    before = bridge.run(running_loop_id())
    with pytest.raises(ValueError, match="boom"):
        bridge.run(fail())
    assert bridge.run(running_loop_id()) == before


def test_an_interruption_cancels_the_coroutine_and_runs_its_cleanup():
    cleaned = []

    async def stuck():
        loop = asyncio.get_running_loop()
        # Interrupt the loop from outside the coroutine, as a signal handler would.
        loop.call_later(0.05, _raise_keyboard_interrupt)
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.append(True)

    before = bridge.run(running_loop_id())
    with pytest.raises(KeyboardInterrupt):
        bridge.run(stuck())
    assert cleaned == [True]
    assert bridge.run(running_loop_id()) == before
    pending = bridge.run(_other_tasks())
    assert pending == 0


def _raise_keyboard_interrupt():
    raise KeyboardInterrupt


async def _other_tasks() -> int:
    current = asyncio.current_task()
    return len([t for t in asyncio.all_tasks() if t is not current])


def test_loop_resources_are_created_once_and_closed_on_shutdown():
    closed = []

    async def get():
        return bridge.loop_resource("thing", object, close=_closer(closed))

    def work(out):
        out.append(bridge.run(get()))
        out.append(bridge.run(get()))
        bridge.close_current()

    out: list[object] = []
    thread = threading.Thread(target=work, args=(out,))
    thread.start()
    thread.join()
    assert out[0] is out[1]
    assert closed == [out[0]]


def _closer(sink):
    async def close(resource):
        sink.append(resource)

    return close


def test_loop_resource_outside_the_bridge_is_refused():
    async def outside():
        return bridge.loop_resource("x", object)

    with pytest.raises(RuntimeError, match="inside rag.bridge.run"):
        asyncio.run(outside())


def test_the_bridge_emits_no_deprecation_warning():
    def work():
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            bridge.run(running_loop_id())
            bridge.close_current()

    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _capture(work, errors))
    thread.start()
    thread.join()
    assert errors == []


def _capture(fn, errors):
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - the test reports whatever the thread raised
        errors.append(exc)
