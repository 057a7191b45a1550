"""The WSGI plumbing of the middleware: types, environ headers, status lines, the closing
iterator and the response buffer. Private; the decisions are in ``_http``, ``_body``,
``_cache``."""

from __future__ import annotations

import contextvars
import http
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from phoenixkit.integrations import _body
from phoenixkit.integrations._http import Headers

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | None
StartResponse = Callable[..., Callable[[bytes], Any]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
Transform = Callable[[int, Headers, bytes], tuple[int, Headers, bytes]]
Early = Callable[[int, Headers], "Headers | None"]

MAX_BUFFER = 1 << 20
_HEADERLESS = {"CONTENT_TYPE": "content-type", "CONTENT_LENGTH": "content-length"}


def _status_line(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _status_code(line: str) -> int:
    try:
        return int(line.split(" ", 1)[0])
    except ValueError:
        return 500


def _request_headers(environ: Environ) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in environ.items():
        if name.startswith("HTTP_") and isinstance(value, str):
            headers[name[5:].replace("_", "-").lower()] = value
        elif name in _HEADERLESS and isinstance(value, str):
            headers[_HEADERLESS[name]] = value
    return headers


def _respond(
    start_response: StartResponse,
    status: int,
    body: bytes,
    headers: Headers,
    ctype: str = "application/json",
) -> list[bytes]:
    headers = [*headers, ("Content-Type", ctype), ("Content-Length", str(len(body)))]
    start_response(_status_line(status), headers)
    return [body]


class _Closing:
    """An iterable over ``chunks`` whose ``close()`` closes ``inner``; ``context`` (when
    given) is entered around each step, so the app's generator sees the request's id."""

    def __init__(
        self,
        chunks: Iterator[bytes],
        inner: Iterable[bytes],
        context: contextvars.Context | None = None,
    ) -> None:
        self.chunks = chunks
        self.inner = inner
        self.context = context

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self.context is None:
            return next(self.chunks)
        return self.context.run(next, self.chunks)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close() if self.context is None else self.context.run(close)


def _adding(start_response: StartResponse, extra: Callable[[], Headers]) -> StartResponse:
    def wrapped(status: str, headers: Headers, exc_info: ExcInfo = None) -> Any:
        present = {k.lower() for k, _ in headers}
        added = [(k, v) for k, v in extra() if k.lower() not in present]
        return start_response(status, [*headers, *added], exc_info)

    return wrapped


def _buffered(
    app: WSGIApp,
    environ: Environ,
    start_response: StartResponse,
    transform: Transform,
    limit: int,
    early: Early | None = None,
) -> Iterable[bytes]:
    """Run ``app`` collecting its response; send ``transform(status, headers, body)``.

    A response over ``limit`` bytes streams through unchanged; so does one for which
    ``early(status, headers)`` returns its final headers (when the app called
    ``start_response`` before returning).
    """
    captured: list[Any] = []
    chunks: list[bytes] = []

    def capture(status: str, headers: Headers, exc_info: ExcInfo = None) -> Callable[[bytes], Any]:
        if exc_info is not None and captured:
            raise exc_info[1].with_traceback(exc_info[2])
        captured[:] = [status, list(headers), exc_info]
        return chunks.append

    result = app(environ, capture)
    if early is not None and captured and not chunks:
        decided = early(_status_code(captured[0]), captured[1])
        if decided is not None:
            start_response(captured[0], decided, captured[2])
            return result
    size = sum(map(len, chunks))
    iterator = iter(result)
    try:
        for chunk in iterator:
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                start_response(*captured)
                return _Closing(_chain(chunks, iterator), result)
    except BaseException:
        _close(result)
        raise
    _close(result)
    status, headers, body = transform(_status_code(captured[0]), captured[1], b"".join(chunks))
    headers = _body.with_length(headers, body) if status != 304 else headers
    start_response(_status_line(status), headers, captured[2])
    return [body]


def _chain(first: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest


def _close(result: Iterable[bytes]) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()
