"""A site's ESG report from period totals: GRI 302/303/305, HKEX A1.2/A2.1/A2.2, T/LTIA 27-2024.

Pure: totals, denominators and factors come in, a report goes out; no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from compute.emissions import (
    Basis,
    FactorTable,
    scope1_natural_gas,
    scope2_location,
    scope2_market,
)
from compute.energy import MJ_PER_KWH, kwh_to_gj, kwh_to_mwh, m3_to_ml
from compute.esg_model import (
    EsgInputs,
    EsgReport,
    Framework,
    MethodNotes,
    ReportSpec,
    WaterSource,
)
from compute.esg_terms import (
    INTENSITY_DECIMALS,
    ReportBuilder,
    Term,
    absent,
    capped,
    convert,
    difference,
    raw,
    total,
    unique,
)
from compute.indicators import Denominator, ecovrp, water_consumption, water_recycling_rate

GRI, HKEX, TLTIA = Framework.GRI, Framework.HKEX, Framework.TLTIA
DEFAULT_SPEC = ReportSpec()
KWH_000 = "'000 kWh"  # HKEX A2.1's unit, i.e. MWh

_NOTES = (
    "Each published value is rounded once, half-up, from its unrounded value; totals add "
    "unrounded parts, so a total may differ from the sum of its published parts in the last digit.",
    "Certificate-covered grid electricity counts, up to the amount purchased, as renewable in "
    "GRI 302-1 and at zero in market-based Scope 2; on-site PV is not purchased (zero Scope 2).",
    "Emission factors are CO2 factors (tCO2 per activity unit): the tCO2e figures leave out the "
    "CH4 and N2O of combustion.",
    "HKEX A2.2 water consumption is withdrawal − discharge, as GRI 303-5.",
    "T/LTIA 27-2024 EPE = PE × CEFE uses all purchased grid electricity and the location-based "
    "grid factor (the same figure as GRI 305-2 location-based).",
)


def build_report(
    inputs: EsgInputs, table: FactorTable, spec: ReportSpec = DEFAULT_SPEC
) -> EsgReport:
    """The site's indicators for the period: GRI 302-1, 302-3, 303-3, 303-5, 305-1, 305-2, 305-4;
    HKEX A1.2, A2.1, A2.2; T/LTIA 27-2024 TECP, TECO, TNGC, EPE, WC, WRR, ECOVRP.

    Emissions use the factors of `table` valid over the period for `inputs.region` (split where a
    factor changes). A missing input, factor or denominator gives None with the reason.
    """
    b = ReportBuilder(inputs, table, spec)
    grid_kwh = raw("grid electricity", inputs.grid_electricity_kwh, "kWh")
    cert_kwh = raw("certificate-covered electricity", inputs.certificate_electricity_kwh, "kWh")
    pv_kwh = raw("on-site PV electricity", inputs.pv_electricity_kwh, "kWh")
    gas_m3 = raw("natural gas", inputs.natural_gas_m3, "m3")
    if inputs.pv_electricity_kwh is None:
        b.notes.append("No on-site PV reported: taken as 0 kWh.")
    if inputs.certificate_electricity_kwh is None:
        b.notes.append("No green-electricity certificates reported: none claimed.")

    gas_gj = _gri_energy(b, grid_kwh, cert_kwh, pv_kwh, gas_m3)
    withdrawal_m3, consumed_m3 = _gri_water(b)
    ghg = _ghg(b, grid_kwh, cert_kwh, gas_m3)
    _hkex_energy_water(b, gas_gj, grid_kwh, pv_kwh, consumed_m3)
    _tltia(b, gas_m3, ghg.location, withdrawal_m3)

    gas_lhv = spec.natural_gas.lhv_gj_per_unit
    return EsgReport(
        site=inputs.site,
        region=inputs.region,
        start_ns=inputs.start_ns,
        end_ns=inputs.end_ns,
        ghg_total_basis=spec.ghg_total_basis,
        indicators=tuple(b.indicators),
        method=MethodNotes(
            factors=unique([f for t in (ghg.scope1, ghg.location, ghg.market) for f in t.factors]),
            conversions=(
                f"1 kWh = {MJ_PER_KWH} MJ = 0.0036 GJ; 1 MWh = 1 '000 kWh = 3.6 GJ (SI)",
                f"natural gas LHV {gas_lhv} GJ/1000 m3 ({spec.natural_gas.source})",
                "1 ML = 1000 m3",
            ),
            formulas=tuple((i.key, i.formula) for i in b.indicators),
            notes=(*b.notes, *_NOTES),
        ),
    )


def _gas_formula(b: ReportBuilder) -> str:
    return f"natural gas [m3] ÷ 1000 × LHV {b.spec.natural_gas.lhv_gj_per_unit} GJ/1000 m3"


def _gri_energy(b: ReportBuilder, grid: Term, cert: Term, pv: Term, gas_m3: Term) -> Term:
    """GRI 302-1 in GJ and 302-3; returns natural gas in GJ (HKEX A2.1 reuses it)."""
    lhv_gj_per_1000m3 = b.spec.natural_gas.lhv_gj_per_unit
    cert_used = capped(cert, grid)  # certificates count up to the purchased amount only
    gas_gj = convert(gas_m3, lambda m3: m3 / 1_000.0 * lhv_gj_per_1000m3, "GJ")
    grid_gj = convert(grid, kwh_to_gj, "GJ")
    pv_gj = convert(pv, kwh_to_gj, "GJ")
    electricity_gj = total("GJ", grid_gj, pv_gj)
    total_gj = total("GJ", gas_gj, electricity_gj)
    renewable_gj = total("GJ", pv_gj, convert(cert_used, kwh_to_gj, "GJ"))
    uncovered_gj = convert(difference("kWh", grid, cert_used), kwh_to_gj, "GJ")
    non_renewable_gj = total("GJ", gas_gj, uncovered_gj)
    gas = _gas_formula(b)
    rows = (
        ("natural_gas", "Natural gas (non-renewable fuel)", gas_gj, gas),
        ("electricity/grid", "Purchased grid electricity", grid_gj, "grid [kWh] × 0.0036"),
        ("electricity/onsite_pv", "On-site PV consumed", pv_gj, "PV [kWh] × 0.0036"),
        ("electricity", "Electricity consumption", electricity_gj, "(grid + PV) [kWh] × 0.0036"),
        (
            "renewable",
            "Renewable: on-site PV and certificate-covered electricity",
            renewable_gj,
            "(PV + min(certificates, grid)) [kWh] × 0.0036",
        ),
        (
            "non_renewable",
            "Non-renewable: natural gas and grid electricity without certificates",
            non_renewable_gj,
            f"{gas} + (grid − min(certificates, grid)) [kWh] × 0.0036",
        ),
        (
            "total",
            "Total energy consumption within the organisation",
            total_gj,
            "natural gas [GJ] + electricity [GJ]",
        ),
    )
    for item, name, t, formula in rows:
        b.add(GRI, "302-1", item, name, t, 2, formula)
    b.add_intensities(GRI, "302-3", "Energy intensity", total_gj, "302-1 total [GJ]")
    return gas_gj


def _gri_water(b: ReportBuilder) -> tuple[Term, Term]:
    """GRI 303-3 and 303-5 in megalitres; returns withdrawal and consumption in m3."""
    inp = b.inputs
    by_source = {  # in GRI 303-3's order of sources
        source: raw(f"water withdrawal ({source})", inp.water_withdrawal_m3[source], "m3")
        for source in WaterSource
        if source in inp.water_withdrawal_m3
    }
    discharge_m3 = raw("water discharge", inp.water_discharge_m3, "m3")
    withdrawal_m3 = total("m3", *by_source.values())
    for source, t in by_source.items():
        name = f"Water withdrawal: {source}"
        formula = f"{source} [m3] ÷ 1000"
        b.add(GRI, "303-3", f"withdrawal/{source}", name, convert(t, m3_to_ml, "ML"), 3, formula)
    withdrawal_ml = convert(withdrawal_m3, m3_to_ml, "ML")
    b.add(GRI, "303-3", "total", "Total water withdrawal", withdrawal_ml, 3, "Σ sources ÷ 1000")
    balance = water_consumption(b.figure(withdrawal_m3), b.figure(discharge_m3))
    consumed_m3 = b.derived(balance, withdrawal_m3, discharge_m3)
    consumed_ml = convert(consumed_m3, m3_to_ml, "ML")
    formula = "(withdrawal − discharge) [m3] ÷ 1000"
    b.add(GRI, "303-5", "", "Total water consumption", consumed_ml, 3, formula)
    return withdrawal_m3, consumed_m3


@dataclass(frozen=True, slots=True, kw_only=True)
class _Ghg:
    """The emission terms other sections reuse, in tCO2e."""

    scope1: Term
    location: Term
    market: Term


def _ghg(b: ReportBuilder, grid: Term, cert: Term, gas_m3: Term) -> _Ghg:
    """GRI 305-1, 305-2 (both bases), 305-4 and HKEX A1.2, in tCO2e."""
    inp, table = b.inputs, b.table
    region, a, z = inp.region, inp.start_ns, inp.end_ns
    gas = b.emissions(gas_m3, lambda m3: scope1_natural_gas(table, region, a, z, volume_m3=m3))
    manual = [(m, raw(f"Scope 1: {m.name}", m.emissions_tco2e, "tCO2e")) for m in inp.manual_scope1]
    scope1 = total("tCO2e", gas, *(t for _, t in manual))
    location = b.emissions(
        grid, lambda kwh: scope2_location(table, region, a, z, purchased_mwh=kwh_to_mwh(kwh))
    )
    uncovered_kwh = difference("kWh", grid, capped(cert, grid))
    if b.has_market_factor():
        market_formula = "max(0, grid − certificates) [MWh] × market factor [tCO2/MWh]"
        market = b.emissions(  # scope2_market nets and caps the certificates itself
            uncovered_kwh,
            lambda _: scope2_market(
                table,
                region,
                a,
                z,
                purchased_mwh=kwh_to_mwh(grid.value or 0.0),
                certificates_mwh=kwh_to_mwh(cert.value or 0.0),
            ),
        )
    else:
        market_formula = "max(0, grid − certificates) [MWh] × grid-average factor [tCO2/MWh]"
        b.notes.append(
            "No market-basis electricity factor for the region and period: market-based Scope 2 "
            "applies the grid-average factor to purchases that certificates do not cover (the "
            "last step of the GHG Protocol Scope 2 market-based hierarchy)."
        )
        market = b.emissions(
            uncovered_kwh,
            lambda kwh: scope2_location(table, region, a, z, purchased_mwh=kwh_to_mwh(kwh)),
        )
    gas_formula = "natural gas [m3] ÷ 1000 × factor [tCO2/1000 m3]"
    b.add(GRI, "305-1", "natural_gas", "Scope 1: natural gas combustion", gas, 2, gas_formula)
    for m, t in manual:
        b.add(GRI, "305-1", f"manual/{m.name}", f"Scope 1: {m.name} ({m.source})", t, 2, "entered")
    b.add(GRI, "305-1", "total", "Gross direct (Scope 1) GHG emissions", scope1, 2, "Σ Scope 1")
    location_formula = "grid [MWh] × grid-average factor [tCO2/MWh]"
    b.add(GRI, "305-2", "location", "Scope 2, location-based", location, 2, location_formula)
    b.add(GRI, "305-2", "market", "Scope 2, market-based", market, 2, market_formula)

    basis = b.spec.ghg_total_basis
    scope2 = location if basis is Basis.LOCATION else market
    ghg = total("tCO2e", scope1, scope2)
    ghg_formula = f"(Scope 1 + {basis}-based Scope 2) [tCO2e]"
    b.add_intensities(GRI, "305-4", "GHG emissions intensity", ghg, ghg_formula)

    b.add(HKEX, "A1.2", "scope1", "Direct (Scope 1) GHG emissions", scope1, 2, "GRI 305-1 total")
    name = f"Energy indirect (Scope 2, {basis}-based) GHG emissions"
    b.add(HKEX, "A1.2", "scope2", name, scope2, 2, f"GRI 305-2 {basis}")
    b.add(HKEX, "A1.2", "total", "Scope 1 and Scope 2 GHG emissions", ghg, 2, ghg_formula)
    b.add_intensities(HKEX, "A1.2", "GHG emissions", ghg, ghg_formula)
    return _Ghg(scope1=scope1, location=location, market=market)


def _hkex_energy_water(
    b: ReportBuilder, gas_gj: Term, grid: Term, pv: Term, consumed_m3: Term
) -> None:
    """HKEX A2.1 energy by type in '000 kWh and A2.2 water consumption in m3, with intensities."""
    gas = convert(gas_gj, lambda gj: gj / 3.6, KWH_000)  # 1 MWh = 3.6 GJ
    grid_000 = convert(grid, kwh_to_mwh, KWH_000)
    pv_000 = convert(pv, kwh_to_mwh, KWH_000)
    energy = total(KWH_000, gas, grid_000, pv_000)
    energy_formula = "(natural gas + purchased electricity + on-site PV) ['000 kWh]"
    rows = (
        ("direct/natural_gas", "Direct energy: natural gas", gas, f"{_gas_formula(b)} ÷ 3.6"),
        (
            "indirect/purchased_electricity",
            "Indirect energy: purchased electricity",
            grid_000,
            "grid [kWh] ÷ 1000",
        ),
        ("direct/onsite_pv", "Direct energy: on-site PV consumed", pv_000, "PV [kWh] ÷ 1000"),
        ("total", "Total energy consumption", energy, energy_formula),
    )
    for item, name, t, formula in rows:
        b.add(HKEX, "A2.1", item, name, t, 2, formula)
    b.add_intensities(HKEX, "A2.1", "Energy consumption", energy, "A2.1 total ['000 kWh]")
    water_formula = "(withdrawal − discharge) [m3]"
    b.add(HKEX, "A2.2", "total", "Total water consumption", consumed_m3, 0, water_formula)
    b.add_intensities(HKEX, "A2.2", "Water consumption", consumed_m3, water_formula)


