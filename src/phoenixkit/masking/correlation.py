"""Correlation ids: one id per request, carried into logs, threads and outgoing HTTP calls.

The id lives in a `contextvars.ContextVar`: asyncio tasks copy it when they are created,
`ContextThreadPoolExecutor` and `wrap_context` carry it into threads, and `httpx_event_hook`,
`ahttpx_event_hook` and `CorrelationAuth` (requests) put it on outgoing calls without importing
either client. An incoming id is used only when valid: it ends up in log lines, so control
characters, spaces, quotes and long values are refused and a fresh id is generated instead.
"""

from __future__ import annotations

import contextvars
import functools
import os
import re
import reprlib
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice
from typing import Any, ParamSpec, Protocol, TypeGuard, TypeVar

from phoenixkit.errors import ConfigurationError

__all__ = [
    "MAX_CORRELATION_ID_LENGTH",
    "ContextThreadPoolExecutor",
    "CorrelationAuth",
    "ahttpx_event_hook",
    "correlation_id_from_headers",
    "correlation_scope",
    "ensure_correlation_id",
    "get_correlation_id",
    "httpx_event_hook",
    "inject_correlation_id",
    "is_valid_correlation_id",
    "new_correlation_id",
    "outgoing_headers",
    "reset_correlation_id",
    "set_correlation_id",
    "wrap_context",
]

MAX_CORRELATION_ID_LENGTH = 128
"""The longest correlation id accepted, in characters."""

_P = ParamSpec("_P")
_R = TypeVar("_R")
_M = TypeVar("_M", bound=MutableMapping[str, Any])


class _HasItems(Protocol):
    def items(self) -> Iterable[tuple[Any, Any]]: ...


_Headers = Mapping[str, Any] | _HasItems | Iterable[tuple[bytes | str, bytes | str]]

_CORRELATION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "phoenixkit_correlation_id", default=None
)
_VALID = re.compile(rf"[A-Za-z0-9._:@/+=\-]{{1,{MAX_CORRELATION_ID_LENGTH}}}")
# version-traceid-parentid-flags; a later version may append "-..." (W3C forward compatibility).
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-[!-~]*)?")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110 token)
_ID_HEADERS = ("x-request-id", "x-correlation-id")
_WANTED = frozenset((*_ID_HEADERS, "traceparent"))
_MAX_HEADERS, _MAX_NAME, _MAX_VALUE = 512, 64, 512  # entries looked at; name and value lengths


def _describe(value: object) -> str:
    if isinstance(value, str | bytes | bytearray) and len(value) > 60:
        return f"{value[:60]!r}... (length {len(value)})"
    return reprlib.repr(value)


def is_valid_correlation_id(value: object) -> TypeGuard[str]:
    """Whether `value` is a str of 1 to 128 characters from `A-Z a-z 0-9 . _ : @ / + = -`."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_CORRELATION_ID_LENGTH
        and _VALID.fullmatch(value) is not None
    )


def get_correlation_id() -> str | None:
    """The correlation id of the current context, or None when none is set."""
    return _CORRELATION_ID.get()


def set_correlation_id(value: str) -> contextvars.Token[str | None]:
    """Set the current context's id; pass the returned token to `reset_correlation_id`.

    Raises `ConfigurationError`, naming the value, when it is not a valid id.
    """
    if not is_valid_correlation_id(value):
        raise ConfigurationError(
            f"invalid correlation id {_describe(value)}: expected a str of 1 to "
            f"{MAX_CORRELATION_ID_LENGTH} characters from A-Z a-z 0-9 . _ : @ / + = -"
        )
    return _CORRELATION_ID.set(value)


def reset_correlation_id(token: contextvars.Token[str | None]) -> None:
    """Restore the id that was current before the `set_correlation_id` that gave `token`."""
    _CORRELATION_ID.reset(token)


def new_correlation_id() -> str:
    """A fresh random id: the 32 lowercase hex digits of a UUID4.

    Built from `os.urandom` as `uuid.uuid4` does, without the `UUID` object (a third of
    the cost, on every request that arrives without an id)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


@contextmanager
def correlation_scope(value: str | None = None) -> Iterator[str]:
    """Set `value` (or a new id when None) for the block, yield it, restore the previous id.

    Works in sync code and around awaits in one task; each asyncio task has its own context,
    so concurrent tasks in their own scopes do not see each other's id.
    """
    value = new_correlation_id() if value is None else value
    token = set_correlation_id(value)
    try:
        yield value
    finally:
        _CORRELATION_ID.reset(token)


def _text(raw: object, limit: int) -> str | None:
    if isinstance(raw, bytes | bytearray):
        if len(raw) > limit:
            return None
        try:
            return raw.decode("ascii")  # a valid id is ASCII; anything else is refused anyway
        except UnicodeDecodeError:
            return None
    return raw if isinstance(raw, str) and len(raw) <= limit else None


def _wanted(headers: Any) -> dict[str, str | None]:
    """The first value of each wanted header, looking at no more than `_MAX_HEADERS` entries."""
    if isinstance(headers, str | bytes | bytearray):
        return {}
    try:
        entries = iter(headers.items() if callable(getattr(headers, "items", None)) else headers)
    except TypeError:  # not iterable, or an `items` that is not a mapping's
        return {}
    found: dict[str, str | None] = {}
    for entry in islice(entries, _MAX_HEADERS):
        if not isinstance(entry, tuple | list) or len(entry) != 2:
            continue
        name = _text(entry[0], _MAX_NAME)
        if name is None:
            continue
        name = name.lower()
        if name.startswith("http_"):  # a WSGI environ key: HTTP_X_REQUEST_ID
            name = name[5:].replace("_", "-")
        if name in _WANTED and name not in found:
            value = _text(entry[1], _MAX_VALUE)
            found[name] = None if value is None else value.strip(" \t")
    return found


