"""The ASGI hot path's shortcuts answer exactly what the general functions answer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from phoenixkit.integrations import _body, _http
from phoenixkit.integrations._asgi_io import _decode, _encode, _request_headers
from phoenixkit.integrations.asgi import _incoming_id
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
