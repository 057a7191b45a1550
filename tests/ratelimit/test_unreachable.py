"""A Redis nobody listens on: each policy answers at once, and only documented errors leak.

(The SIGKILL-under-load version, with recovery, is in test_faults.py.)
"""

from __future__ import annotations

import logging

import pytest

from phoenixkit._backends import RedisBackend
from phoenixkit.errors import BackendUnavailableError, PhoenixError
from phoenixkit.ratelimit import Lockout, RateLimiter, TieredRateLimiter
from phoenixkit.testing import FakeClock
from tests.servers import free_port


@pytest.fixture
def dead_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=0.5"


def test_raise_is_the_default(dead_url: str) -> None:
    limiter = RateLimiter("5/minute", backend=RedisBackend(dead_url))
    with pytest.raises(BackendUnavailableError, match="on_backend_error='raise'") as caught:
        limiter.hit("k")
    assert isinstance(caught.value, PhoenixError)
    assert limiter.stats().backend_errors == 1


def test_fallbacks_are_logged_once_and_counted(
    dead_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        "4/minute",
        backend=RedisBackend(dead_url),
        on_backend_error="local",
        workers=2,
        retry_interval=5,
        name="dead",
        clock=clock,  # times the probes and the local fallback (Redis is never reached)
    )
    with caplog.at_level(logging.WARNING, logger="phoenixkit.ratelimit"):
        decisions = [limiter.hit("k") for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]  # 4 / 2 workers
    assert {d.limit for d in decisions} == {2}
    stats = limiter.stats()
    assert (stats.fallbacks, stats.backend_errors, stats.degraded) == (1, 1, True)
    assert len([r for r in caplog.records if "falling back to local" in r.message]) == 1
    clock.advance(5)  # a probe is due: it fails again, still degraded, not logged again
    limiter.hit("k")
    assert limiter.stats().backend_errors == 2
    assert limiter.stats().fallbacks == 1


@pytest.mark.parametrize(("policy", "allowed"), [("fail_open", True), ("fail_closed", False)])
def test_open_and_closed(dead_url: str, policy: str, allowed: bool) -> None:
    tiers = TieredRateLimiter(
        {"basic": "2/minute"}, backend=RedisBackend(dead_url), on_backend_error=policy
    )
    d = tiers.hit("k", tier="basic")
    assert d.allowed is allowed
    assert d.limit == 2
    assert (d.retry_after > 0) is not allowed


def test_lockout_raises_the_documented_error(dead_url: str) -> None:
    lock = Lockout(backend=RedisBackend(dead_url))
    with pytest.raises(BackendUnavailableError, match="lockout 'lockout'"):
        lock.check("k")
