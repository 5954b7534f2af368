"""The plant model: sites, areas, meters and channels, validated by pydantic.

Pure: it parses an already-loaded mapping and reports every problem with its path.
"""

from __future__ import annotations

import enum
import zoneinfo
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from compute.errors import PlantPulseError
from compute.esg_model import WaterSource
from compute.esg_tags import EsgRole, esg_tag_issues
from compute.modbus_config import (
    FLOATS,
    ModbusOptions,
    Register,
    register_issues,
)
from compute.opcua_config import OpcUaOptions, check_options
from compute.opcua_sampling import Acquisition, NodeSampling
from compute.profile_expansion import expand_profiles
from compute.tariffs import Tariffs

Ident = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class AreaKind(enum.StrEnum):
    PRODUCTION = "production"
    OFFICE = "office"
    CLEANROOM = "cleanroom"
    UTILITY = "utility"


class ChannelKind(enum.StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"


class Utility(enum.StrEnum):
    ELECTRICITY = "electricity"
    NATURAL_GAS = "natural_gas"
    WATER = "water"
    RECYCLED_WATER = "recycled_water"
    PRODUCTION = "production"
    ENVIRONMENT = "environment"


class Protocol(enum.StrEnum):
    OPCUA = "opcua"
    MODBUS_TCP = "modbus_tcp"
    MODBUS_RTU = "modbus_rtu"  # RTU frames on a serial line; the endpoint is its device path
    MODBUS_RTU_TCP = "modbus_rtu_tcp"  # RTU frames through a TCP socket (serial servers)

    @property
    def is_modbus(self) -> bool:
        return self is not Protocol.OPCUA


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Area(_Strict):
    id: Ident
    kind: AreaKind
    iso_class: Annotated[int, Field(ge=1, le=9)] | None = None
    description: str = ""


class Site(_Strict):
    id: Ident
    name: str
    timezone: str
    areas: list[Area] = Field(min_length=1)
    # emission-factor region, broad to specific ("CN/east/jiangsu"): tCO2e and ESG reports
    region: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")] | None = None
    tariffs: Tariffs | None = None  # time-of-use bands, for totals grouped by tariff period

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, tz: str) -> str:
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown IANA timezone {tz!r}") from e
        return tz


class SimProfile(_Strict):
    """How the simulator drives a channel: a rate per hour for counters, a level for gauges."""

    level: float
    peak: float | None = None
    noise: Annotated[float, Field(ge=0)] = 0.0
    start: Annotated[float, Field(ge=0)] = 0.0


class MeterReplacement(_Strict):
    """A counter's meter swapped at `at`: the old meter's final and the new one's first reading."""

    at: AwareDatetime
    old_final: float
    new_initial: float


class Channel(_Strict):
    id: Ident
    unit: str = Field(min_length=1)
    kind: ChannelKind
    utility: Utility
    node_id: str | None = None
    modbus: Register | None = Field(default=None, alias="register")
    field: str | None = None  # a field of the meter's profile, expanded into `register`
    wrap_bits: Annotated[int, Field(ge=8, le=64)] | None = None
    # A counter's plausible maximum advance per hour, in its unit (kWh/h = kW); faster is a spike.
    max_rate_per_h: Annotated[float, Field(gt=0)] | None = None
    replacements: list[MeterReplacement] = []
    # A production counter ("meter.channel"): while it stands still, this counter's consumption
    # is idle energy.
    idle_with: str | None = None
    sampling: NodeSampling | None = None  # OPC UA monitored-item options
    simulate: SimProfile | None = None
    esg: EsgRole | None = None  # its role in ESG reports where utility and place do not say
    water_source: WaterSource | None = None  # of a withdrawal counter; third-party by default


class Meter(_Strict):
    id: Ident
    site: Ident
    area: Ident
    protocol: Protocol
    endpoint: str
    unit_id: Annotated[int, Field(ge=0, le=255)] = 1
    interval_s: Annotated[float, Field(gt=0, le=3600)] = 1.0
    parent: Ident | None = None  # the meter upstream; site totals count only meters without one
    profile: str | None = None  # Modbus only: a register-map profile its channels name fields of
    modbus: ModbusOptions = ModbusOptions()  # Modbus only; serial settings shared per bus
    acquisition: Acquisition = Acquisition.SUBSCRIBE  # OPC UA only
    opcua: OpcUaOptions = OpcUaOptions()  # OPC UA security and user; shared per endpoint
    channels: list[Channel] = Field(min_length=1)


