"""Framework integrations: plain ASGI / WSGI middleware, adapters and exporters.

Import the submodule you need; nothing here imports a framework:

- `phoenixkit.integrations.asgi`: CorrelationIdMiddleware, TimingMiddleware,
  RateLimitMiddleware, ETagMiddleware, GZipMiddleware, ResponseCacheMiddleware (on a
  `TieredCache`), health and metrics apps.
- `phoenixkit.integrations.wsgi`: their WSGI twins.
- `phoenixkit.integrations.prometheus`: every module's ``stats()`` as Prometheus text.
- `phoenixkit.integrations.otel`: the same metrics as OpenTelemetry observable instruments.
- `phoenixkit.integrations.tracing`: OpenTelemetry spans around cache, rate limiter,
  breaker, batch and replica-routing operations (`instrument_tracing()`).
- `phoenixkit.integrations.admin`: a cache admin app (stats, invalidation), ASGI and WSGI.
- `phoenixkit.integrations.fastapi`, `.flask`, `.django`: framework adapters (each behind
  its extra).
"""

from __future__ import annotations

__all__: list[str] = []
