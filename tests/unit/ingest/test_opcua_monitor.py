"""Pure parts of OPC UA acquisition: chunking by operation limits, DataValue to reading rows,
and monitored-item requests with and without a deadband.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from asyncua import ua

from compute.model import NO_TS, NS_PER_S, Quality
from compute.plant import ChannelRef
from ingest import opcua_monitor as m
from tests.plants import gauge, meter, one_site


def _ref(sampling: dict[str, object] | None = None) -> ChannelRef:
    channel = gauge("t", node_id="ns=2;s=room.t", **({"sampling": sampling} if sampling else {}))
    plant = one_site([meter("m", "opcua", "opc.tcp://127.0.0.1:4840/", [channel])])
    return plant.channels["m.t"]


@pytest.mark.parametrize(("size", "expect"), [(0, [[1, 2, 3, 4, 5]]), (2, [[1, 2], [3, 4], [5]])])
def test_chunks_follow_the_limit(size: int, expect: list[list[int]]) -> None:
    assert list(m.chunks([1, 2, 3, 4, 5], size)) == expect


def test_a_bad_value_is_kept_with_its_quality_and_both_timestamps() -> None:
    src, srv = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    dv = ua.DataValue(
        ua.Variant(21.5),
        StatusCode=ua.StatusCode(ua.StatusCodes.BadSensorFailure),
        SourceTimestamp=src,
        ServerTimestamp=srv,
    )
    key, ts, value, quality, server_ts = m.row(_ref(), dv, receive_ns=5)
    assert (key, value, quality) == ("m.t", 21.5, Quality.BAD)
    assert ts == int(src.timestamp()) * NS_PER_S and server_ts == ts + NS_PER_S


def test_without_timestamps_the_receive_time_is_used_and_garbage_is_bad() -> None:
    dv = ua.DataValue(ua.Variant("not a number"))
    _, ts, value, quality, server_ts = m.row(_ref(), dv, receive_ns=42)
    assert ts == 42 and server_ts == NO_TS and math.isnan(value) and quality is Quality.BAD


def test_requests_carry_sampling_queue_and_deadband() -> None:
    ref = _ref({"interval_s": 0.25, "queue_size": 4, "deadband": {"kind": "percent", "value": 2}})
    with_band = m._request(ref, 7, default_interval_s=1.0, with_deadband=True)
    params = with_band.RequestedParameters
    assert (params.ClientHandle, params.SamplingInterval, params.QueueSize) == (7, 250.0, 4)
    assert params.Filter.DeadbandType == 2 and params.Filter.DeadbandValue == 2
    without = m._request(ref, 8, default_interval_s=1.0, with_deadband=False)
    assert not isinstance(without.RequestedParameters.Filter, ua.DataChangeFilter)
    assert m._request(_ref(), 9, 1.0, True).RequestedParameters.SamplingInterval == 1000.0
