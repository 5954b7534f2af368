"""Versioned, forward-only schema migrations shipped as SQL files, one folder per dialect."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    version: int
    name: str
    sql: str
    timescale_sql: str | None


def migrations(dialect: str) -> list[Migration]:
    """The dialect's migrations in order; `timescale_sql` is the optional TimescaleDB part."""
    folder = resources.files("services.store") / "migrations" / dialect
    files = {
        f.name: f.read_text(encoding="utf-8") for f in folder.iterdir() if f.name.endswith(".sql")
    }
    out = []
    for name, sql in sorted(files.items()):
        m = _NAME.match(name)
        if m:
            extra = files.get(name.removesuffix(".sql") + ".timescale.sql")
            out.append(Migration(version=int(m[1]), name=m[2], sql=sql, timescale_sql=extra))
    return out
