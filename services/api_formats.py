"""Answers as JSON or CSV: `?format=csv` or an Accept header preferring text/csv; CSV cells are
plain text, numbers as Python prints them (repr round-trips a float), lists joined by "; "."""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from fastapi import Request, Response


class Format(enum.StrEnum):
    JSON = "json"
    CSV = "csv"


def wants_csv(request: Request, fmt: Format | None) -> bool:
    """The format parameter when given, else whether the Accept header names text/csv before
    (or without) application/json."""
    if fmt is not None:
        return fmt is Format.CSV
    accept = [p.split(";")[0].strip() for p in request.headers.get("accept", "").split(",")]
    for kind in accept:
        if kind == "text/csv":
            return True
        if kind in ("application/json", "*/*"):
            return False
    return False


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "; ".join(cell(v) for v in value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def csv_response(
    rows: Iterable[Mapping[str, Any]], columns: Sequence[str], filename: str
) -> Response:
    """The rows as a CSV attachment with a header line, in `columns` order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in columns])
    return Response(
        content=out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
