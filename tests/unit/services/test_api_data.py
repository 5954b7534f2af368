"""The external-data routes' edges: a file naming another site's channel is refused whole for a
site-scoped token, configured replacements are listed, and the CSV body is in the OpenAPI spec."""

from __future__ import annotations

from pathlib import Path

import httpx

from services.access import Role
from services.api import create_app
from services.bus.memory import MemoryBus
from services.store.sqlite import SqliteStore
from tests.e2e.external_support import TOPIC, plant
from tests.tokens import bearer, token_for
from tests.unit.services.test_api_auth import NORTH, two_sites


async def test_a_file_naming_a_channel_of_another_site_is_refused_whole(tmp_path: Path) -> None:
    async with MemoryBus() as bus, SqliteStore(tmp_path / "s.sqlite3") as store:
        north = bearer(await token_for(store, Role.ENGINEER, (NORTH,)))
        app = create_app(two_sites(), store, bus=bus)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", headers=north
        ) as api:
            text = (
                "channel_id,ts,value\n"
                "north-m.energy,2026-03-10T00:00:00Z,1\n"
                "south-m.energy,2026-03-10T00:00:00Z,1\n"
            )
            r = await api.post("/v1/imports/readings", params={"reason": "r"}, content=text)
            assert r.status_code == 403 and "site 'south' is not in this token's sites" in r.text
            assert sum(p.end for p in bus.partitions(TOPIC)) == 0
            r = await api.post(
                "/v1/imports/readings",
                params={"reason": "r"},
                content="channel_id,ts,value\nnorth-m.energy,2026-03-10T00:00:00Z,1\n",
            )
            assert r.status_code == 202, r.text
        assert sum(p.end for p in bus.partitions(TOPIC)) == 1


async def test_configured_replacements_are_listed_and_the_csv_body_is_documented(
    tmp_path: Path,
) -> None:
    swap = {"at": "2026-03-11T00:05:30+08:00", "old_final": 1005.2, "new_initial": 0.1}
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        viewer = bearer(await token_for(store, Role.VIEWER))
        app = create_app(plant([swap]), store)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", headers=viewer
        ) as api:
            (got,) = (await api.get("/v1/channels/main.energy/replacements")).json()
            assert got == {
                **swap,
                "channel_id": "main.energy",
                "source": "config",
                "reason": None,
                "actor": None,
                "recorded_at": None,
            }
            spec = (await api.get("/openapi.json")).json()
            body = spec["paths"]["/v1/imports/readings"]["post"]["requestBody"]
            assert "text/csv" in body["content"]
            r = await api.post(
                "/v1/channels/main.energy/replacements", json={**swap, "reason": "r"}
            )
            assert r.status_code == 403
