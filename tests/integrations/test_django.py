"""PhoenixKitMiddleware in a real Django site, under WSGI (wsgiref) and ASGI (uvicorn)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
HEX32 = re.compile(r"[0-9a-f]{32}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=["wsgi", "asgi"])
def site(request: pytest.FixtureRequest) -> Iterator[str]:
    port = _free_port()
    command = [sys.executable, "-m", "tests.integrations.django_site", request.param, str(port)]
    proc = subprocess.Popen(command, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/free", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, "the Django site exited"
                assert time.monotonic() < deadline, "the Django site did not start"
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_django_middleware_ids_timing_and_limits(site: str) -> None:
    with httpx.Client(base_url=site) as client:
        first = client.get("/", headers={"X-Request-ID": "dj-1", "X-Forwarded-For": "203.0.113.1"})
        second = client.get("/async", headers={"X-Forwarded-For": "203.0.113.1"})
        denied = client.get("/", headers={"X-Forwarded-For": "203.0.113.1"})
        other = client.get("/async", headers={"X-Forwarded-For": "203.0.113.2"})
        free = [client.get("/free").status_code for _ in range(3)]
    assert first.text == first.headers["x-request-id"] == "dj-1"
    assert first.headers["x-ratelimit-remaining"] == "1"
    assert "app;dur=" in first.headers["server-timing"]
    assert HEX32.fullmatch(second.text)
    assert second.text == second.headers["x-request-id"]
    assert denied.status_code == 429
    assert int(denied.headers["retry-after"]) >= 1
    assert "x-request-id" in denied.headers
    assert other.status_code == 200
    assert free == [200, 200, 200]
