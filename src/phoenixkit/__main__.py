"""Command line: ``python -m phoenixkit demo [--redis URL] [--postgres URL] [--serve]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phoenixkit")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="a tour of every primitive on an example service")
    demo.add_argument("--redis", metavar="URL", help="run the tour on this Redis (redis://...)")
    demo.add_argument(
        "--postgres", metavar="URL", help="run the tour on this PostgreSQL (postgresql://...)"
    )
    demo.add_argument("--serve", action="store_true", help="serve the example app on 127.0.0.1")
    demo.add_argument("--port", type=int, default=8000, help="port for --serve (8000)")
    args = parser.parse_args(argv)

    from phoenixkit.demo import run_demo

    return run_demo(
        redis_url=args.redis,
        postgres_url=args.postgres,
        serve=args.serve,
        port=args.port,
        out=sys.stdout,
    )


if __name__ == "__main__":
    raise SystemExit(main())