def _trace_id(traceparent: str | None) -> str | None:
    match = _TRACEPARENT.fullmatch(traceparent) if traceparent is not None else None
    if match is None:
        return None
    version, trace_id, parent_id, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id


def correlation_id_from_headers(headers: _Headers | None) -> str | None:
    """The valid incoming id in `headers`, or None; never raises on malformed headers.

    `headers` is a mapping with names in any case (httpx, Starlette, Django, a plain dict), an
    object with `.items()` (werkzeug, `email.message.Message`), an ASGI list of `(bytes,
    bytes)` pairs, or a WSGI environ (`HTTP_X_REQUEST_ID`). The first valid one of X-Request-ID,
    X-Correlation-ID and the trace id of a W3C traceparent wins. Only the first 512 entries and
    the first value of each header are looked at; values over 512 characters are ignored.
    """
    found = _wanted(headers)
    for name in _ID_HEADERS:
        value = found.get(name)
        if is_valid_correlation_id(value):
            return value
    return _trace_id(found.get("traceparent"))


def ensure_correlation_id(headers: _Headers | None = None) -> str:
    """Make sure the current context has an id, and return it.

    The id is the valid incoming one from `headers` when there is one (it replaces any current
    id), else the current id, else a new one. It is set without a token, so it stays until the
    context ends: where one context serves many requests (a WSGI worker thread), the current id
    is the previous request's, so use `correlation_scope(correlation_id_from_headers(...))`.
    """
    value = correlation_id_from_headers(headers) if headers is not None else None
    value = value or _CORRELATION_ID.get() or new_correlation_id()
    if value != _CORRELATION_ID.get():
        _CORRELATION_ID.set(value)
    return value


def wrap_context(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Wrap `fn` to run in a copy of the caller's context, as it is now.

    Pass the result to `threading.Thread(target=...)` or any executor: the id (and every other
    context variable) set before wrapping is seen inside, and changes made inside stay there.
    Each call runs in its own copy, so the wrapper may be called concurrently or recursively.
    """
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return captured.copy().run(fn, *args, **kwargs)

    return run


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A `ThreadPoolExecutor` whose tasks run in a copy of the submitter's context.

    Plain pool threads start with an empty context; here `submit` (and so `map`) copies the
    context at submission, so the correlation id flows into the task.
    """

    def submit(self, fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_R]:
        context = contextvars.copy_context()
        return super().submit(functools.partial(context.run, fn, *args, **kwargs))


def _check_header(header: str) -> str:
    if not isinstance(header, str) or _TOKEN.fullmatch(header) is None:
        raise ConfigurationError(f"invalid HTTP header name {_describe(header)}")
    return header


def outgoing_headers(header: str = "X-Request-ID") -> dict[str, str]:
    """`{header: id}` for the current id, or `{}` when none is set."""
    _check_header(header)
    value = _CORRELATION_ID.get()
    return {} if value is None else {header: value}


def inject_correlation_id(headers: _M, header: str = "X-Request-ID") -> _M:
    """Add the current id to `headers` unless it has `header` already (in any case).

    Does nothing when no id is set. Returns `headers`, changed in place.
    """
    _check_header(header)
    value = _CORRELATION_ID.get()
    lower = header.lower()
    if value is None or header in headers or any(k.lower() == lower for k in headers):
        return headers
    headers[header] = value
    return headers


class _HasHeaders(Protocol):
    @property
    def headers(self) -> MutableMapping[str, Any]: ...


_Req = TypeVar("_Req", bound=_HasHeaders)


def httpx_event_hook(request: _HasHeaders) -> None:
    """An httpx request hook: `httpx.Client(event_hooks={"request": [httpx_event_hook]})`."""
    inject_correlation_id(request.headers)


async def ahttpx_event_hook(request: _HasHeaders) -> None:
    """The `httpx.AsyncClient` twin of `httpx_event_hook`."""
    inject_correlation_id(request.headers)


class CorrelationAuth:
    """A requests auth callable that adds the current id, then applies `inner` if given.

    `session.auth = CorrelationAuth()`, or `CorrelationAuth(HTTPBasicAuth(user, password))` to
    keep real authentication (requests has response hooks only, so auth is the request hook).
    """

    def __init__(
        self, inner: Callable[[Any], Any] | None = None, *, header: str = "X-Request-ID"
    ) -> None:
        if inner is not None and not callable(inner):
            raise ConfigurationError(
                f"CorrelationAuth(inner={_describe(inner)}): inner must be a requests auth "
                "callable, such as requests.auth.HTTPBasicAuth(user, password)"
            )
        self.inner = inner
        self.header = _check_header(header)

    def __call__(self, request: _Req) -> _Req:
        inject_correlation_id(request.headers, self.header)
        if self.inner is None:
            return request
        result: _Req = self.inner(request)
        return result

    def __repr__(self) -> str:
        return f"CorrelationAuth(inner={self.inner!r}, header={self.header!r})"
