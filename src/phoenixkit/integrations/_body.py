"""The pure response-body logic shared by the ASGI and WSGI middleware: ETags, content
negotiation and compression, ``Vary``, ``Cache-Control``. No I/O, no framework.

Headers are ``list[tuple[str, str]]``; malformed or oversized request headers are ignored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from phoenixkit.integrations._http import MAX_HEADER_VALUE, Headers

GZIP_MIN_SIZE = 1024
_ETAG = re.compile(r'\s*(W/)?("[\x21\x23-\x7e\x80-\xff]*")\s*')


# ETag -------------------------------------------------------------------------------------


def compute_etag(body: bytes, *, weak: bool = True) -> str:
    """A validator from the body's BLAKE2b digest: ``W/"<32 hex>"`` (or strong, unprefixed)."""
    tag = f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
    return f"W/{tag}" if weak else tag


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison of ``etag`` with an ``If-None-Match`` value (``*`` matches all).

    Malformed or oversized values match nothing.
    """
    if len(if_none_match) > MAX_HEADER_VALUE:
        return False
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        match = _ETAG.fullmatch(candidate)
        if match is not None and match.group(2) == opaque:
            return True
    return False


def get_header(headers: Headers, name: str) -> str | None:
    lower = name.lower()
    for key, value in headers:
        if key.lower() == lower:
            return value
    return None


def without(headers: Headers, *names: str) -> Headers:
    drop = {n.lower() for n in names}
    return [(k, v) for k, v in headers if k.lower() not in drop]


def _first_values(headers: Headers) -> dict[str, str]:
    """Each lowercased name's first value: `get_header` for several names in one pass."""
    found: dict[str, str] = {}
    for key, value in headers:
        name = key.lower()
        if name not in found:
            found[name] = value
    return found


def add_vary(headers: Headers, token: str) -> Headers:
    """``headers`` with ``token`` in ``Vary`` (merged, not duplicated)."""
    return _add_vary(headers, token, get_header(headers, "vary"))


def _add_vary(headers: Headers, token: str, existing: str | None) -> Headers:
    if existing is None:
        return [*headers, ("Vary", token)]
    tokens = [t.strip().lower() for t in existing.split(",")]
    if token.lower() in tokens or "*" in tokens:
        return headers
    return [*without(headers, "vary"), ("Vary", f"{existing}, {token}")]


_NOT_MODIFIED_KEEP = frozenset(
    ("cache-control", "content-location", "date", "etag", "expires", "vary")
)


def etag_response(
    method: str, request: Mapping[str, str], status: int, headers: Headers, body: bytes, weak: bool
) -> tuple[int, Headers, bytes]:
    """Add an ETag to a GET/HEAD 200 response, answering 304 when ``If-None-Match`` matches."""
    if method not in ("GET", "HEAD") or status != 200:
        return status, headers, body
    etag = get_header(headers, "etag")
    if etag is None:
        etag = compute_etag(body, weak=weak)
        headers = [*headers, ("ETag", etag)]
    inm = request.get("if-none-match")
    if inm is not None and etag_matches(inm, etag):
        kept = [(k, v) for k, v in headers if k.lower() in _NOT_MODIFIED_KEEP]
        return 304, kept, b""
    return status, headers, body


def etag_plain(
    request: Mapping[str, str], status: int, raw: list[tuple[bytes, bytes]], body: bytes, weak: bool
) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
    """`etag_response` of a GET then `with_length`, on raw headers as `_encode` writes them
    (lowercase names): the common case only (a 200 without an ETag, a request without
    ``If-None-Match``); None for anything else."""
    if status != 200 or "if-none-match" in request:
        return None
    out = []
    for pair in raw:
        name = pair[0]
        if name == b"etag":
            return None
        if name != b"content-length":
            out.append(pair)
    out.append((b"etag", compute_etag(body, weak=weak).encode("ascii")))
    out.append((b"content-length", b"%d" % len(body)))
    return status, out, body


# Compression ------------------------------------------------------------------------------


def _compressors() -> dict[str, Callable[[bytes], bytes]]:
    import gzip

    found: dict[str, Callable[[bytes], bytes]] = {
        "gzip": lambda data: gzip.compress(data, compresslevel=6, mtime=0)
    }
    try:
        import brotli  # type: ignore[import-not-found]

        found["br"] = lambda data: bytes(brotli.compress(data, quality=4))
    except ImportError:
        pass
    try:
        import zstandard  # type: ignore[import-not-found]

        found["zstd"] = lambda data: bytes(zstandard.ZstdCompressor(level=3).compress(data))
    except ImportError:
        pass
    return found


COMPRESSORS = _compressors()
"""Encodings available here, best first: ``br`` and ``zstd`` only when installed."""
_PREFERENCE = ("br", "zstd", "gzip")


