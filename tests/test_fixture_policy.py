"""Missing servers skip with a clear reason, and fail under PHOENIXKIT_REQUIRE_SERVICES=1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path: Path, test: str, *, require: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOENIXKIT_")}
    env["PATH"] = str(tmp_path)  # no redis-server, no initdb on PATH
    env["PHOENIXKIT_PG_BINDIR"] = str(tmp_path / "nowhere")
    if require:
        env["PHOENIXKIT_REQUIRE_SERVICES"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q", test],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("test", "binary"),
    [
        ("tests/test_servers.py::test_redis_server_is_real", "redis-server"),
        ("tests/test_servers.py::test_replica_rejects_writes", "initdb, postgres, pg_basebackup"),
    ],
)
def test_missing_binary_skips_with_reason(tmp_path: Path, test: str, binary: str) -> None:
    done = _run(tmp_path, test, require=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout
    assert binary in done.stdout


@pytest.mark.parametrize(
    "test",
    [
        "tests/test_servers.py::test_redis_server_is_real",
        "tests/test_servers.py::test_replica_rejects_writes",
    ],
)
def test_missing_binary_fails_when_services_are_required(tmp_path: Path, test: str) -> None:
    done = _run(tmp_path, test, require=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed" in done.stdout or "1 error" in done.stdout
    assert "PHOENIXKIT_REQUIRE_SERVICES=1" in done.stdout
