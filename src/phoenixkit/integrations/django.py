"""Django middleware configured from settings: correlation ids, timing, rate limiting.

```
MIDDLEWARE = ["phoenixkit.integrations.django.PhoenixKitMiddleware", ...]
PHOENIXKIT = {
    "RATE_LIMIT": "100/minute",          # or a RateLimiter / TieredRateLimiter, or a dotted path
    "TRUSTED_PROXIES": ["10.0.0.0/8"],   # believe X-Forwarded-For / Forwarded only from these
    "KEY": None,                         # a callable or dotted path: RequestInfo -> str | None
    "TIER": None,                        # a callable or dotted path: RequestInfo -> str | None
    "EXEMPT": ["/health", "/static/*"],
    "CORRELATION": True, "TIMING": True, "HEADER": "X-Request-ID",
}
```

The middleware works under WSGI (sync ``hit``) and ASGI (``ahit``, never the sync client on
the event loop); the decisions are the other middleware's (``phoenixkit.integrations._http``).
Needs the ``django`` extra.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from phoenixkit.errors import ConfigurationError, MissingDependencyError
from phoenixkit.integrations import _http
from phoenixkit.integrations.wsgi import request_info
from phoenixkit.masking.correlation import (
    correlation_id_from_headers,
    new_correlation_id,
    reset_correlation_id,
    set_correlation_id,
)
from phoenixkit.ratelimit import RateLimiter

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction
    from django.conf import settings as _settings
    from django.http import HttpRequest, HttpResponse
    from django.utils.module_loading import import_string
except ImportError as exc:  # pragma: no cover - the extra is installed in the test env
    raise MissingDependencyError("django", "django", "phoenixkit.integrations.django") from exc

__all__ = ["PhoenixKitMiddleware"]

_KNOWN = frozenset(
    ("CORRELATION", "EXEMPT", "HEADER", "KEY", "RATE_LIMIT", "TIER", "TIMING", "TRUSTED_PROXIES")
)


def _resolve(value: Any) -> Any:
    return import_string(value) if isinstance(value, str) else value


def _limiter(value: Any) -> Any:
    if isinstance(value, str) and "/" in value:
        return RateLimiter(value, name="django")
    return _resolve(value)


class PhoenixKitMiddleware:
    """Reads ``settings.PHOENIXKIT`` once, at start-up (see the module docstring)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        conf: Mapping[str, Any] = getattr(_settings, "PHOENIXKIT", {})
        unknown = set(conf) - _KNOWN
        if unknown:
            raise ConfigurationError(f"unknown PHOENIXKIT settings: {sorted(unknown)}")
        self.limiter = _limiter(conf.get("RATE_LIMIT"))
        self.key: _http.KeyFunc = _resolve(conf.get("KEY")) or _http.client_key
        self.tier: _http.TierFunc | None = _resolve(conf.get("TIER"))
        self.trusted = _http.parse_networks(conf.get("TRUSTED_PROXIES", ()))
        self.exact, self.prefixes = _http.split_exempt(conf.get("EXEMPT", ()))
        self.correlation = bool(conf.get("CORRELATION", True))
        self.timing = bool(conf.get("TIMING", True))
        self.header = str(conf.get("HEADER", "X-Request-ID"))

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        started = time.perf_counter()
        cid, token = self._enter(request)
        try:
            plan = self._plan(request)
            if isinstance(plan, HttpResponse):
                return self._finish(plan, cid, started, [])
            if plan is None:
                return self._finish(self.get_response(request), cid, started, [])
            key, tier = plan
            decision = self.limiter.hit(key, **({"tier": tier} if tier else {}))
            return self._decided(request, decision, key, tier, cid, started, None)
        finally:
            if token is not None:
                reset_correlation_id(token)

    async def __acall__(self, request: HttpRequest) -> Any:
        started = time.perf_counter()
        cid, token = self._enter(request)
        try:
            plan = self._plan(request)
            if isinstance(plan, HttpResponse):
                return self._finish(plan, cid, started, [])
            if plan is None:
                return self._finish(await self.get_response(request), cid, started, [])
            key, tier = plan
            decision = await self.limiter.ahit(key, **({"tier": tier} if tier else {}))
            pending = self._decided(request, decision, key, tier, cid, started, True)
            return await pending if isinstance(pending, Awaitable) else pending
        finally:
            if token is not None:
                with contextlib.suppress(ValueError):
                    reset_correlation_id(token)

    def _enter(self, request: HttpRequest) -> tuple[str | None, Any]:
        if not self.correlation:
            return None, None
        cid = correlation_id_from_headers(request.META) or new_correlation_id()
        return cid, set_correlation_id(cid)

    def _plan(self, request: HttpRequest) -> HttpResponse | tuple[str, str | None] | None:
        """None: not limited; a response: answer it (400); else (key, tier)."""
        if self.limiter is None or _http.is_exempt(request.path, self.exact, self.prefixes):
            return None
        info = request_info(request.META, self.trusted)
        try:
            key = self.key(info)
            tier = self.tier(info) if self.tier is not None else None
        except _http.BadRequest:
            return HttpResponse(_http.BAD_REQUEST, status=400, content_type="application/json")
        return None if key is None else (key, tier)

    def _decided(
        self,
        request: HttpRequest,
        decision: Any,
        key: str,
        tier: str | None,
        cid: str | None,
        started: float,
        is_async: bool | None,
    ) -> Any:
        policy, rate = _http.limiter_rate(self.limiter, key, tier)
        extra = _http.decision_headers(decision, rate, policy)
        if not decision.allowed:
            denied = HttpResponse(_http.TOO_MANY, status=429, content_type="application/json")
            return self._finish(denied, cid, started, extra)
        if is_async:

            async def respond() -> HttpResponse:
                response = await self.get_response(request)
                return self._finish(response, cid, started, extra)

            return respond()
        return self._finish(self.get_response(request), cid, started, extra)

    def _finish(
        self, response: HttpResponse, cid: str | None, started: float, extra: _http.Headers
    ) -> HttpResponse:
        for name, value in extra:
            if name not in response:
                response[name] = value
        if cid is not None:
            response[self.header] = cid
        if self.timing:
            for name, value in _http.timing_headers(started):
                response[name] = value
        return response
