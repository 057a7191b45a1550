"""Plain ASGI middleware and small ASGI apps: no framework is imported.

```
app = RateLimitMiddleware(app, limiter, key=None, trusted_proxies=())  # client address
app = CorrelationIdMiddleware(TimingMiddleware(app))
app = GZipMiddleware(ETagMiddleware(app))
```

Each middleware wraps any ASGI 3 app (Starlette, FastAPI, Django's ASGI handler, a bare
callable). Non-HTTP scopes (lifespan, websocket) pass through untouched, except that
`CorrelationIdMiddleware` also gives websocket connections an id. The decisions (client address
behind proxies, ETag matching, encodings, rate-limit headers) live in
``phoenixkit.integrations._http``, shared with the WSGI twins in `phoenixkit.integrations.wsgi`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from phoenixkit.errors import ConfigurationError
from phoenixkit.integrations import _body, _cache, _http
from phoenixkit.integrations._asgi_io import (
    MAX_BUFFER,
    ASGIApp,
    Message,
    RawHeaders,
    Receive,
    Scope,
    Send,
    _adding,
    _buffered,
    _request_headers,
    _respond,
)
from phoenixkit.integrations._http import (
    BadRequest,
    Headers,
    KeyFunc,
    RequestInfo,
    TierFunc,
    api_key_header,
    client_key,
)
from phoenixkit.masking.correlation import (
    correlation_id_from_headers,
    new_correlation_id,
    reset_correlation_id,
    set_correlation_id,
)

__all__ = [
    "ASGIApp",
    "BadRequest",
    "CorrelationIdMiddleware",
    "ETagMiddleware",
    "GZipMiddleware",
    "RateLimitMiddleware",
    "Receive",
    "RequestInfo",
    "ResponseCacheMiddleware",
    "Scope",
    "Send",
    "TimingMiddleware",
    "api_key_header",
    "client_key",
    "health_app",
    "metrics_app",
    "request_info",
]


def request_info(scope: Scope, trusted: tuple[_http.IPNetwork, ...] = ()) -> RequestInfo:
    """The `RequestInfo` of an HTTP scope (client address resolved behind ``trusted``)."""
    client = scope.get("client")
    return RequestInfo(
        str(scope.get("method", "GET")),
        str(scope.get("path", "/")),
        str(client[0]) if client else None,
        lambda: _request_headers(scope),
        trusted,
    )


_ID_NAMES = frozenset((b"x-request-id", b"x-correlation-id", b"traceparent"))


def _incoming_id(raw: Any) -> str | None:
    """`correlation_id_from_headers` of the scope's headers, without its general walk when no
    entry can matter: a list of ``(bytes, bytes)`` pairs (what servers send) with none of
    the id headers (the common case) has no id. Anything else takes the general path."""
    if raw.__class__ is list:
        for entry in raw:
            if entry.__class__ is not tuple or len(entry) != 2 or entry[0].__class__ is not bytes:
                return correlation_id_from_headers(raw)
            name = entry[0].lower()
            if name in _ID_NAMES or name.startswith(b"http_"):
                return correlation_id_from_headers(raw)
        return None
    return correlation_id_from_headers(raw)


class CorrelationIdMiddleware:
    """Give every request a correlation id and echo it in ``header`` on the response.

    The id is the request's valid ``X-Request-ID`` / ``X-Correlation-ID`` / ``traceparent``
    trace id (through `phoenixkit.masking.correlation`), else a new one; it is set in the
    context variable for the request, so log records (``CorrelationIdFilter``) carry it.
    """

    def __init__(self, app: ASGIApp, *, header: str = "X-Request-ID") -> None:
        self.app = app
        self.header = header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        name = self.header
        cid = _incoming_id(scope.get("headers") or [])
        if cid is None:
            cid = new_correlation_id()
        token = set_correlation_id(cid)  # what `correlation_scope` does, without a generator
        try:
            raw = cid.encode("ascii")

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    kept = [h for h in message.get("headers", ()) if h[0].lower() != name]
                    kept.append((name, raw))
                    message = {**message, "headers": kept}
                await send(message)

            await self.app(scope, receive, send_with_id)
        finally:
            reset_correlation_id(token)


class TimingMiddleware:
    """``Server-Timing: app;dur=<ms>`` and ``X-Response-Time: <ms>ms`` (time to first byte)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        await self.app(scope, receive, _adding(send, lambda: _http.timing_headers(started)))


