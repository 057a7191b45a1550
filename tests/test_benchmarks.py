"""The benchmark runner runs end to end (in smoke mode: numbers are not checked) and the
harness formats times, ratios and tables as documented."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


def _import(name: str) -> ModuleType:
    """Import a module of benchmarks/ the way the runner does (that directory on sys.path)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def harness() -> ModuleType:
    return _import("_harness")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    env = {**os.environ, "PHOENIXKIT_BENCH_SMOKE": "1", "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "benchmarks/run.py",
            "--quick",
            "--only",
            "serialization",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, json.loads(out.read_text(encoding="utf-8"))


def test_smoke_run_prints_the_table(
    smoke_run: tuple[str, dict[str, Any]], harness: ModuleType
) -> None:
    stdout, _ = smoke_run
    lines = stdout.splitlines()
    assert lines[0].startswith("machine: ")
    assert lines[1].startswith("command: ")
    assert "benchmarks/run.py --quick --only serialization --json" in lines[1]
    header = [line for line in lines if line.startswith("module ")]
    assert len(header) == 1
    assert header[0].split() == list(harness.COLUMNS)
    operations = [case.operation for case in _import("bench_serialization").cases(True)]
    assert len(operations) >= 3
    for operation in operations:
        rows = [line for line in lines if line.startswith("serialization  ") and operation in line]
        assert len(rows) == 1, operation
        assert rows[0].endswith("x")


def test_smoke_run_writes_json(smoke_run: tuple[str, dict[str, Any]]) -> None:
    _, document = smoke_run
    operations = [case.operation for case in _import("bench_serialization").cases(True)]
    results = document["results"]
    assert isinstance(results, list)
    assert [r["operation"] for r in results] == operations
    for r in results:
        assert r["module"] == "serialization"
        assert r["ours_seconds"] > 0
        assert r["peer_seconds"] > 0
        assert r["peer_name"]
        assert r["ratio"] == pytest.approx(r["peer_seconds"] / r["ours_seconds"])
    machine = document["machine"]
    assert isinstance(machine, dict)
    assert {"platform", "python", "cpu_count"} <= machine.keys()
    assert "benchmarks/run.py --quick --only serialization" in str(document["command"])
    assert document["settings"] == {
        "mode": "smoke",
        "target_seconds": 0.0,
        "samples": 1,
        "fixed_calls": 3,
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0.00 ns"),
        (5e-9, "5.00 ns"),
        (812.4e-9, "812 ns"),
        (999.7e-9, "1.00 µs"),
        (4.123e-6, "4.12 µs"),
        (12.34e-6, "12.3 µs"),
        (1.5e-3, "1.50 ms"),
        (2.0, "2.00 s"),
        (1234.4, "1234 s"),
        (-1.0, "n/a"),
        (float("nan"), "n/a"),
    ],
)
def test_format_time(harness: ModuleType, seconds: float, text: str) -> None:
    assert harness.format_time(seconds) == text


def test_format_ratio(harness: ModuleType) -> None:
    assert harness.format_ratio(1.849) == "1.85x"
    assert harness.format_ratio(0.5) == "0.50x"
    assert harness.format_ratio(float("inf")) == "n/a"


def test_format_table_aligns_columns(harness: ModuleType) -> None:
    results = [
        harness.Result("cache", "get hit", 250e-9, "cachetools.TTLCache", 500e-9, 10, 10),
        harness.Result("serialization", "roundtrip", 4.12e-6, "json", 3.3e-6, 10, 10),
    ]
    assert results[0].ratio == pytest.approx(2.0)
    assert harness.format_table(results).splitlines() == [
        "module         operation     ours  peer                          ratio",
        "-------------  ---------  -------  ----------------------------  -----",
        "cache          get hit     250 ns  cachetools.TTLCache   500 ns  2.00x",
        "serialization  roundtrip  4.12 µs  json                 3.30 µs  0.80x",
    ]
    assert harness.format_table([]).splitlines() == [
        "module  operation  ours  peer  ratio",
        "------  ---------  ----  ----  -----",
    ]


def test_measure_in_smoke_mode(harness: ModuleType) -> None:
    calls = {"ours": 0, "peer": 0}

    def ours() -> None:
        calls["ours"] += 1

    def peer() -> None:
        calls["peer"] += 1

    settings = harness.Settings.for_run(True, env={"PHOENIXKIT_BENCH_SMOKE": "1"})
    result = harness.measure(harness.Case("op", ours, "peer", peer), "mod", settings)
    assert calls == {"ours": 4, "peer": 4}  # a warm-up call and one sample of 3
    assert result.ours_seconds > 0
    assert result.peer_seconds > 0
    assert result.ratio == pytest.approx(result.peer_seconds / result.ours_seconds)


def test_settings(harness: ModuleType) -> None:
    assert harness.Settings.for_run(True, env={}).samples == 3
    assert harness.Settings.for_run(False, env={}).target_seconds == pytest.approx(0.020)
    assert harness.Settings.for_run(False, env={"PHOENIXKIT_BENCH_SMOKE": "0"}).mode == "full"
    assert harness.Settings.for_run(False, env={"PHOENIXKIT_BENCH_SMOKE": "1"}).mode == "smoke"


def test_calibrate_reaches_the_target(harness: ModuleType) -> None:
    n = harness.calibrate(lambda: sum(range(50)), 0.002)
    assert n > 1
