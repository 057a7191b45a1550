"""Cache warming for `TieredCache`: load what is not cached yet, store it in one write."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from phoenixkit.cache.core import check_key

if TYPE_CHECKING:
    from phoenixkit.cache._engine import CacheEngine

__all__ = ["Warming"]


class Warming:
    """The warming half of `TieredCache` (a mixin)."""

    if TYPE_CHECKING:  # provided by TieredCache
        _e: CacheEngine

        def get_many(self, keys: Iterable[str]) -> dict[str, Any]: ...
        async def aget_many(self, keys: Iterable[str]) -> dict[str, Any]: ...
        def set_many(
            self, mapping: Mapping[str, Any], ttl: float | None = None, tags: Iterable[str] = ()
        ) -> None: ...
        async def aset_many(
            self, mapping: Mapping[str, Any], ttl: float | None = None, tags: Iterable[str] = ()
        ) -> None: ...

    def warm(
        self,
        keys: Iterable[str],
        loader: Callable[[str], Any],
        ttl: float | None = None,
        tags: Iterable[str] = (),
        *,
        force: bool = False,
    ) -> int:
        """Load the ``keys`` not cached yet (all with ``force``) with ``loader(key)``; store
        them in one round trip. Returns how many were loaded."""
        keys = [check_key(k) for k in dict.fromkeys(keys)]
        have = {} if force else self.get_many(keys)
        loaded = {k: loader(k) for k in keys if k not in have}
        stored = {k: v for k, v in loaded.items() if self._e.should_cache(v, None)}
        if stored:
            self.set_many(stored, ttl, tags)
        return len(loaded)

    async def awarm(
        self,
        keys: Iterable[str],
        loader: Callable[[str], Any],
        ttl: float | None = None,
        tags: Iterable[str] = (),
        *,
        force: bool = False,
    ) -> int:
        """Async twin of `warm`; ``loader`` may be sync or async."""
        keys = [check_key(k) for k in dict.fromkeys(keys)]
        have = {} if force else await self.aget_many(keys)
        loaded = {}
        for k in keys:
            if k not in have:
                value = loader(k)
                loaded[k] = await value if inspect.isawaitable(value) else value
        stored = {k: v for k, v in loaded.items() if self._e.should_cache(v, None)}
        if stored:
            await self.aset_many(stored, ttl, tags)
        return len(loaded)
