"""Small plant models for tests and benchmarks: one site "s" with one utility area "u"."""

from __future__ import annotations

from typing import Any

from compute.plant import Plant, parse_plant


def one_site(meters: list[dict[str, Any]], *, timezone: str = "UTC") -> Plant:
    """A plant of the given meters (with site "s", area "u") in a single site."""
    site = {"id": "s", "name": "S", "timezone": timezone, "areas": [{"id": "u", "kind": "utility"}]}
    return parse_plant({"sites": [site], "meters": meters})


def meter(meter_id: str, protocol: str, endpoint: str, channels: list[Any], **extra: Any) -> Any:
    """A meter of site "s", area "u"."""
    return {
        "id": meter_id,
        "site": "s",
        "area": "u",
        "protocol": protocol,
        "endpoint": endpoint,
        "channels": channels,
        **extra,
    }


def gauge(channel_id: str, **extra: Any) -> dict[str, Any]:
    """A unitless environment gauge; `extra` adds node_id, register, sampling and the like."""
    return {"id": channel_id, "unit": "x", "kind": "gauge", "utility": "environment", **extra}
