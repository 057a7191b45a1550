"""Read-your-writes tokens an application carries between requests (a cookie or a header).

A token is the commit LSN of the client's last write, as lower-case hex, optionally
followed by ``.`` and an HMAC-SHA256 tag (first 16 bytes, hex) when a key is given. A token
that does not decode is ignored (`decode_token` returns None): a read then goes wherever
the policy sends it. Sign tokens when clients must not be able to pin every read of theirs
to the primary with a forged far-future LSN.

```
token = encode_token(session.lsn, key=SECRET)      # after the write: Set-Cookie / header
min_lsn = decode_token(request_cookie, key=SECRET)  # next request: router.session(token=...)
```
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Any

from phoenixkit.replicas.policy import format_lsn, parse_lsn

__all__ = [
    "COOKIE_NAME",
    "HEADER_NAME",
    "cookie_header",
    "decode_token",
    "encode_token",
    "token_from_asgi",
    "token_from_wsgi",
]

COOKIE_NAME = "phoenixkit_lsn"
"""A suggested cookie name for the token."""

HEADER_NAME = "X-Phoenixkit-LSN"
"""A suggested header name for the token."""

_TOKEN = re.compile(r"\A([0-9a-f]{1,16})(?:\.([0-9a-f]{32}))?\Z")


def _tag(position: int, key: bytes) -> str:
    return hmac.new(key, f"{position:x}".encode(), hashlib.sha256).hexdigest()[:32]


def encode_token(lsn: int | str, *, key: bytes | None = None) -> str:
    """The token for ``lsn`` (a position or ``'X/Y'`` text); signed when ``key`` is given."""
    position = parse_lsn(lsn) if isinstance(lsn, str) else parse_lsn(format_lsn(lsn))
    text = f"{position:x}"
    return f"{text}.{_tag(position, key)}" if key is not None else text


def decode_token(token: str | None, *, key: bytes | None = None) -> int | None:
    """The LSN position in ``token``, or None when it is missing, malformed, or (with a
    ``key``) unsigned or signed by another key."""
    if not token or not isinstance(token, str):
        return None
    match = _TOKEN.match(token.strip())
    if match is None:
        return None
    position = int(match.group(1), 16)
    if key is not None:
        tag = match.group(2)
        if tag is None or not hmac.compare_digest(tag, _tag(position, key)):
            return None
    return position


def _pick(cookie_text: str | None, header_value: str | None, cookie: str) -> str | None:
    if header_value:
        return header_value.strip()
    if cookie_text:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie_text)
        except CookieError:
            return None
        if cookie in jar:
            return jar[cookie].value
    return None


def token_from_asgi(
    scope: Mapping[str, Any], *, cookie: str = COOKIE_NAME, header: str = HEADER_NAME
) -> str | None:
    """The token an ASGI request carries: the ``header`` if present, else the ``cookie``.
    Returns the raw text; `decode_token` (or ``router.session(token=...)``) checks it."""
    wanted = header.lower().encode("latin-1")
    cookie_text = header_value = None
    for name, value in scope.get("headers", ()):
        key = bytes(name).lower()
        if key == wanted:
            header_value = bytes(value).decode("latin-1")
        elif key == b"cookie":
            cookie_text = bytes(value).decode("latin-1")
    return _pick(cookie_text, header_value, cookie)


def token_from_wsgi(
    environ: Mapping[str, Any], *, cookie: str = COOKIE_NAME, header: str = HEADER_NAME
) -> str | None:
    """The token a WSGI request carries: the ``header`` if present, else the ``cookie``."""
    key = "HTTP_" + header.upper().replace("-", "_")
    return _pick(environ.get("HTTP_COOKIE"), environ.get(key), cookie)


def cookie_header(token: str, *, cookie: str = COOKIE_NAME, max_age: int = 60) -> tuple[str, str]:
    """A ``Set-Cookie`` header carrying ``token`` (HttpOnly, SameSite=Lax, Path=/).

    ``max_age``: long enough for the replicas to catch up; after it, reads go anywhere."""
    return (
        "Set-Cookie",
        f"{cookie}={token}; Max-Age={int(max_age)}; Path=/; HttpOnly; SameSite=Lax",
    )
