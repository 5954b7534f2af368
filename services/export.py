"""Audit export: the raw readings and the base buckets of a set of channels over a period, as CSV
files with a manifest of their SHA-256 sums, so an auditor can trace every figure to readings."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from compute.model import NO_TS, NS_PER_S, Quality
from services.store import Store

PAGE_ROWS = 10_000
READING_COLUMNS = (
    "channel_id", "ts_utc", "ts_ns", "value", "quality", "receive_ts_ns", "server_ts_ns",
)  # fmt: skip
BUCKET_COLUMNS = (
    "channel_id", "bucket_start_utc", "bucket_start_ns", "bucket_s", "samples", "samples_good",
    "sum", "estimated", "min", "max", "last",
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Exported:
    readings: int
    buckets: int
    manifest: Path


def _utc(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / NS_PER_S, UTC).isoformat(timespec="microseconds")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


async def export(
    store: Store,
    channel_ids: Sequence[str],
    start_ns: int,
    end_ns: int,
    bucket_ns: int,
    out_dir: Path,
) -> Exported:
    """Write readings.csv, buckets.csv and manifest.json into out_dir (created if need be).

    A CLI command's one job: the files are written synchronously, page by page."""
    readings_csv, buckets_csv = out_dir / "readings.csv", out_dir / "buckets.csv"
    n_readings = 0
    with _csv(readings_csv, READING_COLUMNS) as w:
        after: tuple[str, int] = ("", NO_TS)
        while page := await store.readings_page(channel_ids, start_ns, end_ns, after, PAGE_ROWS):
            for x in page:
                w.writerow(
                    (
                        x.channel_id,
                        _utc(x.ts_ns),
                        x.ts_ns,
                        "" if x.value is None else repr(x.value),
                        Quality(x.quality).name.lower(),
                        x.receive_ts_ns,
                        "" if x.server_ts_ns is None else x.server_ts_ns,
                    )
                )
            n_readings += len(page)
            after = (page[-1].channel_id, page[-1].ts_ns)
    buckets = sorted(
        await store.series_many(channel_ids, start_ns, end_ns),
        key=lambda b: (b.channel_id, b.bucket_start_ns),
    )
    with _csv(buckets_csv, BUCKET_COLUMNS) as w:
        for b in buckets:
            w.writerow(
                (
                    b.channel_id,
                    _utc(b.bucket_start_ns),
                    b.bucket_start_ns,
                    bucket_ns // NS_PER_S,
                    b.n,
                    b.n_good,
                    repr(b.sum),
                    repr(b.estimated),
                    *("" if v is None else repr(v) for v in (b.min, b.max, b.last)),
                )
            )
    manifest = _manifest(
        out_dir,
        {
            "channels": list(channel_ids),
            "start_utc": _utc(start_ns),
            "end_utc": _utc(end_ns),
            "files": {
                p.name: {"sha256": _sha256(p), "rows": rows}
                for p, rows in ((readings_csv, n_readings), (buckets_csv, len(buckets)))
            },
        },
    )
    return Exported(readings=n_readings, buckets=len(buckets), manifest=manifest)


@contextlib.contextmanager
def _csv(path: Path, header: Sequence[str]) -> Iterator[Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        yield w


def _manifest(out_dir: Path, content: dict[str, Any]) -> Path:
    path = out_dir / "manifest.json"
    path.write_text(json.dumps(content, indent=2) + "\n")
    return path
