"""WSGI (PEP 3333) twins of `phoenixkit.integrations.asgi`: same options, same decisions.

```
app = RateLimitMiddleware(app, limiter, key=None, trusted_proxies=())
app = CorrelationIdMiddleware(TimingMiddleware(app))
app = GZipMiddleware(ETagMiddleware(app))
```

The decisions come from ``phoenixkit.integrations._http``, shared with the ASGI middleware;
this module only reads the environ and wraps ``start_response`` and the response iterable
(whose ``close()`` is always called, as PEP 3333 requires).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from phoenixkit.errors import ConfigurationError
from phoenixkit.integrations import _body, _cache, _http
from phoenixkit.integrations._http import (
    BadRequest,
    Headers,
    KeyFunc,
    RequestInfo,
    TierFunc,
    api_key_header,
    client_key,
)
from phoenixkit.integrations._wsgi_io import (
    MAX_BUFFER,
    Environ,
    ExcInfo,
    StartResponse,
    WSGIApp,
    _adding,
    _buffered,
    _Closing,
    _request_headers,
    _respond,
    _status_line,
)
from phoenixkit.masking.correlation import (
    correlation_id_from_headers,
    new_correlation_id,
    reset_correlation_id,
    set_correlation_id,
)

__all__ = [
    "BadRequest",
    "CorrelationIdMiddleware",
    "ETagMiddleware",
    "Environ",
    "GZipMiddleware",
    "RateLimitMiddleware",
    "RequestInfo",
    "ResponseCacheMiddleware",
    "StartResponse",
    "TimingMiddleware",
    "WSGIApp",
    "api_key_header",
    "client_key",
    "health_app",
    "metrics_app",
    "request_info",
]


def request_info(environ: Environ, trusted: tuple[_http.IPNetwork, ...] = ()) -> RequestInfo:
    """The `RequestInfo` of a WSGI environ (client address resolved behind ``trusted``)."""
    return RequestInfo(
        str(environ.get("REQUEST_METHOD", "GET")),
        str(environ.get("PATH_INFO", "/") or "/"),
        environ.get("REMOTE_ADDR") or None,
        lambda: _request_headers(environ),
        trusted,
    )


class CorrelationIdMiddleware:
    """Give every request a correlation id and echo it in ``header`` (see the ASGI twin).

    The id is set for the app call and for each step of its response iterable, and stored in
    ``environ["phoenixkit.correlation_id"]``.
    """

    def __init__(self, app: WSGIApp, *, header: str = "X-Request-ID") -> None:
        self.app = app
        self.header = header

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        cid = correlation_id_from_headers(environ) or new_correlation_id()
        environ["phoenixkit.correlation_id"] = cid
        lower = self.header.lower()

        def with_id(status: str, headers: Headers, exc_info: ExcInfo = None) -> Any:
            kept = [(k, v) for k, v in headers if k.lower() != lower]
            return start_response(status, [*kept, (self.header, cid)], exc_info)

        token = set_correlation_id(cid)
        try:
            result = self.app(environ, with_id)
            context = contextvars.copy_context()
        finally:
            reset_correlation_id(token)
        return _Closing(iter(result), result, context)


class TimingMiddleware:
    """``Server-Timing`` and ``X-Response-Time``: the time until ``start_response``."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        return self.app(environ, _adding(start_response, lambda: _http.timing_headers(started)))


