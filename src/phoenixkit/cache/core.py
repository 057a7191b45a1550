"""The cache's decisions as pure code: entries, keys, freshness and early refresh.

No I/O, no locks, no clock of its own. Every decision takes ``now`` (and, where chance is
involved, ``rand``) as an argument, so the sync and async paths, the memory and Redis tiers
and the property tests all run the same functions.

An `Entry` carries its value and its times::

    created ........ refresh_at? ........ expires ........ stale_until
    |<------------- fresh ------------>|<--- stale (fail-safe only) --->|  gone

* before ``expires`` the entry is *fresh*; from the refresh-ahead point or by XFetch
  (probabilistic early expiration, Vattani et al., VLDB 2015) it is fresh but due for a
  background refresh;
* from ``expires`` to ``stale_until`` it is *stale*: served only when the loader or the
  shared tier fails (fail-safe), and counted;
* an entry whose tag marker changed, or went missing (evicted), is stale too, never fresh.

Keys: a user key (a ``str``) is escaped injectively (``%XX`` for any character outside a
small safe set) and replaced by ``#`` + a SHA-256 digest when long; the full storage key adds
the namespace and the version. `call_key` builds a key for a function call from its module,
qualname and sorted, canonically encoded arguments (never an object's ``repr``).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple

from phoenixkit.errors import ConfigurationError, PhoenixError, SerializationError

__all__ = [
    "EXPIRED",
    "FRESH",
    "MAX_PLAIN_KEY",
    "MISSING",
    "REFRESH",
    "STALE",
    "CacheError",
    "Entry",
    "InvalidKeyError",
    "KeyBuilder",
    "ValueTooLargeError",
    "call_key",
    "check_key",
    "check_namespace",
    "check_ttl",
    "decide",
    "escape_key",
    "jittered",
    "pack_entry",
    "tags_fresh",
    "unpack_entry",
]


class CacheError(PhoenixError):
    """Root of the cache's own errors."""


class InvalidKeyError(CacheError, TypeError):
    """A cache key is not a ``str`` (or a decorated call has an argument that cannot be keyed)."""


class ValueTooLargeError(CacheError, ValueError):
    """A serialized value is larger than the cache's ``max_value_size``; nothing was written."""


class _Missing:
    """The sentinel for a miss, so that ``None`` can be cached on purpose."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final[Any] = _Missing()
"""Returned by tiers for a miss (``None`` is a value like any other)."""

FRESH = "fresh"
REFRESH = "refresh"  # fresh, and due for a background refresh
STALE = "stale"  # past its expiry or invalidated: fail-safe use only
EXPIRED = "expired"  # past stale_until: never served

MAX_PLAIN_KEY = 200
"""Escaped keys longer than this are replaced by ``#`` + the SHA-256 digest of the key."""

_SAFE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:@/+=-")
_all_safe = _SAFE_CHARS.issuperset  # cheaper than a regex match on a short key
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9_.:@/+=-]")
_NAMESPACE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class Entry(NamedTuple):
    """A cached value with its times (seconds of one clock) and its tag markers.

    ``tags`` pairs each tag with the marker (a version token) it had when the value was
    loaded; the entry is fresh only while every marker is still the same. ``delta`` is how
    long the value took to compute (XFetch scales early refresh by it). A named tuple:
    immutable and cheap to build (one is built per L2 read and per promotion).
    """

    value: Any
    created: float
    expires: float
    stale_until: float
    delta: float = 0.0
    tags: tuple[tuple[str, str], ...] = ()


def decide(
    entry: Entry,
    now: float,
    *,
    tags_ok: bool = True,
    rand: float = 1.0,
    beta: float = 0.0,
    refresh_ahead: float | None = None,
) -> str:
    """What ``entry`` is at ``now``: `FRESH`, `REFRESH`, `STALE` or `EXPIRED`.

    ``rand`` is a uniform draw in (0, 1] for XFetch (``beta`` > 0: refresh early when
    ``now - delta * beta * ln(rand) >= expires``); ``refresh_ahead`` (0 < r < 1) refreshes
    once ``r`` of the TTL has passed. An entry with a bad tag marker is never fresh.
    """
    if now >= entry.stale_until:
        return EXPIRED
    if now >= entry.expires or not tags_ok:
        return STALE
    if (
        beta > 0
        and entry.delta > 0
        and rand > 0
        and now - entry.delta * beta * math.log(rand) >= entry.expires
    ):
        return REFRESH
    if refresh_ahead is not None and (
        now >= entry.created + (entry.expires - entry.created) * refresh_ahead
    ):
        return REFRESH
    return FRESH


def tags_fresh(seen: Sequence[tuple[str, str]], current: Mapping[str, str | None]) -> bool:
    """True when every tag marker is still what the entry saw; a missing marker is not."""
    for tag, marker in seen:
        now = current.get(tag)
        if now is None or now != marker:
            return False
    return True


def jittered(ttl: float, jitter: float, rand: float) -> float:
    """``ttl`` shortened by up to ``jitter`` of itself (``rand`` uniform in [0, 1))."""
    return ttl * (1.0 - jitter * rand) if jitter else ttl


# Checks ----------------------------------------------------------------------------------


