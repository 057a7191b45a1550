"""A Flask extension: correlation ids, timing headers and rate limiting with ``init_app``.

```
from flask import Flask
from phoenixkit.integrations.flask import PhoenixKit

kit = PhoenixKit(limiter=RateLimiter("100/minute"))
app = Flask(__name__)
kit.init_app(app)        # or PhoenixKit(app, limiter=...)
```

Options not given are read from ``app.config``: ``PHOENIXKIT_TRUSTED_PROXIES`` (a list or a
comma-separated string) and ``PHOENIXKIT_EXEMPT`` (paths; ``"/static/*"`` for a prefix).
The decisions are the WSGI middleware's (``phoenixkit.integrations._http``); the limiter is
called with the sync ``hit``. Needs the ``flask`` extra.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterable
from typing import Any

from phoenixkit.errors import MissingDependencyError
from phoenixkit.integrations import _http
from phoenixkit.integrations.wsgi import request_info
from phoenixkit.masking.correlation import (
    correlation_id_from_headers,
    new_correlation_id,
    reset_correlation_id,
    set_correlation_id,
)

try:
    from flask import Flask, Response, g, request
except ImportError as exc:  # pragma: no cover - the extra is installed in the test env
    raise MissingDependencyError("flask", "flask", "phoenixkit.integrations.flask") from exc

__all__ = ["PhoenixKit"]


class PhoenixKit:
    """The extension. ``limiter`` (optional): a `RateLimiter` or `TieredRateLimiter`;
    ``key``, ``tier``, ``trusted_proxies``, ``exempt`` and ``cost`` as in
    `RateLimitMiddleware`; ``correlation`` / ``timing`` switch those headers off."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        limiter: Any = None,
        key: _http.KeyFunc | None = None,
        tier: _http.TierFunc | None = None,
        trusted_proxies: Iterable[str] | None = None,
        exempt: Iterable[str] | None = None,
        cost: int = 1,
        correlation: bool = True,
        timing: bool = True,
        header: str = "X-Request-ID",
    ) -> None:
        self.limiter = limiter
        self.key = key or _http.client_key
        self.tier = tier
        self.trusted_proxies = trusted_proxies
        self.exempt = exempt
        self.cost = cost
        self.correlation = correlation
        self.timing = timing
        self.header = header
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the request hooks on ``app`` (``app.extensions["phoenixkit"]`` is self)."""
        proxies = self.trusted_proxies
        if proxies is None:
            proxies = app.config.get("PHOENIXKIT_TRUSTED_PROXIES", ())
        self._trusted = _http.parse_networks(proxies or ())
        exempt = self.exempt
        if exempt is None:
            exempt = app.config.get("PHOENIXKIT_EXEMPT", ())
        self._exact, self._prefixes = _http.split_exempt(exempt or ())
        app.extensions["phoenixkit"] = self
        app.before_request(self._before)
        app.after_request(self._after)
        app.teardown_request(self._teardown)

    def _before(self) -> Response | None:
        g.phoenixkit_started = time.perf_counter()
        g.phoenixkit_headers = []
        if self.correlation:
            cid = correlation_id_from_headers(request.environ) or new_correlation_id()
            g.phoenixkit_correlation = (cid, set_correlation_id(cid))
        if self.limiter is None or _http.is_exempt(request.path, self._exact, self._prefixes):
            return None
        info = request_info(request.environ, self._trusted)
        try:
            key = self.key(info)
            tier = self.tier(info) if self.tier is not None else None
        except _http.BadRequest:
            return Response(_http.BAD_REQUEST, 400, content_type="application/json")
        if key is None:
            return None
        if tier is None:
            decision = self.limiter.hit(key, cost=self.cost)
        else:
            decision = self.limiter.hit(key, tier=tier, cost=self.cost)
        policy, rate = _http.limiter_rate(self.limiter, key, tier)
        extra = _http.decision_headers(decision, rate, policy)
        if not decision.allowed:
            return Response(_http.TOO_MANY, 429, extra, content_type="application/json")
        g.phoenixkit_headers = extra
        return None

    def _after(self, response: Response) -> Response:
        for name, value in g.get("phoenixkit_headers", ()):
            response.headers.setdefault(name, value)
        found = g.get("phoenixkit_correlation")
        if found is not None:
            response.headers[self.header] = found[0]
        started = g.get("phoenixkit_started")
        if self.timing and started is not None:
            for name, value in _http.timing_headers(started):
                response.headers[name] = value
        return response

    def _teardown(self, exc: BaseException | None) -> None:
        found = g.pop("phoenixkit_correlation", None)
        if found is not None:
            token: contextvars.Token[str | None] = found[1]
            with contextlib.suppress(ValueError):  # set in another context: ends with it
                reset_correlation_id(token)
