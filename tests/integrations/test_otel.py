"""OpenTelemetry metrics from stats(), read back through the SDK's in-memory reader."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from phoenixkit.breaker import CircuitBreaker
from phoenixkit.cache import MemoryTier, TieredCache
from phoenixkit.errors import ConfigurationError
from phoenixkit.integrations.otel import register_metrics
from phoenixkit.querymon import QueryMonitor
from phoenixkit.ratelimit import RateLimiter, TieredRateLimiter


def _points(reader: InMemoryMetricReader) -> dict[str, dict[tuple[tuple[str, Any], ...], Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    out: dict[str, dict[tuple[tuple[str, Any], ...], Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = tuple(sorted((point.attributes or {}).items()))
                    out.setdefault(metric.name, {})[key] = point.value
    return out


def test_stats_become_observable_counters_and_gauges() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    cache = TieredCache(MemoryTier(maxsize=10, ttl=60), namespace="otel")
    limiter = RateLimiter("1/minute", name="otel-api")
    tiers = TieredRateLimiter({"free": "1/minute"}, default_tier="free", name="otel-tiers")
    breaker = CircuitBreaker("otel-payments")
    instruments = register_metrics(
        cache, limiter, tiers, breaker, meter=provider.get_meter("test"), max_age=0
    )
    cache.get("missing")
    limiter.hit("k")
    limiter.hit("k")
    tiers.hit("x")  # by_tier was empty at registration: its instruments exist all the same
    points = _points(reader)
    provider.shutdown()
    assert "phoenixkit_ratelimit_tier_allowed" in {i.name for i in instruments}
    assert points["phoenixkit_cache_misses"][(("name", "otel"),)] == 1
    assert points["phoenixkit_ratelimit_denied"][(("name", "otel-api"),)] == 1
    assert (
        points["phoenixkit_ratelimit_tier_allowed"][(("name", "otel-tiers"), ("tier", "free"))] == 1
    )
    assert points["phoenixkit_breaker_state"][(("name", "otel-payments"), ("state", "closed"))] == 1
    assert points["phoenixkit_cache_hit_ratio"][(("name", "otel"),)] == 0.0


def test_sources_without_stats_are_refused() -> None:
    provider = MeterProvider()
    with pytest.raises(ConfigurationError, match="no stats"):
        register_metrics(QueryMonitor(), meter=provider.get_meter("test"))
    provider.shutdown()