class RateLimitMiddleware(_http.RateLimitSettings):
    """Rate-limit requests with a `RateLimiter` or `TieredRateLimiter` (async calls only).

    ``key(info) -> str | None``: the limiter key (default: the client address; see
    `api_key_header`); None means the request is not limited. ``trusted_proxies``: addresses
    or networks whose ``Forwarded`` / ``X-Forwarded-For`` is believed; from any other peer
    those headers are ignored. ``tier(info)`` picks the tier of a `TieredRateLimiter`.
    ``exempt``: paths never limited (``"/static/*"`` for a prefix). Denials get 429 with
    ``Retry-After`` and the rate-limit headers; allowed responses get the headers too
    (``headers=False`` turns that off). A malformed API key header gets 400.
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: Any,
        key: KeyFunc | None = None,
        trusted_proxies: Iterable[str] = (),
        *,
        tier: TierFunc | None = None,
        exempt: Iterable[str] = (),
        cost: int = 1,
        headers: bool = True,
        ietf: bool = True,
        legacy: bool = True,
    ) -> None:
        super().__init__(
            limiter, key, trusted_proxies, tier=tier, exempt=exempt, cost=cost,
            headers=headers, ietf=ietf, legacy=legacy,
        )  # fmt: skip
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _http.is_exempt(scope["path"], self.exact, self.prefixes):
            await self.app(scope, receive, send)
            return
        if self.key is client_key and self.tier is None and not self.trusted:
            client = scope.get("client")  # `client_key(request_info(scope))`, without the object
            key: str | None = (str(client[0]) if client else None) or "unknown"
            tier = None
        else:
            info = request_info(scope, self.trusted)
            try:
                key = self.key(info)
                tier = self.tier(info) if self.tier is not None else None
            except BadRequest:
                await _respond(send, 400, _http.BAD_REQUEST, [])
                return
        if key is None:
            await self.app(scope, receive, send)
            return
        if tier is None:
            decision = await self.limiter.ahit(key, cost=self.cost)
        else:
            decision = await self.limiter.ahit(key, tier=tier, cost=self.cost)
        policy, rate = self.rate_of(key, tier)
        extra = _http.decision_headers(decision, rate, policy, ietf=self.ietf, legacy=self.legacy)
        if not decision.allowed:
            await _respond(send, 429, _http.TOO_MANY, extra)
        elif self.headers:
            await self.app(scope, receive, _adding(send, lambda: extra))
        else:
            await self.app(scope, receive, send)


class ETagMiddleware:
    """An ETag on GET 200 responses (BLAKE2b of the body; ``weak`` by default) and 304 Not
    Modified when ``If-None-Match`` matches. An ETag set by the app is kept."""

    def __init__(self, app: ASGIApp, *, weak: bool = True, max_size: int = MAX_BUFFER) -> None:
        self.app = app
        self.weak = weak
        self.max_size = max_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        request = _request_headers(scope)
        weak = self.weak

        def transform(status: int, headers: Headers, body: bytes) -> Any:
            return _body.etag_response("GET", request, status, headers, body, weak)

        def plain(status: int, raw: RawHeaders, body: bytes) -> Any:
            return _body.etag_plain(request, status, raw, body, weak)

        await _buffered(self.app, scope, receive, send, transform, self.max_size, plain=plain)


class GZipMiddleware:
    """Compress responses of at least ``minimum_size`` bytes (1 KiB) for clients that accept
    it: gzip, and br / zstd when ``brotli`` / ``zstandard`` are installed. Adds
    ``Vary: Accept-Encoding``. Already-encoded, media and event-stream responses pass."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        minimum_size: int = _body.GZIP_MIN_SIZE,
        encodings: Iterable[str] | None = None,
        max_size: int = MAX_BUFFER,
    ) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.encodings = tuple(_body.COMPRESSORS if encodings is None else encodings)
        unknown = set(self.encodings) - set(_body.COMPRESSORS)
        if unknown:
            raise ConfigurationError(f"encodings not available here: {sorted(unknown)}")
        self.max_size = max_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") == "HEAD":
            await self.app(scope, receive, send)
            return
        request = _request_headers(scope)

        def transform(status: int, headers: Headers, body: bytes) -> Any:
            return _body.compress_response(
                request, status, headers, body, self.minimum_size, self.encodings
            )

        def early(status: int, headers: Headers) -> Headers | None:
            return _body.compress_plan(request, status, headers, self.minimum_size, self.encodings)

        def plain_early(status: int, raw: RawHeaders) -> Any:
            return _body.compress_plan_plain(
                request, status, raw, self.minimum_size, self.encodings
            )

        await _buffered(
            self.app, scope, receive, send, transform, self.max_size, early, plain_early
        )


