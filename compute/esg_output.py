"""An ESG report as a JSON-able dict and CSV rows, its content hash, and restatements between two.

Pure: no I/O, no clock. Published values travel as decimal strings, so their digits survive.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from compute.emissions import EmissionFactor
from compute.esg_model import EsgError, EsgReport, Indicator, InputUse
from compute.indicators import Coverage, round_half_up

HASH_KEY = "content_hash"  # the one top-level key the hash leaves out (it holds the hash)
CSV_COLUMNS = (
    "framework",
    "code",
    "item",
    "key",
    "name",
    "value",
    "unit",
    "decimals",
    "rounding",
    "coverage",
    "samples_good",
    "samples_expected",
    "estimated_share",
    "formula",
    "factor_versions",
    "reason",
)
_FRACTION_PLACES = 4  # coverage and estimated share, as published in CSV
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso(ts_ns: int | None) -> str | None:
    if ts_ns is None:
        return None
    return (_EPOCH + timedelta(microseconds=ts_ns // 1_000)).isoformat()


def _coverage(c: Coverage) -> dict[str, Any]:
    return {
        "expected": c.expected,
        "received": c.received,
        "good": c.good,
        "good_fraction": c.good_fraction,
        "received_fraction": c.received_fraction,
    }


def _input(u: InputUse) -> dict[str, Any]:
    return {
        "name": u.name,
        "value": u.value,
        "unit": u.unit,
        "coverage": _coverage(u.coverage),
        "estimated_share": u.estimated_share,
        "reason": u.reason or None,
    }


def _indicator(i: Indicator) -> dict[str, Any]:
    return {
        "key": i.key,
        "framework": str(i.framework),
        "code": i.code,
        "item": i.item,
        "name": i.name,
        "value": None if i.value is None else str(i.value),
        "unrounded": i.unrounded,
        "unit": i.unit,
        "decimals": i.decimals,
        "rounding": str(i.rounding),
        "formula": i.formula,
        "coverage": _coverage(i.coverage),
        "estimated_share": i.estimated_share,
        "factor_refs": list(i.factor_refs),
        "reason": i.reason or None,
        "inputs": [_input(u) for u in i.inputs],
    }


def _factor(f: EmissionFactor) -> dict[str, Any]:
    return {
        "ref": f.ref,
        "id": f.id,
        "version": f.version,
        "activity": str(f.activity),
        "region": f.region,
        "basis": str(f.basis),
        "value": f.value,
        "unit": f.unit,
        "source": f.source,
        "valid_from_ns": f.valid_from_ns,
        "valid_to_ns": f.valid_to_ns,
        "valid_from": _iso(f.valid_from_ns),
        "valid_to": _iso(f.valid_to_ns),
    }


def to_dict(report: EsgReport) -> dict[str, Any]:
    """The report as JSON-able data, ending with its content hash under HASH_KEY."""
    m = report.method
    data: dict[str, Any] = {
        "site": report.site,
        "region": report.region,
        "start_ns": report.start_ns,
        "end_ns": report.end_ns,
        "start": _iso(report.start_ns),
        "end": _iso(report.end_ns),
        "ghg_total_basis": str(report.ghg_total_basis),
        "indicators": [_indicator(i) for i in report.indicators],
        "method": {
            "factors": [_factor(f) for f in m.factors],
            "conversions": list(m.conversions),
            "formulas": [{"key": k, "formula": f} for k, f in m.formulas],
            "notes": list(m.notes),
        },
    }
    data[HASH_KEY] = content_hash(data)
    return data


def canonical_json(data: Mapping[str, Any]) -> str:
    """Sorted keys, no spaces, no NaN: equal data gives equal text whatever its key order."""
    body = {k: v for k, v in data.items() if k != HASH_KEY}
    try:
        return json.dumps(
            body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as e:
        raise EsgError(f"report data is not canonical JSON: {e}") from e


def content_hash(report: EsgReport | Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of the report, without its HASH_KEY entry.

    The same for the report, its to_dict() and that dict after a JSON round trip, so a stored
    snapshot can be identified and checked.
    """
    data = to_dict(report) if isinstance(report, EsgReport) else report
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def _fraction(x: float) -> str:
    return str(round_half_up(x, _FRACTION_PLACES))


