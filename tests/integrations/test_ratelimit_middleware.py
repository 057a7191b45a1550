"""RateLimitMiddleware through a real server: keys, trusted proxies, tiers, 429 and headers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from phoenixkit.integrations import asgi
from phoenixkit.integrations.asgi import RequestInfo, api_key_header
from phoenixkit.ratelimit import Rate, RateLimiter, TieredRateLimiter
from tests.integrations.apps import asgi_endpoint
from tests.integrations.conftest import Serve
from tests.integrations.servers import serve_asgi


def _limited(limiter: Any, **options: Any) -> Any:
    return lambda m, app: m.RateLimitMiddleware(app, limiter, **options)


def test_denied_with_429_retry_after_and_headers_allowed_with_headers(serve: Serve) -> None:
    limiter = RateLimiter("2/minute")
    with serve(_limited(limiter)) as url, httpx.Client(base_url=url) as client:
        first, second, third = (client.get("/") for _ in range(3))
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 429]
    assert first.text == "small body"
    assert first.headers["x-ratelimit-limit"] == "2"
    assert [first.headers["x-ratelimit-remaining"], second.headers["x-ratelimit-remaining"]] == [
        "1",
        "0",
    ]
    assert first.headers["ratelimit-policy"] == '"default";q=2;w=60'
    assert first.headers["ratelimit"].startswith('"default";r=1;t=')
    assert int(third.headers["retry-after"]) >= 1
    assert third.headers["x-ratelimit-remaining"] == "0"
    assert third.headers["content-type"] == "application/json"
    assert third.json() == {"error": "rate limit exceeded"}
    assert "retry-after" not in first.headers


def test_spoofed_forwarded_headers_from_an_untrusted_peer_are_ignored(serve: Serve) -> None:
    limiter = RateLimiter("2/minute")
    build = _limited(limiter, trusted_proxies=["10.0.0.0/8"])  # 127.0.0.1 is not trusted
    with serve(build) as url, httpx.Client(base_url=url) as client:
        codes = [
            client.get("/", headers={"X-Forwarded-For": "203.0.113.1"}).status_code,
            client.get("/", headers={"X-Forwarded-For": "203.0.113.2"}).status_code,
            client.get("/", headers={"Forwarded": "for=203.0.113.3"}).status_code,
        ]
    assert codes == [200, 200, 429]
    assert limiter.stats().top_offenders == (("127.0.0.1", 1),)


def test_a_trusted_proxy_is_believed_and_walked_from_the_right(serve: Serve) -> None:
    limiter = RateLimiter("1/minute")
    build = _limited(limiter, trusted_proxies=["127.0.0.1", "10.0.0.0/8"])
    with serve(build) as url, httpx.Client(base_url=url) as client:
        codes = [
            client.get("/", headers={"X-Forwarded-For": "203.0.113.1"}).status_code,
            client.get("/", headers={"X-Forwarded-For": "203.0.113.2"}).status_code,
            # the client prepended 1.1.1.1; the trusted 10.0.0.5 appended 203.0.113.1
            client.get("/", headers={"X-Forwarded-For": "1.1.1.1, 203.0.113.1, 10.0.0.5"}),
            client.get("/", headers={"Forwarded": 'for="[2001:db8::1]:443";proto=https'}),
            client.get("/", headers={"Forwarded": "for=unknown"}),  # obfuscated: not an address
        ]
    assert codes[:2] == [200, 200]
    assert codes[2].status_code == 429
    assert codes[3].status_code == 200
    assert codes[4].status_code == 200  # fell back to the proxy's own address
    assert not limiter.peek("2001:db8::1").allowed
    assert not limiter.peek("127.0.0.1").allowed
    assert limiter.peek("1.1.1.1").allowed  # what the client prepended was not believed


def test_malformed_or_oversized_forwarding_headers_fall_back_to_the_peer(serve: Serve) -> None:
    limiter = RateLimiter("100/minute")
    build = _limited(limiter, trusted_proxies=["127.0.0.1"])
    bad = [
        "not-an-ip",
        "203.0.113.1, ###",
        ", ,",
        ",".join(["203.0.113.9"] * 40),  # too many hops
        "0" * 9000 + ", 203.0.113.8",  # oversized: ignored whole
    ]
    with serve(build) as url, httpx.Client(base_url=url) as client:
        for value in bad:
            assert client.get("/", headers={"X-Forwarded-For": value}).status_code == 200
        many = [("X-Forwarded-For", "203.0.113.7")] * 40  # repeated: one 40-hop chain
        assert client.get("/", headers=many).status_code == 200
    assert limiter.peek("127.0.0.1").remaining == 100 - len(bad) - 2  # after one more hit
    assert limiter.stats().allowed == len(bad) + 1


def test_api_key_header_keys_and_rejects_malformed_keys(serve: Serve) -> None:
    limiter = RateLimiter("1/minute")
    build = _limited(limiter, key=api_key_header("X-API-Key"))
    with serve(build) as url, httpx.Client(base_url=url) as client:
        ok_a = client.get("/", headers={"X-API-Key": "alpha"})
        ok_b = client.get("/", headers={"X-API-Key": "beta"})
        denied = client.get("/", headers={"X-API-Key": "alpha"})
        anonymous = client.get("/")  # no key: the client address
        spaced = client.get("/", headers={"X-API-Key": "a b"})
        oversized = client.get("/", headers={"X-API-Key": "k" * 300})
    assert [ok_a.status_code, ok_b.status_code, denied.status_code] == [200, 200, 429]
    assert anonymous.status_code == 200
    assert spaced.status_code == oversized.status_code == 400
    assert spaced.json() == {"error": "bad request"}
    assert not limiter.peek("key:alpha").allowed
    assert not limiter.peek("127.0.0.1").allowed
    assert limiter.peek("key:gamma").allowed


def test_a_callable_key_and_none_for_unlimited(serve: Serve) -> None:
    limiter = RateLimiter("1/minute")

    def by_user(info: RequestInfo) -> str | None:
        user = info.header("x-user")
        return None if user == "admin" else f"user:{user}"

    with serve(_limited(limiter, key=by_user)) as url, httpx.Client(base_url=url) as client:
        codes = [client.get("/", headers={"X-User": u}).status_code for u in "aab"]
        admin = [client.get("/", headers={"X-User": "admin"}).status_code for _ in range(3)]
    assert codes == [200, 429, 200]
    assert admin == [200, 200, 200]


def test_tier_resolver_picks_the_plan(serve: Serve) -> None:
    tiers = TieredRateLimiter(
        {"free": Rate.parse("1/minute"), "pro": Rate.parse("3/minute")}, default_tier="free"
    )

    def plan(info: RequestInfo) -> str | None:
        return "pro" if info.header("x-plan") == "pro" else None

    build = _limited(tiers, key=api_key_header(), tier=plan)
    with serve(build) as url, httpx.Client(base_url=url) as client:
        free = [client.get("/", headers={"X-API-Key": "f"}).status_code for _ in range(2)]
        pro = [client.get("/", headers={"X-API-Key": "p", "X-Plan": "pro"}) for _ in range(4)]
    assert free == [200, 429]
    assert [r.status_code for r in pro] == [200, 200, 200, 429]
    assert pro[0].headers["ratelimit-policy"] == '"pro";q=3;w=60'
    assert tiers.stats().by_tier["pro"].denied == 1


def test_exempt_paths_and_prefixes_are_never_limited(serve: Serve) -> None:
    limiter = RateLimiter("1/minute")
    build = _limited(limiter, exempt=["/health", "/static/*"])
    with serve(build) as url, httpx.Client(base_url=url) as client:
        exempt = [client.get(p).status_code for p in ["/health", "/health", "/static/a.css"] * 2]
        limited = [client.get("/").status_code, client.get("/").status_code]
    assert exempt == [200] * 6
    assert limited == [200, 429]
    assert limiter.stats().allowed == 1


class _AsyncOnly(RateLimiter):
    def hit(self, key: str, cost: int = 1) -> Any:
        raise AssertionError("the ASGI middleware called the sync limiter")


def test_the_asgi_middleware_only_awaits_the_limiter() -> None:
    limiter = _AsyncOnly("5/minute")
    with serve_asgi(asgi.RateLimitMiddleware(asgi_endpoint, limiter)) as url:
        assert httpx.get(url).status_code == 200
    assert limiter.stats().allowed == 1


@pytest.mark.parametrize("bad", ["nonsense", "10.0.0.0/33"])
def test_bad_trusted_proxies_are_a_configuration_error(bad: str) -> None:
    from phoenixkit.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="trusted proxy"):
        asgi.RateLimitMiddleware(asgi_endpoint, RateLimiter("1/second"), trusted_proxies=[bad])
