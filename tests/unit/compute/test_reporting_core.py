"""The pure parts of totals and reports: units and their fit, tariff schedules and bands across
DST, period labels and comparisons, the plant's ESG tags and which counters feed each input."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from compute.calendar import Period, period_bounds
from compute.esg_inputs import streams
from compute.model import NS_PER_S
from compute.periods import Compare, PeriodRefError, calendar_span, compared, label_date
from compute.plant import PlantConfigError, Utility, parse_plant
from compute.tariffs import Tariffs, band_codes, band_seconds
from compute.units import Unit, UnitError, activity_scale, scale

VALLEY_PEAK = {
    "default": "flat",
    "windows": [
        {"band": "valley", "start": "23:00", "end": "07:00"},
        {"band": "peak", "start": "08:00", "end": "11:00", "months": [6, 7, 8]},
    ],
}


@pytest.mark.parametrize(
    ("utility", "metered", "unit", "factor"),
    [
        (Utility.ELECTRICITY, "kWh", Unit.MWH, 1e-3),
        (Utility.ELECTRICITY, "MWh", Unit.KWH, 1e3),
        (Utility.ELECTRICITY, "Wh", Unit.GJ, 3.6e-6),
        (Utility.ELECTRICITY, "kWh", Unit.TCE, 0.1229e-3),  # GB/T 2589-2020
        (Utility.NATURAL_GAS, "m3", Unit.TCE, 1.2143e-3),
        (Utility.NATURAL_GAS, "m3", Unit.GJ, 38.931e-3),  # LHV 38.931 GJ/1000 m3
        (Utility.NATURAL_GAS, "m3", Unit.KWH, 38.931 / 3.6),
        (Utility.WATER, "m3", Unit.ML, 1e-3),
        (Utility.WATER, "L", Unit.M3, 1e-3),
        (Utility.RECYCLED_WATER, "ML", Unit.M3, 1e3),
    ],
)
def test_scales(utility: Utility, metered: str, unit: Unit, factor: float) -> None:
    assert scale(utility, metered, unit).factor == pytest.approx(factor, rel=1e-12)


@pytest.mark.parametrize(
    ("utility", "metered", "unit", "reason"),
    [
        (Utility.WATER, "m3", Unit.KWH, "unit 'kWh' does not fit water: use m3, ML"),
        (Utility.ELECTRICITY, "kWh", Unit.ML, "does not fit electricity"),
        (Utility.PRODUCTION, "units", Unit.M3, "metered unit only"),
        (Utility.ELECTRICITY, "kVArh", Unit.MWH, "'kVArh' cannot be converted"),
        (Utility.ELECTRICITY, "kWh", Unit.TCO2E, "emission factors"),
    ],
)
def test_units_that_do_not_fit(utility: Utility, metered: str, unit: Unit, reason: str) -> None:
    with pytest.raises(UnitError, match=reason):
        scale(utility, metered, unit)


def test_activity_scales() -> None:
    assert activity_scale(Utility.ELECTRICITY, "kWh")[1] == 1e-3  # MWh
    assert activity_scale(Utility.NATURAL_GAS, "m3")[1] == 1e-3  # 1000 m3
    with pytest.raises(UnitError, match="no emission factor"):
        activity_scale(Utility.WATER, "m3")


def test_tariff_bands_follow_the_local_clock_across_dst() -> None:
    t = Tariffs.model_validate(VALLEY_PEAK)
    assert t.whole_hours
    tz = "Europe/Berlin"
    for day, valley_h in ((date(2026, 3, 29), 7), (date(2026, 10, 25), 9), (date(2026, 1, 5), 8)):
        a, b = period_bounds(tz, Period.DAY, day)
        seconds = band_seconds(a, b, 60 * NS_PER_S, tz, t)
        assert seconds["valley"] == valley_h * 3600
        assert seconds["peak"] == 0  # peak only in summer months
        assert sum(seconds.values()) == (b - a) // NS_PER_S
    a, b = period_bounds(tz, Period.DAY, date(2026, 7, 1))
    assert band_seconds(a, b, 900 * NS_PER_S, tz, t)["peak"] == 3 * 3600
    hours = np.arange(a, b, 3600 * NS_PER_S, dtype=np.int64)
    assert (
        "".join("pfv"[c] for c in band_codes(hours, tz, t))
        == "v" * 7 + "f" + "p" * 3 + "f" * 12 + "v"
    )


@pytest.mark.parametrize(
    ("windows", "reason"),
    [
        ([{"band": "peak", "start": "08:10", "end": "09:00"}], "quarter hour"),
        ([{"band": "peak", "start": "08:00", "end": "08:00"}], "start = end"),
        ([{"band": "peak", "start": "25:00", "end": "08:00"}], "quarter hour"),
        ([{"band": "peak", "start": "08:00", "end": "09:00", "months": [13]}], "months"),
        (
            [
                {"band": "valley", "start": "22:00", "end": "06:00"},
                {"band": "peak", "start": "05:00", "end": "09:00"},
            ],
            r"windows\[0\] and windows\[1\] overlap \(month 1, 05:00\)",
        ),
        ([{"band": "rush", "start": "08:00", "end": "09:00"}], "'peak', 'flat' or 'valley'"),
    ],
)
def test_tariff_schedules_are_validated(windows: list[dict[str, Any]], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        Tariffs.model_validate({"windows": windows})


def test_off_hour_boundaries_are_allowed_but_not_whole_hours() -> None:
    t = Tariffs.model_validate({"windows": [{"band": "peak", "start": "08:30", "end": "24:00"}]})
    assert not t.whole_hours and t.bands() == ("peak", "flat")


@pytest.mark.parametrize(
    ("period", "label", "first_day"),
    [
        (Period.YEAR, "2026", date(2026, 1, 1)),
        (Period.QUARTER, "2026-Q3", date(2026, 7, 1)),
        (Period.MONTH, "2026-02", date(2026, 2, 1)),
        (Period.WEEK, "2026-W01", date(2025, 12, 29)),
        (Period.DAY, "2026-03-29", date(2026, 3, 29)),
        (Period.MONTH, "2026-02-17", date(2026, 2, 17)),  # a date names the month holding it
    ],
)
def test_period_labels(period: Period, label: str, first_day: date) -> None:
    assert label_date(period, label) == first_day


def test_comparisons_of_calendar_periods() -> None:
    tz = "Europe/Berlin"
    march = calendar_span(tz, Period.MONTH, "2026-03")
    feb = compared(tz, march, Compare.PREVIOUS)
    assert (feb.start_ns, feb.end_ns) == period_bounds(tz, Period.MONTH, date(2026, 2, 1))
    leap = calendar_span(tz, Period.DAY, "2028-02-29")
    year = compared(tz, leap, Compare.YEAR_BEFORE)
    assert (year.start_ns, year.end_ns) == period_bounds(tz, Period.DAY, date(2027, 2, 28))
    week53 = calendar_span(tz, Period.WEEK, "2026-W53")  # 2025 has 52 ISO weeks
    assert (
        compared(tz, week53, Compare.YEAR_BEFORE).start_ns
        == period_bounds(tz, Period.WEEK, date(2025, 12, 22))[0]
    )
    with pytest.raises(PeriodRefError, match="not a real week"):
        calendar_span(tz, Period.WEEK, "2025-W53")


def _meter(mid: str, area: str, utility: str, parent: str | None = None, **tags: Any) -> Any:
    return {
        "id": mid,
        "site": "s",
        "area": area,
        "protocol": "opcua",
        "endpoint": "opc.tcp://h:4840",
        "parent": parent,
        "channels": [
            {"id": "c", "unit": "m3", "kind": "counter", "utility": utility, "node_id": "n", **tags}
        ],
    }


def _plant(meters: list[Any]) -> Any:
    areas = [
        {"id": "u", "kind": "utility"},
        {"id": "p", "kind": "production"},
        {"id": "cr", "kind": "cleanroom", "iso_class": 7},
        {"id": "o", "kind": "office"},
    ]
    site = {"id": "s", "name": "S", "timezone": "UTC", "areas": areas, "region": "CN/east"}
    return parse_plant({"sites": [site], "meters": meters})


def test_esg_tags_are_validated() -> None:
    with pytest.raises(PlantConfigError) as e:
        _plant(
            [
                _meter("a", "u", "natural_gas", esg="onsite_pv"),
                _meter("b", "u", "electricity", water_source="groundwater"),
                _meter("c", "u", "water", esg="discharge", water_source="seawater"),
            ]
        )
    assert [str(i) for i in e.value.issues] == [
        "meters[0].channels[0].esg: 'onsite_pv' fits electricity counters, not natural_gas",
        "meters[1].channels[0].water_source: only a water withdrawal counter has a water source",
        "meters[2].channels[0].water_source: only a water withdrawal counter has a water source",
    ]
    with pytest.raises(PlantConfigError, match="region"):
        parse_plant(
            {
                "sites": [{"id": "s", "name": "S", "timezone": "UTC", "region": "CN//x",
                           "areas": [{"id": "u", "kind": "utility"}]}],
                "meters": [_meter("a", "u", "water")],
            }
        )  # fmt: skip


def test_which_counters_feed_each_esg_input() -> None:
    p = _plant(
        [
            _meter("grid", "u", "electricity"),
            _meter("pv", "u", "electricity", esg="onsite_pv"),
            _meter("line", "p", "electricity", parent="grid"),
            _meter("line-sub", "p", "electricity", parent="line"),  # under line: not again
            _meter("clean", "cr", "electricity", parent="grid"),  # cleanrooms are production
            _meter("office", "o", "electricity", parent="grid"),
            _meter("bench", "u", "electricity", esg="none"),
            _meter("gas", "u", "natural_gas"),
            _meter("town", "u", "water"),
            _meter("well", "u", "water", water_source="groundwater"),
            _meter("drain", "u", "water", esg="discharge"),
            _meter("loop", "u", "recycled_water"),
            _meter("wash", "p", "water", parent="town"),
        ]
    )
    got = {k: [r.meter.id for r in v] for k, v in streams(p, "s").items()}
    assert got == {
        "grid_electricity": ["grid"],
        "pv_electricity": ["pv"],
        "production_electricity": ["line", "clean"],
        "office_electricity": ["office"],
        "natural_gas": ["gas"],
        "water_withdrawal/third_party_water": ["town"],
        "water_withdrawal/groundwater": ["well"],
        "water_discharge": ["drain"],
        "water_recycled": ["loop"],
        "production_water": ["wash"],
    }
