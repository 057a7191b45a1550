"""A PostgreSQL server for the benchmarks that need one: ``PHOENIXKIT_BENCH_POSTGRES_URL``
when set, else a server of our own (initdb on a free loopback port, the tests' helper),
destroyed when the benchmark is done. Without either, the module is skipped with a reason.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from _harness import SkipModule

_ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    url = os.environ.get("PHOENIXKIT_BENCH_POSTGRES_URL")
    if url:
        yield url
        return
    if str(_ROOT) not in sys.path:
        sys.path.append(str(_ROOT))
    from tests.servers import PostgresServer, ServerUnavailable

    try:
        server = PostgresServer.create_primary()
    except ServerUnavailable as exc:
        raise SkipModule(f"no PostgreSQL here ({exc}); set PHOENIXKIT_BENCH_POSTGRES_URL") from exc
    try:
        yield server.url
    finally:
        server.destroy()