class RateLimitMiddleware(_http.RateLimitSettings):
    """The WSGI twin of `phoenixkit.integrations.asgi.RateLimitMiddleware` (sync ``hit``)."""

    def __init__(
        self,
        app: WSGIApp,
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

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", "/") or "/")
        if _http.is_exempt(path, self.exact, self.prefixes):
            return self.app(environ, start_response)
        info = request_info(environ, self.trusted)
        try:
            key = self.key(info)
            tier = self.tier(info) if self.tier is not None else None
        except BadRequest:
            return _respond(start_response, 400, _http.BAD_REQUEST, [])
        if key is None:
            return self.app(environ, start_response)
        if tier is None:
            decision = self.limiter.hit(key, cost=self.cost)
        else:
            decision = self.limiter.hit(key, tier=tier, cost=self.cost)
        policy, rate = self.rate_of(key, tier)
        extra = _http.decision_headers(decision, rate, policy, ietf=self.ietf, legacy=self.legacy)
        if not decision.allowed:
            return _respond(start_response, 429, _http.TOO_MANY, extra)
        if self.headers:
            return self.app(environ, _adding(start_response, lambda: extra))
        return self.app(environ, start_response)


class ETagMiddleware:
    """ETag on GET 200 responses and 304 on a matching ``If-None-Match`` (see the ASGI twin)."""

    def __init__(self, app: WSGIApp, *, weak: bool = True, max_size: int = MAX_BUFFER) -> None:
        self.app = app
        self.weak = weak
        self.max_size = max_size

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET":
            return self.app(environ, start_response)
        request = _request_headers(environ)

        def transform(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
            return _body.etag_response("GET", request, status, headers, body, self.weak)

        return _buffered(self.app, environ, start_response, transform, self.max_size)


class GZipMiddleware:
    """Compression of responses of at least ``minimum_size`` bytes (see the ASGI twin)."""

    def __init__(
        self,
        app: WSGIApp,
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

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "HEAD":
            return self.app(environ, start_response)
        request = _request_headers(environ)

        def transform(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
            return _body.compress_response(
                request, status, headers, body, self.minimum_size, self.encodings
            )

        def early(status: int, headers: Headers) -> Headers | None:
            return _body.compress_plan(request, status, headers, self.minimum_size, self.encodings)

        return _buffered(self.app, environ, start_response, transform, self.max_size, early)


class ResponseCacheMiddleware:
    """The WSGI twin of `phoenixkit.integrations.asgi.ResponseCacheMiddleware` (sync calls)."""

    def __init__(
        self,
        app: WSGIApp,
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

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        request = _request_headers(environ)
        if not _cache.lookup_allowed(str(environ.get("REQUEST_METHOD")), request):
            return self.app(environ, start_response)
        path = str(environ.get("PATH_INFO", "/") or "/")
        base = _cache.base_key(self.prefix, path, str(environ.get("QUERY_STRING", "")))
        names = self.cache.get(base)
        if isinstance(names, list):
            found = _cache.decode_entry(self.cache.get(_cache.variant_key(base, names, request)))
            if found is not None:
                status, headers, body = found
                start_response(_status_line(status), _body.with_length(headers, body))
                return [body]

        def store(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
            plan = _cache.store_plan(status, headers, self.ttl, self.vary)
            if plan is not None:
                ttl, vary = plan
                entry = _cache.encode_entry(status, headers, body)
                self.cache.set(base, vary, ttl=ttl)
                self.cache.set(_cache.variant_key(base, vary, request), entry, ttl=ttl)
            return status, [*headers, ("X-Cache", "MISS")], body

        return _buffered(self.app, environ, start_response, store, self.max_size)


def health_app(checks: Mapping[str, Callable[[], Any]] | None = None) -> WSGIApp:
    """The WSGI twin of `phoenixkit.integrations.asgi.health_app` (checks must be sync)."""
    named = dict(checks or {})

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        results: dict[str, bool] = {}
        for name, check in named.items():
            try:
                results[name] = bool(check())
            except Exception:
                results[name] = False
        status, body = _http.health_body(results)
        return _respond(start_response, status, body, [("Cache-Control", "no-store")])

    return app


def metrics_app(render: Callable[[], str]) -> WSGIApp:
    """A WSGI app serving ``render()`` as Prometheus text."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        body = render().encode()
        headers = [("Cache-Control", "no-store")]
        return _respond(start_response, 200, body, headers, _http.PROMETHEUS_TYPE)

    return app
