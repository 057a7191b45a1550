"""Health and metrics apps, and the Prometheus exporter, through a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from phoenixkit.breaker import CircuitBreaker
from phoenixkit.cache import MemoryTier, TieredCache
from phoenixkit.errors import ConfigurationError
from phoenixkit.integrations import asgi, wsgi
from phoenixkit.integrations.prometheus import PrometheusExporter, render_stats
from phoenixkit.querymon import QueryMonitor
from phoenixkit.ratelimit import RateLimiter, TieredRateLimiter
from tests.integrations.servers import serve_asgi, serve_wsgi


def _boom() -> bool:
    raise RuntimeError("database down")


async def _async_ok() -> bool:
    await asyncio.sleep(0)
    return True


def test_asgi_health_app() -> None:
    with serve_asgi(asgi.health_app({"db": lambda: True, "cache": _async_ok})) as url:
        ok = httpx.get(f"{url}/health")
    with serve_asgi(asgi.health_app({"db": _boom, "cache": lambda: True})) as url:
        failing = httpx.get(f"{url}/health")
    assert ok.status_code == 200
    assert ok.json() == {"status": "ok", "checks": {"db": True, "cache": True}}
    assert failing.status_code == 503
    assert failing.json() == {"status": "fail", "checks": {"db": False, "cache": True}}
    assert failing.headers["cache-control"] == "no-store"


def test_wsgi_health_app() -> None:
    with serve_wsgi(wsgi.health_app({"db": lambda: False})) as url:
        r = httpx.get(f"{url}/health")
    with serve_wsgi(wsgi.health_app()) as url:
        empty = httpx.get(f"{url}/")
    assert r.status_code == 503
    assert r.json()["checks"] == {"db": False}
    assert empty.json() == {"status": "ok", "checks": {}}


def _sources() -> list[Any]:
    cache = TieredCache(MemoryTier(maxsize=10, ttl=60), namespace="shop")
    cache.set("a", 1)
    cache.get("a")
    cache.get("missing")
    limiter = RateLimiter("1/minute", name="api")
    limiter.hit("k")
    limiter.hit("k")
    tiers = TieredRateLimiter({"free": "1/minute"}, default_tier="free")
    tiers.hit("x")
    breaker = CircuitBreaker("payments")
    breaker.call(lambda: 1)
    return [cache, limiter, tiers, breaker, QueryMonitor()]


def _values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_metrics_endpoint_serves_every_module(kind: str) -> None:
    exporter = PrometheusExporter(*_sources())
    server = serve_asgi(exporter.asgi_app()) if kind == "asgi" else serve_wsgi(exporter.wsgi_app())
    with server as url:
        r = httpx.get(f"{url}/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    values = _values(r.text)  # prometheus_client's own parser accepts it
    assert values[("phoenixkit_cache_hits_total", (("name", "shop"),))] == 1
    assert values[("phoenixkit_cache_hit_ratio", (("name", "shop"),))] == 0.5
    assert values[("phoenixkit_cache_tier_hits_total", (("name", "shop"), ("tier", "l1")))] == 1
    assert values[("phoenixkit_ratelimit_allowed_total", (("name", "api"),))] == 1
    assert values[("phoenixkit_ratelimit_denied_total", (("name", "api"),))] == 1
    assert values[("phoenixkit_ratelimit_degraded", (("name", "api"),))] == 0
    tier_key = (("name", "tiers"), ("tier", "free"))
    assert values[("phoenixkit_ratelimit_tier_allowed_total", tier_key)] == 1
    assert values[("phoenixkit_breaker_calls_total", (("name", "payments"),))] == 1
    assert values[("phoenixkit_breaker_state", (("name", "payments"), ("state", "closed")))] == 1
    assert values[("phoenixkit_breaker_state", (("name", "payments"), ("state", "open")))] == 0
    assert ("phoenixkit_querymon_slow_queries_total", ()) in values
    assert "top_offenders" not in r.text
    assert '"k"' not in r.text  # limiter keys are not labels


def test_label_values_are_escaped_and_latency_is_in_seconds() -> None:
    cache = TieredCache(MemoryTier(maxsize=10, ttl=60), namespace="a.b-c")
    text = render_stats(cache.stats())
    assert "# TYPE phoenixkit_cache_tier_latency_p50_seconds gauge" in text
    assert "# TYPE phoenixkit_cache_tier_latency_count gauge" in text
    assert 'name="a.b-c"' in text
    limiter = RateLimiter("1/minute")
    stats = limiter.stats()
    import dataclasses

    odd = dataclasses.replace(stats, name='we"ird\\name\n')
    assert 'name="we\\"ird\\\\name\\n"' in render_stats(odd)
    assert _values(render_stats(odd))


def test_register_adds_the_metrics_to_a_prometheus_client_registry() -> None:
    registry = CollectorRegistry()
    PrometheusExporter(*_sources()).register(registry)
    text = generate_latest(registry).decode()
    values = _values(text)
    assert values[("phoenixkit_ratelimit_denied_total", (("name", "api"),))] == 1
    assert values[("phoenixkit_cache_misses_total", (("name", "shop"),))] == 1


def test_sources_without_stats_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="no stats"):
        PrometheusExporter(object())
    with pytest.raises(ConfigurationError, match="not a phoenixkit stats class"):
        render_stats(object())
