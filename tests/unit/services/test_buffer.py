"""The store-and-forward buffer.

It keeps order, stays within its bounds by its overflow policy, counts what it drops,
and survives close, reopen, SIGKILL mid-write and a torn WAL tail.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.buffer import DiskBuffer, DiskBufferError, OverflowPolicy

REPO_ROOT = Path(__file__).resolve().parents[3]


def _values(buf: DiskBuffer) -> list[bytes]:
    return [e.value for e in buf.peek(1_000_000)]


def test_messages_come_out_in_the_order_they_went_in(tmp_path: Path) -> None:
    with DiskBuffer(tmp_path / "b.sqlite3") as buf:
        for i in range(10):
            assert buf.append(b"m%d" % (i % 3), b"v%d" % i) == 0
        head = buf.peek(4)
        assert [e.value for e in head] == [b"v0", b"v1", b"v2", b"v3"]
        assert [e.key for e in head] == [b"m0", b"m1", b"m2", b"m0"]
        assert buf.remove([head[0].seq, head[2].seq]) == 2  # partial: v1 and v3 stay ahead
        assert _values(buf)[:3] == [b"v1", b"v3", b"v4"]
        assert buf.remove([head[0].seq]) == 0  # already gone
        assert (buf.depth_batches, buf.depth_bytes) == (8, 8 * 4)


def test_drop_oldest_keeps_the_newest_within_the_batch_bound(tmp_path: Path) -> None:
    with DiskBuffer(tmp_path / "b.sqlite3", max_batches=3) as buf:
        dropped = [buf.append(b"k", b"%d" % i) for i in range(5)]
        assert dropped == [0, 0, 0, 1, 1]
        assert _values(buf) == [b"2", b"3", b"4"]
        assert (buf.depth_batches, buf.dropped_total) == (3, 2)


def test_drop_oldest_frees_enough_bytes_for_a_large_batch(tmp_path: Path) -> None:
    with DiskBuffer(tmp_path / "b.sqlite3", max_bytes=100) as buf:
        for i in range(4):
            buf.append(b"k", bytes([i]) * 19)  # 20 bytes each: 80 of 100
        assert buf.append(b"k", b"x" * 59) == 2  # 60 bytes need 40 more: the two oldest go
        assert [v[:1] for v in _values(buf)] == [b"\x02", b"\x03", b"x"]
        assert buf.depth_bytes == 100


def test_drop_newest_refuses_what_does_not_fit(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite3"
    with DiskBuffer(path, max_bytes=30, overflow=OverflowPolicy.DROP_NEWEST) as buf:
        assert [buf.append(b"k", b"%09d" % i) for i in range(4)] == [0, 0, 0, 1]
        assert _values(buf) == [b"000000000", b"000000001", b"000000002"]
        assert (buf.depth_batches, buf.depth_bytes, buf.dropped_total) == (3, 30, 1)
        buf.remove([buf.peek(1)[0].seq])
        assert buf.append(b"k", b"%09d" % 4) == 0  # room again
        assert _values(buf)[-1] == b"000000004"


@pytest.mark.parametrize("policy", list(OverflowPolicy))
def test_a_batch_larger_than_the_whole_buffer_is_dropped_alone(
    tmp_path: Path, policy: OverflowPolicy
) -> None:
    with DiskBuffer(tmp_path / "b.sqlite3", max_bytes=50, overflow=policy) as buf:
        buf.append(b"k", b"small")
        assert buf.append(b"k", b"x" * 50) == 1
        assert _values(buf) == [b"small"] and buf.dropped_total == 1


def test_contents_counts_and_drops_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite3"
    with DiskBuffer(path, max_batches=4) as buf:
        for i in range(6):
            buf.append(b"m%d" % (i % 2), b"%d" % i)
        last_seq = buf.peek(10)[-1].seq
    with DiskBuffer(path, max_batches=4) as buf:
        assert _values(buf) == [b"2", b"3", b"4", b"5"]
        assert (buf.depth_batches, buf.depth_bytes, buf.dropped_total) == (4, 4 * 3, 2)
        buf.remove(e.seq for e in buf.peek(10))
        buf.append(b"m0", b"6")
        assert buf.peek(1)[0].seq > last_seq, "a seq is never reused, even after draining"
    with DiskBuffer(path) as buf:
        assert _values(buf) == [b"6"] and buf.dropped_total == 2


def test_a_second_gateway_cannot_open_a_buffer_in_use(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite3"
    with DiskBuffer(path) as buf:
        buf.append(b"k", b"v")
        with pytest.raises(DiskBufferError, match="locked"):
            DiskBuffer(path).open()
    with DiskBuffer(path) as again:  # free once the first one closed
        assert again.depth_batches == 1


def test_an_unreadable_file_is_set_aside_and_a_fresh_buffer_opens(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite3"
    path.write_bytes(b"this is not a database, " * 200)
    with DiskBuffer(path) as buf:
        assert buf.depth_batches == 0
        buf.append(b"k", b"v")
    aside = list(tmp_path.glob("b.sqlite3.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")


def test_a_closed_buffer_says_so(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path / "b.sqlite3")
    with pytest.raises(DiskBufferError, match="closed"):
        buf.append(b"k", b"v")


_WRITER = """
import sys
from services.buffer import DiskBuffer
with DiskBuffer(sys.argv[1]) as buf:
    i = 0
    while True:
        buf.append(b"m%d" % (i % 3), i.to_bytes(8, "big") * 64)
        i += 1
        if i == 50:
            print("writing", flush=True)
