"""The pure request logic shared by the ASGI and WSGI middleware: no I/O, no framework.

Client addresses behind trusted proxies, limiter keys, rate-limit and timing headers, health
bodies (the response-body logic, ETags and compression, is in ``_body``).

Headers are handled as ``list[tuple[str, str]]`` (names in any case, latin-1 text); the ASGI
and WSGI modules only convert to and from their servers' shapes. Everything here is defensive:
a malformed or oversized header is ignored (or reported as `BadRequest`), never a crash.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from phoenixkit.errors import ConfigurationError
from phoenixkit.ratelimit.core import Decision, Rate
from phoenixkit.ratelimit.headers import _header_pairs

Headers = list[tuple[str, str]]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_HEADER_VALUE = 8192
"""Longer values of the headers the middleware reads are ignored."""
MAX_HOPS = 32
"""A forwarding chain with more hops than this is ignored (the peer address is used)."""
MAX_API_KEY = 256

_POLICY = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]{1,64}")
_API_KEY = re.compile(r"[!-~]{1,256}")
_FORWARDED_FOR = re.compile(r'(?i)(?:^|;)\s*for\s*=\s*("[^"]*"|[^;,\s]*)')


class BadRequest(Exception):
    """A request header that the middleware cannot accept: answered with 400."""


class RequestInfo:
    """What a key function or tier resolver sees of a request.

    ``headers`` (names lowercased, repeated headers joined with ``", "``) is built on first
    use; ``client`` is the peer address, or the forwarded client when the peer is one of
    ``trusted`` (see `client_address`).
    """

    __slots__ = ("_client", "_headers", "_load", "method", "path", "peer", "trusted")

    def __init__(
        self,
        method: str,
        path: str,
        peer: str | None,
        headers: Mapping[str, str] | Callable[[], Mapping[str, str]],
        trusted: tuple[IPNetwork, ...] = (),
    ) -> None:
        self.method = method
        self.path = path
        self.peer = peer
        self.trusted = trusted
        self._headers: Mapping[str, str] | None = None if callable(headers) else headers
        self._load = headers if callable(headers) else None
        self._client: str | None = None

    @property
    def headers(self) -> Mapping[str, str]:
        if self._headers is None:
            self._headers = self._load() if self._load is not None else {}
        return self._headers

    @property
    def client(self) -> str:
        if self._client is None:
            if self.trusted:
                self._client = client_address(self.peer, self.headers, self.trusted)
            else:
                self._client = self.peer or "unknown"
        return self._client

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def __repr__(self) -> str:
        return f"RequestInfo(method={self.method!r}, path={self.path!r}, client={self.client!r})"


KeyFunc = Callable[[RequestInfo], "str | None"]
TierFunc = Callable[[RequestInfo], "str | None"]


def header_dict(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lowercased names to values; repeated headers joined with ``", "`` (RFC 9110)."""
    out: dict[str, str] = {}
    for name, value in pairs:
        name = name.lower()
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


# Client address and trusted proxies -------------------------------------------------------