def check_ttl(ttl: object, name: str = "ttl") -> float:
    """``ttl`` as float seconds > 0 (finite), or `ConfigurationError` naming it."""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl < math.inf:
        raise ConfigurationError(f"{name} must be a number of seconds > 0, got {ttl!r}")
    return float(ttl)


def check_key(key: object) -> str:
    """``key`` itself when it is a ``str``, else `InvalidKeyError`."""
    if key.__class__ is str or isinstance(key, str):
        return key
    raise InvalidKeyError(f"a cache key must be a str, got {type(key).__name__}: {key!r:.100}")


def check_namespace(namespace: object) -> str:
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise ConfigurationError(
            f"namespace must be 1-64 characters of [A-Za-z0-9_.-], got {namespace!r}"
        )
    return namespace


# Keys ------------------------------------------------------------------------------------


def _escape_char(match: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in match.group().encode("utf-8", "surrogatepass"))


def escape_key(key: str) -> str:
    """``key`` escaped for storage: injective, short, with no character outside a safe set.

    Safe characters stay; every other one becomes ``%XX`` per UTF-8 byte (``%`` itself too).
    A result longer than `MAX_PLAIN_KEY` becomes ``#`` + SHA-256 hex of the key (``#`` never
    appears in an escaped key, so the two forms cannot meet).
    """
    if len(key) <= MAX_PLAIN_KEY and _all_safe(key):
        return key
    escaped = _UNSAFE_CHAR.sub(_escape_char, key)
    if len(escaped) <= MAX_PLAIN_KEY:
        return escaped
    return "#" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class KeyBuilder:
    """Storage keys of one namespace and version: ``pk:c:<ns>:v<version>:<escaped key>``.

    Tag markers live at ``pk:c:<ns>:t:<escaped tag>`` (shared by every version) and locks
    at ``pk:c:<ns>:l:<escaped key>``; ``pattern`` matches everything of the namespace.
    """

    def __init__(self, namespace: str, version: int | str) -> None:
        self.namespace = check_namespace(namespace)
        if isinstance(version, bool) or not isinstance(version, (int, str)):
            raise ConfigurationError(f"version must be an int or a str, got {version!r}")
        self.version = escape_key(str(version))
        self.base = f"pk:c:{self.namespace}:"
        self.prefix = f"{self.base}v{self.version}:"
        self.pattern = self.base + "*"

    def key(self, key: str) -> str:
        return self.prefix + escape_key(key)

    def tag(self, tag: str) -> str:
        return f"{self.base}t:{escape_key(tag)}"

    def lock(self, key: str) -> str:
        return f"{self.base}l:{escape_key(key)}"

    def channel(self) -> str:
        """The invalidation channel of the namespace (every version shares it)."""
        return f"{self.base}inval"


def _canon(value: object, where: str) -> object:
    # A canonical, typed form: 1, True, 1.0 and "1" never meet; dicts and sets are sorted.
    if value is None or value.__class__ in (bool, str):
        return value
    if value.__class__ is int:
        return ["i", str(value)]
    if value.__class__ is float:
        return ["f", repr(value)]
    if isinstance(value, bytes):
        return ["b", value.hex()]
    if isinstance(value, (tuple, list)):
        return ["t" if isinstance(value, tuple) else "l", [_canon(v, where) for v in value]]
    if isinstance(value, (set, frozenset)):
        return ["s", sorted((_canon(v, where) for v in value), key=repr)]
    if isinstance(value, dict):
        items = [[_canon(k, where), _canon(v, where)] for k, v in value.items()]
        return ["d", sorted(items, key=repr)]
    raise InvalidKeyError(
        f"cannot build a cache key from {where}={type(value).__name__}: use str, int, float, "
        "bool, None, bytes or tuples/lists/sets/dicts of them, or pass key= to @cached"
    )


def call_key(qualname: str, arguments: Iterable[tuple[str, object]], version: int | str = 1) -> str:
    """The cache key of a call: ``<qualname>|v<version>|<sorted, encoded arguments>``.

    ``qualname`` should be ``module.qualname``; ``arguments`` are (name, value) pairs,
    without ``self``/``cls``. Values are encoded by type (see `_canon`), never by ``repr``.
    """
    parts = [f"{name}={_canon(value, name)!r}" for name, value in sorted(arguments)]
    return f"{qualname}|v{version}|{','.join(parts)}"


# The L2 envelope -------------------------------------------------------------------------

_FORMAT = 1


def pack_entry(entry: Entry) -> list[Any]:
    """``entry`` as a list a codec can encode (JSON, msgpack)."""
    return [
        _FORMAT,
        entry.value,
        entry.created,
        entry.expires,
        entry.stale_until,
        entry.delta,
        [list(t) for t in entry.tags],
    ]


def unpack_entry(data: object) -> Entry:
    """The `Entry` of a packed list, or `SerializationError` for anything else."""
    if not isinstance(data, (list, tuple)) or len(data) != 7 or data[0] != _FORMAT:
        raise SerializationError("not a phoenixkit cache entry")
    _, value, created, expires, stale_until, delta, tags = data
    try:
        return Entry(
            value,
            float(created),
            float(expires),
            float(stale_until),
            float(delta),
            tuple((str(t), str(m)) for t, m in tags) if tags else (),
        )
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"malformed cache entry: {exc}") from exc