def csv_rows(report: EsgReport) -> list[dict[str, str]]:
    """One row per indicator, keyed by CSV_COLUMNS (for csv.DictWriter); empty value: see reason."""
    return [
        {
            "framework": str(i.framework),
            "code": i.code,
            "item": i.item,
            "key": i.key,
            "name": i.name,
            "value": "" if i.value is None else str(i.value),
            "unit": i.unit,
            "decimals": str(i.decimals),
            "rounding": str(i.rounding),
            "coverage": _fraction(i.coverage.good_fraction),
            "samples_good": str(i.coverage.good),
            "samples_expected": str(i.coverage.expected),
            "estimated_share": _fraction(i.estimated_share),
            "formula": i.formula,
            "factor_versions": "; ".join(i.factor_refs),
            "reason": i.reason,
        }
        for i in report.indicators
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class Restatement:
    """An indicator whose published value differs between a closed snapshot and a fresh run.

    `difference` is new − old when both exist in the same unit; an indicator that appeared or
    disappeared has None on the side that lacks it.
    """

    key: str
    name: str
    unit: str
    old_value: Decimal | None
    new_value: Decimal | None
    difference: Decimal | None
    old_factor_refs: tuple[str, ...]
    new_factor_refs: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Published:
    name: str
    unit: str
    value: Decimal | None
    factor_refs: tuple[str, ...]


def _published(report: EsgReport | Mapping[str, Any]) -> dict[str, _Published]:
    data = to_dict(report) if isinstance(report, EsgReport) else report
    try:
        return {
            str(i["key"]): _Published(
                name=str(i["name"]),
                unit=str(i["unit"]),
                value=None if i["value"] is None else Decimal(str(i["value"])),
                factor_refs=tuple(str(r) for r in i["factor_refs"]),
            )
            for i in data["indicators"]
        }
    except (KeyError, TypeError, ArithmeticError) as e:
        raise EsgError(f"not an ESG report's data: {e!r}") from e


def restatements(
    closed: EsgReport | Mapping[str, Any], fresh: EsgReport | Mapping[str, Any]
) -> tuple[Restatement, ...]:
    """The indicators whose published value (or unit) changed from `closed` to `fresh`, in the
    fresh report's order, then those the fresh report no longer has. Either side may be a report
    or its to_dict() data (a stored snapshot). A change below the published decimals is none."""
    old, new = _published(closed), _published(fresh)
    out: list[Restatement] = []
    for key in [*new, *(k for k in old if k not in new)]:
        a, b = old.get(key), new.get(key)
        if a is not None and b is not None and (a.value, a.unit) == (b.value, b.unit):
            continue
        diff = None
        if a and b and a.unit == b.unit and a.value is not None and b.value is not None:
            diff = b.value - a.value
        either = b if b is not None else a
        if either is None:  # cannot happen: the key came from one of them
            continue
        out.append(
            Restatement(
                key=key,
                name=either.name,
                unit=either.unit,
                old_value=None if a is None else a.value,
                new_value=None if b is None else b.value,
                difference=diff,
                old_factor_refs=() if a is None else a.factor_refs,
                new_factor_refs=() if b is None else b.factor_refs,
            )
        )
    return tuple(out)


def restatement_to_dict(r: Restatement) -> dict[str, Any]:
    """A restatement as JSON-able data, values as decimal strings."""

    def text(d: Decimal | None) -> str | None:
        return None if d is None else str(d)

    return {
        "key": r.key,
        "name": r.name,
        "unit": r.unit,
        "old_value": text(r.old_value),
        "new_value": text(r.new_value),
        "difference": text(r.difference),
        "old_factor_refs": list(r.old_factor_refs),
        "new_factor_refs": list(r.new_factor_refs),
    }
