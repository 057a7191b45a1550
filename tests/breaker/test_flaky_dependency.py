"""A real flaky dependency: a redis-server killed (SIGKILL) and restarted under a breaker.

The breaker opens on the connection failures, then sheds load without touching the network
while the server is down, and recovers through half-open once the server is back and the
(fake) open duration has passed.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from phoenixkit.breaker import CircuitBreaker, CircuitOpenError
from phoenixkit.testing import FakeClock
from tests.servers import RedisServer


class CountingConnection(redis.Connection):
    """A redis-py connection that counts its attempts to open a socket."""

    attempts = 0

    def _connect(self) -> Any:
        type(self).attempts += 1
        return super()._connect()  # type: ignore[no-untyped-call]


def test_breaker_sheds_load_while_redis_is_down_and_recovers(redis_server: Any) -> None:
    if not isinstance(redis_server, RedisServer):
        pytest.skip("needs a local redis-server that the test can kill (an env URL was given)")
    pool = redis.ConnectionPool(
        connection_class=CountingConnection,
        host="127.0.0.1",
        port=redis_server.port,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),  # one attempt per call: the breaker decides, not redis-py
    )
    client = redis.Redis(connection_pool=pool)
    clock = FakeClock()
    br = CircuitBreaker(
        "redis",
        minimum_calls=3,
        window_size=6,
        failure_rate_threshold=0.5,
        open_duration=30.0,
        half_open_max_calls=2,
        record_exceptions=(redis.ConnectionError, redis.TimeoutError),
        clock=clock,
    )
    network_calls = 0

    def ping() -> bool:
        nonlocal network_calls
        network_calls += 1
        return bool(client.ping())

    try:
        for _ in range(3):
            assert br.call(ping) is True
        assert br.state == "closed"

        before_outage = CountingConnection.attempts
        redis_server.kill()

        failures = 0
        for _ in range(20):
            try:
                br.call(ping)
            except redis.ConnectionError:
                failures += 1
            except CircuitOpenError:
                break
        else:
            pytest.fail("the breaker never opened while redis was down")
        # 3 successes then 3 failures: half of the last 6 calls failed
        assert failures == 3
        assert br.state == "open"

        attempts, calls = CountingConnection.attempts, network_calls
        assert attempts >= before_outage + 2  # the failing calls did try to reconnect
        for i in range(200):  # shed fast: 200 calls over 25 s of the 30 s open duration
            with pytest.raises(CircuitOpenError) as info:
                br.call(ping)
            assert info.value.state == "open"
            assert info.value.retry_after == pytest.approx(30.0 - i * 0.125)
            clock.advance(0.125)
        assert (CountingConnection.attempts, network_calls) == (attempts, calls)
        stats = br.stats()
        assert (stats.failures, stats.rejected, stats.calls) == (3, 201, 6)

        redis_server.restart()
        with pytest.raises(CircuitOpenError):
            br.call(ping)  # still open: the breaker waits out its duration
        assert network_calls == calls

        clock.advance(5.0)  # 30 s since the circuit opened
        assert br.state == "half-open"
        assert br.call(ping) is True  # probe 1 of 2
        assert br.state == "half-open"
        assert br.call(ping) is True  # probe 2 of 2
        assert br.state == "closed"
        assert CountingConnection.attempts == attempts + 1  # one reconnection, by the probe
        for _ in range(10):
            assert br.call(ping) is True
        stats = br.stats()
        assert (stats.state, stats.successes, stats.failures) == ("closed", 15, 3)
        assert stats.transitions == 3  # closed -> open -> half-open -> closed
    finally:
        client.close()
        pool.disconnect()
        if not redis_server.ping():
            redis_server.restart()
    assert redis_server.ping()
