"""A plain ASGI app (no framework) behind the whole phoenixkit middleware stack.

Run: ``python examples/asgi_app.py`` then ``curl -i http://127.0.0.1:8000/hello``.
Needs ``pip install 'phoenixkit[asgi]'`` (uvicorn) to serve; the app itself imports nothing.
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

limiter = RateLimiter("20/minute", name="api")
cache = TieredCache(MemoryTier(maxsize=1000, ttl=60), namespace="example-http")
exporter = PrometheusExporter(limiter, cache)
health = health_app({"cache": lambda: True})
metrics = exporter.asgi_app()


async def endpoint(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/health":
        await health(scope, receive, send)
        return
    if scope["path"] == "/metrics":
        await metrics(scope, receive, send)
        return
    if scope["path"] == "/hello":
        data = {"hello": "world", "request_id": get_correlation_id()}
        status, body = 200, json.dumps(data).encode()
    elif scope["path"] == "/report":
        status, body = 200, json.dumps({"rows": list(range(500))}).encode()
    else:
        status, body = 404, b'{"error": "not found"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def build(app: Any = endpoint) -> Any:
    """The stack, outermost first: ids and timing, limits, compression, validators, cache."""
    app = ResponseCacheMiddleware(app, cache, ttl=30)
    app = ETagMiddleware(app)
    app = GZipMiddleware(app)
    app = RateLimitMiddleware(app, limiter, trusted_proxies=(), exempt=["/health", "/metrics"])
    return CorrelationIdMiddleware(TimingMiddleware(app))


app = build()

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000, proxy_headers=False)
