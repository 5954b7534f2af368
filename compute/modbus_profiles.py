"""Register-map profiles of common meters: named fields a plant config refers to by name.

Pure data; `Profile.register` gives a field's `register` spec in the meter's own numbering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from compute.modbus_config import ByteOrder, RegisterType, Table

F32 = RegisterType.FLOAT32


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileField:
    """One documented quantity; table and order default to the profile's."""

    address: int  # as the meter's document writes it, counted from the profile's address_base
    type: RegisterType
    unit: str
    kind: Literal["counter", "gauge"]
    utility: str | None = "electricity"  # suggested; None: the channel must name it
    scale: float = 1.0
    order: ByteOrder | None = None
    table: Table | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    name: str
    description: str  # the public document followed, and what could not be confirmed
    address_base: Literal[0, 1]  # how the document counts addresses
    table: Table
    order: ByteOrder
    fields: dict[str, ProfileField] = field(default_factory=dict)

    def register(self, name: str, address_base: int = 0) -> dict[str, Any]:
        """Field `name` as a `register` mapping, its address counted from `address_base`."""
        f = self.fields[name]
        return {
            "address": f.address - self.address_base + address_base,
            "type": f.type.value,
            "order": (f.order or self.order).value,
            "table": (f.table or self.table).value,
            "scale": f.scale,
        }


def _gauge(address: int, unit: str, type: RegisterType = F32, **kw: Any) -> ProfileField:
    return ProfileField(address=address, type=type, unit=unit, kind="gauge", **kw)


def _counter(address: int, unit: str, type: RegisterType = F32, **kw: Any) -> ProfileField:
    return ProfileField(address=address, type=type, unit=unit, kind="counter", **kw)


_PROFILES = (
    Profile(
        name="eastron-sdm630",
        description=(
            "Eastron SDM630 Modbus protocol, input registers (function 04), float32 big-endian;"
            " addresses are the protocol start addresses (30001 is 0x0000). Checked against the"
            " public SDM630 input register table and the SDM72/SDM72CT manuals (same map);"
            " total_active_energy 0x156 (30343) confirmed on the SDM72 family only."
        ),
        address_base=0,
        table=Table.INPUT,
        order=ByteOrder.ABCD,
        fields={
            "l1_voltage": _gauge(0x00, "V"),
            "l2_voltage": _gauge(0x02, "V"),
            "l3_voltage": _gauge(0x04, "V"),
            "l1_current": _gauge(0x06, "A"),
            "l2_current": _gauge(0x08, "A"),
            "l3_current": _gauge(0x0A, "A"),
            "total_power": _gauge(0x34, "W"),
            "total_power_factor": _gauge(0x3E, "1"),
            "frequency": _gauge(0x46, "Hz"),
            "import_active_energy": _counter(0x48, "kWh"),
            "export_active_energy": _counter(0x4A, "kWh"),
            "total_active_energy": _counter(0x156, "kWh"),
        },
    ),
    Profile(
        name="schneider-pm5000",
        description=(
            "Schneider Electric PowerLogic PM5xxx Modbus register list, holding registers"
            " (function 03), float32 big-endian, 1-based register numbers (3000 is wire 2999)."
            " Confirmed: currents 3000/3002/3004 and the 1-based numbering; active energy"
            " delivered 2700 on the PM8000 sibling list only. Not confirmed: 3036, 3060, 3084"
            " (may use Schneider's four-quadrant power factor encoding), 3110."
        ),
        address_base=1,
        table=Table.HOLDING,
        order=ByteOrder.ABCD,
        fields={
            "current_a": _gauge(3000, "A"),
            "current_b": _gauge(3002, "A"),
            "current_c": _gauge(3004, "A"),
            "voltage_ln_avg": _gauge(3036, "V"),
            "active_power_total": _gauge(3060, "kW"),
            "power_factor_total": _gauge(3084, "1"),
            "frequency": _gauge(3110, "Hz"),
            "active_energy_delivered": _counter(2700, "kWh"),
        },
    ),
    Profile(
        name="siemens-pac3200",
        description=(
            "Siemens SENTRON PAC3200 manual, Modbus measured variables (functions 03 and 04),"
            " big-endian; the manual's offsets are the wire addresses. Confirmed: voltages"
            " 1/3/5, currents 13/15/17, frequency 55, total power 65 and power factor 69;"
            " active energy import tariff 1 at 801 (float64 Wh) on the PAC4200 table only."
        ),
        address_base=0,
        table=Table.HOLDING,
        order=ByteOrder.ABCD,
        fields={
            "voltage_an": _gauge(1, "V"),
            "voltage_bn": _gauge(3, "V"),
            "voltage_cn": _gauge(5, "V"),
            "current_a": _gauge(13, "A"),
            "current_b": _gauge(15, "A"),
            "current_c": _gauge(17, "A"),
            "frequency": _gauge(55, "Hz"),
            "total_active_power": _gauge(65, "W"),
            "total_power_factor": _gauge(69, "1"),
            "active_energy_import_t1": _counter(801, "Wh", RegisterType.FLOAT64),
        },
    ),
    Profile(
        name="pulse-counter",
        description=(
            "Generic pulse counter: uint32 pulse count at holding 0. Give the channel's utility,"
            " unit and the value of one pulse as `register: {scale: ...}`."
        ),
        address_base=0,
        table=Table.HOLDING,
        order=ByteOrder.ABCD,
        fields={"count": _counter(0, "pulses", RegisterType.UINT32, utility=None)},
    ),
    Profile(
        name="cleanroom-thp",
        description=(
            "Generic cleanroom transmitter: temperature, relative humidity and differential"
            " pressure as int16 tenths at holding 0, 1 and 2."
        ),
        address_base=0,
        table=Table.HOLDING,
        order=ByteOrder.ABCD,
        fields={
            "temperature": _gauge(0, "degC", RegisterType.INT16, scale=0.1, utility="environment"),
            "humidity": _gauge(1, "%RH", RegisterType.INT16, scale=0.1, utility="environment"),
            "differential_pressure": _gauge(
                2, "Pa", RegisterType.INT16, scale=0.1, utility="environment"
            ),
        },
    ),
    Profile(
        name="particle-counter",
        description=(
            "Generic airborne particle counter: uint32 concentrations in counts/m3 at holding 0"
            " (>= 0.5 um) and 2 (>= 5 um)."
        ),
        address_base=0,
        table=Table.HOLDING,
        order=ByteOrder.ABCD,
        fields={
            "particles_0_5um": _gauge(0, "counts/m3", RegisterType.UINT32, utility="environment"),
            "particles_5um": _gauge(2, "counts/m3", RegisterType.UINT32, utility="environment"),
        },
    ),
)

PROFILES: dict[str, Profile] = {p.name: p for p in _PROFILES}
