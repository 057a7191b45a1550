"""The Masker: a masked copy of text and nested data, never a mutation, never an exception.

Keys are judged by name (`normalize_key` against the deny and allow lists) in mappings,
dataclasses, pydantic models and ``key=value`` / ``"key": "value"`` pairs in free text.
Values are scanned by the rules of `phoenixkit.masking.rules`, each behind its keyword
prefilter. Work is bounded: strings longer than ``max_length`` are cut (the cut part is
dropped, not scanned), nesting deeper than ``max_depth`` and reference cycles are replaced
by a marker.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from phoenixkit.errors import ConfigurationError
from phoenixkit.masking.rules import (
    DEFAULT_ALLOW_KEYS,
    DEFAULT_ALLOW_LAST_WORDS,
    DEFAULT_DENY_EXACT,
    DEFAULT_DENY_KEYS,
    DEFAULT_RULES,
    Rule,
    keyword_pattern,
    last_word,
    normalize_key,
    number_runs,
    shape_of,
)

__all__ = ["Masker", "MaskerStats", "Style"]

Style = Literal["fixed", "partial", "hash"]
_STYLES = ("fixed", "partial", "hash")

# key=value, key: value, "key": "value", 'key' => 'value' in free text. A key is found from
# a keyword hit (see `Masker._find_pairs`), judged like a mapping key, and then these say
# where its value is.
_KEY_RUN = re.compile(r"[A-Za-z0-9_.-]*")
_KEY_MAX = 64  # a key in free text has at most this many characters before the keyword
_QUOTED_KEY_BODY = re.compile(r"[A-Za-z0-9_.\- ]*")  # a quoted key may hold spaces
_SEP = re.compile(r"(?:\\?[\"'])?[ \t]{0,16}(?:=>|[:=])\s{0,16}")
_SCHEME = re.compile(r"(?i:bearer|basic|token|digest)[ \t]+")
_QUOTED = {  # a quoted value, escapes included, up to 512 characters on one line
    '"': re.compile(r'"((?:[^"\\\n]|\\.){0,512})"'),
    "'": re.compile(r"'((?:[^'\\\n]|\\.){0,512})'"),
    # JSON inside a JSON string: \"value\", an escaped quote inside it is \\\"
    '\\"': re.compile(r'\\"((?:\\\\(?:\\.|[^\\\n])|\\[^"\\\n]|[^\\"\n]){0,512})\\"'),
}
# An unquoted value runs to whitespace or a quote, less a trailing ",;.)}]".
_UNQUOTED = re.compile(r"(?:[^\s\"'\\]|\\(?![\"']))*(?:[^\s\"',;.)}\]\\]|\\(?![\"']))")
_EOL = re.compile(r"[\r\n]|\\[rn]")  # a line ends at a newline, or its escape in JSON text
_BRACKET_TOKEN = re.compile(r"\\.|[\[\](){}\"'\n]")
_CLOSERS = frozenset(")]}>,;")
_BRACKET_SCAN = 4096  # how far a [...], {...} or (...) value is followed to its closer
_LINE_KEYS = frozenset(("cookie", "setcookie", "authorization", "proxyauthorization",
                        "httpcookie", "httpauthorization", "httpproxyauthorization"))  # fmt: skip
"""Header-like keys whose unquoted value is masked to the end of the line (``Cookie: a=1;
b=2``, ``Authorization: ApiKey abc``)."""
# Prefilter of the pair rule: the default deny entries hold one of these.
_PAIR_KEYWORDS = ("pass", "pwd", "secret", "token", "key", "auth", "credential", "cookie",
                  "session", "csrf", "xsrf", "cv", "ssn", "bearer", "pin", "otp", "sid", "jwt",
                  "saml", "assertion", "symfony")  # fmt: skip
_ALNUM_RUN = re.compile(r"[a-z0-9]+")
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_KEY_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_SCALARS = (int, float, bool, type(None))
_FLAT = frozenset((str, int, float, bool, type(None)))  # values key-only masking copies as is
_BIG_INT = 10**12  # from 13 digits an int may be a card number: scan it as text
_TOO_DEEP = "[MASKED:too-deep]"
_CYCLE = "[MASKED:cycle]"
_ERROR = "[MASKED:unmaskable]"


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__, an int too long to print
        return f"<{type(value).__qualname__}>"


def _line_end(text: str, at: int) -> int:
    eol = _EOL.search(text, at)
    return len(text) if eol is None else eol.start()


def _bracket_end(text: str, at: int) -> int:
    """The offset after the bracket that closes the one at ``at``, skipping quoted strings
    (JSON-escaped ones too), looked for in at most `_BRACKET_SCAN` characters; when it is
    not there, the end of the line (or of the scan, if it went past the line)."""
    limit = min(len(text), at + _BRACKET_SCAN)
    depth = 0
    quote = ""  # inside a string opened by this quote
    escaped_at = -1  # an inner escape (\\ in JSON-escaped text) applies to the token here
    crossed_line = False
    for token in _BRACKET_TOKEN.finditer(text, at, limit):
        t = token.group()
        if quote:
            if t == "\n":
                quote, crossed_line = "", True
            elif token.start() == escaped_at:
                escaped_at = -1
            elif t == quote:
                quote = ""
            elif t == "\\\\" and quote == '\\"':
                escaped_at = token.end()
        elif t in "([{":
            depth += 1
        elif t in ")]}":
            depth -= 1
            if depth <= 0:
                return token.end()
        elif t in "\"'" or t == '\\"':
            quote = t
        elif t == "\n":
            crossed_line = True
    return limit if crossed_line else _line_end(text, at)


def _quoted_key(text: str, start: int, end: int) -> tuple[int, int] | None:
    """``(key_start, key_end)`` when the key characters ``text[start:end]`` are part of a
    quoted key that may hold spaces (``"api key"``, ``\\"Secret Key\\"``), else None."""
    lo = max(0, end - _KEY_MAX - 1)
    opening = max(text.rfind('"', lo, start), text.rfind("'", lo, start))
    limit = opening + _KEY_MAX + 2
    if opening < 0 or limit <= end:
        return None
    if _QUOTED_KEY_BODY.fullmatch(text, opening + 1, start) is None:
        return None
    close = _QUOTED_KEY_BODY.match(text, end, limit).end()  # type: ignore[union-attr]
    quote = text[close : close + 1]
    if quote == "\\":
        quote = text[close : close + 2]
    if quote[-1:] != text[opening] or quote not in ('"', "'", '\\"', "\\'"):
        return None
    if (len(quote) == 2) != (opening > 0 and text[opening - 1] == "\\"):
        return None  # \"key" or "key\": not one quoted key
    return opening + 1, close


def _value_span(text: str, at: int, key: str, token: str) -> tuple[int, int]:
    """Where the value that starts at ``at`` (after the separator) lies; a value that is
    already the masker's ``token`` is that token alone (masking twice changes nothing)."""
    low = key.lower()
    line_valued = ("cookie" in low or "authorization" in low) and (
        normalize_key(key) in _LINE_KEYS or last_word(key) in ("cookie", "authorization")
    )
    scheme = _SCHEME.match(text, at)
    if scheme is not None:  # "Authorization: Bearer <token>": the scheme stays visible
        at = scheme.end()
    head = text[at : at + 2]
    if len(head) == 2 and head[0] in "bBuUrR" and head[1] in "\"'":  # b'...', u"..."
        at += 1
        head = text[at : at + 2]
    quote = '\\"' if head == '\\"' else head[:1]
    if token and text.startswith(token, at):
        return at, at + len(token)
    if quote in _QUOTED:
        m = _QUOTED[quote].match(text, at)
        if m is not None:
            return m.span(1)
        return at + len(quote), _line_end(text, at)  # unterminated, or too long
    if line_valued:
        return at, _line_end(text, at)
    if quote and quote in "[{(":
        close = _bracket_end(text, at)
        if text[close : close + 1] in _CLOSERS:  # "{'password': ['x']}": the container's
            return at, close
        after = _UNQUOTED.match(text, close)  # "(a)b": the value goes on
        return at, max(close, after.end() if after is not None else close)
    m = _UNQUOTED.match(text, at)
    return (at, m.end()) if m is not None else (at, at)


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