class PlantModel(_Strict):
    sites: list[Site] = Field(min_length=1)
    meters: list[Meter] = Field(min_length=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigIssue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class PlantConfigError(PlantPulseError):
    """The plant model is invalid; `issues` holds every problem with its path."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelRef:
    """One channel with its place in the plant; `key` is its plant-wide id, "meter.channel"."""

    key: str
    site: Site
    area: Area
    meter: Meter
    channel: Channel

    @property
    def wrap_modulus(self) -> float:
        """Engineering-unit value at which the counter rolls over to zero (0: never)."""
        reg = self.channel.modbus
        bits = self.channel.wrap_bits
        if bits is None and reg is not None:
            bits = reg.unsigned_bits
        if bits is None:
            return 0.0
        return float(2**bits) * (reg.scale if reg is not None else 1.0)


class Plant:
    """A validated plant model with its channels indexed by key."""

    def __init__(self, model: PlantModel) -> None:
        self.model = model
        sites = {s.id: s for s in model.sites}
        self.channels: dict[str, ChannelRef] = {}
        for m in model.meters:
            site = sites[m.site]
            area = next(a for a in site.areas if a.id == m.area)
            for c in m.channels:
                key = f"{m.id}.{c.id}"
                self.channels[key] = ChannelRef(key=key, site=site, area=area, meter=m, channel=c)

    @property
    def sites(self) -> list[Site]:
        return self.model.sites

    @property
    def meters(self) -> list[Meter]:
        return self.model.meters

    def site(self, site_id: str) -> Site | None:
        return next((s for s in self.model.sites if s.id == site_id), None)

    def channels_of(self, meter_id: str) -> Iterator[ChannelRef]:
        return (r for r in self.channels.values() if r.meter.id == meter_id)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _duplicates(ids: list[str]) -> set[str]:
    return {i for i, n in Counter(ids).items() if n > 1}


def _cross_check(model: PlantModel) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for dup in _duplicates([s.id for s in model.sites]):
        issues.append(ConfigIssue(path="sites", message=f"duplicate site id {dup!r}"))
    for dup in _duplicates([m.id for m in model.meters]):
        issues.append(ConfigIssue(path="meters", message=f"duplicate meter id {dup!r}"))
    areas = {s.id: {a.id: a for a in s.areas} for s in model.sites}
    for i, site in enumerate(model.sites):
        for dup in _duplicates([a.id for a in site.areas]):
            issues.append(ConfigIssue(path=f"sites[{i}].areas", message=f"duplicate area {dup!r}"))
        for j, area in enumerate(site.areas):
            if area.kind is AreaKind.CLEANROOM and area.iso_class is None:
                issues.append(
                    ConfigIssue(
                        path=f"sites[{i}].areas[{j}].iso_class",
                        message="a cleanroom needs its ISO class",
                    )
                )
    for i, m in enumerate(model.meters):
        at = f"meters[{i}]"
        if m.site not in areas:
            issues.append(ConfigIssue(path=f"{at}.site", message=f"unknown site {m.site!r}"))
        elif m.area not in areas[m.site]:
            issues.append(
                ConfigIssue(
                    path=f"{at}.area", message=f"unknown area {m.area!r} in site {m.site!r}"
                )
            )
        meter_sites = {x.id: x.site for x in model.meters}
        if m.parent is not None and meter_sites.get(m.parent) != m.site:
            issues.append(
                ConfigIssue(
                    path=f"{at}.parent", message=f"no meter {m.parent!r} in site {m.site!r}"
                )
            )
        if m.protocol is Protocol.OPCUA and not m.endpoint.startswith("opc.tcp://"):
            issues.append(
                ConfigIssue(
                    path=f"{at}.endpoint", message="an OPC UA endpoint starts with opc.tcp://"
                )
            )
        if m.protocol in (Protocol.MODBUS_TCP, Protocol.MODBUS_RTU_TCP) and not _host_port(
            m.endpoint
        ):
            issues.append(
                ConfigIssue(path=f"{at}.endpoint", message="a Modbus TCP endpoint is host:port")
            )
        for dup in _duplicates([c.id for c in m.channels]):
            issues.append(
                ConfigIssue(path=f"{at}.channels", message=f"duplicate channel id {dup!r}")
            )
        for j, c in enumerate(m.channels):
            issues.extend(_check_channel(m.protocol, c, f"{at}.channels[{j}]"))
    issues.extend(_check_opcua(model))
    issues.extend(_check_modbus(model))
    issues.extend(_check_idle_with(model))
    return issues


def _check_idle_with(model: PlantModel) -> list[ConfigIssue]:
    production = {
        f"{m.id}.{c.id}"
        for m in model.meters
        for c in m.channels
        if c.kind is ChannelKind.COUNTER and c.utility is Utility.PRODUCTION
    }
    return [
        ConfigIssue(
            path=f"meters[{i}].channels[{j}].idle_with",
            message=f"{c.idle_with!r} is not a production counter (meter.channel)",
        )
        for i, m in enumerate(model.meters)
        for j, c in enumerate(m.channels)
        if c.idle_with is not None and c.idle_with not in production
    ]


def _check_modbus(model: PlantModel) -> list[ConfigIssue]:
    """Register fields are consistent; meters on one serial bus share its line settings."""
    issues: list[ConfigIssue] = []
    first: dict[str, int] = {}
    for i, m in enumerate(model.meters):
        at = f"meters[{i}]"
        if not m.protocol.is_modbus:
            if m.modbus != ModbusOptions():
                issues.append(ConfigIssue(path=f"{at}.modbus", message="only Modbus meters"))
            if m.profile is not None:
                issues.append(ConfigIssue(path=f"{at}.profile", message="only Modbus meters"))
            continue
        for j, c in enumerate(m.channels):
            for sub, msg in register_issues(c.modbus, m.modbus.address_base) if c.modbus else []:
                issues.append(ConfigIssue(path=f"{at}.channels[{j}].register.{sub}", message=msg))
        if m.protocol is Protocol.MODBUS_RTU:
            k = first.setdefault(m.endpoint, i)
            if model.meters[k].modbus.serial_settings() != m.modbus.serial_settings():
                issues.append(
                    ConfigIssue(
                        path=f"{at}.modbus",
                        message=f"serial settings differ from meters[{k}] on the same bus",
                    )
                )
    return issues


def _check_opcua(model: PlantModel) -> list[ConfigIssue]:
    """OPC UA options are consistent, and alike for meters sharing an endpoint (one session)."""
    issues: list[ConfigIssue] = []
    first: dict[str, int] = {}
    for i, m in enumerate(model.meters):
        at = f"meters[{i}].opcua"
        if m.protocol is not Protocol.OPCUA:
            if m.opcua != OpcUaOptions():
                issues.append(ConfigIssue(path=at, message="only OPC UA meters take opcua options"))
            continue
        for sub, msg in check_options(m.opcua):
            issues.append(ConfigIssue(path=f"{at}.{sub}", message=msg))
        j = first.setdefault(m.endpoint, i)
        if model.meters[j].opcua != m.opcua:
            issues.append(
                ConfigIssue(
                    path=at,
                    message=f"differs from meters[{j}], which shares its endpoint and session",
                )
            )
    return issues


def _check_channel(protocol: Protocol, c: Channel, at: str) -> list[ConfigIssue]:
    issues = []
    if protocol is Protocol.OPCUA and not c.node_id:
        issues.append(
            ConfigIssue(path=f"{at}.node_id", message="an OPC UA channel needs a node id")
        )
    if protocol.is_modbus and c.modbus is None and c.field is None:  # a bad field is reported
        issues.append(
            ConfigIssue(path=f"{at}.register", message="a Modbus channel needs a register spec")
        )
    if c.kind is not ChannelKind.COUNTER:
        for name in ("max_rate_per_h", "replacements", "idle_with"):
            if getattr(c, name):
                issues.append(ConfigIssue(path=f"{at}.{name}", message="only counters have it"))
    if (
        c.kind is ChannelKind.COUNTER and c.modbus is not None and c.modbus.type in FLOATS
    ) and c.wrap_bits is not None:
        issues.append(
            ConfigIssue(path=f"{at}.wrap_bits", message="a floating-point counter does not wrap")
        )
    counter = c.kind is ChannelKind.COUNTER
    for sub, msg in esg_tag_issues(c.utility.value, counter, c.esg, c.water_source):
        issues.append(ConfigIssue(path=f"{at}.{sub}", message=msg))
    return issues


def _host_port(endpoint: str) -> bool:
    host, _, port = endpoint.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def parse_plant(data: Mapping[str, Any]) -> Plant:
    """Validate a loaded plant mapping; raise PlantConfigError listing every issue by path.

    Profile fields are expanded first, so the model holds ordinary `register` specs.
    """
    data, found = expand_profiles(data)
    issues = [ConfigIssue(path=path, message=msg) for path, msg in found]
    try:
        model = PlantModel.model_validate(data)
    except ValidationError as e:
        raise PlantConfigError(
            issues
            + [ConfigIssue(path=_path(tuple(err["loc"])), message=err["msg"]) for err in e.errors()]
        ) from e
    issues += _cross_check(model)
    if issues:
        raise PlantConfigError(issues)
    return Plant(model)
