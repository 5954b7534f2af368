"""Expanding register-map profiles in a loaded plant mapping: a channel's `field` of its meter's
`profile` becomes an ordinary `register` spec before validation. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from compute.modbus_profiles import PROFILES, Profile


def _expand_field(c: dict[str, Any], profile: Profile, base: int) -> dict[str, Any]:
    """The channel with its profile field's register spec; `register` keys given override it."""
    name = c["field"]
    if not isinstance(name, str) or name not in profile.fields:
        known = ", ".join(profile.fields)
        raise ValueError(f"unknown field {name!r} of profile {profile.name!r}; known: {known}")
    spec = profile.fields[name]
    given = c.get("register") or {}
    if not isinstance(given, dict):
        return c  # validation reports the register
    filled = {"unit": spec.unit, "kind": spec.kind}
    if spec.utility is not None:
        filled["utility"] = spec.utility
    return {**filled, **c, "register": {**profile.register(name, base), **given}}


def expand_profiles(data: Mapping[str, Any]) -> tuple[Mapping[str, Any], list[tuple[str, str]]]:
    """Channels naming a `field` of their meter's `profile` get its ordinary `register` spec.

    Returns the expanded mapping and the problems found, as (path, message).
    """
    meters, issues = data.get("meters"), list[tuple[str, str]]()
    if not isinstance(meters, list):
        return data, []
    expanded: list[Any] = []
    for i, m in enumerate(meters):
        if not isinstance(m, dict) or not isinstance(m.get("channels"), list):
            expanded.append(m)
            continue
        name = m.get("profile")
        profile = PROFILES.get(name) if isinstance(name, str) else None
        if name is not None and profile is None:
            known = ", ".join(PROFILES)
            msg = f"unknown profile {name!r}; known: {known}"
            issues.append((f"meters[{i}].profile", msg))
        options = m.get("modbus")
        base = options.get("address_base", 0) if isinstance(options, dict) else 0
        channels: list[Any] = []
        for j, c in enumerate(m["channels"]):
            at = f"meters[{i}].channels[{j}].field"
            if isinstance(c, dict) and c.get("field") is not None:
                if profile is not None:
                    try:
                        c = _expand_field(c, profile, base if base in (0, 1) else 0)
                    except ValueError as e:
                        issues.append((at, str(e)))
                elif name is None:
                    issues.append((at, "the meter names no profile"))
            channels.append(c)
        expanded.append({**m, "channels": channels})
    return {**data, "meters": expanded}, issues
