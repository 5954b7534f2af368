"""The append-only records kept beside the measurements: each channel's configuration history,
versioned emission factors and the audit log. SQL in PostgreSQL's parameter style; SqliteStore
swaps %s for ?."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from compute.emissions import Activity, Basis, EmissionFactor
from compute.errors import PlantPulseError
from compute.plant import Plant


class DuplicateRecordError(PlantPulseError):
    """A record with that identity exists: records are never replaced, only added."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigVersion:
    channel_id: str
    recorded_at_ns: int
    sha256: str
    config: str  # canonical JSON of the channel with its meter, site and area


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """Who did what to which subject, when, from which value to which, and why."""

    at_ns: int
    actor: str
    action: str
    subject: str
    old_value: str | None
    new_value: str | None
    reason: str


LATEST_CONFIG_SQL = (
    "SELECT channel_id, sha256 FROM channel_config c WHERE recorded_at_ns ="
    " (SELECT max(recorded_at_ns) FROM channel_config WHERE channel_id = c.channel_id)"
)
INSERT_CONFIG_SQL = "INSERT INTO channel_config VALUES (%s, %s, %s, %s)"
CONFIG_HISTORY_SQL = (
    "SELECT channel_id, recorded_at_ns, sha256, config FROM channel_config"
    " WHERE channel_id = %s ORDER BY recorded_at_ns"
)
INSERT_FACTOR_SQL = (  # columns named: 0012 added `supersedes` (services.store.external)
    "INSERT INTO emission_factors (id, version, activity, region, basis, valid_from_ns,"
    " valid_to_ns, value, unit, source, recorded_at_ns)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
FACTORS_SQL = (
    "SELECT id, version, activity, region, basis, valid_from_ns, valid_to_ns, value, unit,"
    " source FROM emission_factors ORDER BY id, valid_from_ns, version"
)
# Without the hash chain (0013): append through services.store.chain_sqlite / chain_pg.
INSERT_AUDIT_SQL = (
    "INSERT INTO audit_log (at_ns, actor, action, subject, old_value, new_value, reason)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
AUDIT_SQL = (
    "SELECT at_ns, actor, action, subject, old_value, new_value, reason FROM audit_log"
    " WHERE CAST(%s AS TEXT) IS NULL OR subject = %s ORDER BY seq"
)


def channel_configs(plant: Plant) -> dict[str, tuple[str, str]]:
    """Per channel: (sha256, canonical JSON) of its configuration with its meter's."""
    out = {}
    for key, ref in plant.channels.items():
        meter = ref.meter.model_dump(mode="json", exclude={"channels"})
        doc = {
            "site": ref.site.id,
            "area": ref.area.id,
            "meter": meter,
            "channel": ref.channel.model_dump(mode="json", by_alias=True),
        }
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        out[key] = (hashlib.sha256(text.encode()).hexdigest(), text)
    return out


def changed_configs(
    configs: dict[str, tuple[str, str]], latest: Iterable[tuple[str, str]], at_ns: int
) -> list[tuple[str, int, str, str]]:
    """Rows to append: the channels whose configuration differs from the latest recorded."""
    known = dict(latest)
    return [
        (channel, at_ns, sha, text)
        for channel, (sha, text) in sorted(configs.items())
        if known.get(channel) != sha
    ]


def config_version(row: Any) -> ConfigVersion:
    c, at, sha, text = row
    return ConfigVersion(channel_id=c, recorded_at_ns=int(at), sha256=sha, config=text)


def factor_row(f: EmissionFactor, recorded_at_ns: int) -> tuple[Any, ...]:
    return (
        f.id, f.version, f.activity.value, f.region, f.basis.value, f.valid_from_ns,
        f.valid_to_ns, f.value, f.unit, f.source, recorded_at_ns,
    )  # fmt: skip


def factor(row: Any) -> EmissionFactor:
    fid, version, activity, region, basis, start, end, value, unit, source = row
    return EmissionFactor(
        id=fid,
        version=version,
        activity=Activity(activity),
        region=region,
        basis=Basis(basis),
        valid_from_ns=int(start),
        valid_to_ns=None if end is None else int(end),
        value=float(value),
        unit=unit,
        source=source,
    )


def audit_row(e: AuditEntry) -> tuple[Any, ...]:
    return e.at_ns, e.actor, e.action, e.subject, e.old_value, e.new_value, e.reason


def audit_entry(row: Any) -> AuditEntry:
    at, actor, action, subject, old, new, reason = row
    return AuditEntry(
        at_ns=int(at),
        actor=actor,
        action=action,
        subject=subject,
        old_value=old,
        new_value=new,
        reason=reason,
    )
