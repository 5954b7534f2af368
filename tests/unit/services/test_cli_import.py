"""`plantpulse import readings`: the file streamed to a running API; published, or refused with
the rows at fault and nothing published."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from compute import codec
from services.access import Role
from services.api import create_app
from services.bus.memory import MemoryBus
from services.cli import main
from services.store.sqlite import SqliteStore
from tests.e2e.external_support import TOPIC, plant
from tests.harness import free_port
from tests.tokens import token_for


@dataclass
class Served:
    url: str
    bus: MemoryBus
    engineer: str
    viewer: str


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with MemoryBus() as bus, SqliteStore(tmp_path / "s.sqlite3") as store:
        engineer = await token_for(store, Role.ENGINEER)
        viewer = await token_for(store, Role.VIEWER)
        port = free_port()
        app = create_app(plant(), store, bus=bus)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        task = asyncio.create_task(server.serve())
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.02)
        try:
            yield Served(url=f"http://127.0.0.1:{port}", bus=bus, engineer=engineer, viewer=viewer)
        finally:
            server.should_exit = True
            await task


def _published(bus: MemoryBus) -> int:
    return sum(codec.decode(m.value).size for p in bus.partitions(TOPIC) for m in p.log)


async def _run(served: Served, path: Path, token: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("PT_TEST_TOKEN", token)
    argv = ["import", "readings", str(path), "--reason", "bill 2026-03", "--url", served.url]
    return await asyncio.to_thread(main, [*argv, "--token-env", "PT_TEST_TOKEN"])


async def test_a_file_is_published_and_summarised(
    served: Served,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "bill.csv"
    rows = [f"main.energy,2026-03-10T{h:02d}:00:00+08:00,{900 + h}" for h in range(5)]
    path.write_text("channel_id,ts,value\n" + "\n".join(rows) + "\n")
    assert await _run(served, path, served.engineer, monkeypatch) == 0
    out = capsys.readouterr().out
    assert ": 5 readings published in 1 batches (0 already stored)" in out
    assert "main.energy: 5 new, 0 already stored, 2026-03-10T00:00:00+08:00 .. " in out
    assert _published(served.bus) == 5


async def test_a_refused_file_names_its_rows_and_publishes_nothing(
    served: Served,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "channel_id,ts,value\n"
        "main.energy,2026-03-10T00:00:00+08:00,900\n"
        "main.energy,2026-03-10T01:00:00,901\n"
        "main.nope,2026-03-10T02:00:00+08:00,902\n"
    )
    assert await _run(served, path, served.engineer, monkeypatch) == 2
    err = capsys.readouterr().err
    assert "refused (422), nothing published:" in err
    assert "  row 3, ts: '2026-03-10T01:00:00' has no UTC offset" in err
    assert "  row 4, channel_id: unknown channel 'main.nope'" in err
    assert await _run(served, path, served.viewer, monkeypatch) == 2
    assert "needs the role engineer or admin" in capsys.readouterr().err
    assert _published(served.bus) == 0
