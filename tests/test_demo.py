"""``python -m phoenixkit demo``: a section per module, embedded and on real servers."""

from __future__ import annotations

import io
import subprocess
import sys
import time

import pytest

from phoenixkit.demo import SECTIONS, run_demo


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "phoenixkit", "demo", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_demo_prints_a_section_per_module() -> None:
    done = _demo()
    assert done.returncode == 0, done.stderr
    for section in SECTIONS:
        assert f"== {section.title} ==" in done.stdout
        if section.run is None:
            assert f"not built yet (tracked in issue #{section.issue})" in done.stdout
    assert "embedded defaults" in done.stdout
    assert f"{len(SECTIONS)} sections, 0 failed" in done.stdout
    # The masking section is live: secrets shown to the masker never reach the output.
    assert "password=[MASKED]" in done.stdout
    for secret in ("hunter2", "s3cr3t", "4111 1111 1111 1111", "alice@example.com"):
        assert secret not in done.stdout
    # The breaker section trips, sheds load and recovers; the retry section recovers.
    for event in ("closed -> open", "open -> half-open", "half-open -> closed", "rejected fast"):
        assert event in done.stdout
    assert "EUR/USD 1.0832 after 3 attempts" in done.stdout
    assert "the loader ran 1 time(s)" in done.stdout
    assert "300 reads served by: {'replica-a': 150, 'replica-b': 150}" in done.stdout
    assert "healthy probe 3: in rotation: replica-a, replica-b" in done.stdout
    # The query monitor groups the workload by fingerprint and finds the N+1 loop.
    assert "200 x 'select ? as id,? as kind'" in done.stdout
    assert "N+1: 'select ? as order_id,? as lines' ran 10 times in GET /orders" in done.stdout
    # The batch section finds its bad rows by index and loses none of the others.
    assert "rows in the table: 49,996 (= 50,000 - 4: none lost, none twice)" in done.stdout
    for index in (123, 4567, 31337, 49999):
        assert f"row {index}: IntegrityError" in done.stdout


def test_every_planned_module_has_a_section() -> None:
    names = {s.name for s in SECTIONS}
    assert names >= {
        "cache", "ratelimit", "breaker", "batch", "replicas", "querymon", "masking",
        "integrations",
    }  # fmt: skip


def test_demo_on_real_servers(redis_server, pg_primary) -> None:
    done = _demo("--redis", redis_server.url, "--postgres", pg_primary.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "redis: PING answered" in done.stdout
    assert "12 of 13 hits at once pass" in done.stdout
    assert "copy_rows: 200,000 rows through COPY" in done.stdout
    assert "rows in the table: 49,996 (= 50,000 - 4: none lost, none twice)" in done.stdout
    assert "worker (never failed itself): rejected, open" in done.stdout
    assert "web sees the recovery: closed" in done.stdout
    assert "(primary)" in done.stdout


def test_demo_reports_an_unreachable_server(redis_server) -> None:
    out = io.StringIO()
    # A server that was just stopped: nothing listens on its port any more.
    from tests.servers import RedisServer, make_workdir, remove_workdir

    workdir = make_workdir("demo-down")
    server = RedisServer(workdir).start()
    server.stop()
    try:
        code = run_demo(redis_url=server.url + "?socket_connect_timeout=1", out=out)
    finally:
        remove_workdir(workdir)
    assert code == 1
    assert "FAILED: redis.exceptions.ConnectionError" in out.getvalue()


def test_serve_serves_the_example_app_on_loopback() -> None:
    import httpx

    from tests.servers import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "phoenixkit", "demo", "--serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "the demo never served"
                time.sleep(0.2)
        assert health.status_code == 200
        hello = httpx.get(f"{url}/hello", headers={"X-Request-ID": "demo-req-1"})
        assert hello.json()["request_id"] == "demo-req-1"
        assert hello.headers["x-request-id"] == "demo-req-1"
        assert "x-response-time" in hello.headers
        assert "ratelimit-policy" in {k.lower() for k in hello.headers}
        report = httpx.get(f"{url}/report", headers={"Accept-Encoding": "gzip"})
        assert report.headers["content-encoding"] == "gzip"
        assert len(report.json()["rows"]) == 500
        assert "phoenixkit_ratelimit" in httpx.get(f"{url}/metrics").text
    finally:
        proc.terminate()
        proc.communicate(timeout=20)  # reads and closes its output pipe


@pytest.mark.parametrize("args", [["--bogus"], []])
def test_cli_usage_errors(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "phoenixkit", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "usage:" in done.stderr
