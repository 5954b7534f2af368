"""One contract suite over every Bus: at-least-once, per-key order, commit only after handling."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from services.bus import Bus, Message, Subscription
from services.bus.kafka import KafkaBus
from services.bus.memory import MemoryBus


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    if request.param == "memory":
        async with MemoryBus() as memory:
            yield memory
    else:
        async with KafkaBus(request.getfixturevalue("kafka_bootstrap")) as kafka:
            yield kafka


def _topic() -> str:
    return f"contract-{uuid.uuid4().hex[:8]}"


async def _drain(sub: Subscription, want: int, timeout_s: float = 20.0) -> list[Message]:
    got: list[Message] = []
    for _ in range(int(timeout_s)):
        got += await sub.poll(1000, timeout_s=1.0)
        if len(got) >= want:
            break
    return got


async def test_keeps_order_per_key(bus: Bus) -> None:
    topic = _topic()
    for i in range(30):
        await bus.publish(topic, f"meter-{i % 3}".encode(), str(i).encode())
    async with bus.subscribe(topic, "g") as sub:
        got = await _drain(sub, 30)
    assert len(got) == 30
    for k in range(3):
        values = [int(m.value) for m in got if m.key == f"meter-{k}".encode()]
        assert values == sorted(values) and len(values) == 10


async def test_uncommitted_messages_are_delivered_again(bus: Bus) -> None:
    topic = _topic()
    for i in range(5):
        await bus.publish(topic, b"m", str(i).encode())
    async with bus.subscribe(topic, "g") as sub:
        first = await _drain(sub, 5)
        await sub.commit(first[:2])  # handled two, then "crashed"
    async with bus.subscribe(topic, "g") as sub:
        again = await _drain(sub, 3)
    assert [m.value for m in again] == [b"2", b"3", b"4"]


async def test_rewind_returns_to_the_last_commit(bus: Bus) -> None:
    topic = _topic()
    for i in range(4):
        await bus.publish(topic, b"m", str(i).encode())
    async with bus.subscribe(topic, "g") as sub:
        got = await _drain(sub, 4)
        await sub.commit(got[:1])
        await sub.rewind()
        again = await _drain(sub, 3)
    assert [m.value for m in again] == [b"1", b"2", b"3"]


async def test_committed_messages_are_not_delivered_again(bus: Bus) -> None:
    topic = _topic()
    await bus.publish(topic, b"m", b"only")
    async with bus.subscribe(topic, "g") as sub:
        await sub.commit(await _drain(sub, 1))
    async with bus.subscribe(topic, "g") as sub:
        assert await sub.poll(10, timeout_s=2.0) == []


async def test_headers_travel_with_the_message(bus: Bus) -> None:
    topic = _topic()
    await bus.publish(topic, b"m", b"v", [("reason", b"why")])
    async with bus.subscribe(topic, "g") as sub:
        (m,) = await _drain(sub, 1)
    assert ("reason", b"why") in m.headers and m.key == b"m"


async def test_groups_are_independent(bus: Bus) -> None:
    topic = _topic()
    await bus.publish(topic, b"m", b"v")
    async with bus.subscribe(topic, "a") as a:
        await a.commit(await _drain(a, 1))
    async with bus.subscribe(topic, "b") as b:
        assert [m.value for m in await _drain(b, 1)] == [b"v"]
