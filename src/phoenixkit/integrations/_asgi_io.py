"""The ASGI plumbing of the middleware: message types, header conversion, the response
buffer. Private; the decisions themselves are in ``_http``, ``_body`` and ``_cache``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Literal, cast

from phoenixkit.integrations import _body
from phoenixkit.integrations._http import Headers

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Response = tuple[int, Headers, bytes]
Transform = Callable[[int, Headers, bytes], "Response | Awaitable[Response]"]
Early = Callable[[int, Headers], "Headers | None"]
RawHeaders = list[tuple[bytes, bytes]]
PlainEarly = Callable[[int, RawHeaders], "RawHeaders | Literal[False] | None"]
Plain = Callable[[int, RawHeaders, bytes], "tuple[int, RawHeaders, bytes] | None"]

MAX_BUFFER = 1 << 20
"""Responses larger than this (1 MiB) stream through the buffering middleware unchanged."""


def _decode(raw: Iterable[tuple[bytes, bytes]]) -> Headers:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]


_NAMES: dict[str, bytes] = {}
"""Header names as sent (lowercased bytes), by name: the same few names on every response."""
_MAX_NAMES = 512


def _name(name: str) -> bytes:
    encoded = name.lower().encode("latin-1")
    if len(_NAMES) < _MAX_NAMES:  # bounded: an app inventing names cannot grow it forever
        _NAMES[name] = encoded
    return encoded


def _encode(headers: Headers) -> list[tuple[bytes, bytes]]:
    names = _NAMES
    return [(names.get(k) or _name(k), v.encode("latin-1")) for k, v in headers]


def _plain(raw: Any) -> bool:
    """Whether ``raw`` is a list of ``(bytes, bytes)`` tuples with lowercase ASCII names: what
    `_encode` writes (so ``_encode(_decode(raw)) == raw``) and what the fast paths read."""
    if raw.__class__ is not list:
        return False
    for pair in raw:
        if pair.__class__ is not tuple or len(pair) != 2:
            return False
        name, value = pair
        if (
            name.__class__ is not bytes
            or value.__class__ is not bytes
            or not name.isascii()
            or name.lower() != name
        ):
            return False
    return True


def _request_headers(scope: Scope) -> dict[str, str]:
    """The request headers as a dict, decoded once per request (kept in the scope)."""
    raw = scope.get("headers") or ()
    cached = scope.get("phoenixkit.headers")
    if cached is not None and cached[0] is raw:
        return cast(dict[str, str], cached[1])
    headers: dict[str, str] = {}  # `_http.header_dict` of the decoded pairs, in one pass
    for k, v in raw:
        name = k.decode("latin-1").lower()
        value = v.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    scope["phoenixkit.headers"] = (raw, headers)
    return headers


async def _respond(
    send: Send, status: int, body: bytes, headers: Headers, ctype: str | None = "application/json"
) -> None:
    if ctype is not None:
        headers = [*headers, ("Content-Type", ctype), ("Content-Length", str(len(body)))]
    await send({"type": "http.response.start", "status": status, "headers": _encode(headers)})
    await send({"type": "http.response.body", "body": body})


def _adding(send: Send, extra: Callable[[], Headers]) -> Send:
    """``send`` with ``extra()`` headers added to the response start, unless the app (or an
    inner middleware, such as a route's own limit) set a header of that name already."""

    async def wrapped(message: Message) -> None:
        if message["type"] != "http.response.start":
            await send(message)
            return
        headers = list(message.get("headers", ()))
        present = {k.lower() for k, _ in headers}
        names = _NAMES
        for name, value in extra():  # `_encode` of each, without the intermediate list
            encoded = names.get(name) or _name(name)
            if encoded not in present:
                headers.append((encoded, value.encode("latin-1")))
        await send({**message, "headers": headers})

    return wrapped


async def _buffered(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    transform: Transform,
    limit: int,
    early: Early | None = None,
    plain_early: PlainEarly | None = None,
    plain: Plain | None = None,
) -> None:
    """Run ``app`` collecting its response; send ``transform(status, headers, body)`` (a
    plain function, or an async one when it does I/O).

    A response over ``limit`` bytes, or one with trailers, is streamed through unchanged;
    so is one for which ``early(status, headers)`` returns its final headers.

    ``plain_early`` and ``plain`` are shortcuts of ``early`` and ``transform`` on raw headers
    that `_plain` accepts (no decoding, no encoding), answering exactly what they would:
    ``plain_early`` returns the final raw headers (a new list), None (the body is needed) or
    False (ask ``early``); ``plain`` returns the response (with its Content-Length, in a new
    list) or None (ask ``transform``).
    """
    start: Message | None = None
    chunks: list[bytes] = []
    size = 0
    passthrough = False

    async def wrapped(message: Message) -> None:
        nonlocal start, size, passthrough
        kind = message["type"]
        if kind == "http.response.start" and not passthrough:
            start = message
            passthrough = bool(message.get("trailers"))
            if not passthrough and early is not None:
                raw = message.get("headers", ())
                status = int(message["status"])
                fast = plain_early(status, raw) if plain_early and _plain(raw) else False
                if fast is False:
                    decided = early(status, _decode(raw))
                    final = None if decided is None else _encode(decided)
                else:
                    final = fast
                if final is not None:
                    passthrough = True
                    message = {**message, "headers": final}
            if passthrough:
                await send(message)
            return
        if passthrough or start is None:
            await send(message)
            return
        if kind != "http.response.body":
            passthrough = True
            await send(start)
            await send(message)
            return
        body = message.get("body", b"")
        if message.get("more_body", False):
            chunks.append(body)
            size += len(body)
            if size > limit:
                passthrough = True
                await send(start)
                joined = b"".join(chunks)
                await send({"type": "http.response.body", "body": joined, "more_body": True})
            return
        if chunks:  # else the whole body came in one message (the common case)
            chunks.append(body)
            body = b"".join(chunks)
        raw = start.get("headers", ())
        if plain is not None and _plain(raw):
            done = plain(int(start["status"]), raw, body)
            if done is not None:  # already with its Content-Length
                await send({"type": "http.response.start", "status": done[0], "headers": done[1]})
                await send({"type": "http.response.body", "body": done[2]})
                return
        result = transform(int(start["status"]), _decode(raw), body)
        if not isinstance(result, tuple):
            result = await result
        status, headers, out = result
        headers = _body.with_length(headers, out) if status != 304 else headers
        await send({"type": "http.response.start", "status": status, "headers": _encode(headers)})
        await send({"type": "http.response.body", "body": out})

    await app(scope, receive, wrapped)