def parse_networks(proxies: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``("10.0.0.0/8", "127.0.0.1")`` as networks; `ConfigurationError` on a bad entry."""
    if isinstance(proxies, str):
        proxies = [p.strip() for p in proxies.split(",") if p.strip()]
    nets = []
    for proxy in proxies:
        try:
            nets.append(ipaddress.ip_network(str(proxy).strip(), strict=False))
        except ValueError:
            raise ConfigurationError(
                f"trusted proxy {proxy!r} is not an IP address or network"
            ) from None
    return tuple(nets)


def parse_ip(text: str) -> IPAddress | None:
    """An address from a forwarding header entry (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``)."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address: IPAddress, nets: tuple[IPNetwork, ...]) -> bool:
    return any(address in net for net in nets)


def forwarded_chain(headers: Mapping[str, str]) -> list[str] | None:
    """The client chain (first hop first) of ``Forwarded`` or else ``X-Forwarded-For``.

    None when there is no such header, or when it is oversized or has too many hops.
    """
    forwarded = headers.get("forwarded")
    if forwarded is not None:
        if len(forwarded) > MAX_HEADER_VALUE:
            return None
        chain = [m.group(1) for part in forwarded.split(",") for m in _FORWARDED_FOR.finditer(part)]
    else:
        xff = headers.get("x-forwarded-for")
        if xff is None or len(xff) > MAX_HEADER_VALUE:
            return None
        chain = [item.strip() for item in xff.split(",")]
    return chain if 0 < len(chain) <= MAX_HOPS else None


def client_address(
    peer: str | None, headers: Mapping[str, str], trusted: tuple[IPNetwork, ...]
) -> str:
    """The client's address: the peer's unless the peer is a trusted proxy.

    From a trusted peer the forwarding chain is walked from the right, skipping trusted
    proxies; the first untrusted address is the client. A malformed entry stops the walk
    (the last trusted hop is used): a client can prepend anything, so only what trusted
    proxies appended counts. Headers from untrusted peers are ignored.
    """
    current = peer or "unknown"
    if not trusted:
        return current
    address = parse_ip(current)
    if address is None or not _trusted(address, trusted):
        return current
    chain = forwarded_chain(headers)
    if not chain:
        return current
    for entry in reversed(chain):
        hop = parse_ip(entry)
        if hop is None:
            return current
        current = str(hop)
        if not _trusted(hop, trusted):
            return current
    return current


def client_key(info: RequestInfo) -> str:
    """The default key function: the client's address."""
    return info.client


def api_key_header(name: str = "X-API-Key", *, fallback: KeyFunc | None = client_key) -> KeyFunc:
    """A key function using the ``name`` header (``key:<value>``); without it, ``fallback``.

    A present but malformed value (not printable ASCII, or over 256 characters) is a
    `BadRequest` (400), so that a garbage key never becomes a fresh quota.
    """
    lower = name.lower()

    def key(info: RequestInfo) -> str | None:
        value = info.headers.get(lower)
        if value is None:
            return None if fallback is None else fallback(info)
        value = value.strip()
        if not _API_KEY.fullmatch(value):
            raise BadRequest(f"invalid {name} header")
        return f"key:{value}"

    return key


def limiter_rate(limiter: Any, key: str, tier: str | None) -> tuple[str, Rate | None]:
    """The (policy label, rate) of a `RateLimiter` or `TieredRateLimiter` for headers."""
    if hasattr(limiter, "rate_for"):
        label, rate = limiter.rate_for(key, tier)
        return label, rate
    return getattr(limiter, "name", "default"), getattr(limiter, "rate", None)


@functools.lru_cache(maxsize=256)
def _policy_name(policy: str) -> str:
    return policy if _POLICY.fullmatch(policy) else "default"


def decision_headers(
    decision: Decision, rate: Rate | None, policy: str, *, ietf: bool = True, legacy: bool = True
) -> Headers:
    """The rate-limit response headers as pairs (an unusable policy name becomes default)."""
    return _header_pairs(decision, rate, _policy_name(policy), ietf, legacy)


def is_exempt(path: str, exempt: frozenset[str], prefixes: tuple[str, ...]) -> bool:
    return path in exempt or (bool(prefixes) and path.startswith(prefixes))


def split_exempt(paths: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Exact paths, and prefixes (entries ending in ``*``: ``"/static/*"``)."""
    paths = list(paths)
    exact = frozenset(p for p in paths if not p.endswith("*"))
    return exact, tuple(p[:-1] for p in paths if p.endswith("*"))


PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def health_body(results: Mapping[str, bool]) -> tuple[int, bytes]:
    """200 and ``{"status": "ok", ...}`` when every check passed, else 503."""
    ok = all(results.values())
    data = {"status": "ok" if ok else "fail", "checks": dict(results)}
    return (200 if ok else 503), json.dumps(data).encode()


TOO_MANY = b'{"error": "rate limit exceeded"}'
BAD_REQUEST = b'{"error": "bad request"}'


# Timing -----------------------------------------------------------------------------------


def timing_headers(started: float, now: float | None = None) -> Headers:
    """``Server-Timing: app;dur=<ms>`` and ``X-Response-Time: <ms>ms``."""
    ms = f"{((time.perf_counter() if now is None else now) - started) * 1000.0:.3f}"
    return [("Server-Timing", "app;dur=" + ms), ("X-Response-Time", ms + "ms")]


class RateLimitSettings:
    """What the ASGI and WSGI ``RateLimitMiddleware`` share: their options, checked once."""

    def __init__(
        self,
        limiter: Any,
        key: KeyFunc | None = None,
        trusted_proxies: Iterable[str] = (),
        *,
        tier: Any = None,
        exempt: Iterable[str] = (),
        cost: int = 1,
        headers: bool = True,
        ietf: bool = True,
        legacy: bool = True,
    ) -> None:
        self.limiter = limiter
        self.key = key or client_key
        self.trusted = parse_networks(trusted_proxies)
        self.tier = tier
        self.exact, self.prefixes = split_exempt(exempt)
        self.cost = cost
        self.headers = headers
        self.ietf = ietf
        self.legacy = legacy
        self._seen: Any = None
        self._rate_for: Any = None

    def rate_of(self, key: str, tier: str | None) -> tuple[str, Rate | None]:
        """`limiter_rate` of ``self.limiter``, looking up its ``rate_for`` once per limiter."""
        limiter = self.limiter
        if limiter is not self._seen:
            self._rate_for = getattr(limiter, "rate_for", None)
            self._seen = limiter
        if self._rate_for is not None:
            label, rate = self._rate_for(key, tier)
            return label, rate
        return getattr(limiter, "name", "default"), getattr(limiter, "rate", None)
