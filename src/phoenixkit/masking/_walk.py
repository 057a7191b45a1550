"""How a `Masker` walks nested data: mappings, sequences, dataclasses, pydantic models and
named tuples, with bounded depth and cycles replaced by a marker. A base class of
`phoenixkit.masking.masker.Masker`, which provides what is declared here.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from phoenixkit.masking.rules import Rule

__all__: list[str] = []

_SCALARS = (int, float, bool, type(None))
_BIG_INT = 10**12  # from 13 digits an int may be a card number: scan it as text
_TOO_DEEP = "[MASKED:too-deep]"
_CYCLE = "[MASKED:cycle]"
_ERROR = "[MASKED:unmaskable]"


class _Walker:
    """The structure walk of `Masker` (which sets these attributes and methods)."""

    max_depth: int
    _scans: bool
    _key_cache: dict[str, bool]
    _fixed: dict[str, str]
    _masked: dict[str, itertools.count[int]]
    _flat_plans: dict[tuple[Any, ...], tuple[str, ...]]
    _lock: threading.Lock
    _cycles: int
    _too_deep: int
    _errors: int

    def is_sensitive_key(self, key: str) -> bool:
        raise NotImplementedError

    def _judge_key(self, key: object) -> bool:
        raise NotImplementedError

    def _mask_text(self, text: str) -> str:
        raise NotImplementedError

    def _replacement(self, kind: str, value: object, rule: Rule | None) -> str:
        raise NotImplementedError

    def _mask(self, value: Any, depth: int, path: set[int]) -> Any:
        kind = type(value)
        if kind is str:
            return self._mask_text(value)
        if kind in _SCALARS:
            if kind is int and not -_BIG_INT < value < _BIG_INT:
                text = str(value)
                masked = self._mask_text(text)
                return value if masked == text else masked
            return value
        if depth >= self.max_depth:
            with self._lock:
                self._too_deep += 1
            return _TOO_DEEP
        if isinstance(value, (bytes, bytearray)):
            text = bytes(value).decode("utf-8", "surrogateescape")
            masked_text = self._mask_text(text)
            if masked_text is text:
                return value
            return kind(masked_text.encode("utf-8", "surrogateescape"))
        if isinstance(value, str):  # str subclasses
            return self._mask_text(str(value))
        ident = id(value)
        if ident in path:
            with self._lock:
                self._cycles += 1
            return _CYCLE
        path.add(ident)
        try:
            return self._mask_container(value, depth + 1, path)
        finally:
            path.discard(ident)

    def _mask_one(self, value: Any, depth: int, path: set[int]) -> Any:
        """`_mask` of one item of a container: what cannot be masked becomes a marker, and
        only that item does."""
        try:
            return self._mask(value, depth, path)
        except Exception:
            with self._lock:
                self._errors += 1
            return _ERROR

    def _mask_container(self, value: Any, depth: int, path: set[int]) -> Any:
        if type(value) is dict or isinstance(value, Mapping):
            return self._mask_items(value.items(), depth, path)
        if isinstance(value, tuple) and hasattr(value, "_asdict") and hasattr(value, "_fields"):
            # A named tuple: its field names are keys. Rebuilt as the same type when it can be.
            fields = self._mask_items(value._asdict().items(), depth, path)
            try:
                return value._make(fields.values())  # type: ignore[attr-defined]
            except Exception:
                return fields
        if isinstance(value, (list, tuple, set, frozenset)):
            items = [self._mask_one(v, depth, path) for v in value]
            if type(value) in (list, tuple, set, frozenset):
                return type(value)(items)
            return items if isinstance(value, list) else tuple(items)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
            return self._mask_items(fields, depth, path)
        dump = getattr(value, "model_dump", None)
        if callable(dump) and hasattr(type(value), "model_fields"):  # pydantic v2 models
            return self._mask(dump(), depth, path)
        return value

    def _mask_flat(self, value: dict[Any, Any]) -> dict[Any, Any]:
        """Key-only masking of a flat dict: which keys are sensitive is planned once per set
        of keys (a log call site sends the same keys each time); the rest is a C-level copy."""
        keys = tuple(value)
        plan = self._flat_plans.get(keys)
        if plan is None:
            plan = tuple(k for k in keys if self._judge_key(k))
            if len(self._flat_plans) > 1024:
                self._flat_plans.clear()
            self._flat_plans[keys] = plan
        out = dict(value)
        if not plan:
            return out
        fixed = self._fixed.get("key")
        if fixed is None:  # first time, or a style other than fixed: the general way
            for k in plan:
                out[k] = self._replacement("key", out[k], None)
            return out
        counter = self._masked["key"]
        for k in plan:
            out[k] = fixed
            next(counter)
        return out

    def _mask_items(self, items: Iterable[tuple[Any, Any]], depth: int, path: set[int]) -> Any:
        # The hot loop of structured logging: keys judged from the cache, strings and small
        # scalars handled without a further call. Keep it flat.
        out: dict[Any, Any] = {}
        cache = self._key_cache
        scans = self._scans
        for k, v in items:
            try:  # one value that cannot be masked becomes a marker, not the whole mapping
                if k.__class__ is str:
                    verdict = cache.get(k)
                    if verdict is None:
                        verdict = self.is_sensitive_key(k)
                    if verdict:
                        out[k] = self._replacement("key", v, None)
                        continue
                elif isinstance(k, (str, bytes)) and self._judge_key(k):
                    out[k] = self._replacement("key", v, None)
                    continue
                kind = v.__class__
                if kind is str:
                    out[k] = self._mask_text(v) if scans else v
                elif (
                    kind is float
                    or kind is bool
                    or v is None
                    or (kind is int and -_BIG_INT < v < _BIG_INT)
                ):
                    out[k] = v
                else:
                    out[k] = self._mask(v, depth, path)
            except Exception:
                with self._lock:
                    self._errors += 1
                out[k] = _ERROR
        return out
