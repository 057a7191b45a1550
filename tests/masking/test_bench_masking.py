"""The masking benchmark runs end to end in smoke mode (numbers are not checked)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BENCHMARKS = ROOT / "benchmarks"


def test_masking_benchmark_smoke_run() -> None:
    env = {**os.environ, "PHOENIXKIT_BENCH_SMOKE": "1", "PYTHONIOENCODING": "utf-8"}
    command = [sys.executable, "-W", "error", "benchmarks/run.py", "--quick", "--only", "masking"]
    proc = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, encoding="utf-8", timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sys.path.insert(0, str(BENCHMARKS))
    try:
        operations = [
            case.operation for case in importlib.import_module("bench_masking").cases(True)
        ]
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert len(operations) >= 3  # the formatter cases need python-json-logger
    assert len(set(operations)) == len(operations)
    lines = proc.stdout.splitlines()
    [header] = [line for line in lines if line.startswith("module ")]
    assert header.split()[-1] == "ours/s"
    for operation in operations:
        rows = [line for line in lines if line.startswith("masking  ") and operation in line]
        assert len(rows) == 1, operation
        assert rows[0].endswith(("lines/s", "records/s")), rows[0]
    assert "FAILED" not in proc.stdout
