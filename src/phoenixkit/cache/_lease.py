"""Keeping a distributed loader lock alive while its loader runs (a lease watchdog).

The process that takes a key's lock (``SET NX PX lease``) renews it every third of the lease
with a token-checked ``PEXPIRE`` (`RedisTier.extend`) until its loader returns, so a loader
slower than the lease does not let a second process in; the other processes keep waiting
for as long as the lock is held. When the holder dies its renewals stop and the lease runs
out, so a crashed process never blocks the key for longer than one lease. Renewals use the
real clock: the lease is a Redis TTL, which runs in real time whatever clock the cache has.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phoenixkit.cache._engine import CacheEngine
    from phoenixkit.cache.redis import RedisTier

__all__ = ["LeaseKeeper", "akeep_lease"]

logger = logging.getLogger("phoenixkit.cache")


def _renewed(e: CacheEngine, key: str, ok: bool) -> bool:
    if ok:
        e.stats.lock_renewals += 1
        return True
    logger.warning("cache %s: lost the loader lock %s (its lease ran out)", e.namespace, key)
    return False


class LeaseKeeper:
    """Renews the lock ``key`` (held with ``token``) every ``lease_ms / 3`` on a thread."""

    def __init__(self, e: CacheEngine, l2: RedisTier, key: str, token: str, lease_ms: int) -> None:
        self._e, self._l2, self._key, self._token, self._lease = e, l2, key, token, lease_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="phoenixkit-cache-lease", daemon=True
        )

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def _run(self) -> None:
        e = self._e
        while not self._stop.wait(self._lease / 3000):
            try:
                ok = self._l2.extend(self._key, self._token, self._lease)
            except e.errors as exc:  # Redis away: try again; the lease may run out meanwhile
                logger.debug("cache lock renewal failed: %s", exc)
                continue
            if not _renewed(e, self._key, ok):
                return

    def stop(self) -> None:
        # No join: a renewal still in flight after the release finds the lock gone or
        # someone else's (the script checks the token) and changes nothing.
        self._stop.set()


async def akeep_lease(e: CacheEngine, l2: RedisTier, key: str, token: str, lease_ms: int) -> None:
    """`LeaseKeeper` for asyncio: run it as a task, cancel it when the loader is done."""
    while True:
        await asyncio.sleep(lease_ms / 3000)
        try:
            ok = await l2.aextend(key, token, lease_ms)
        except e.errors as exc:
            logger.debug("cache lock renewal failed: %s", exc)
            continue
        if not _renewed(e, key, ok):
            return
