"""MemoryBus specifics beyond the bus contract: retention frees what every group committed."""

from __future__ import annotations

from services.bus.memory import MemoryBus


async def test_retention_drops_only_what_every_group_committed() -> None:
    bus = MemoryBus(partitions=1, retain=1)
    part = bus.partitions("t")[0]
    for i in range(5):
        await bus.publish("t", b"k", str(i).encode())
    async with bus.subscribe("t", "a") as a, bus.subscribe("t", "b") as b:
        await a.commit(await a.poll(10, timeout_s=1))
        assert len(part.log) == 5  # group b has committed nothing yet
        await b.commit(await b.poll(3, timeout_s=1))
        assert (part.base, len(part.log)) == (3, 2)
        await b.commit(await b.poll(10, timeout_s=1))
        assert (part.base, len(part.log)) == (4, 1)  # the newest message is retained
        await bus.publish("t", b"k", b"5")
        assert [(m.offset, m.value) for m in await b.poll(10, timeout_s=1)] == [(5, b"5")]
        await b.rewind()
        assert [m.offset for m in await b.poll(10, timeout_s=1)] == [5]
