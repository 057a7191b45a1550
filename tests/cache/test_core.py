"""The pure core: key escaping, call keys, entries, freshness, tag checks, early refresh."""

from __future__ import annotations

import math
import re
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phoenixkit.cache.core import (
    EXPIRED,
    FRESH,
    MAX_PLAIN_KEY,
    MISSING,
    REFRESH,
    STALE,
    Entry,
    InvalidKeyError,
    KeyBuilder,
    call_key,
    check_key,
    check_namespace,
    check_ttl,
    decide,
    escape_key,
    jittered,
    pack_entry,
    tags_fresh,
    unpack_entry,
)
from phoenixkit.errors import ConfigurationError, PhoenixError, SerializationError

SAFE = re.compile(r"[A-Za-z0-9_.:@/+=%#-]*")
keys = st.text(max_size=300)


@given(keys, keys)
def test_escaping_is_injective(a: str, b: str) -> None:
    if a != b:
        assert escape_key(a) != escape_key(b)


@given(keys)
def test_escaped_keys_are_short_and_safe(key: str) -> None:
    escaped = escape_key(key)
    assert len(escaped) <= MAX_PLAIN_KEY + 1
    assert SAFE.fullmatch(escaped)
    assert "{" not in escaped
    assert "}" not in escaped
    if not escaped.startswith("#"):  # the plain form decodes back to the key
        assert urllib.parse.unquote(escaped, errors="surrogatepass") == key


def test_escaping_examples() -> None:
    assert escape_key("user:42") == "user:42"
    assert escape_key("a b") == "a%20b"
    assert escape_key("%20") == "%2520"  # % itself is escaped: "a b" and "a%20b" differ
    assert escape_key("{tag}") == "%7Btag%7D"
    long = escape_key("x" * 1000)
    assert long.startswith("#")
    assert len(long) == 65


def test_key_builder_namespaces_versions_and_tags() -> None:
    kb = KeyBuilder("shop", 3)
    assert kb.key("a b") == "pk:c:shop:v3:a%20b"
    assert kb.tag("user:1") == "pk:c:shop:t:user:1"
    assert kb.lock("k") == "pk:c:shop:l:k"
    assert kb.channel() == "pk:c:shop:inval"
    assert kb.key("x").startswith(kb.base)
    assert kb.tag("x").startswith(kb.base)
    assert KeyBuilder("shop", 4).key("a") != kb.key("a")
    for bad in ("", "a b", "x" * 65, "{x}", 5):
        with pytest.raises(ConfigurationError):
            check_namespace(bad)
    with pytest.raises(ConfigurationError):
        KeyBuilder("shop", 1.5)  # type: ignore[arg-type]


def test_call_keys_are_typed_sorted_and_never_repr() -> None:
    k = call_key("m.f", [("b", 2), ("a", "x")])
    assert k == call_key("m.f", [("a", "x"), ("b", 2)])  # sorted by name
    assert call_key("m.f", [("a", 1)]) != call_key("m.f", [("a", "1")])
    assert call_key("m.f", [("a", 1)]) != call_key("m.f", [("a", True)])
    assert call_key("m.f", [("a", 1)]) != call_key("m.f", [("a", 1.0)])
    assert call_key("m.f", [("a", (1,))]) != call_key("m.f", [("a", [1])])
    assert call_key("m.f", [("a", 1)], version=2) != call_key("m.f", [("a", 1)])
    assert call_key("m.f", [("a", {"y": 1, "x": 2})]) == call_key("m.f", [("a", {"x": 2, "y": 1})])
    assert call_key("m.f", [("a", {3, 1})]) == call_key("m.f", [("a", {1, 3})])

    class Thing:
        pass

    with pytest.raises(InvalidKeyError, match="a=Thing"):
        call_key("m.f", [("a", Thing())])


args = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner),
    max_leaves=6,
)


@given(args, args)
def test_call_keys_are_injective_over_arguments(a: object, b: object) -> None:
    if type(a) is not type(b) or a != b:
        assert call_key("m.f", [("x", a)]) != call_key("m.f", [("x", b)])


def test_checks_name_the_problem() -> None:
    assert check_key("k") == "k"
    with pytest.raises(InvalidKeyError, match="must be a str, got int"):
        check_key(5)
    assert issubclass(InvalidKeyError, PhoenixError)
    assert issubclass(InvalidKeyError, TypeError)
    for bad in (0, -1, math.inf, math.nan, True, "5"):
        with pytest.raises(ConfigurationError, match="ttl"):
            check_ttl(bad)
    assert check_ttl(2) == 2.0


