"""The example service behind ``python -m phoenixkit demo --serve``: a plain ASGI app (no
framework) behind the whole middleware stack, on embedded defaults.

``/hello`` answers JSON with the request's correlation id; ``/report`` a larger body
(gzip, ETag); ``/health``; ``/metrics`` (Prometheus text for the limiter and the cache).
"""

from __future__ import annotations

import json
from typing import Any

from phoenixkit.cache import MemoryTier, TieredCache
from phoenixkit.integrations.asgi import (
    CorrelationIdMiddleware,
    ETagMiddleware,
    GZipMiddleware,
    RateLimitMiddleware,
    ResponseCacheMiddleware,
    TimingMiddleware,
    health_app,
)
from phoenixkit.integrations.prometheus import PrometheusExporter
from phoenixkit.masking.correlation import get_correlation_id
from phoenixkit.ratelimit import RateLimiter

__all__ = ["build_app"]


def build_app() -> Any:
    """A fresh app: its own limiter (60 requests a minute per client) and cache."""
    limiter = RateLimiter("60/minute", name="demo-serve", backend="memory://demo-serve")
    cache = TieredCache(MemoryTier(maxsize=1000, ttl=60), namespace="demo-serve")
    health = health_app({"cache": lambda: True})
    metrics = PrometheusExporter(limiter, cache).asgi_app()

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/health":
            await health(scope, receive, send)
            return
        if path == "/metrics":
            await metrics(scope, receive, send)
            return
        data: dict[str, Any]
        if path in ("/", "/hello"):
            status, data = 200, {"hello": "world", "request_id": get_correlation_id()}
        elif path == "/report":
            status, data = 200, {"rows": list(range(500))}
        else:
            status, data = 404, {"error": "not found"}
        body = json.dumps(data).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    app: Any = ResponseCacheMiddleware(endpoint, cache, ttl=30)
    app = GZipMiddleware(ETagMiddleware(app))
    app = RateLimitMiddleware(app, limiter, trusted_proxies=(), exempt=["/health", "/metrics"])
    return CorrelationIdMiddleware(TimingMiddleware(app))
