"""Emission-factor versions (append-only, each naming what it supersedes): the rules a new one must
pass and the factors in effect over the built-in defaults. Pure: the store keeps the versions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from compute.emissions import NATURAL_GAS_DEFAULT, Activity, EmissionFactor
from compute.errors import PlantPulseError
from compute.model import datetime_ns

_CST = timezone(timedelta(hours=8))


class FactorConflict(PlantPulseError, ValueError):
    """A new factor version is refused: the message says which recorded version it clashes with
    and what to do instead."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FactorVersion:
    """One recorded factor version. It replaces the versions named in `supersedes` (refs
    "id@version" of the same activity, region and basis) where their validity overlaps its own."""

    factor: EmissionFactor
    supersedes: tuple[str, ...] = ()
    recorded_at_ns: int


def _overlap(a: EmissionFactor, b: EmissionFactor) -> bool:
    a_end = a.valid_to_ns if a.valid_to_ns is not None else float("inf")
    b_end = b.valid_to_ns if b.valid_to_ns is not None else float("inf")
    return a.valid_from_ns < b_end and b.valid_from_ns < a_end


def _iso(ts_ns: int | None) -> str:
    if ts_ns is None:
        return "open end"
    return datetime.fromtimestamp(ts_ns // 10**9, UTC).isoformat()


def _span(f: EmissionFactor) -> str:
    return f"[{_iso(f.valid_from_ns)}, {_iso(f.valid_to_ns)})"


def _clip(old: EmissionFactor, new: EmissionFactor) -> list[EmissionFactor]:
    """What is left of `old` outside `new`'s validity (they overlap): nothing, one piece or two."""
    out = []
    if old.valid_from_ns < new.valid_from_ns:
        end = (
            new.valid_from_ns
            if old.valid_to_ns is None
            else min(old.valid_to_ns, new.valid_from_ns)
        )
        out.append(dataclasses.replace(old, valid_to_ns=end))
    if new.valid_to_ns is not None and (
        old.valid_to_ns is None or old.valid_to_ns > new.valid_to_ns
    ):
        out.append(dataclasses.replace(old, valid_from_ns=max(old.valid_from_ns, new.valid_to_ns)))
    return out


def _apply(pieces: list[EmissionFactor], v: FactorVersion) -> list[EmissionFactor]:
    """The effective pieces after recording v, or FactorConflict."""
    f = v.factor
    out: list[EmissionFactor] = []
    for g in pieces:
        if g.key != f.key or not _overlap(g, f):
            out.append(g)
            continue
        if g.ref not in v.supersedes:
            raise FactorConflict(
                f"{f.ref} {_span(f)} overlaps {g.ref} {_span(g)} ({g.value:g} {g.unit}) for "
                f"{f.key}: name {g.ref} in supersedes to replace it over the overlap, or "
                "record a validity that does not overlap"
            )
        left = _clip(g, f)
        if len(left) == 2:
            raise FactorConflict(
                f"{f.ref} {_span(f)} would split {g.ref} {_span(g)} in two: a version "
                "replaces the start or the end of one it supersedes, not its middle"
            )
        out += left
    return [*out, f]


def check_new(new: FactorVersion, recorded: Sequence[FactorVersion]) -> None:
    """Refuse a version whose (id, version) exists, whose id names another activity, region or
    basis, that supersedes what is not recorded for its key, or whose validity overlaps an
    effective version of its key that it does not name in `supersedes`."""
    f = new.factor
    for v in recorded:
        g = v.factor
        if g.ref == f.ref:
            raise FactorConflict(f"emission factor {f.ref} exists: a version is never replaced")
        if g.id == f.id and g.key != f.key:
            raise FactorConflict(f"{f.id!r} is the id of the {g.key} factor; use another id")
    keyed = {v.factor.ref for v in recorded if v.factor.key == f.key}
    if unknown := [ref for ref in new.supersedes if ref not in keyed]:
        raise FactorConflict(f"supersedes {unknown}: no such recorded version for {f.key}")
    pieces = effective(recorded)
    live = {g.ref for g in pieces if g.key == f.key and _overlap(g, f)}
    if idle := [ref for ref in new.supersedes if ref not in live]:
        raise FactorConflict(f"supersedes {idle}, which is not in effect over {_span(f)}")
    _apply(pieces, new)


def effective(versions: Iterable[FactorVersion]) -> list[EmissionFactor]:
    """The recorded factors in effect: the versions applied in the order they were recorded,
    each cutting the versions it supersedes back to outside its own validity."""
    pieces: list[EmissionFactor] = []
    for v in sorted(versions, key=lambda v: (v.recorded_at_ns, v.factor.ref)):
        pieces = _apply(pieces, v)
    return pieces


def with_defaults(
    recorded: Sequence[EmissionFactor], defaults: Sequence[EmissionFactor]
) -> list[EmissionFactor]:
    """The recorded factors, and the defaults where no recorded factor of the same key is valid.
    A default cut in several pieces by recorded ones names its later pieces "<version>#2", ...
    (a factor table holds a ref once)."""
    out = list(recorded)
    for d in defaults:
        pieces = [d]
        for g in recorded:
            if g.key == d.key:
                pieces = [p for q in pieces for p in (_clip(q, g) if _overlap(q, g) else [q])]
        out += pieces[:1]  # the first piece keeps the default's ref: earlier provenance holds
        out += [
            dataclasses.replace(p, version=f"{d.version}#{n}") for n, p in enumerate(pieces[1:], 2)
        ]
    return out


def _cst(year: int) -> int:
    return datetime_ns(datetime(year, 1, 1, tzinfo=_CST))


def _default(
    fid: str, version: str, activity: Activity, start: int, end: int | None, value: float, src: str
) -> EmissionFactor:
    return EmissionFactor(
        id=fid,
        version=version,
        activity=activity,
        region="CN",
        valid_from_ns=start,
        valid_to_ns=end,
        value=value,
        unit=activity.factor_unit,
        source=src,
    )


# Built-in defaults (DOMAIN.md), used where no recorded factor of the same key is valid.
DEFAULT_FACTORS: tuple[EmissionFactor, ...] = (
    _default(
        "default-cn-natural-gas",
        "gbt32150-2015",
        Activity.NATURAL_GAS,
        _cst(2000),
        None,
        NATURAL_GAS_DEFAULT.tco2_per_unit,
        NATURAL_GAS_DEFAULT.source,
    ),
    _default(
        "default-cn-grid",
        "mee-2023",
        Activity.ELECTRICITY_GRID,
        _cst(2021),
        _cst(2022),
        0.5810,
        "MEE notice for 2021-2022 reporting: national grid 0.5810 tCO2/MWh",
    ),
    _default(
        "default-cn-grid",
        "mee-2024",
        Activity.ELECTRICITY_GRID,
        _cst(2022),
        None,
        0.5703,
        "MEE/NBS 2024: national grid 0.5703 tCO2/MWh for 2022 data, until a newer one",
    ),
)
