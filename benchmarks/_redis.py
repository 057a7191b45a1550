"""A Redis server for the benchmarks that need one: ``PHOENIXKIT_BENCH_REDIS_URL`` when set,
else a redis-server of our own on a free loopback port (the tests' server helper), stopped
when the benchmark is done. Without either, the benchmark module is skipped with a reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from _harness import SkipModule

_ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    url = os.environ.get("PHOENIXKIT_BENCH_REDIS_URL")
    if url:
        yield url
        return
    if shutil.which("redis-server") is None:
        raise SkipModule("no redis-server here and PHOENIXKIT_BENCH_REDIS_URL is not set")
    if str(_ROOT) not in sys.path:
        sys.path.append(str(_ROOT))
    from tests.servers import RedisServer, make_workdir, remove_workdir

    workdir = make_workdir("bench-redis")
    server = RedisServer(workdir).start()
    try:
        yield server.url
    finally:
        server.stop()
        remove_workdir(workdir)
