"""CorrelationIdMiddleware and TimingMiddleware through a real server and httpx."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.integrations.conftest import Serve

HEX32 = re.compile(r"[0-9a-f]{32}")


def _stack(m: Any, app: Any) -> Any:
    return m.CorrelationIdMiddleware(m.TimingMiddleware(app))


def test_incoming_id_round_trips_into_the_app_and_the_logs(
    serve: Serve, records: list[Any]
) -> None:
    with serve(_stack) as url:
        r = httpx.get(f"{url}/id", headers={"X-Request-ID": "order-42.retry:1"})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "order-42.retry:1"
    assert r.text == "order-42.retry:1"
    assert [rec.correlation_id for rec in records] == ["order-42.retry:1"]


def test_a_missing_id_is_generated_and_differs_per_request(serve: Serve) -> None:
    with serve(_stack) as url, httpx.Client(base_url=url) as client:
        first, second = client.get("/id"), client.get("/id")
    for r in (first, second):
        assert HEX32.fullmatch(r.headers["x-request-id"])
        assert r.text == r.headers["x-request-id"]
    assert first.text != second.text


def test_traceparent_gives_its_trace_id(serve: Serve) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with serve(_stack) as url:
        r = httpx.get(f"{url}/id", headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
    assert r.headers["x-request-id"] == trace == r.text


def test_malformed_or_oversized_ids_are_replaced_not_echoed(serve: Serve) -> None:
    bad = ["a b", 'x"y', "x" * 200, "é", "tab\there"]
    with serve(_stack) as url, httpx.Client(base_url=url) as client:
        for value in bad:
            r = client.get("/id", headers={"X-Request-ID": value.encode("utf-8")})
            assert r.status_code == 200
            assert HEX32.fullmatch(r.headers["x-request-id"]), value
            assert r.text == r.headers["x-request-id"]
        r = client.get("/id", headers={"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"})
        assert HEX32.fullmatch(r.text)
        assert r.text != "0" * 32


def test_the_apps_own_request_id_header_is_replaced_once(serve: Serve) -> None:
    def build(m: Any, app: Any) -> Any:
        return m.CorrelationIdMiddleware(m.CorrelationIdMiddleware(app))

    with serve(build) as url:
        r = httpx.get(f"{url}/id", headers={"X-Request-ID": "abc"})
    assert r.headers.get_list("x-request-id") == ["abc"]


def test_timing_headers(serve: Serve) -> None:
    with serve(_stack) as url:
        r = httpx.get(f"{url}/")
    match = re.fullmatch(r"app;dur=(\d+\.\d{3})", r.headers["server-timing"])
    assert match is not None
    assert re.fullmatch(r"\d+\.\d{3}ms", r.headers["x-response-time"])
    assert float(match.group(1)) >= 0.0
    assert r.text == "small body"
