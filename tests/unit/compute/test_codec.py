"""The wire codec round-trips batches and rejects malformed messages with a reason."""

from __future__ import annotations

import contextlib
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compute import codec
from compute.errors import CodecError
from compute.model import NO_TS, Quality, ReadingBatch

rows = st.lists(
    st.tuples(
        st.sampled_from(["m.a", "m.b", "m.ü"]),
        st.integers(-(2**62), 2**62),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(list(Quality)),
    ),
    max_size=50,
)


@given(rows, st.integers(0, 2**62))
def test_round_trip(r: list[tuple[str, int, float, Quality]], receive_ts_ns: int) -> None:
    b = ReadingBatch.from_rows(meter_id="meter-1", receive_ts_ns=receive_ts_ns, rows=r)
    d = codec.decode(codec.encode(b))
    assert (d.meter_id, d.channel_ids, d.receive_ts_ns) == (
        b.meter_id,
        b.channel_ids,
        b.receive_ts_ns,
    )
    for name in ("channel_index", "ts_ns", "value", "quality", "server_ts_ns"):
        np.testing.assert_array_equal(getattr(d, name), getattr(b, name))


def _good() -> bytes:
    b = ReadingBatch.from_rows(meter_id="m", receive_ts_ns=1, rows=[("m.a", 1, 2.0, Quality.GOOD)])
    return codec.encode(b)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "truncated"),
        (b"XX" + _good()[2:], "bad magic"),
        (_good()[:2] + bytes([9]) + _good()[3:], "unsupported schema version 9"),
        (_good()[:-3], "truncated"),
        (_good() + b"\0", "trailing bytes"),
        (_good()[:-9] + bytes([7]) + _good()[-8:], "unknown quality code 7"),
        (b"plain text that is not a batch", "bad magic"),
    ],
)
def test_malformed_messages_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        codec.decode(data)


def test_channel_index_past_the_table_is_rejected() -> None:
    data = bytearray(_good())
    n_off = len(data) - (2 + 8 + 8 + 1 + 8) - 4
    assert struct.unpack_from("<I", data, n_off) == (1,)
    struct.pack_into("<H", data, n_off + 4, 5)
    with pytest.raises(CodecError, match="past the channel table"):
        codec.decode(bytes(data))


@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_anything_but_codec_error(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        codec.decode(data)


def test_older_versions_are_still_read() -> None:
    v3 = _good()
    head = 12  # magic, version, reserved, receive_ts_ns; then v3's u32 table length
    v2 = v3[:2] + bytes([2]) + v3[3:head] + v3[head + 4 :]  # as older gateways wrote it
    v1 = v2[:2] + bytes([1]) + v2[3:-8]  # without server times
    new, two, one = codec.decode(v3), codec.decode(v2), codec.decode(v1)
    assert new.channel_ids == two.channel_ids == one.channel_ids
    assert two.server_ts_ns.tolist() == new.server_ts_ns.tolist()
    assert one.value.tolist() == [2.0] and one.server_ts_ns.tolist() == [NO_TS]


def test_a_table_length_that_disagrees_with_the_table_is_an_error() -> None:
    v3 = bytearray(_good())
    v3[12] += 1  # one byte more than the table holds
    with pytest.raises(CodecError):
        codec.decode(bytes(v3))
