"""OpenTelemetry metrics for a `QueryMonitor` (the ``otel`` extra).

Observable instruments read a snapshot when the SDK collects, so the hot path pays nothing
for them: query, slow-query and error counts, the slow share, and p50/p95/p99 latency of
the ``top`` fingerprints by total time (attribute ``db.query.fingerprint_id``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from phoenixkit._optional import require

if TYPE_CHECKING:
    from phoenixkit.querymon.monitor import QueryMonitor

__all__ = ["register_otel_metrics"]


def register_otel_metrics(
    monitor: QueryMonitor, meter_provider: Any = None, *, top: int = 20
) -> Any:
    """Register observable instruments for ``monitor`` on ``meter_provider`` (default: the
    global one); returns the meter."""
    metrics = require("opentelemetry.metrics", extra="otel", feature="OpenTelemetry metrics")
    meter = (meter_provider or metrics.get_meter_provider()).get_meter("phoenixkit.querymon")
    Observation = metrics.Observation

    def totals(options: Any) -> Iterable[Any]:
        o = monitor.snapshot().overall
        return [Observation(o.count)]

    def slow(options: Any) -> Iterable[Any]:
        return [Observation(monitor.snapshot().overall.slow)]

    def errors(options: Any) -> Iterable[Any]:
        return [Observation(monitor.snapshot().overall.errors)]

    def share(options: Any) -> Iterable[Any]:
        return [Observation(monitor.snapshot().slow_share)]

    def latency(options: Any) -> Iterable[Any]:
        out = []
        for q in monitor.snapshot().queries[:top]:
            for name, ms in (("p50", q.p50_ms), ("p95", q.p95_ms), ("p99", q.p99_ms)):
                attrs = {"db.query.fingerprint_id": q.id, "quantile": name}
                out.append(Observation(ms / 1000, attrs))
        return out

    meter.create_observable_counter("phoenixkit.querymon.queries", [totals], unit="{query}")
    meter.create_observable_counter("phoenixkit.querymon.slow_queries", [slow], unit="{query}")
    meter.create_observable_counter("phoenixkit.querymon.errors", [errors], unit="{query}")
    meter.create_observable_gauge("phoenixkit.querymon.slow_share", [share], unit="1")
    meter.create_observable_gauge("phoenixkit.querymon.latency", [latency], unit="s")
    return meter