"""


def test_sigkill_mid_write_and_a_torn_wal_tail_leave_a_readable_buffer(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite3"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline() == b"writing\n", writer.stderr
        time.sleep(0.3)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
    wal = path.with_name(path.name + "-wal")
    assert wal.exists(), "a killed writer leaves its WAL behind"
    with wal.open("ab") as f:  # a frame torn by the crash: half written, garbage
        f.write(b"\x37\x7f\x06\x82" + bytes(range(256)) * 8)
    with DiskBuffer(path) as buf:
        entries = buf.peek(1_000_000)
        assert len(entries) >= 50 and buf.depth_batches == len(entries)
        for i, e in enumerate(entries):  # a gapless prefix of what was written, intact
            assert (e.key, e.value) == (b"m%d" % (i % 3), i.to_bytes(8, "big") * 64)
        assert buf.depth_bytes == sum(len(e.key) + len(e.value) for e in entries)
        buf.append(b"m0", b"after the crash")
        assert buf.peek(len(entries) + 1)[-1].value == b"after the crash"


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 2), st.integers(0, 40)),
        st.tuples(st.just("remove_head"), st.integers(1, 5), st.just(0)),
        st.tuples(st.just("reopen"), st.just(0), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(
    ops=_OPS,
    policy=st.sampled_from(list(OverflowPolicy)),
    max_bytes=st.integers(1, 120),
    max_batches=st.one_of(st.none(), st.integers(1, 6)),
)
def test_the_buffer_behaves_like_a_bounded_queue(
    ops: list[tuple[str, int, int]],
    policy: OverflowPolicy,
    max_bytes: int,
    max_batches: int | None,
) -> None:
    """Against a list model: what is kept, in which order, and what is dropped."""
    model: list[tuple[bytes, bytes]] = []
    dropped = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.sqlite3"

        def opened() -> DiskBuffer:
            return DiskBuffer(
                path, max_bytes=max_bytes, max_batches=max_batches, overflow=policy
            ).__enter__()

        buf = opened()
        try:
            for n, (op, a, b) in enumerate(ops):
                if op == "append":
                    key, value = b"m%d" % a, b"%d:" % n + b"x" * b
                    size = len(key) + len(value)

                    def full(size: int = size) -> bool:
                        too_many = max_batches is not None and len(model) + 1 > max_batches
                        return too_many or sum(len(k) + len(v) for k, v in model) + size > max_bytes

                    expected = 0
                    if size > max_bytes or (full() and policy is OverflowPolicy.DROP_NEWEST):
                        expected = 1
                    else:
                        while full():
                            model.pop(0)
                            expected += 1
                        model.append((key, value))
                    assert buf.append(key, value) == expected
                    dropped += expected
                elif op == "remove_head":
                    buf.remove(e.seq for e in buf.peek(a))
                    del model[:a]
                else:
                    buf.close()
                    buf = opened()
                assert [(e.key, e.value) for e in buf.peek(1000)] == model
                assert buf.depth_batches == len(model)
                assert buf.depth_bytes == sum(len(k) + len(v) for k, v in model)
                assert buf.dropped_total == dropped
        finally:
            buf.close()
