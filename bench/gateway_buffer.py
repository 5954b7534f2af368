"""Store-and-forward write rate while the bus is down: DiskBuffer.append (bounded, durable, one
fsynced transaction per batch) against a bare SQLite insert per batch with the same durability.

    python -m bench.gateway_buffer [--batches N] [--size BYTES]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from services.buffer import DiskBuffer


def _bare(path: Path, payload: bytes, n: int) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE b (seq INTEGER PRIMARY KEY, key BLOB, value BLOB)")
    t = time.perf_counter()
    for _ in range(n):
        db.execute("INSERT INTO b (key, value) VALUES (?, ?)", (b"meter", payload))
    elapsed = time.perf_counter() - t
    db.close()
    return elapsed


def _ours(path: Path, payload: bytes, n: int) -> float:
    with DiskBuffer(path) as buffer:
        t = time.perf_counter()
        for _ in range(n):
            buffer.append(b"meter", payload)
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=5000)
    ap.add_argument("--size", type=int, default=574, help="bytes per batch (574: 12 readings)")
    a = ap.parse_args()
    payload = os.urandom(a.size)
    with tempfile.TemporaryDirectory() as d:
        bare_s = _bare(Path(d) / "bare.sqlite3", payload, a.batches)
        ours_s = _ours(Path(d) / "ours.sqlite3", payload, a.batches)
    mb = a.batches * a.size / 1e6
    print(f"{a.batches} batches of {a.size} B, one durable transaction each")
    print(f"bare SQLite insert:   {a.batches / bare_s:8.0f} batches/s  {mb / bare_s:6.1f} MB/s")
    print(f"DiskBuffer.append:    {a.batches / ours_s:8.0f} batches/s  {mb / ours_s:6.1f} MB/s")
    print(f"ratio ours / bare:    {bare_s / ours_s:8.2f}")


if __name__ == "__main__":
    main()
