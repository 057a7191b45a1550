"""A cache admin app, ASGI and WSGI: stats, and invalidation by key, key pattern or tag.

```
def is_admin(info: RequestInfo) -> bool:            # your check: a token, a network, ...
    return info.header("authorization") == f"Bearer {ADMIN_TOKEN}"

app = CacheAdminApp(cache, authorize=is_admin)       # ASGI; WSGICacheAdminApp for WSGI
```

``GET .../stats`` answers the cache's `CacheStats` as JSON. ``POST .../invalidate`` with a
JSON body ``{"keys": [...], "patterns": [...], "tags": [...]}`` (each optional) deletes the
keys, deletes the keys matching the patterns and invalidates the tags (every instance drops
its L1 copies through the invalidation channel), and answers what it did.
``authorize(info)`` is required and is asked before anything else: false answers 403.
Bodies over 64 KiB answer 413, malformed ones (or a bad pattern) 400.

A pattern is a glob over the cache's own keys (``*`` any run of characters, ``?`` one,
``\\`` makes the next character literal), never over Redis's keyspace: the namespace and
version prefix is fixed and every literal character is escaped as the cache escapes keys, so
a pattern cannot reach another namespace or another key family. The keys are found in this
process's L1 and, on Redis, with ``SCAN`` (never ``KEYS``; on Cluster, on every primary),
then deleted like ``keys``. At most ``max_pattern_keys`` (10 000) are deleted per request;
when more match, the answer says ``"truncated": true`` (repeat the request to go on). Keys
whose escaped form is over 200 characters are stored as a digest and cannot be matched.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable
from contextlib import aclosing
from typing import Any, NamedTuple

from phoenixkit.cache.core import escape_key
from phoenixkit.errors import ConfigurationError, PhoenixError
from phoenixkit.integrations import _asgi_io, _wsgi_io, asgi, wsgi
from phoenixkit.integrations._http import RequestInfo

__all__ = [
    "MAX_BODY",
    "MAX_PATTERN_KEYS",
    "CacheAdminApp",
    "Invalidation",
    "KeyPattern",
    "PatternError",
    "WSGICacheAdminApp",
    "compile_pattern",
    "parse_invalidation",
]

MAX_BODY = 64 * 1024
"""The largest invalidation request body accepted, in bytes."""
MAX_PATTERN_KEYS = 10_000
"""The default bound on the keys one request deletes by pattern."""
_MAX_ITEMS = 10_000
_MAX_PATTERNS = 16
_MAX_PATTERN_LENGTH = 256
_SCAN_COUNT = 1000
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\^])")
_ESCAPED_RUN = re.compile(r"(?:%[0-9A-F]{2})+")
_EXPECTED = 'expected {"keys": [str, ...], "patterns": [str, ...], "tags": [str, ...]}'

Authorize = Callable[[RequestInfo], bool]
Answer = tuple[int, dict[str, Any]]


class PatternError(PhoenixError, ValueError):
    """A key pattern that cannot be used (empty, too long, ending in a lone backslash)."""


class Invalidation(NamedTuple):
    """What an invalidation request asks for."""

    keys: list[str]
    tags: list[str]
    patterns: list[KeyPattern]


@dataclasses.dataclass(frozen=True)
class KeyPattern:
    """A glob over cache keys, compiled: ``glob`` finds candidates in Redis (a superset over
    escaped keys), ``matches`` decides on the key itself."""

    pattern: str
    glob: str
    regex: re.Pattern[str]

    def matches(self, key: str) -> bool:
        return self.regex.fullmatch(key) is not None


def compile_pattern(pattern: object) -> KeyPattern:
    """``pattern`` compiled, or `PatternError` naming it."""
    if not isinstance(pattern, str) or not 0 < len(pattern) <= _MAX_PATTERN_LENGTH:
        raise PatternError(
            f"a key pattern is a str of 1-{_MAX_PATTERN_LENGTH} characters, got {pattern!r:.300}"
        )
    glob: list[str] = []
    regex: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char in "*?":
            regex.append(".*" if char == "*" else ".")
            if not glob or glob[-1] != "*":  # one key character is 1 to 12 escaped ones
                glob.append("*")
            continue
        if char == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise PatternError(f"key pattern {pattern!r} ends with a lone backslash")
            char = escaped
        regex.append(re.escape(char))
        glob.append(_GLOB_SPECIAL.sub(r"\\\1", escape_key(char)))
    return KeyPattern(pattern, "".join(glob), re.compile("".join(regex), re.DOTALL))


def _unescape(stored: str) -> str | None:
    """The key of an escaped storage suffix (None for a digest, which hides its key)."""
    if stored.startswith("#"):
        return None

    def decode(match: re.Match[str]) -> str:
        return bytes.fromhex(match.group().replace("%", "")).decode("utf-8", "surrogatepass")

    try:
        return _ESCAPED_RUN.sub(decode, stored)
    except UnicodeDecodeError:
        return None


class _Sweep:
    """The keys matching any of ``patterns``, at most ``limit``; fed by the scans (pure)."""

    def __init__(self, patterns: list[KeyPattern], prefix: str, limit: int) -> None:
        self.patterns = patterns
        self.prefix = prefix
        self.limit = limit
        self.found: dict[str, None] = {}
        self.truncated = False
        base = _GLOB_SPECIAL.sub(r"\\\1", prefix)
        self.globs = [base + p.glob for p in patterns]

    def add(self, key: str) -> bool:
        """Take ``key`` if it matches; False once the limit is passed (stop scanning)."""
        if key in self.found or not any(p.matches(key) for p in self.patterns):
            return True
        if len(self.found) >= self.limit:
            self.truncated = True
            return False
        self.found[key] = None
        return True

    def add_stored(self, raw: bytes | str) -> bool:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if not text.startswith(self.prefix):
            return True
        key = _unescape(text[len(self.prefix) :])
        return True if key is None else self.add(key)

    def add_l1(self, cache: Any) -> bool:
        return all(self.add(key) for key in _l1_keys(cache.l1))

    def answer(self) -> dict[str, Any]:
        return {"pattern_keys": len(self.found), "truncated": self.truncated}


def _l1_keys(l1: Any) -> list[str]:
    """A snapshot of the keys held in L1."""
    return list(l1.keys()) if l1 is not None else []


def _prefix(cache: Any) -> str:
    return str(cache.key_prefix)  # the namespace + version prefix every key of the cache has


def _sweep(cache: Any, patterns: list[KeyPattern], limit: int) -> _Sweep:
    sweep = _Sweep(patterns, _prefix(cache), limit)
    if not patterns or not sweep.add_l1(cache):
        return sweep
    if cache.l2 is not None:
        client = cache.l2.backend.client
        for glob in sweep.globs:
            for raw in client.scan_iter(match=glob, count=_SCAN_COUNT):
                if not sweep.add_stored(raw):
                    return sweep
    return sweep


async def _asweep(cache: Any, patterns: list[KeyPattern], limit: int) -> _Sweep:
    sweep = _Sweep(patterns, _prefix(cache), limit)
    if not patterns or not sweep.add_l1(cache):
        return sweep
    if cache.l2 is not None:
        client = cache.l2.backend.async_client
        for glob in sweep.globs:
            async with aclosing(client.scan_iter(match=glob, count=_SCAN_COUNT)) as scan:
                async for raw in scan:
                    if not sweep.add_stored(raw):
                        return sweep
    return sweep


def _l2_errors(cache: Any) -> tuple[type[BaseException], ...]:
    if cache.l2 is None:
        return ()
    from phoenixkit.cache.redis import unavailable_errors

    return unavailable_errors()


def _check(authorize: Any) -> Authorize:
    if not callable(authorize):
        raise ConfigurationError("the cache admin app needs authorize=callable(RequestInfo)")
    checked: Authorize = authorize
    return checked


def _check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigurationError(f"max_pattern_keys must be an int >= 1, got {limit!r}")
    return limit


def _route(method: str, path: str) -> str | None:
    """``"stats"`` or ``"invalidate"`` when method and path match one, else None."""
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if last == "stats" and method in ("GET", "HEAD"):
        return "stats"
    if last == "invalidate" and method == "POST":
        return "invalidate"
    return None


def _items(data: dict[str, Any], field: str, most: int = _MAX_ITEMS) -> list[str]:
    value = data.get(field, [])
    if not isinstance(value, list) or len(value) > most:
        raise ValueError(field)
    if not all(isinstance(item, str) and item for item in value):
        raise ValueError(field)
    return value


def parse_invalidation(body: bytes) -> Invalidation | None:
    """The `Invalidation` a request body asks for, or None when it is malformed.

    A well-formed body with a bad pattern raises `PatternError` (naming the pattern).
    """
    try:
        data = json.loads(body)
        if not isinstance(data, dict) or set(data) - {"keys", "tags", "patterns"}:
            return None
        keys, tags = _items(data, "keys"), _items(data, "tags")
        patterns = _items(data, "patterns", _MAX_PATTERNS)
    except (ValueError, UnicodeDecodeError):
        return None
    return Invalidation(keys, tags, [compile_pattern(p) for p in patterns])


def _parsed(body: bytes) -> Invalidation | Answer:
    try:
        parsed = parse_invalidation(body)
    except PatternError as exc:
        return 400, {"error": str(exc)}
    return (400, {"error": _EXPECTED}) if parsed is None else parsed


def _done(request: Invalidation, sweep: _Sweep) -> Answer:
    answer = {"deleted_keys": len(request.keys), "invalidated_tags": len(request.tags)}
    return 200, {**answer, **sweep.answer()}


def _stats(cache: Any) -> Answer:
    return 200, dataclasses.asdict(cache.stats())


def _encode(answer: Answer) -> tuple[int, bytes]:
    return answer[0], json.dumps(answer[1], default=str).encode()


class CacheAdminApp:
    """The ASGI admin app (async cache calls: ``adelete_many``, ``ainvalidate_tags``).

    ``max_pattern_keys`` bounds the keys one request deletes by pattern.
    """

    def __init__(
        self, cache: Any, *, authorize: Authorize, max_pattern_keys: int = MAX_PATTERN_KEYS
    ) -> None:
        self.cache = cache
        self.authorize = _check(authorize)
        self.max_pattern_keys = _check_limit(max_pattern_keys)

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
        request = _parsed(b"".join(chunks))
        if not isinstance(request, Invalidation):
            return request
        try:
            sweep = await _asweep(self.cache, request.patterns, self.max_pattern_keys)
        except _l2_errors(self.cache) as exc:
            return 503, {"error": f"scanning L2 failed: {type(exc).__name__}: {exc}"}
        if request.keys or sweep.found:
            await self.cache.adelete_many([*request.keys, *sweep.found])
        if request.tags:
            await self.cache.ainvalidate_tags(*request.tags)
        return _done(request, sweep)


class WSGICacheAdminApp:
    """The WSGI twin of `CacheAdminApp` (sync cache calls)."""

    def __init__(
        self, cache: Any, *, authorize: Authorize, max_pattern_keys: int = MAX_PATTERN_KEYS
    ) -> None:
        self.cache = cache
        self.authorize = _check(authorize)
        self.max_pattern_keys = _check_limit(max_pattern_keys)

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
        request = _parsed(environ["wsgi.input"].read(length) if length > 0 else b"")
        if not isinstance(request, Invalidation):
            return request
        try:
            sweep = _sweep(self.cache, request.patterns, self.max_pattern_keys)
        except _l2_errors(self.cache) as exc:
            return 503, {"error": f"scanning L2 failed: {type(exc).__name__}: {exc}"}
        if request.keys or sweep.found:
            self.cache.delete_many([*request.keys, *sweep.found])
        if request.tags:
            self.cache.invalidate_tags(*request.tags)
        return _done(request, sweep)
