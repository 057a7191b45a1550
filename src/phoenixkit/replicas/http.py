"""Read-your-writes across HTTP requests: ASGI and WSGI middleware that carry the token.

On each request the middleware reads the token from a header (``X-Phoenixkit-LSN``) or, if
absent, a cookie (``phoenixkit_lsn``) and makes it current (`ReplicaRouter.carry`) for the
request: every session the request opens (``router.session()``, ``router.async_session()``,
`PsycopgRouter.read` / ``connection``) starts from it, so its reads go only to a replica
that has replayed the client's last write. A commit that writes during the request moves the
position on; when the response starts, the middleware sets the new token on it (the header
and a ``Set-Cookie``). A browser sends the cookie back by itself; an API client copies the
header. Plain ASGI / WSGI callables: no framework is imported.

```
app = ReadYourWritesMiddleware(app, router)          # ASGI (Starlette, FastAPI, ...)
app = ReadYourWritesWSGIMiddleware(app, router)      # WSGI (Flask, Django, ...)
with carry_token(router, token) as request: ...      # anywhere else; then request.token
```

The response carries the position as it is when the response *starts*: commit before
sending the response (frameworks do for a handler's session). A token that does not decode
(unsigned while the router has a ``token_key``, forged, malformed) is ignored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

from phoenixkit.errors import ConfigurationError
from phoenixkit.replicas._core import RequestToken, RouterCore, carried
from phoenixkit.replicas.tokens import (
    COOKIE_NAME,
    HEADER_NAME,
    cookie_header,
    token_from_asgi,
    token_from_wsgi,
)

__all__ = [
    "ReadYourWritesMiddleware",
    "ReadYourWritesWSGIMiddleware",
    "RequestToken",
    "carry_token",
    "current_token",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def carry_token(router: Any, token: str | int | None) -> contextlib.AbstractContextManager[Any]:
    """``router.carry(token)``: for code that is not behind the middleware (a job, a
    framework hook). The block's sessions start from ``token``; the `RequestToken` it
    yields holds the position after the block's writes (``.token``, ``.changed``)."""
    return _router(router).carry(token)


def current_token(router: Any) -> RequestToken | None:
    """The `RequestToken` of ``router`` for the current request (None: not in one)."""
    return carried(_router(router))


def _router(router: Any) -> RouterCore:
    if not isinstance(router, RouterCore):
        raise ConfigurationError(f"not a ReplicaRouter or PsycopgRouter: {router!r}")
    return router


class _Options:
    def __init__(
        self,
        router: Any,
        cookie: str,
        header: str,
        max_age: int,
        set_cookie: bool,
        set_header: bool,
    ) -> None:
        self.router = _router(router)
        if not cookie or not isinstance(cookie, str) or any(c in cookie for c in "=;, \t"):
            raise ConfigurationError(f"cookie must be a plain cookie name, got {cookie!r}")
        if not header or not isinstance(header, str) or not header.isascii() or ":" in header:
            raise ConfigurationError(f"header must be an HTTP header name, got {header!r}")
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age <= 0:
            raise ConfigurationError(f"max_age must be a positive int (seconds), got {max_age!r}")
        self.cookie, self.header, self.max_age = cookie, header, max_age
        self.set_cookie, self.set_header = set_cookie, set_header

    def response_headers(self, request: RequestToken) -> list[tuple[str, str]]:
        """What the response carries: nothing unless a write moved the position on."""
        token = request.token
        if not request.changed or token is None:
            return []
        found = []
        if self.set_header:
            found.append((self.header, token))
        if self.set_cookie:
            found.append(cookie_header(token, cookie=self.cookie, max_age=self.max_age))
        return found


class ReadYourWritesMiddleware:
    """ASGI middleware: carries ``router``'s read-your-writes token through each HTTP
    request (see the module's docstring). ``cookie`` / ``header``: the names read and
    set; ``max_age``: the cookie's lifetime in seconds (long enough for the replicas to
    catch up); ``set_cookie`` / ``set_header``: which the response carries."""

    def __init__(
        self,
        app: ASGIApp,
        router: Any,
        *,
        cookie: str = COOKIE_NAME,
        header: str = HEADER_NAME,
        max_age: int = 60,
        set_cookie: bool = True,
        set_header: bool = True,
    ) -> None:
        self.app = app
        self.options = _Options(router, cookie, header, max_age, set_cookie, set_header)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        opts = self.options
        token = token_from_asgi(scope, cookie=opts.cookie, header=opts.header)
        with opts.router.carry(token) as request:

            async def send_with_token(message: Message) -> None:
                if message.get("type") == "http.response.start":
                    extra = opts.response_headers(request)
                    if extra:
                        headers = list(message.get("headers", ()))
                        headers += [(k.lower().encode(), v.encode("latin-1")) for k, v in extra]
                        message = {**message, "headers": headers}
                await send(message)

            await self.app(scope, receive, send_with_token)


class ReadYourWritesWSGIMiddleware:
    """WSGI middleware: `ReadYourWritesMiddleware`'s twin, same arguments. The token is
    current while the app runs and while its response body is iterated."""

    def __init__(
        self,
        app: WSGIApp,
        router: Any,
        *,
        cookie: str = COOKIE_NAME,
        header: str = HEADER_NAME,
        max_age: int = 60,
        set_cookie: bool = True,
        set_header: bool = True,
    ) -> None:
        self.app = app
        self.options = _Options(router, cookie, header, max_age, set_cookie, set_header)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        opts = self.options
        token = token_from_wsgi(environ, cookie=opts.cookie, header=opts.header)
        holder: list[RequestToken] = []

        def start_with_token(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            return start_response(status, [*headers, *opts.response_headers(holder[0])], *exc)

        with opts.router.carry(token) as request:
            holder.append(request)
            body = self.app(environ, start_with_token)
        return _Body(body, opts.router, request)


class _Body:
    """The app's response body, iterated with the request's token current again (a
    generator app may open sessions, or call start_response, on its first item)."""

    def __init__(self, body: Iterable[bytes], router: RouterCore, request: RequestToken) -> None:
        self._body = body
        self._iter: Iterator[bytes] | None = None
        self._router = router
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        with self._router._carry_again(self._request):
            if self._iter is None:
                self._iter = iter(self._body)
            return next(self._iter)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
