"""Tiny endpoints, ASGI and WSGI, that the middleware tests wrap."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from phoenixkit.masking.correlation import get_correlation_id

LOG = logging.getLogger("tests.integrations.endpoint")
BIG = b"phoenixkit " * 400  # 4400 bytes: over the 1 KiB compression threshold
SMALL = b"small body"


CALLS: Counter[str] = Counter()
"""How many times the endpoint ran, per path (the response-cache tests read it)."""
_CACHE_CONTROL = {
    "/cc/nostore": "no-store",
    "/cc/private": "private, max-age=60",
    "/cc/maxage0": "max-age=0",
    "/cc/short": "max-age=1",
}


def _route(path: str, lang: str = "") -> tuple[int, list[tuple[str, str]], bytes]:
    CALLS[path] += 1
    if path in _CACHE_CONTROL:
        body = f"{path} call {CALLS[path]}".encode()
        return 200, [("Content-Type", "text/plain"), ("Cache-Control", _CACHE_CONTROL[path])], body
    if path == "/count":
        return 200, [("Content-Type", "text/plain")], f"call {CALLS[path]}".encode()
    if path == "/cookie":
        return 200, [("Content-Type", "text/plain"), ("Set-Cookie", "s=1")], b"cookie"
    if path == "/lang":
        body = f"{lang or 'none'} call {CALLS[path]}".encode()
        return 200, [("Content-Type", "text/plain"), ("Vary", "Accept-Language")], body
    if path == "/big":
        return 200, [("Content-Type", "text/plain")], BIG
    if path == "/id":
        LOG.info("handling")
        return 200, [("Content-Type", "text/plain")], (get_correlation_id() or "").encode()
    if path == "/image":
        return 200, [("Content-Type", "image/png")], BIG
    if path == "/missing":
        return 404, [("Content-Type", "text/plain")], b"no"
    if path == "/tagged":
        return 200, [("Content-Type", "text/plain"), ("ETag", '"v1"')], BIG
    if path == "/varying":
        return 200, [("Content-Type", "text/plain"), ("Vary", "Accept-Language")], BIG
    return 200, [("Content-Type", "text/plain")], SMALL


async def asgi_endpoint(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(4):
            await send({"type": "http.response.body", "body": BIG, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    lang = dict(scope["headers"]).get(b"accept-language", b"").decode()
    status, headers, body = _route(scope["path"], lang)
    raw = [(k.lower().encode(), v.encode()) for k, v in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def wsgi_endpoint(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _chunks()
    status, headers, body = _route(path, environ.get("HTTP_ACCEPT_LANGUAGE", ""))
    phrase = {200: "OK", 404: "Not Found"}[status]
    start_response(f"{status} {phrase}", [*headers, ("Content-Length", str(len(body)))])
    if path == "/id":
        return _lazy_id()
    return [body]


def _chunks() -> Iterator[bytes]:
    for _ in range(4):
        yield BIG


def _lazy_id() -> Iterator[bytes]:
    # Runs while the server iterates the response: the id must still be set here.
    yield (get_correlation_id() or "").encode()