def test_missing_is_a_falsy_singleton() -> None:
    assert not MISSING
    assert repr(MISSING) == "MISSING"
    assert MISSING is not None


def test_decide_walks_the_lifecycle() -> None:
    e = Entry("v", created=0.0, expires=10.0, stale_until=15.0)
    assert decide(e, 0.0) == FRESH
    assert decide(e, 9.99) == FRESH
    assert decide(e, 10.0) == STALE
    assert decide(e, 14.9) == STALE
    assert decide(e, 15.0) == EXPIRED
    assert decide(e, 5.0, tags_ok=False) == STALE
    assert decide(e, 7.9, refresh_ahead=0.8) == FRESH
    assert decide(e, 8.0, refresh_ahead=0.8) == REFRESH


def test_xfetch_refreshes_earlier_for_slow_loaders_and_unlucky_draws() -> None:
    e = Entry("v", created=0.0, expires=10.0, stale_until=10.0, delta=1.0)
    assert decide(e, 5.0, beta=1.0, rand=1.0) == FRESH  # ln(1) = 0: never early
    assert decide(e, 5.0, beta=1.0, rand=math.exp(-6)) == REFRESH  # 5 + 6 >= 10
    assert decide(e, 5.0, beta=1.0, rand=math.exp(-4)) == FRESH  # 5 + 4 < 10
    assert decide(e, 5.0, beta=0.0, rand=1e-9) == FRESH  # beta 0: off


times = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@given(
    created=times,
    ttl=st.floats(min_value=1e-3, max_value=1e4),
    grace=st.floats(min_value=0, max_value=1e4),
    later=times,
    tags_ok=st.booleans(),
    rand=st.floats(min_value=1e-12, max_value=1.0),
    beta=st.floats(min_value=0, max_value=5),
    ahead=st.none() | st.floats(min_value=0.01, max_value=0.99),
)
def test_never_fresh_after_expiry_or_with_a_bad_tag(
    created: float,
    ttl: float,
    grace: float,
    later: float,
    tags_ok: bool,
    rand: float,
    beta: float,
    ahead: float | None,
) -> None:
    e = Entry("v", created, created + ttl, created + ttl + grace, delta=ttl / 3)
    state = decide(e, later, tags_ok=tags_ok, rand=rand, beta=beta, refresh_ahead=ahead)
    if later >= e.stale_until:
        assert state == EXPIRED
    elif later >= e.expires or not tags_ok:
        assert state == STALE
    else:
        assert state in (FRESH, REFRESH)


@given(
    st.lists(st.tuples(st.text(max_size=3), st.text(max_size=3)), max_size=4),
    st.dictionaries(st.text(max_size=3), st.none() | st.text(max_size=3), max_size=6),
)
def test_tags_fresh_only_when_every_marker_matches(
    seen: list[tuple[str, str]], current: dict[str, str | None]
) -> None:
    expected = all(current.get(t) is not None and current.get(t) == m for t, m in seen)
    assert tags_fresh(seen, current) is expected


def test_a_missing_tag_marker_is_stale_never_fresh() -> None:
    assert not tags_fresh([("user:1", "abc")], {})
    assert not tags_fresh([("user:1", "abc")], {"user:1": None})
    assert not tags_fresh([("user:1", "abc")], {"user:1": "abd"})
    assert tags_fresh([("user:1", "abc")], {"user:1": "abc"})


@given(st.floats(min_value=0.001, max_value=1e5), st.floats(0, 0.99), st.floats(0, 0.999))
def test_jitter_only_shortens_and_by_at_most_its_fraction(
    ttl: float, jitter: float, rand: float
) -> None:
    out = jittered(ttl, jitter, rand)
    assert ttl * (1 - jitter) - 1e-9 <= out <= ttl


def test_entries_round_trip_through_their_envelope_list() -> None:
    e = Entry({"a": [1, 2]}, 1.0, 2.0, 3.0, 0.5, (("t", "m"),))
    assert unpack_entry(pack_entry(e)) == e
    for bad in (None, [], [2, 1, 1, 1, 1, 1, []], [1, "v", "x", 1, 1, 1, []], "text"):
        with pytest.raises(SerializationError):
            unpack_entry(bad)


def test_importing_the_cache_pulls_in_no_driver() -> None:
    import subprocess
    import sys

    code = (
        "import sys, phoenixkit.cache\n"
        "print(','.join(m for m in ('redis', 'msgpack', 'cashews') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
