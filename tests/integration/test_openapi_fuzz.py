"""schemathesis over the API's OpenAPI document: every operation, called with an admin token on
the example plant over a SqliteStore, never answers 5xx. Bounded: 30 examples per read, 100 per
write (random each run, so repeated runs cover more)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from services.api import create_app
from services.bus.memory import MemoryBus
from services.config import load_plant
from services.store.sqlite import SqliteStore
from tests.tokens import bearer, token_for

# The SSE stream never ends by design; the stream tests cover it.
_ENDLESS = "/v1/stream"
_EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "medtech-plant.yaml"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    plant = load_plant(_EXAMPLE)
    path: Path = tmp_path_factory.mktemp("fuzz") / "s.sqlite3"
    stack = AsyncExitStack()

    async def open_all() -> dict[str, Any]:
        store = await stack.enter_async_context(SqliteStore(path))
        bus = await stack.enter_async_context(MemoryBus())
        headers = bearer(await token_for(store))
        known = {
            "site": [x.id for x in plant.sites],
            "channel_id": sorted(plant.channels),
            "meter_id": [m.id for m in plant.meters],
        }
        return {"app": create_app(plant, store, bus=bus), "headers": headers, "known": known}

    got = asyncio.run(open_all())
    yield got
    asyncio.run(stack.aclose())


def _use_known_names(
    case: schemathesis.Case, known: dict[str, list[str]], data: st.DataObject
) -> None:
    """Most generated path names are unknown (404); half the time, use the plant's own, so that
    the fuzzing reaches past the lookups."""
    for key, names in known.items():
        if case.path_parameters and key in case.path_parameters and data.draw(st.booleans()):
            case.path_parameters[key] = data.draw(st.sampled_from(names))


def _fuzz(operation: Any, served: dict[str, Any], statuses: Counter[str]) -> None:
    """Call one operation with generated requests; raises on the first 5xx (shrunk)."""

    @given(case=operation.as_strategy(), data=st.data())
    @settings(
        max_examples=30 if operation.method.upper() == "GET" else 100,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=False,
        database=None,
    )
    def run(case: schemathesis.Case, data: st.DataObject) -> None:
        _use_known_names(case, served["known"], data)
        r = case.call_and_validate(headers=served["headers"], checks=[not_a_server_error])
        statuses[f"{operation.label} {r.status_code}"] += 1

    run()


def test_no_operation_answers_5xx(served: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", served["app"]).exclude(path=_ENDLESS)
    failures: list[str] = []
    statuses: Counter[str] = Counter()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            _fuzz(operation, served, statuses)
        except Exception as e:  # collected: every operation is tried
            failures.append(f"{operation.label}: {e}")
    assert not failures, "\n\n".join(failures)
    assert operations > 20
    # The fuzzing reaches past validation and lookups: many requests succeed.
    assert sum(n for k, n in statuses.items() if k.endswith((" 200", " 201"))) > 100, statuses


def test_a_shelf_longer_than_a_week_is_a_422_not_a_500(served: dict[str, Any]) -> None:
    """Found by the fuzzing: a huge duration_s overflowed to infinity in the ns arithmetic."""

    async def shelve(duration_s: float) -> httpx.Response:
        transport = httpx.ASGITransport(app=served["app"])
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=served["headers"]
        ) as client:
            body = {"duration_s": duration_s, "comment": "maintenance"}
            return await client.post("/v1/alerts/any/shelve", json=body)

    for duration_s in (1e300, 8 * 86_400):
        r = asyncio.run(shelve(duration_s))
        assert r.status_code == 422, r.text
        assert "duration_s" in r.text
