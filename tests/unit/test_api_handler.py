"""The API's request threads: one thread per running request, kept for the next ones."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from asgiref.sync import ThreadSensitiveContext, sync_to_async

from fca_site.api_handler import RequestThreads


async def request_thread_ids(
    threads: RequestThreads, hold: asyncio.Event | None = None, started: list | None = None
):
    """The threads a request's synchronous calls ran on (Django's own context nested inside);
    with ``hold``, the request says it ``started`` and waits for it between its calls."""
    async with threads.context(), ThreadSensitiveContext():
        first = await sync_to_async(threading.current_thread)()
        if hold is not None:
            started.append(first)
            await hold.wait()
        return first, await sync_to_async(threading.current_thread)()


def test_a_request_runs_on_one_thread_and_the_next_request_reuses_it():
    async def scenario():
        threads = RequestThreads()
        return await request_thread_ids(threads), await request_thread_ids(threads)

    (a1, a2), (b1, b2) = asyncio.run(scenario())
    assert a1 is a2 is b1 is b2 is not threading.current_thread()


def test_requests_running_together_each_have_a_thread_of_their_own():
    async def scenario():
        threads = RequestThreads()
        hold = asyncio.Event()
        started: list[threading.Thread] = []
        first = asyncio.create_task(request_thread_ids(threads, hold, started))
        while not started:  # until the first request holds its thread
            await asyncio.sleep(0)
        second = await request_thread_ids(threads)
        hold.set()
        return await first, second

    (a1, a2), (b1, b2) = asyncio.run(scenario())
    assert a1 is a2 and b1 is b2 and a1 is not b1


def test_threads_beyond_those_kept_idle_are_let_go():
    async def scenario():
        threads = RequestThreads(keep_idle=1)
        hold = asyncio.Event()
        started: list[threading.Thread] = []
        running = [
            asyncio.create_task(request_thread_ids(threads, hold, started)) for _ in range(3)
        ]
        while len(started) < 3:  # until all three hold a thread
            await asyncio.sleep(0)
        hold.set()
        await asyncio.gather(*running)
        return len({id(thread) for thread in started}), len(threads._idle)

    assert asyncio.run(scenario()) == (3, 1)


def test_a_request_cut_short_does_not_hand_its_thread_to_the_next():
    async def scenario():
        threads = RequestThreads()
        hold = asyncio.Event()
        started: list[threading.Thread] = []
        cut = asyncio.create_task(request_thread_ids(threads, hold, started))
        while not started:
            await asyncio.sleep(0)
        cut.cancel()  # the client went away
        with contextlib.suppress(asyncio.CancelledError):
            await cut
        next_thread, _ = await request_thread_ids(threads)
        return started[0], next_thread, len(threads._idle)

    cut_thread, next_thread, idle = asyncio.run(scenario())
    assert next_thread is not cut_thread and idle == 1
