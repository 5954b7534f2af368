"""ModbusSource's reusable request timeout acts as asyncio.timeout does, request after request."""

from __future__ import annotations

import asyncio

import pytest

from ingest.modbus_source import _RequestTimeout


async def _hangs(rt: _RequestTimeout, timeout_s: float) -> float:
    """Seconds until a request that never answers times out."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError), rt(timeout_s):
        await asyncio.sleep(10)
    return loop.time() - started


async def test_a_hung_request_times_out_and_leaves_the_task_uncancelled() -> None:
    rt = _RequestTimeout()
    assert 0.09 <= await _hangs(rt, 0.1) < 0.3
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_a_cancel_from_outside_stays_a_cancel() -> None:
    rt = _RequestTimeout()

    async def request() -> None:
        with rt(5):
            await asyncio.sleep(10)

    t = asyncio.create_task(request())
    await asyncio.sleep(0.02)
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t


async def test_each_request_gets_its_own_deadline_whatever_came_before() -> None:
    rt = _RequestTimeout()
    with rt(5):  # a long timeout first: the timer must be moved earlier for a short one
        await asyncio.sleep(0.01)
    assert 0.09 <= await _hangs(rt, 0.1) < 0.3
    for _ in range(20):  # fast requests never time out, though they span many short timeouts
        with rt(0.1):
            await asyncio.sleep(0.01)
    assert 0.29 <= await _hangs(rt, 0.3) < 0.5  # a longer one after shorter ones
    with rt(0.05):
        pass
    await asyncio.sleep(0.1)  # the timer fires with no request in flight
    assert 0.09 <= await _hangs(rt, 0.1) < 0.3


async def test_an_outer_timeout_that_fires_first_is_the_outer_ones() -> None:
    rt = _RequestTimeout()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            with rt(5):
                await asyncio.sleep(10)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    assert 0.09 <= await _hangs(rt, 0.1) < 0.3  # and it still works afterwards