def choose_encoding(accept_encoding: str | None, available: Iterable[str]) -> str | None:
    """The best encoding of ``available`` that ``Accept-Encoding`` accepts (q > 0), or None."""
    if not accept_encoding or len(accept_encoding) > MAX_HEADER_VALUE:
        return None
    qualities: dict[str, float] = {}
    for item in accept_encoding.split(",")[:64]:
        name, _, params = item.partition(";")
        q = 1.0
        params = params.strip().lower()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        qualities[name.strip().lower()] = q
    wildcard = qualities.get("*", 0.0)
    best: tuple[float, int, str] | None = None
    for rank, name in enumerate(n for n in _PREFERENCE if n in available):
        q = qualities.get(name, wildcard)
        if q > 0 and (best is None or q > best[0]):
            best = (q, -rank, name)
    return None if best is None else best[2]


_COMPRESSED = ("image/", "video/", "audio/", "application/zip", "application/gzip")


def compress_plan(
    request: Mapping[str, str],
    status: int,
    headers: Headers,
    minimum: int,
    encodings: Iterable[str],
) -> Headers | None:
    """The final headers when they alone decide that nothing will be compressed (the body
    can then stream through), or None when the body is needed to decide."""
    if status < 200 or status in (204, 206, 304):
        return headers
    first = _first_values(headers)
    if first.get("content-encoding"):
        return headers
    ctype = (first.get("content-type") or "").lower()
    if ctype.startswith(_COMPRESSED) or "text/event-stream" in ctype:
        return headers
    length = first.get("content-length")
    small = length is not None and length.isdigit() and int(length) < minimum
    if small or choose_encoding(request.get("accept-encoding"), encodings) is None:
        return _add_vary(headers, "Accept-Encoding", first.get("vary"))
    return None


_SKIP_STATUS = (204, 206, 304)


def compress_plan_plain(
    request: Mapping[str, str],
    status: int,
    raw: list[tuple[bytes, bytes]],
    minimum: int,
    encodings: Iterable[str],
) -> list[tuple[bytes, bytes]] | Literal[False] | None:
    """`compress_plan` on raw headers as `_encode` writes them (lowercase names), answering
    in raw headers (a new list); False when it cannot tell without the general path."""
    if status < 200 or status in _SKIP_STATUS:
        return list(raw)
    encoding = ctype = length = vary = None
    for name, value in raw:  # each one's first value, as `_first_values`
        if name == b"content-encoding":
            encoding = value if encoding is None else encoding
        elif name == b"content-type":
            ctype = value if ctype is None else ctype
        elif name == b"content-length":
            length = value if length is None else length
        elif name == b"vary":
            vary = value if vary is None else vary
    if encoding:
        return list(raw)
    if vary is not None or not (ctype or b"").isascii() or not (length or b"").isascii():
        return False  # merging Vary, or values the general path reads as latin-1 text
    lowered = ctype.lower().decode("ascii") if ctype is not None else ""
    if lowered.startswith(_COMPRESSED) or "text/event-stream" in lowered:
        return list(raw)
    small = length is not None and length.isdigit() and int(length) < minimum
    if small or choose_encoding(request.get("accept-encoding"), encodings) is None:
        return [*raw, (b"vary", b"Accept-Encoding")]
    return None


def compress_response(
    request: Mapping[str, str],
    status: int,
    headers: Headers,
    body: bytes,
    minimum: int,
    encodings: Iterable[str],
) -> tuple[int, Headers, bytes]:
    """Compress a body of at least ``minimum`` bytes when the client accepts it.

    ``Vary: Accept-Encoding`` is added to every compressible response, compressed or not, so
    that a shared cache never serves one client's encoding to another.
    """
    decided = compress_plan(request, status, headers, minimum, encodings)
    if decided is not None:
        return status, decided, body
    headers = add_vary(headers, "Accept-Encoding")
    encoding = choose_encoding(request.get("accept-encoding"), encodings)
    if len(body) < minimum or encoding is None:
        return status, headers, body
    compressed = COMPRESSORS[encoding](body)
    etag = get_header(headers, "etag")
    headers = without(headers, "content-length", "etag")
    headers += [("Content-Encoding", encoding), ("Content-Length", str(len(compressed)))]
    if etag is not None:  # the bytes differ now: a strong validator becomes weak
        headers.append(("ETag", etag if etag.startswith("W/") else f"W/{etag}"))
    return status, headers, compressed


def with_length(headers: Headers, body: bytes) -> Headers:
    kept = [(k, v) for k, v in headers if k.lower() != "content-length"]
    kept.append(("Content-Length", str(len(body))))
    return kept


# Cache-Control ----------------------------------------------------------------------------


def cache_control(value: str | None) -> dict[str, str | None]:
    """Directives of a ``Cache-Control`` value, lowercased (``{"max-age": "60"}``)."""
    out: dict[str, str | None] = {}
    if not value or len(value) > MAX_HEADER_VALUE:
        return out
    for item in value.split(","):
        name, sep, arg = item.partition("=")
        name = name.strip().lower()
        if name:
            out[name] = arg.strip().strip('"') if sep else None
    return out


def max_age(directives: Mapping[str, str | None]) -> float | None:
    raw = directives.get("s-maxage") or directives.get("max-age")
    if raw is None:
        return None
    try:
        return max(0.0, float(int(raw)))
    except ValueError:
        return 0.0
