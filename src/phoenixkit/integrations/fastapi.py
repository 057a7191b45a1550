"""FastAPI dependencies: ``Depends(rate_limited(limiter))`` and the request's correlation id.

```
from fastapi import Depends, FastAPI
from phoenixkit.integrations.fastapi import correlation_id, rate_limited

@app.get("/items", dependencies=[Depends(rate_limited(limiter, key=api_key_header()))])
async def items(cid: str = Depends(correlation_id)): ...
```

The dependency awaits the limiter (``ahit``), raises ``HTTPException(429)`` with
``Retry-After`` and the rate-limit headers on a denial, and puts the headers on the response
when the request is allowed. Needs the ``fastapi`` extra.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from phoenixkit.errors import MissingDependencyError
from phoenixkit.integrations import _http
from phoenixkit.integrations.asgi import request_info
from phoenixkit.masking.correlation import ensure_correlation_id
from phoenixkit.ratelimit.core import Decision

try:
    from fastapi import HTTPException, Request, Response
except ImportError as exc:  # pragma: no cover - the extra is installed in the test env
    raise MissingDependencyError("fastapi", "fastapi", "phoenixkit.integrations.fastapi") from exc

__all__ = ["correlation_id", "rate_limited"]


def rate_limited(
    limiter: Any,
    key: _http.KeyFunc | None = None,
    *,
    trusted_proxies: Iterable[str] = (),
    tier: _http.TierFunc | None = None,
    cost: int = 1,
) -> Callable[..., Awaitable[Decision | None]]:
    """A dependency limiting the route with ``limiter`` (options as `RateLimitMiddleware`).

    It returns the `Decision` (None when ``key`` returned None: not limited).
    """
    key_of = key or _http.client_key
    trusted = _http.parse_networks(trusted_proxies)

    async def dependency(request: Request, response: Response) -> Decision | None:
        info = request_info(request.scope, trusted)
        try:
            limit_key = key_of(info)
            chosen = tier(info) if tier is not None else None
        except _http.BadRequest as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        if limit_key is None:
            return None
        if chosen is None:
            decision: Decision = await limiter.ahit(limit_key, cost=cost)
        else:
            decision = await limiter.ahit(limit_key, tier=chosen, cost=cost)
        policy, rate = _http.limiter_rate(limiter, limit_key, chosen)
        headers = dict(_http.decision_headers(decision, rate, policy))
        if not decision.allowed:
            raise HTTPException(status_code=429, detail="rate limit exceeded", headers=headers)
        response.headers.update(headers)
        return decision

    return dependency


def correlation_id(request: Request) -> str:
    """The request's correlation id (set by `CorrelationIdMiddleware`, else from headers)."""
    return ensure_correlation_id(request.scope.get("headers") or [])
