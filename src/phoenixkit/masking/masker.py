"""The Masker: a masked copy of text and nested data, never a mutation, never an exception.

Keys are judged by name (`normalize_key` against the deny and allow lists) in mappings,
dataclasses, pydantic models and ``key=value`` / ``"key": "value"`` pairs in free text
(found by `phoenixkit.masking._pairs`). Values are scanned by the rules of
`phoenixkit.masking.rules`, each behind its prefilter (planned and run by
`phoenixkit.masking._scan`). Work is bounded: strings longer than ``max_length`` are cut
(the cut part is dropped, not scanned), nesting deeper than ``max_depth`` and reference
cycles are replaced by a marker.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from phoenixkit.errors import ConfigurationError
from phoenixkit.masking._pairs import PAIR_KEYWORDS, find_pairs
from phoenixkit.masking._scan import PairFinder, Scanner, Span
from phoenixkit.masking._walk import _ERROR, _Walker
from phoenixkit.masking.rules import (
    DEFAULT_ALLOW_KEYS,
    DEFAULT_ALLOW_LAST_WORDS,
    DEFAULT_DENY_EXACT,
    DEFAULT_DENY_KEYS,
    DEFAULT_RULES,
    Rule,
    last_word,
    normalize_key,
)

__all__ = ["Masker", "MaskerStats", "Style"]

Style = Literal["fixed", "partial", "hash"]
_STYLES = ("fixed", "partial", "hash")

_ALNUM_RUN = re.compile(r"[a-z0-9]+")
_FLAT = frozenset((str, int, float, bool, type(None)))  # values key-only masking copies as is


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__, an int too long to print
        return f"<{type(value).__qualname__}>"


@dataclass(frozen=True)
class MaskerStats:
    """Counters since the masker was built: values masked per kind, and what was cut."""

    masked: Mapping[str, int]
    truncated: int
    cycles: int
    too_deep: int
    errors: int

    @property
    def total_masked(self) -> int:
        return sum(self.masked.values())


class Masker(_Walker):
    """Masks secrets and personal data in strings, bytes and nested structures.

    ``mask(value)`` returns a masked copy and never mutates ``value`` nor raises.
    Mappings come back as dicts, dataclasses and pydantic models as dicts of their fields,
    lists/tuples/sets as the same type; bytes stay bytes; other objects are returned as they
    are (format them into a string first to have them scanned).

    Styles: ``"fixed"`` replaces with ``token`` (``{kind}`` in it names the rule),
    ``"partial"`` keeps a harmless part where the rule defines one (``j***@example.com``),
    ``"hash"`` writes a keyed HMAC so equal values correlate without being disclosed.
    ``styles`` sets the style per rule name (``"key"`` for values masked by key name).

    Keys: a key is sensitive when its normalized form (`normalize_key`) equals an entry of
    ``deny_exact``, or when its last word (`last_word`) equals an entry of ``deny_exact`` or
    its normalized form contains an entry of ``deny_keys`` (plus ``extra_deny_keys``), and it
    contains none of ``allow_keys`` and its last word is none of ``allow_last_words``. String
    subclasses (enums) and bytes are judged as the text they hold; the fields of dataclasses,
    pydantic models and named tuples are keys too.

    ``mask_pairs`` also applies this to ``key=value``, ``key: value``, ``"key": "value"`` and
    ``'key' => 'value'`` pairs inside free text (JSON-escaped quotes too). A quoted value is
    masked to its closing quote, or to the end of the line when that is not found within 512
    characters; a value opening with ``[``, ``{`` or ``(`` to its closer; an unquoted value
    to the next whitespace or quote, less a trailing ``,;.)}]`` (so ``password=a&b,c`` masks
    ``a&b,c`` and keeps a sentence's period). Under ``Cookie``, ``Set-Cookie``,
    ``Authorization`` and ``Proxy-Authorization`` an unquoted value runs to the end of the
    line (``Cookie: a=1; b=2``).
    """

    def __init__(
        self,
        *,
        rules: Iterable[Rule] | None = None,
        extra_rules: Iterable[Rule] = (),
        deny_keys: Iterable[str] | None = None,
        deny_exact: Iterable[str] | None = None,
        extra_deny_keys: Iterable[str] = (),
        allow_keys: Iterable[str] | None = None,
        allow_last_words: Iterable[str] | None = None,
        mask_pairs: bool = True,
        style: Style = "fixed",
        styles: Mapping[str, Style] | None = None,
        token: str = "[MASKED]",  # noqa: S107 - the replacement text, not a password
        hash_key: bytes | str | None = None,
        max_length: int = 65_536,
        max_depth: int = 32,
    ) -> None:
        self.rules: tuple[Rule, ...] = (*(DEFAULT_RULES if rules is None else rules), *extra_rules)
        for r in self.rules:
            if not isinstance(r, Rule):
                raise ConfigurationError(f"rules must be Rule objects, got {r!r}")
        custom = [*(deny_keys or ()), *extra_deny_keys, *(deny_exact or ())]
        self._deny = tuple(
            normalize_key(k) for k in (*(DEFAULT_DENY_KEYS if deny_keys is None else deny_keys),
                                        *extra_deny_keys)
        )  # fmt: skip
        self._deny_exact = frozenset(
            normalize_key(k) for k in (DEFAULT_DENY_EXACT if deny_exact is None else deny_exact)
        )
        # Words that reveal a sensitive key in free text: the defaults' stems, and the longest
        # run of letters and digits of each entry the user gave ("national_id" -> "national").
        pair_words = {max(_ALNUM_RUN.findall(k.lower()) or [""], key=len) for k in custom} - {""}
        if deny_keys is None or deny_exact is None:
            pair_words.update(PAIR_KEYWORDS)
        self._allow = frozenset(
            normalize_key(k) for k in (DEFAULT_ALLOW_KEYS if allow_keys is None else allow_keys)
        )
        self._allow_last = frozenset(
            normalize_key(k)
            for k in (DEFAULT_ALLOW_LAST_WORDS if allow_last_words is None else allow_last_words)
        )
        self.style = self._check_style(style, "style")
        self.styles = {
            kind: self._check_style(v, f"styles[{kind!r}]") for kind, v in (styles or {}).items()
        }
        if not isinstance(token, str):
            raise ConfigurationError(f"token must be a str, got {token!r}")
        self.token = token
        key_style = self.styles.get("key", self.style)
        self._key_token = "" if key_style == "hash" else token.replace("{kind}", "key")
        if isinstance(hash_key, str):
            hash_key = hash_key.encode()
        uses_hash = style == "hash" or "hash" in self.styles.values()
        if uses_hash and (not isinstance(hash_key, bytes) or len(hash_key) < 16):
            raise ConfigurationError(
                "the 'hash' style needs hash_key= of at least 16 bytes, got "
                f"{'None' if hash_key is None else f'{len(hash_key)} bytes'}"
            )
        self._hash_key = hash_key or b""
        for name, value in (("max_length", max_length), ("max_depth", max_depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")
        self.max_length = max_length
        self.max_depth = max_depth
        self.mask_pairs = mask_pairs
        self._scans = bool(self.rules or mask_pairs)
        self._key_cache: dict[str, bool] = {}
        self._scanner = Scanner(self.rules, pair_words, self._pair_finder() if mask_pairs else None)
        self._spans = self._scanner.spans
        self._flat_plans: dict[tuple[Any, ...], tuple[str, ...]] = {}
        self._lock = threading.Lock()
        # Per kind: a counter (itertools.count: next() is atomic, no lock on the hot path)
        # and the fixed token, when that kind is shown as a fixed token.
        self._masked: dict[str, itertools.count[int]] = {}
        self._fixed: dict[str, str] = {}
        self._truncated = self._cycles = self._too_deep = self._errors = 0

    @staticmethod
    def _check_style(style: object, what: str) -> Style:
        if style not in _STYLES:
            raise ConfigurationError(f"{what} must be one of {_STYLES}, got {style!r}")
        return style  # type: ignore[return-value]

    def _pair_finder(self) -> PairFinder:
        judge, cache, token = self.is_sensitive_key, self._key_cache, self._key_token

        def pairs(text: str, at: list[int], spans: list[Span]) -> None:
            find_pairs(text, at, spans, judge, cache, token)

        return pairs

    # Keys ----------------------------------------------------------------------------------

    def is_sensitive_key(self, key: str) -> bool:
        """True when values under ``key`` are masked whatever they hold."""
        verdict = self._key_cache.get(key)
        if verdict is None:
            norm = normalize_key(key)
            if norm in self._deny_exact:
                verdict = True
            else:
                last = last_word(key)
                verdict = (last in self._deny_exact or any(d in norm for d in self._deny)) and not (
                    last in self._allow_last or any(a in norm for a in self._allow)
                )
            if len(self._key_cache) > 4096:
                self._key_cache.clear()
            if len(key) <= 256:  # a huge key is judged each time rather than kept
                self._key_cache[key] = verdict
        return verdict

    def _judge_key(self, key: object) -> bool:
        """`is_sensitive_key` for any mapping key: str subclasses (a StrEnum) and bytes are
        judged as the text they hold; other keys are not sensitive."""
        if isinstance(key, str):
            return self.is_sensitive_key(str.__str__(key))
        if isinstance(key, bytes):
            return self.is_sensitive_key(key.decode("utf-8", "replace"))
        return False

    # Producing masks -----------------------------------------------------------------------

    def _replacement(self, kind: str, value: object, rule: Rule | None) -> str:
        """What replaces ``value`` (a str, or any object under a sensitive key: its repr is
        only taken by the hash style)."""
        counter = self._masked.get(kind)
        if counter is None:
            with self._lock:
                counter = self._masked.setdefault(kind, itertools.count(1))
        next(counter)
        fixed = self._fixed.get(kind)
        if fixed is not None:
            return fixed
        style = self.styles.get(kind, self.style)
        if style == "hash":
            text = value if value.__class__ is str else _safe_repr(value)
            digest = hmac.new(self._hash_key, str(text).encode(errors="replace"), hashlib.sha256)
            return f"[{kind}#{digest.hexdigest()[:12]}]"
        if style == "partial" and rule is not None and rule.partial is not None:
            return rule.partial(str(value))
        token = self.token.replace("{kind}", kind)
        if style == "fixed":
            self._fixed[kind] = token
        return token

    # Text ----------------------------------------------------------------------------------

    def mask_text(self, text: str) -> str:
        """Mask every secret found in ``text``; returns ``text`` itself when nothing is."""
        try:
            if len(text) > self.max_length or not self._scans:
                return self._mask_text(text)
            spans = self._spans(text)  # (the hot path: `_mask_text`, one call less)
            return self._apply(text, spans) if spans else text
        except Exception:  # a masker must never break the caller's logging
            with self._lock:
                self._errors += 1
            return _ERROR

    def _mask_text(self, text: str) -> str:
        if len(text) > self.max_length:
            with self._lock:
                self._truncated += 1
            text = f"{text[: self.max_length]}[TRUNCATED {len(text) - self.max_length} chars]"
        if not self._scans:
            return text
        spans = self._spans(text)
        return self._apply(text, spans) if spans else text

    def _apply(self, text: str, spans: list[Span]) -> str:
        """``text`` with ``spans`` replaced: overlapping or touching spans make one."""
        spans.sort(key=lambda s: (s[0], -s[1]))
        out: list[str] = []
        pos = 0
        for start, end, kind, by in spans:
            if start < pos or (start == pos and out):  # overlaps or touches a masked span:
                # extend it if it reaches further (one token, so that masking is idempotent)
                if end > pos:
                    pos = end
                continue
            out.append(text[pos:start])
            out.append(self._replacement(kind, text[start:end], by))
            pos = end
        out.append(text[pos:])
        return "".join(out)

    # Structures ----------------------------------------------------------------------------

    def mask(self, value: Any) -> Any:
        """A masked copy of ``value`` (str, bytes, mappings, sequences, dataclasses...)."""
        try:
            if type(value) is dict:  # the common case of structured logging
                if not self._scans and _FLAT.issuperset(map(type, value.values())):
                    return self._mask_flat(value)
                return self._mask_items(value.items(), 1, {id(value)})
            return self._mask(value, 0, set())
        except Exception:  # never raise into the caller's logging
            with self._lock:
                self._errors += 1
            return _ERROR

    def mask_mapping(self, mapping: Mapping[Any, Any]) -> dict[Any, Any]:
        """A masked copy of ``mapping`` as a dict (typed shortcut of `mask`)."""
        masked = self.mask(mapping)
        return masked if isinstance(masked, dict) else {"masked": masked}

    # Stats ---------------------------------------------------------------------------------

    def stats(self) -> MaskerStats:
        """A snapshot of the counters (cheap: a few ints and a small dict copy)."""
        with self._lock:
            return MaskerStats(
                masked={k: int(repr(c)[6:-1]) - 1 for k, c in self._masked.items()},
                truncated=self._truncated,
                cycles=self._cycles,
                too_deep=self._too_deep,
                errors=self._errors,
            )
