"""The audit export: readings and buckets as CSV with SHA-256 sums in a manifest."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from compute.aggregate import step
from compute.model import NS_PER_S, Quality, ReadingBatch
from compute.plant import Plant
from services.aggregator import channel_specs
from services.export import export
from services.store import StoreWrite
from services.store.sqlite import SqliteStore

KEY = "main-incomer.energy-import"
MIN = 60 * NS_PER_S


async def test_the_export_holds_every_reading_and_bucket_with_checksums(
    plant: Plant, tmp_path: Path
) -> None:
    rows = [(KEY, t * NS_PER_S, 100.0 + t / 10, Quality.GOOD) for t in range(0, 300, 10)]
    rows.append((KEY, 305 * NS_PER_S, float("nan"), Quality.BAD))
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        batch = ReadingBatch.from_rows(meter_id="main-incomer", receive_ts_ns=7, rows=rows)
        r = step([batch], channel_specs(plant), {}, MIN)
        await store.write(
            StoreWrite(readings=r.readings, buckets=r.buckets, state=r.state, events=r.events)
        )
        got = await export(store, [KEY], 0, 5 * MIN, MIN, tmp_path / "out")
    with (tmp_path / "out" / "readings.csv").open() as f:
        readings = list(csv.DictReader(f))
    with (tmp_path / "out" / "buckets.csv").open() as f:
        buckets = list(csv.DictReader(f))
    assert got.readings == len(readings) == 30  # [0, 5 min): the BAD one at 305 s is after
    assert readings[0]["ts_utc"] == "1970-01-01T00:00:00.000000+00:00"
    assert readings[0]["quality"] == "good"
    assert got.buckets == len(buckets) == 5
    assert sum(float(b["sum"]) for b in buckets) == float(readings[-1]["value"]) - 100.0
    manifest = json.loads(got.manifest.read_text())
    for name in ("readings.csv", "buckets.csv"):
        digest = hashlib.sha256((tmp_path / "out" / name).read_bytes()).hexdigest()
        assert manifest["files"][name]["sha256"] == digest
