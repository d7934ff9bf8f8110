"""Stopping the pipeline's tasks: a task that swallows a cancellation is still stopped, and the
caller's own cancellation waits for them."""

from __future__ import annotations

import asyncio
import gc

import pytest

from rag.aio import cancel_and_wait, end_queue_now


async def swallows_one_cancellation(queue: asyncio.Queue[int | None], swallowed: list[int]):
    """A stage that takes one cancellation for a result (as wait_for did), then waits to hand
    an item to a consumer that is gone."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        swallowed.append(1)
    await queue.put(1)
    await queue.put(2)  # the queue holds one: waits forever unless cancelled again


def test_a_task_that_swallows_a_cancellation_is_cancelled_again_until_it_ends():
    async def scenario():
        queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=1)
        swallowed: list[int] = []
        stage = asyncio.create_task(swallows_one_cancellation(queue, swallowed))
        finished = asyncio.create_task(asyncio.sleep(0, result=None))
        await asyncio.sleep(0)
        await asyncio.wait_for(cancel_and_wait([stage, finished], every=0.05), timeout=10)
        return swallowed, stage.cancelled(), queue.qsize()

    assert asyncio.run(scenario()) == ([1], True, 1)


def test_what_the_tasks_raised_is_retrieved_not_raised():
    async def scenario(loop_errors: list[dict]):
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: loop_errors.append(context))

        async def fails():
            raise ValueError("a follow-on error")

        task = asyncio.create_task(fails())
        await asyncio.sleep(0)
        await cancel_and_wait([task])
        # An exception never retrieved is reported when its task goes: let it go now.
        del task
        gc.collect()

    loop_errors: list[dict] = []
    asyncio.run(scenario(loop_errors))
    assert loop_errors == []


def test_a_cancelled_caller_still_waits_for_its_tasks_then_is_cancelled():
    async def scenario():
        queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=1)
        stage = asyncio.create_task(swallows_one_cancellation(queue, []))
        await asyncio.sleep(0)
        stopping = asyncio.create_task(cancel_and_wait([stage], every=0.05))
        await asyncio.sleep(0)
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
        return stage.done()

    assert asyncio.run(scenario())


def test_the_end_marker_goes_in_a_full_queue_without_waiting():
    queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=2)
    queue.put_nowait(1)
    queue.put_nowait(2)
    end_queue_now(queue)
    assert [queue.get_nowait() for _ in range(queue.qsize())] == [2, None]