class ResponseCacheMiddleware:
    """Serve repeated GETs from a `TieredCache` (async calls only).

    Only 200 responses are stored, for ``ttl`` seconds unless ``Cache-Control`` says
    ``max-age`` / ``s-maxage``; ``no-store``, ``private``, ``no-cache``, ``Set-Cookie`` and
    ``Vary: *`` responses are never stored; requests with ``Authorization`` or a request
    ``Cache-Control: no-cache`` / ``no-store`` skip the cache. Entries are keyed by path,
    query and the request's values of the response's ``Vary`` headers (plus ``vary``).
    Responses get ``X-Cache: HIT`` (with ``Age``) or ``MISS``.
    """

    def __init__(
        self,
        app: ASGIApp,
        cache: Any,
        *,
        ttl: float = 60.0,
        vary: Iterable[str] = (),
        prefix: str = "http",
        max_size: int = MAX_BUFFER,
    ) -> None:
        self.app = app
        self.cache = cache
        self.ttl = ttl
        self.vary = tuple(vary)
        self.prefix = prefix
        self.max_size = max_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = _request_headers(scope) if scope["type"] == "http" else {}
        if scope["type"] != "http" or not _cache.lookup_allowed(scope["method"], request):
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        base = _cache.base_key(self.prefix, scope["path"], query)
        names = await self.cache.aget(base)
        if isinstance(names, list):
            found = _cache.decode_entry(
                await self.cache.aget(_cache.variant_key(base, names, request))
            )
            if found is not None:
                status, headers, body = found
                await _respond(send, status, body, _body.with_length(headers, body), None)
                return

        async def store(status: int, headers: Headers, body: bytes) -> Any:
            plan = _cache.store_plan(status, headers, self.ttl, self.vary)
            if plan is not None:
                ttl, vary = plan
                entry = _cache.encode_entry(status, headers, body)
                await self.cache.aset(base, vary, ttl=ttl)
                await self.cache.aset(_cache.variant_key(base, vary, request), entry, ttl=ttl)
            return status, [*headers, ("X-Cache", "MISS")], body

        await _buffered(self.app, scope, receive, send, store, self.max_size)


class _HealthApp:
    def __init__(self, checks: Mapping[str, Callable[[], Any]]) -> None:
        self.checks = dict(checks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        results: dict[str, bool] = {}
        for name, check in self.checks.items():
            try:
                result = check()
                if isinstance(result, Awaitable):
                    result = await result
                results[name] = bool(result)
            except Exception:
                results[name] = False
        status, body = _http.health_body(results)
        await _respond(send, status, body, [("Cache-Control", "no-store")])


class _MetricsApp:
    def __init__(self, render: Callable[[], str]) -> None:
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = self.render().encode()
        await _respond(send, 200, body, [("Cache-Control", "no-store")], _http.PROMETHEUS_TYPE)


def health_app(checks: Mapping[str, Callable[[], Any]] | None = None) -> ASGIApp:
    """An ASGI app answering ``{"status": "ok", "checks": {...}}`` (200) or 503 when a check
    returns false or raises. A check is a callable returning a bool or an awaitable bool.

    The app is an object, not a function, so Starlette / FastAPI routes (``app.add_route``)
    treat it as an ASGI app.
    """
    return _HealthApp(checks or {})


def metrics_app(render: Callable[[], str]) -> ASGIApp:
    """An ASGI app serving ``render()`` as Prometheus text (e.g. ``exporter.render``)."""
    return _MetricsApp(render)