def _tltia(b: ReportBuilder, gas_m3: Term, location: Term, withdrawal_m3: Term) -> None:
    """T/LTIA 27-2024 formula indicators; meter totals are end value − start value (EV − SV)."""
    inp = b.inputs
    tecp = raw("production electricity", inp.production_electricity_kwh or absent("TECP"), "kWh")
    teco = raw("office electricity", inp.office_electricity_kwh or absent("TECO"), "kWh")
    wc = raw("production water", inp.production_water_m3 or absent("WC"), "m3")
    recycled_m3 = raw("recycled water", inp.water_recycled_m3, "m3")
    b.add(TLTIA, "TECP", "", "Production electricity consumption", tecp, 0, "EV − SV [kWh]")
    b.add(TLTIA, "TECO", "", "Office electricity consumption", teco, 0, "EV − SV [kWh]")
    b.add(TLTIA, "TNGC", "", "Natural gas consumption", gas_m3, 0, "EV − SV [m3]")
    epe_formula = "PE [MWh] × CEFE [tCO2/MWh]"
    name = "Emissions from purchased electricity"
    b.add(TLTIA, "EPE", "", name, location, 2, epe_formula, unit="tCO2")
    b.add(TLTIA, "WC", "", "Production water consumption", wc, 0, "EV − SV [m3]")
    rate = water_recycling_rate(b.figure(withdrawal_m3), b.figure(recycled_m3))
    wrr = b.derived(rate, withdrawal_m3, recycled_m3)
    b.add(TLTIA, "WRR", "", "Water recycling rate", wrr, 2, "RWV / (FWV + RWV) × 100")
    # output value in 10^4 CNY, or in 10^6 CNY when only that was supplied
    tov_kind = Denominator.OUTPUT_VALUE_10K_CNY
    if tov_kind not in inp.denominators and Denominator.OUTPUT_VALUE_1M_CNY in inp.denominators:
        tov_kind = Denominator.OUTPUT_VALUE_1M_CNY
    tov = b.denominator(tov_kind)
    ratio = b.derived(ecovrp(b.figure(tov), b.figure(tecp)), tov, tecp)
    name = "Output value per kWh of production electricity"
    b.add(TLTIA, "ECOVRP", "", name, ratio, INTENSITY_DECIMALS, "TOV / TECP")
