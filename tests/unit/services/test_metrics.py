"""The metrics registry: counters, gauges read from functions, histograms, the text format."""

from __future__ import annotations

import math

import httpx
import pytest

from services.metrics import MetricsError, Registry
from services.metrics_http import CONTENT_TYPE, metrics_app


def test_the_registry_renders_prometheus_text_format() -> None:
    reg = Registry()
    polls = reg.counter("pp_polls_total", "Polls done")
    errors = reg.counter("pp_errors_total", "Errors by kind", ("kind",))
    depth = [3]
    reg.gauge("pp_depth_batches", "Waiting batches", read=lambda: depth[0])
    latency = reg.histogram("pp_latency_seconds", "Latency", buckets=(0.01, 0.1))
    polls.inc()
    polls.inc(2)
    errors.inc(kind="timeout")
    errors.inc(kind='say "hi"\\\n')
    latency.observe(0.005)
    latency.observe(0.05)
    latency.observe(7.0)
    depth[0] = 5
    assert reg.render() == (
        "# HELP pp_polls_total Polls done\n"
        "# TYPE pp_polls_total counter\n"
        "pp_polls_total 3\n"
        "# HELP pp_errors_total Errors by kind\n"
        "# TYPE pp_errors_total counter\n"
        'pp_errors_total{kind="say \\"hi\\"\\\\\\n"} 1\n'
        'pp_errors_total{kind="timeout"} 1\n'
        "# HELP pp_depth_batches Waiting batches\n"
        "# TYPE pp_depth_batches gauge\n"
        "pp_depth_batches 5\n"
        "# HELP pp_latency_seconds Latency\n"
        "# TYPE pp_latency_seconds histogram\n"
        'pp_latency_seconds_bucket{le="0.01"} 1\n'
        'pp_latency_seconds_bucket{le="0.1"} 2\n'
        'pp_latency_seconds_bucket{le="+Inf"} 3\n'
        "pp_latency_seconds_sum 7.055\n"
        "pp_latency_seconds_count 3\n"
    )


def test_counters_sum_over_labels_and_never_go_down() -> None:
    errors = Registry().counter("pp_errors_total", "Errors", ("kind",))
    errors.inc(kind="bus")
    errors.inc(4, kind="timeout")
    assert (errors.value(kind="timeout"), errors.value(kind="os"), errors.total()) == (4, 0, 5)
    with pytest.raises(MetricsError, match="cannot go down"):
        errors.inc(-1, kind="bus")
    with pytest.raises(MetricsError, match="takes labels"):
        errors.inc(reason="bus")


def test_histogram_mean_and_quantile_bound() -> None:
    h = Registry().histogram("pp_latency_seconds", "Latency", buckets=(0.001, 0.01, 0.1))
    assert math.isnan(h.mean()) and math.isnan(h.quantile(0.5))
    for v in (0.0005,) * 8 + (0.05, 3.0):
        h.observe(v)
    assert h.mean() == pytest.approx((0.004 + 3.05) / 10)
    assert h.quantile(0.5) == 0.001
    assert h.quantile(0.9) == 0.1
    assert h.quantile(1.0) == math.inf


def test_gauges_are_set_or_read_never_both() -> None:
    reg = Registry()
    set_by_owner = reg.gauge("pp_temperature_celsius", "Cabinet temperature")
    set_by_owner.set(21.5)
    assert set_by_owner.value() == 21.5
    read = reg.gauge("pp_depth_batches", "Depth", read=lambda: 7)
    with pytest.raises(MetricsError, match="cannot be set"):
        read.set(1)


def test_names_are_checked_and_declared_once() -> None:
    reg = Registry()
    reg.counter("pp_polls_total", "Polls")
    with pytest.raises(MetricsError, match="twice"):
        reg.gauge("pp_polls_total", "Polls")
    with pytest.raises(MetricsError, match="bad metric name"):
        reg.counter("pp polls", "Polls")
    with pytest.raises(MetricsError, match="bad label name"):
        reg.counter("pp_errors_total", "Errors", ("le",))
    with pytest.raises(MetricsError, match="finite bucket"):
        reg.histogram("pp_latency_seconds", "Latency", buckets=(math.inf,))


async def test_the_registry_is_served_in_the_prometheus_text_format() -> None:
    reg = Registry()
    reg.counter("pp_polls_total", "Polls").inc(3)
    transport = httpx.ASGITransport(app=metrics_app(reg))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        scraped = await client.get("/metrics")
        reg.counter("pp_errors_total", "Errors").inc()
        again = await client.get("/metrics")
        health = await client.get("/healthz")
    assert scraped.headers["content-type"] == CONTENT_TYPE
    assert "pp_polls_total 3" in scraped.text.splitlines()
    assert "pp_errors_total 1" in again.text.splitlines()  # rendered per scrape, not cached
    assert health.json() == {"status": "ok"}