class Masker:
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
            pair_words.update(_PAIR_KEYWORDS)
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
        # Prefilter plan: each keyword / shape once, with the rules it unlocks (an empty
        # tuple of rules under a keyword means: it unlocks the key=value pair rule).
        self._always = tuple(
            r for r in self.rules if not r.keywords and not r.shapes and r.number_run <= 0
        )
        # Keywords: one trie-shaped regex finds which are in the text; a keyword also
        # unlocks the rules of the keywords it contains ("private key" holds "key").
        by_keyword = dict(self._plan(lambda r: r.keywords, pair_words if mask_pairs else ()))
        self._keyword_gate = re.compile(keyword_pattern(by_keyword)) if by_keyword else None
        self._unlocks: dict[str, tuple[tuple[Rule, ...], bool]] = {
            k: (
                tuple(r for inner in by_keyword if inner in k for r in by_keyword[inner]),
                any(inner in k and not by_keyword[inner] for inner in by_keyword),
            )
            for k in by_keyword
        }
        self._by_shape = tuple(
            (re.compile(k), rules) for k, rules in self._plan(lambda r: r.shapes, ())
        )
        self._by_run = tuple(
            sorted(self._plan(lambda r: (r.number_run,) if r.number_run > 0 else (), ()))
        )
        self._shortest_run = b"9" * self._by_run[0][0] if self._by_run else b""
        self._scans = bool(self.rules or mask_pairs)
        self._key_cache: dict[str, bool] = {}
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

    def _plan(self, get: Any, pair_keys: Iterable[str]) -> tuple[tuple[Any, tuple[Rule, ...]], ...]:
        plan: dict[Any, list[Rule]] = {k: [] for k in pair_keys}
        for rule in self.rules:
            for k in get(rule):
                plan.setdefault(k, []).append(rule)
        return tuple((k, tuple(v)) for k, v in plan.items())

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
            return self._mask_text(text)
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
        active: list[Rule] = list(self._always)
        pair_at: list[int] = []  # where a keyword of a sensitive key name was seen
        gate = self._keyword_gate
        if gate is not None:
            low = text.lower()
            if len(low) != len(text):  # "İ".lower() is two characters: keep offsets aligned
                low = text.translate(_ASCII_LOWER)
            found = gate.search(low)
            while found is not None:  # overlapping: restart one character further
                rules, unlocks_pairs = self._unlocks[found.group()]
                active.extend(rules)
                if unlocks_pairs:
                    pair_at.append(found.start())
                found = gate.search(low, found.start() + 1)
        windows: list[tuple[Rule, int, int]] = []
        if self._by_run:
            self._number_windows(text, windows)
        if self._by_shape:
            shape = shape_of(text)
            aligned = len(shape) == len(text)  # ASCII: offsets in the shape are text offsets
            for pattern, rules in self._by_shape:
                hit = pattern.search(shape)
                if hit is None:
                    continue
                if not aligned:
                    windows.extend((r, 0, len(text)) for r in rules)
                    continue
                while hit is not None:
                    at = hit.start()
                    windows.extend((r, at, at + r.window) for r in rules)
                    hit = pattern.search(shape, hit.end())
        if not active and not pair_at and not windows:
            return text
        spans: list[tuple[int, int, str, Rule | None]] = []
        seen: set[str] = set()
        for rule in active:
            if rule.name not in seen:
                seen.add(rule.name)
                self._find(rule, text, spans)
        for rule, start, end in windows:
            if rule.name not in seen:
                self._find(rule, text, spans, start, end)
        if pair_at:
            self._find_pairs(text, pair_at, spans)
        if not spans:
            return text
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

    def _number_windows(self, text: str, windows: list[tuple[Rule, int, int]]) -> None:
        """Queue each number rule on each run of digits and separators long enough for it."""
        runs = number_runs(text)
        at = runs.find(self._shortest_run)
        if at < 0:
            return
        if len(runs) != len(text):  # not ASCII: offsets differ, scan the whole text
            windows.extend((r, 0, len(text)) for _, rules in self._by_run for r in rules)
            return
        if "%" in text:  # "%204111...": the escape's digits are not part of the number
            cut = bytearray(runs)
            for escape in _PERCENT_ESCAPE.finditer(text):
                cut[escape.start() : escape.end()] = b"xxx"
            runs = bytes(cut)
            at = runs.find(self._shortest_run)
            if at < 0:
                return
        while at >= 0:
            end = runs.find(b"x", at)
            if end < 0:
                end = len(runs)
            for length, rules in self._by_run:
                if end - at >= length:
                    windows.extend((r, at, end) for r in rules)
            at = runs.find(self._shortest_run, end)

    def _find_pairs(
        self, text: str, at: list[int], spans: list[tuple[int, int, str, Rule | None]]
    ) -> None:
        """Mask the values of ``key=value`` pairs whose key holds a keyword found at the
        offsets ``at`` (ascending). Linear in the text: a hit inside a key or a value already
        looked at is skipped, the walk back to a key's start stops after `_KEY_MAX`
        characters, and a value is masked as far as it was scanned."""
        done = 0  # hits before this offset lie in a key or a value already dealt with
        cache = self._key_cache
        quotes = '"' in text or "'" in text
        for p in at:
            if p < done:
                continue
            end = _KEY_RUN.match(text, p).end()  # type: ignore[union-attr]  # matches ""
            done = end
            start = p
            floor = max(p - _KEY_MAX, 0)
            while start > floor and text[start - 1] in _KEY_CHARS:
                start -= 1
            sep = _SEP.match(text, end)
            quoted = None
            if sep is None:
                if not quotes or text[end : end + 1] != " ":
                    continue
                quoted = _quoted_key(text, start, end)  # {"api key": ...}: a key with spaces
            elif quotes and start and text[start - 1] == " " and text[end] in "\"'\\":
                quoted = _quoted_key(text, start, end)  # {"Secret Key": ...}
            if quoted is not None:
                start, end = quoted
                sep = _SEP.match(text, end)
                if sep is None:
                    continue
                done = max(done, end)
            elif sep is None:
                continue
            else:
                while start < p and text[start] not in _KEY_FIRST:
                    start += 1  # "--password", "2fa_secret": the key starts at a letter
                if end - start > 2 * _KEY_MAX:
                    continue
            key = text[start:end]
            verdict = cache.get(key)
            if not (self.is_sensitive_key(key) if verdict is None else verdict):
                continue
            value_start, value_end = _value_span(text, sep.end(), key, self._key_token)
            if value_start < value_end:
                spans.append((value_start, value_end, "key", None))
                done = max(done, value_end)

    @staticmethod
    def _find(
        rule: Rule,
        text: str,
        spans: list[tuple[int, int, str, Rule | None]],
        pos: int = 0,
        endpos: int = sys.maxsize,
    ) -> None:
        for m in rule.regex.finditer(text, pos, endpos):
            if rule.validate is not None and not rule.validate(m):
                continue
            start, end = m.span(rule.group)
            if start < end:
                spans.append((start, end, rule.name, rule))

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
