"""A cache admin app, ASGI and WSGI: stats, and invalidation by key or tag.

```
def is_admin(info: RequestInfo) -> bool:            # your check: a token, a network, ...
    return info.header("authorization") == f"Bearer {ADMIN_TOKEN}"

app = CacheAdminApp(cache, authorize=is_admin)       # ASGI; WSGICacheAdminApp for WSGI
```

``GET .../stats`` answers the cache's `CacheStats` as JSON. ``POST .../invalidate`` with a
JSON body ``{"keys": [...], "tags": [...]}`` deletes the keys and invalidates the tags (every
instance drops its L1 copies through the invalidation channel) and answers what it did.
``authorize(info)`` is required and is asked before anything else: false answers 403.
Bodies over 64 KiB answer 413, malformed ones 400. Deleting by key pattern is not offered:
`TieredCache` has no pattern scan (tags are the way to drop a group of keys).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from typing import Any

from phoenixkit.errors import ConfigurationError
from phoenixkit.integrations import _asgi_io, _wsgi_io, asgi, wsgi
from phoenixkit.integrations._http import RequestInfo

__all__ = ["MAX_BODY", "CacheAdminApp", "WSGICacheAdminApp", "parse_invalidation"]

MAX_BODY = 64 * 1024
"""The largest invalidation request body accepted, in bytes."""
_MAX_ITEMS = 10_000

Authorize = Callable[[RequestInfo], bool]
Answer = tuple[int, dict[str, Any]]


def _check(authorize: Any) -> Authorize:
    if not callable(authorize):
        raise ConfigurationError("the cache admin app needs authorize=callable(RequestInfo)")
    checked: Authorize = authorize
    return checked


def _route(method: str, path: str) -> str | None:
    """``"stats"`` or ``"invalidate"`` when method and path match one, else None."""
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if last == "stats" and method in ("GET", "HEAD"):
        return "stats"
    if last == "invalidate" and method == "POST":
        return "invalidate"
    return None


def _items(data: dict[str, Any], field: str) -> list[str]:
    value = data.get(field, [])
    if not isinstance(value, list) or len(value) > _MAX_ITEMS:
        raise ValueError(field)
    if not all(isinstance(item, str) and item for item in value):
        raise ValueError(field)
    return value


def parse_invalidation(body: bytes) -> tuple[list[str], list[str]] | None:
    """``(keys, tags)`` of a request body, or None when it is malformed."""
    try:
        data = json.loads(body)
        if not isinstance(data, dict) or set(data) - {"keys", "tags"}:
            return None
        return _items(data, "keys"), _items(data, "tags")
    except (ValueError, UnicodeDecodeError):
        return None


def _stats(cache: Any) -> Answer:
    return 200, dataclasses.asdict(cache.stats())


def _encode(answer: Answer) -> tuple[int, bytes]:
    return answer[0], json.dumps(answer[1], default=str).encode()


class CacheAdminApp:
    """The ASGI admin app (async cache calls: ``adelete_many``, ``ainvalidate_tags``)."""

    def __init__(self, cache: Any, *, authorize: Authorize) -> None:
        self.cache = cache
        self.authorize = _check(authorize)

    async def __call__(
        self, scope: _asgi_io.Scope, receive: _asgi_io.Receive, send: _asgi_io.Send
    ) -> None:
        if scope["type"] != "http":
            return
        status, body = _encode(await self._answer(scope, receive))
        await _asgi_io._respond(send, status, body, [("Cache-Control", "no-store")])

    async def _answer(self, scope: _asgi_io.Scope, receive: _asgi_io.Receive) -> Answer:
        if not self.authorize(asgi.request_info(scope)):
            return 403, {"error": "forbidden"}
        route = _route(scope["method"], scope["path"])
        if route is None:
            return 404, {"error": "not found"}
        if route == "stats":
            return _stats(self.cache)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return 400, {"error": "client went away"}
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                return 413, {"error": "body too large"}
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        parsed = parse_invalidation(b"".join(chunks))
        if parsed is None:
            return 400, {"error": 'expected {"keys": [str, ...], "tags": [str, ...]}'}
        keys, tags = parsed
        if keys:
            await self.cache.adelete_many(keys)
        if tags:
            await self.cache.ainvalidate_tags(*tags)
        return 200, {"deleted_keys": len(keys), "invalidated_tags": len(tags)}


class WSGICacheAdminApp:
    """The WSGI twin of `CacheAdminApp` (sync cache calls)."""

    def __init__(self, cache: Any, *, authorize: Authorize) -> None:
        self.cache = cache
        self.authorize = _check(authorize)

    def __call__(
        self, environ: _wsgi_io.Environ, start_response: _wsgi_io.StartResponse
    ) -> Iterable[bytes]:
        status, body = _encode(self._answer(environ))
        return _wsgi_io._respond(start_response, status, body, [("Cache-Control", "no-store")])

    def _answer(self, environ: _wsgi_io.Environ) -> Answer:
        if not self.authorize(wsgi.request_info(environ)):
            return 403, {"error": "forbidden"}
        route = _route(str(environ.get("REQUEST_METHOD")), str(environ.get("PATH_INFO", "")))
        if route is None:
            return 404, {"error": "not found"}
        if route == "stats":
            return _stats(self.cache)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return 400, {"error": "bad Content-Length"}
        if length > MAX_BODY:
            return 413, {"error": "body too large"}
        parsed = parse_invalidation(environ["wsgi.input"].read(length) if length > 0 else b"")
        if parsed is None:
            return 400, {"error": 'expected {"keys": [str, ...], "tags": [str, ...]}'}
        keys, tags = parsed
        if keys:
            self.cache.delete_many(keys)
        if tags:
            self.cache.invalidate_tags(*tags)
        return 200, {"deleted_keys": len(keys), "invalidated_tags": len(tags)}
