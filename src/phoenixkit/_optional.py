"""Lazy imports of optional dependencies, failing with the name of the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from phoenixkit.errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise `MissingDependencyError` naming ``extra``.

    ``feature`` says what needed it ("the Redis backend"), so the message reads as advice.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(module.partition(".")[0], extra, feature) from exc
