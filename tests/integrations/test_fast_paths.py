"""The ASGI hot path's shortcuts answer exactly what the general functions answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phoenixkit.integrations import _body, _http
from phoenixkit.integrations._asgi_io import _decode, _encode, _plain, _request_headers
from phoenixkit.integrations.asgi import ETagMiddleware, GZipMiddleware, _incoming_id
from phoenixkit.masking.correlation import correlation_id_from_headers

NAMES = st.sampled_from(
    [
        b"host",
        b"x-request-id",
        b"X-Request-ID",
        b"x-correlation-id",
        b"traceparent",
        b"http_x_request_id",
        b"accept",
        b"vary",
        b"Content-Length",
        b"content-type",
        b"\xe9t\xe9",
    ]
)
VALUES = st.one_of(
    st.sampled_from(
        [
            b"abc-123",
            b"",
            b"  spaced  ",
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            b"bad id!",
            b"\xff",
            b"text/plain",
            b"12",
        ]
    ),
    st.binary(max_size=20),
)
PAIRS = st.tuples(NAMES, VALUES)
ODD = st.one_of(st.lists(st.binary(max_size=3), max_size=3), st.tuples(st.text(max_size=5)))


@given(st.lists(st.one_of(PAIRS, PAIRS, ODD), max_size=8))
def test_the_correlation_shortcut_agrees_with_the_general_parser(headers: list[object]) -> None:
    assert _incoming_id(headers) == correlation_id_from_headers(headers)


@given(st.lists(PAIRS, max_size=8))
def test_request_headers_agree_with_header_dict(headers: list[tuple[bytes, bytes]]) -> None:
    scope = {"headers": headers}
    assert _request_headers(scope) == _http.header_dict(_decode(headers))
    assert _request_headers(scope) is _request_headers(scope)  # decoded once


@given(st.lists(PAIRS, max_size=8), st.integers(100, 599), st.sampled_from(["gzip", None]))
def test_the_compression_plan_reads_headers_like_get_header(
    raw: list[tuple[bytes, bytes]], status: int, accept: str | None
) -> None:
    headers = _decode(raw)
    request = {} if accept is None else {"accept-encoding": accept}
    ctype = (_body.get_header(headers, "content-type") or "").lower()
    length = _body.get_header(headers, "content-length")
    plan = _body.compress_plan(request, status, headers, 1024, ["gzip"])
    encoded = _body.get_header(headers, "content-encoding")
    media = ctype.startswith(_body._COMPRESSED) or "text/event-stream" in ctype
    if status < 200 or status in (204, 206, 304) or encoded or media:
        assert plan == headers
    elif (length is not None and length.isdigit() and int(length) < 1024) or accept is None:
        assert plan == _body.add_vary(headers, "Accept-Encoding")
    else:
        assert plan is None


@given(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=6))
def test_encoded_names_are_lowercased_and_cached_bounded(headers: list[tuple[str, str]]) -> None:
    latin = [(k, v) for k, v in headers if all(ord(c) < 256 for c in k + v)]
    expected = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in latin]
    assert _encode(latin) == expected
    assert _encode(latin) == expected


# Raw-header shortcuts of the ETag and GZip middleware -------------------------------------

PLAIN_NAMES = st.sampled_from(
    [b"content-type", b"content-length", b"etag", b"vary", b"content-encoding", b"x-a", b"1"]
)
PLAIN_VALUES = st.one_of(
    st.sampled_from(
        [
            b"12",
            b"4096",
            b"\xb2",
            b" 12",
            b"",
            b"gzip",
            b"application/json",
            b"IMAGE/png",
            b"Text/Event-Stream; charset=utf-8",
            b"text/\xc0",
            b'W/"abc"',
            b"Accept, Cookie",
        ]
    ),
    st.binary(max_size=6),
)
PLAIN = st.lists(st.tuples(PLAIN_NAMES, PLAIN_VALUES), max_size=6)
ANY_RAW = st.lists(st.tuples(NAMES, VALUES), max_size=6)
STATUSES = st.sampled_from([100, 200, 204, 206, 304, 404, 500])
REQUESTS = st.fixed_dictionaries(
    {},
    optional={
        "if-none-match": st.sampled_from(["*", 'W/"x"', "junk"]),
        "accept-encoding": st.sampled_from(["gzip", "br;q=0", "identity", "*"]),
    },
)


@given(st.one_of(PLAIN, ANY_RAW))
def test_plain_headers_survive_decoding_and_encoding(raw: list[tuple[bytes, bytes]]) -> None:
    if _plain(raw):
        assert _encode(_decode(raw)) == raw
    assert not _plain(tuple(raw))
    assert not _plain([list(pair) for pair in raw]) or not raw


@given(PLAIN, STATUSES, REQUESTS, st.binary(max_size=40), st.booleans())
def test_the_raw_etag_shortcut_answers_like_etag_response(
    raw: list[tuple[bytes, bytes]], status: int, request: dict[str, str], body: bytes, weak: bool
) -> None:
    fast = _body.etag_plain(request, status, raw, body, weak)
    if fast is None:
        return
    want_status, headers, out = _body.etag_response(
        "GET", request, status, _decode(raw), body, weak
    )
    assert fast == (want_status, _encode(_body.with_length(headers, out)), out)
    assert fast[1] is not raw


@given(st.one_of(PLAIN, ANY_RAW), STATUSES, REQUESTS, st.sampled_from([0, 10, 1024]))
def test_the_raw_compression_plan_answers_like_compress_plan(
    raw: list[tuple[bytes, bytes]], status: int, request: dict[str, str], minimum: int
) -> None:
    if not _plain(raw):
        return
    fast = _body.compress_plan_plain(request, status, raw, minimum, ["gzip"])
    if fast is False:
        return
    want = _body.compress_plan(request, status, _decode(raw), minimum, ["gzip"])
    assert fast == (None if want is None else _encode(want))
    assert fast is not raw


def _serve(app: Any, headers: Any, request: list[tuple[bytes, bytes]]) -> list[Any]:
    """What ``app`` sends for a GET with ``request`` headers, the endpoint answering
    ``headers`` (raw, as it gives them) and a 12-byte body."""
    sent: list[Any] = []

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"ok": true}'})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": request}
    asyncio.run(app(endpoint)(scope, receive, send))
    return sent


@settings(max_examples=40, deadline=None)
@given(
    st.one_of(PLAIN, ANY_RAW),
    st.sampled_from([[], [(b"accept-encoding", b"gzip")], [(b"if-none-match", b"*")]]),
    st.sampled_from([0, 1024]),
)
def test_the_etag_and_gzip_middleware_answer_plain_headers_like_any_others(
    raw: list[tuple[bytes, bytes]], request: list[tuple[bytes, bytes]], minimum: int
) -> None:
    def stack(app: Any) -> Any:
        return GZipMiddleware(ETagMiddleware(app), minimum_size=minimum)

    try:  # the shortcuts see a list of tuples; the general path gets the same as lists
        want = _serve(stack, [list(pair) for pair in raw], request)
    except Exception as exc:  # the general path's own answer to odd headers
        with pytest.raises(type(exc)):
            _serve(stack, raw, request)
        return
    assert _serve(stack, raw, request) == want


def test_the_raw_shortcuts_take_the_common_response() -> None:
    raw = [(b"content-type", b"application/json"), (b"content-length", b"12")]
    assert _plain(raw)
    plan = _body.compress_plan_plain({"accept-encoding": "gzip"}, 200, raw, 1024, ["gzip"])
    assert plan == [*raw, (b"vary", b"Accept-Encoding")]
    done = _body.etag_plain({}, 200, raw, b'{"ok": true}', True)
    assert done is not None
    assert done[1][0] == raw[0]
    assert done[1][1][0] == b"etag"
    assert done[1][1][1].startswith(b'W/"')
    assert done[1][2] == (b"content-length", b"12")
