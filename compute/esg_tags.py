"""ESG tags of the plant model: what a counter stands for in ESG reports where its utility and
place alone do not say (on-site PV, water discharge, a withdrawal's source). Pure validation.
"""

from __future__ import annotations

import enum

from compute.esg_model import WaterSource


class EsgRole(enum.StrEnum):
    """A counter's role in ESG reports. Untagged, a root meter's electricity counter is grid
    electricity, its water counter third-party withdrawal and its recycled_water counter
    recycled water."""

    GRID = "grid"  # purchased grid electricity (PE)
    ONSITE_PV = "onsite_pv"  # on-site PV consumed on site: renewable, no Scope 2
    WITHDRAWAL = "withdrawal"  # fresh water taken in (FWV), from `water_source`
    DISCHARGE = "discharge"  # water discharged (GRI 303-4)
    RECYCLED = "recycled"  # recycled water used (RWV)
    NONE = "none"  # in no ESG figure (a test bench, a tenant's supply)


_UTILITIES = {  # the utilities (values of compute.plant.Utility) each role fits
    EsgRole.GRID: ("electricity",),
    EsgRole.ONSITE_PV: ("electricity",),
    EsgRole.WITHDRAWAL: ("water",),
    EsgRole.DISCHARGE: ("water",),
    EsgRole.RECYCLED: ("water", "recycled_water"),
}


def esg_tag_issues(
    utility: str, is_counter: bool, role: EsgRole | None, source: WaterSource | None
) -> list[tuple[str, str]]:
    """(field, message) for each way a channel's ESG tags do not fit it."""
    issues = []
    if (role is not None or source is not None) and not is_counter:
        issues.append(("esg", "only counters have ESG tags"))
    fitting = _UTILITIES.get(role) if role is not None else None
    if role is not None and fitting is not None and utility not in fitting:
        issues.append(
            ("esg", f"{role.value!r} fits {' or '.join(fitting)} counters, not {utility}")
        )
    withdrawal = role is EsgRole.WITHDRAWAL or (role is None and utility == "water")
    if source is not None and not withdrawal:
        issues.append(("water_source", "only a water withdrawal counter has a water source"))
    return issues
