"""The live hub: filters resolve to the plant's channels, a slow client holds only the newest
state per key, alerts are bounded, and a client's slot is freed however it ends."""

from __future__ import annotations

import json

import pytest

from compute.plant import Plant
from services.api_stream import FilterError, resolve_scope
from services.live_hub import AlertEvent, AlertState, EventType, LiveError, LiveHub, Scope


def _scope(plant: Plant, **filters: list[str]) -> Scope:
    return resolve_scope(plant, **filters)  # type: ignore[arg-type]


def _publish_all(hub: LiveHub, plant: Plant, value: float) -> None:
    for key, ref in plant.channels.items():
        hub.publish_channel(key, {"value": value}, site=ref.site.id, area=ref.area.id)


def test_filters_combine_dimensions_with_and_values_with_or(plant: Plant) -> None:
    rooms = _scope(plant, area=["cleanroom-a,cleanroom-b"], utility=["environment"])
    assert rooms.channels == {
        k for k, r in plant.channels.items() if r.area.id in ("cleanroom-a", "cleanroom-b")
    }
    one = _scope(plant, channel=["main-incomer.energy-import"], area=["utility"])
    assert one.channels == {"main-incomer.energy-import"}
    assert _scope(plant).channels == set(plant.channels)
    assert _scope(plant, types=["alert", "site"]).types == {EventType.ALERT, EventType.SITE}


@pytest.mark.parametrize(
    ("filters", "reason"),
    [
        ({"site": ["nowhere"]}, "unknown site 'nowhere'; known: ['suzhou']"),
        ({"area": ["roof"]}, "unknown area 'roof'"),
        ({"utility": ["steam"]}, "unknown utility 'steam'"),
        ({"channel": ["x.y"]}, "unknown channel 'x.y'"),
        ({"types": ["gossip"]}, "unknown event type 'gossip'"),
        ({"area": ["office"], "utility": ["water"]}, "the filter selects no channel"),
    ],
)
def test_unknown_filter_values_are_refused_with_a_reason(
    plant: Plant, filters: dict[str, list[str]], reason: str
) -> None:
    with pytest.raises(FilterError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        _scope(plant, **filters)


def test_a_site_outside_the_callers_scope_is_refused(plant: Plant) -> None:
    with pytest.raises(PermissionError, match="does not cover site 'suzhou'"):
        resolve_scope(plant, site=["suzhou"], allowed_sites=frozenset({"elsewhere"}))
    assert resolve_scope(plant, allowed_sites=frozenset()).channels == frozenset()


def test_a_client_gets_only_its_channels_and_sites(plant: Plant) -> None:
    hub = LiveHub()
    with hub.client(_scope(plant, area=["cleanroom-a"])) as c:
        _publish_all(hub, plant, 1.0)
        hub.publish_site("suzhou", {"power": 1})
        hub.publish_site("other", {"power": 2})
        got = c.take()
    channels = [e.channel_id for e in got if e.type is EventType.CHANNEL]
    assert sorted(channels) == sorted(
        k for k, r in plant.channels.items() if r.area.id == "cleanroom-a"
    )
    assert [e.key for e in got if e.type is EventType.SITE] == ["site:suzhou"]


def test_a_new_client_starts_from_the_current_state(plant: Plant) -> None:
    hub = LiveHub()
    _publish_all(hub, plant, 1.0)
    _publish_all(hub, plant, 2.0)
    with hub.client(_scope(plant)) as c:
        got = c.take()
    assert len(got) == len(plant.channels)
    assert {json.loads(e.json)["value"] for e in got} == {2.0}


def test_a_slow_client_holds_the_newest_state_per_key_only(plant: Plant) -> None:
    hub = LiveHub(max_alerts=10)
    scope = _scope(plant, area=["cleanroom-a"])
    with hub.client(scope) as slow, hub.client(_scope(plant)) as other:
        bound = scope.key_bound(hub.max_alerts)
        peak = 0
        for i in range(5_000):
            _publish_all(hub, plant, float(i))
            hub.publish_site("suzhou", {"i": i})
            hub.publish_alert(
                AlertEvent(
                    id=f"a{i % 50}",
                    site="suzhou",
                    state=AlertState.ACTIVE,
                    severity="alert",
                    message="m",
                    ts_ns=i,
                )
            )
            other.take()
            peak = max(peak, len(slow.pending))
        assert peak <= bound == len(scope.channels) + 1 + 10
        got = slow.take()
    by_key = {e.key: json.loads(e.json) for e in got}
    assert {by_key[f"channel:{k}"]["value"] for k in scope.channels} == {4999.0}
    assert by_key["site:suzhou"] == {"i": 4999}
    assert sum(e.type is EventType.ALERT for e in got) == 10  # the newest ten alert ids
    assert slow.coalesced > 4_000 * len(scope.channels)
    assert len(hub.active_alerts()) == 10  # the hub keeps at most max_alerts


def test_a_cleared_alert_is_sent_once_and_then_forgotten(plant: Plant) -> None:
    hub = LiveHub()
    alert = AlertEvent(
        id="dp-low",
        site="suzhou",
        area="cleanroom-a",
        channel_id="cleanroom-a-env.pressure-diff",
        state=AlertState.ACTIVE,
        severity="action",
        message="pressure differential below 10 Pa",
        ts_ns=1,
        value=8.5,
        limit=10.0,
    )
    with (
        hub.client(_scope(plant, area=["cleanroom-a"])) as a,
        hub.client(_scope(plant, area=["cleanroom-b"])) as b,
    ):
        hub.publish_alert(alert)
        assert [e.key for e in a.take()] == ["alert:dp-low"]
        assert b.take() == []  # its channel is not in b's scope
        cleared = AlertEvent.from_json(
            {**json.loads(hub.active_alerts()[0].json), "state": "cleared"}
        )
        hub.publish_alert(cleared)
        assert json.loads(a.take()[0].json)["state"] == "cleared"
    assert hub.active_alerts() == []
    with pytest.raises(LiveError, match="not an alert event"):
        AlertEvent.from_json({"id": "x"})


def test_the_slot_is_freed_however_the_client_ends(plant: Plant) -> None:
    hub = LiveHub(max_clients=1)
    with pytest.raises(RuntimeError), hub.client(_scope(plant)):
        assert len(hub.clients) == 1
        raise RuntimeError
    assert not hub.clients
    with hub.client(_scope(plant)):
        assert hub.refusal() == "too many stream clients (at most 1)"
    hub.close()
    with pytest.raises(LiveError, match="shutting down"), hub.client(_scope(plant)):
        pass


async def test_closing_the_hub_wakes_waiting_clients(plant: Plant) -> None:
    hub = LiveHub()
    with hub.client(_scope(plant)) as c:
        c.take()
        hub.close()
        assert await c.wait(timeout_s=60) == [] and c.closed
