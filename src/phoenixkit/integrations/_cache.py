"""The pure decisions of the response cache, shared by the ASGI and WSGI middleware.

An entry is stored in two keys: ``base`` (method, path, query) holds the header names the
response varies on, and ``variant`` (``base`` plus the request's values of those headers)
holds the response. A lookup reads ``base``, then the variant for this request's values.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterable, Mapping
from typing import Any

from phoenixkit.integrations._body import cache_control, get_header, max_age
from phoenixkit.integrations._http import Headers

_NOT_STORED = frozenset(
    (
        "connection",
        "date",
        "keep-alive",
        "ratelimit",
        "ratelimit-policy",
        "retry-after",
        "server-timing",
        "set-cookie",
        "transfer-encoding",
        "x-cache",
        "x-request-id",
        "x-response-time",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    )
)
"""Per-request headers: never replayed from the cache."""


def lookup_allowed(method: str, request: Mapping[str, str]) -> bool:
    """Only GET without credentials and without ``Cache-Control: no-store`` / ``no-cache``."""
    if method != "GET" or "authorization" in request:
        return False
    directives = cache_control(request.get("cache-control"))
    return "no-store" not in directives and "no-cache" not in directives


def _digest(*parts: str) -> str:
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        h.update(part.encode("utf-8", "surrogateescape"))
        h.update(b"\x00")
    return h.hexdigest()


def base_key(prefix: str, path: str, query: str) -> str:
    return f"{prefix}:b:{_digest(path, query)}"


def variant_key(base: str, names: Iterable[str], request: Mapping[str, str]) -> str:
    values = [f"{name}={request.get(name, '')}" for name in names]
    return f"{base}:v:{_digest(*values)}"


def store_plan(
    status: int, headers: Headers, default_ttl: float, vary: Iterable[str] = ()
) -> tuple[float, list[str]] | None:
    """``(ttl, vary names)`` when the response may be stored, else None.

    Only 200s; never with ``Set-Cookie``, ``Vary: *``, ``no-store``, ``private`` or
    ``no-cache``; ``s-maxage`` / ``max-age`` (0 means do not store) override ``default_ttl``.
    """
    if status != 200 or get_header(headers, "set-cookie") is not None:
        return None
    directives = cache_control(get_header(headers, "cache-control"))
    if directives.keys() & {"no-store", "private", "no-cache"}:
        return None
    ttl = max_age(directives)
    ttl = default_ttl if ttl is None else ttl
    if ttl <= 0:
        return None
    names = {v.lower() for v in vary}
    for value in [v for k, v in headers if k.lower() == "vary"]:
        names.update(t.strip().lower() for t in value.split(",") if t.strip())
    if "*" in names:
        return None
    return ttl, sorted(names)


def encode_entry(status: int, headers: Headers, body: bytes) -> dict[str, Any]:
    """A JSON-safe entry (any cache codec can store it)."""
    kept = [[k, v] for k, v in headers if k.lower() not in _NOT_STORED]
    return {
        "s": status,
        "h": kept,
        "b": base64.b64encode(body).decode("ascii"),
        # HTTP's Age is wall-clock seconds since the response was stored, and the entry may
        # be read on another host (L2): a monotonic clock cannot be compared across hosts.
        "t": time.time(),
    }


def decode_entry(entry: Any) -> tuple[int, Headers, bytes] | None:
    """``(status, headers, body)`` of a stored entry, with ``Age`` and ``X-Cache: HIT``."""
    try:
        headers: Headers = [(str(k), str(v)) for k, v in entry["h"]]
        body = base64.b64decode(entry["b"])
        age = max(0, int(time.time() - float(entry["t"])))
        return int(entry["s"]), [*headers, ("Age", str(age)), ("X-Cache", "HIT")], body
    except (KeyError, TypeError, ValueError):
        return None
