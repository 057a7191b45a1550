"""Run the benchmarks: ``python benchmarks/run.py [--quick] [--only NAME ...] [--json PATH]``.

Every ``benchmarks/bench_<name>.py`` is a module benchmark. It defines
``cases(quick: bool) -> Iterable[Case]`` and may define ``setup()`` and ``teardown()``;
``cases`` may also be a generator that yields its cases from inside a ``with`` block (a
server, a connection), which is closed once its last case has been measured.

Works as a script from the repository root (``python benchmarks/run.py``) and as
``python -m benchmarks.run``: this directory goes first on ``sys.path`` so that benchmark
modules import the harness as ``from _harness import Case``, and the checkout's ``src/``
goes first too, so that the code measured is the code in this checkout.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
for _path in (SRC, HERE):
    if _path.is_dir() and str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import importlib  # noqa: E402
import shlex  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Sequence  # noqa: E402

from _harness import (  # noqa: E402
    Result,
    Settings,
    SkipModule,
    format_table,
    machine_line,
    measure,
    results_document,
    write_json,
)

PREFIX = "bench_"


def available() -> list[str]:
    """Names of the module benchmarks (``bench_cache.py`` is ``cache``), sorted."""
    return sorted(p.stem[len(PREFIX) :] for p in HERE.glob(f"{PREFIX}*.py"))


def run_module(name: str, quick: bool, settings: Settings) -> list[Result]:
    """Measure every case of ``bench_<name>``; raises :class:`SkipModule` to skip it."""
    module = importlib.import_module(PREFIX + name)
    setup = getattr(module, "setup", None)
    teardown = getattr(module, "teardown", None)
    results: list[Result] = []
    if setup is not None:
        setup()
    try:
        cases = module.cases(quick)
        # A generator's finally/with blocks run when it is closed, even on an error.
        close = getattr(cases, "close", None)
        with contextlib.ExitStack() as stack:
            if close is not None:
                stack.callback(close)
            for case in cases:
                print(f"  {name}: {case.operation}", file=sys.stderr, flush=True)
                results.append(measure(case, name, settings))
    finally:
        if teardown is not None:
            teardown()
    return results


def _command(argv: Sequence[str]) -> str:
    return shlex.join([Path(sys.executable).name, *argv])


def main(argv: Sequence[str] | None = None) -> int:
    names = available()
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Time phoenixkit beside the peers a user would pick instead.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="shorter samples, fewer of them (under a minute)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        action="extend",
        metavar="NAME",
        choices=names,
        help=f"run only these module benchmarks (of: {', '.join(names)})",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    argv_used = list(sys.argv if argv is None else [sys.argv[0], *argv])

    if not _can_print("µ"):
        sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]

    settings = Settings.for_run(args.quick)
    command = _command(argv_used)
    print(machine_line())
    print(f"command: {command}")
    print(f"timing: {settings.describe()}")
    print(flush=True)

    started = time.perf_counter()
    results: list[Result] = []
    skipped: dict[str, str] = {}
    failed: list[str] = []
    for name in args.only or names:
        try:
            results.extend(run_module(name, args.quick, settings))
        except SkipModule as exc:
            skipped[name] = str(exc)
        except Exception:
            traceback.print_exc()
            failed.append(name)
    wall = time.perf_counter() - started

    print(format_table(results))
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")
    for name in failed:
        print(f"FAILED {name} (traceback above)")
    print(f"\nratio = peer / ours (above 1: phoenixkit is faster); wall time {wall:.1f} s")
    if args.json:
        document = results_document(
            results, command=command, settings=settings, wall_seconds=wall, skipped=skipped
        )
        document["failed"] = failed
        write_json(args.json, document)
        print(f"results written to {args.json}")
    return 1 if failed else 0


def _can_print(text: str) -> bool:
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
