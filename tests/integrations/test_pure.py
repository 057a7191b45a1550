"""The shared pure logic never raises on hostile header text, and decides as documented."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from phoenixkit.integrations import _body, _cache, _http

TRUSTED = _http.parse_networks(["10.0.0.0/8", "::1"])
TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=300)


@given(xff=TEXT, forwarded=st.none() | TEXT, peer=st.sampled_from(["10.1.2.3", "::1", "x", ""]))
def test_client_address_never_raises_and_is_an_address_seen(
    xff: str, forwarded: str | None, peer: str
) -> None:
    headers = {"x-forwarded-for": xff}
    if forwarded is not None:
        headers["forwarded"] = forwarded
    client = _http.client_address(peer, headers, TRUSTED)
    if peer in ("x", ""):  # not a trusted proxy: its headers are never looked at
        assert client == (peer or "unknown")
    else:
        assert client == peer or _http.parse_ip(client) is not None


@given(inm=TEXT, accept=TEXT, cc=TEXT)
def test_header_parsers_never_raise(inm: str, accept: str, cc: str) -> None:
    assert isinstance(_body.etag_matches(inm, 'W/"abc"'), bool)
    assert _body.choose_encoding(accept, ["gzip"]) in (None, "gzip")
    assert isinstance(_body.cache_control(cc), dict)
    assert _cache.lookup_allowed("GET", {"cache-control": cc}) in (True, False)


def test_untrusted_peer_headers_are_ignored_and_trusted_chains_walk_from_the_right() -> None:
    spoof = {"x-forwarded-for": "203.0.113.1"}
    assert _http.client_address("198.51.100.7", spoof, TRUSTED) == "198.51.100.7"
    chain = {"x-forwarded-for": "6.6.6.6, 203.0.113.1, 10.0.0.2"}
    assert _http.client_address("10.0.0.1", chain, TRUSTED) == "203.0.113.1"
    everyone_trusted = {"x-forwarded-for": "10.0.0.3, 10.0.0.2"}
    assert _http.client_address("10.0.0.1", everyone_trusted, TRUSTED) == "10.0.0.3"
    forwarded = {"forwarded": 'for=192.0.2.60;proto=http, for="[2001:db8::7]:80"'}
    assert _http.client_address("::1", forwarded, TRUSTED) == "2001:db8::7"


def test_store_plan_follows_cache_control() -> None:
    plain = [("Content-Type", "text/plain")]
    assert _cache.store_plan(200, plain, 60) == (60, [])
    assert _cache.store_plan(200, [*plain, ("Cache-Control", "max-age=5")], 60) == (5.0, [])
    assert _cache.store_plan(200, [("Cache-Control", "public, s-maxage=9, max-age=5")], 60) == (
        9.0,
        [],
    )
    assert _cache.store_plan(200, [("Vary", "Accept-Language, X-A")], 60, ["X-B"]) == (
        60,
        ["accept-language", "x-a", "x-b"],
    )
    for refused in ("no-store", "private", "no-cache", "max-age=0", "max-age=bogus"):
        assert _cache.store_plan(200, [("Cache-Control", refused)], 60) is None
    assert _cache.store_plan(200, [("Vary", "*")], 60) is None
    assert _cache.store_plan(201, plain, 60) is None
    assert _cache.decode_entry({"s": 200}) is None
