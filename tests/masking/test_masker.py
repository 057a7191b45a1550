"""Masker: every kind of secret is masked wherever it sits; ordinary lines stay as they are."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections import OrderedDict, namedtuple
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phoenixkit.errors import ConfigurationError
from phoenixkit.masking import Masker, Rule
from phoenixkit.masking.rules import DEFAULT_RULES
from tests.masking.secrets import SECRETS, ordinary_lines, secret_in_text, visible

MASKER = Masker()
KINDS = sorted(SECRETS)


def test_every_default_rule_has_a_generator() -> None:
    assert {r.name for r in DEFAULT_RULES} | {"key_value"} == set(KINDS)


# Zero leaks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_no_secret_survives_in_text(kind: str, data: st.DataObject) -> None:
    _, text, secret = data.draw(secret_in_text([kind]))
    masked = MASKER.mask_text(text)
    assert secret not in visible(masked), (kind, text, masked)


@pytest.mark.parametrize("style", ["fixed", "partial", "hash"])
@given(found=secret_in_text())
def test_no_secret_survives_in_any_style(style: str, found: tuple[str, str, str]) -> None:
    kind, text, secret = found
    masker = Masker(style=style, hash_key=b"k" * 16)  # type: ignore[arg-type]
    masked = masker.mask_text(text)
    assert secret not in visible(masked), (kind, text, masked)


@given(
    found=st.lists(secret_in_text(), min_size=1, max_size=4),
    key=st.sampled_from(["k", "data", "ünï", "", " "]),
)
def test_no_secret_survives_in_nested_structures_and_json(
    found: list[tuple[str, str, str]], key: str
) -> None:
    texts = [t for _, t, _ in found]
    record = {
        "event": texts[0],
        "nested": {"list": texts, "tuple": tuple(texts), key or "k": {"deeper": [texts[-1]]}},
        "as_json": json.dumps({"payload": texts}),
        "raw": texts[0].encode(),
    }
    original = copy.deepcopy(record)
    masked = MASKER.mask(record)
    assert record == original  # never mutated
    dumped = visible(json.dumps(masked, default=lambda b: b.decode()))
    for _, _, secret in found:
        assert secret not in dumped
        # JSON escapes some characters: look for the escaped form too
        assert json.dumps(secret)[1:-1] not in dumped


@given(found=secret_in_text())
def test_secrets_under_sensitive_keys_are_masked_whatever_the_value(
    found: tuple[str, str, str],
) -> None:
    _, _text, secret = found
    for value in (secret, 12345, [secret], {"inner": secret}, None):
        masked = MASKER.mask({"password": value, "Api-Key": value, "session": value})
        assert set(masked.values()) == {"[MASKED]"}


# What is and is not masked ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("login user=alice password=hunter2 ok", "login user=alice password=[MASKED] ok"),
        ('{"password": "a b c", "user": "bob"}', '{"password": "[MASKED]", "user": "bob"}'),
        ("Authorization: Bearer abc.def.123456", "Authorization: Bearer [MASKED]"),
        ("db postgres://app:s3cr3t@db.internal:5432/app", "db postgres://app:[MASKED]@db.internal:5432/app"),
        ("pay 4111 1111 1111 1111 now", "pay [MASKED] now"),
        ("ssn 123-45-6789.", "ssn [MASKED]."),
        ("mail john.doe@example.com", "mail [MASKED]"),
        ("key AKIAIOSFODNN7EXAMPLE,", "key [MASKED],"),
        ("iban DE89 3704 0044 0532 0130 00 paid", "iban [MASKED] paid"),
    ],
)  # fmt: skip
def test_examples(text: str, expected: str) -> None:
    assert MASKER.mask_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "card ending 1111 total 4111.11",
        "order 4111111111111112 (bad Luhn)",
        "epoch 1795458639123 ms",  # 13 digits, Luhn-valid or not: no card issuer starts with 1
        "ssn-like 000-12-3456 and 666-12-3456 and 912-34-5678",
        "iban-like DE00 3704 0044 0532 0130 00",  # wrong check digits
        "basic information about the bearer of news",
        "author=alice auth_method=oauth cache_key=user:42 token_count=12 session_duration=5",
        "version 1.2.3 ip 192.168.100.200 date 2026-11-23T18:34:45+01:00",
    ],
)
def test_lookalikes_are_left_alone(text: str) -> None:
    assert MASKER.mask_text(text) == text


def test_false_positive_rate_on_ordinary_lines() -> None:
    lines = ordinary_lines(3000)
    changed = [line for line in lines if MASKER.mask_text(line) != line]
    rate = len(changed) / len(lines)
    assert rate <= 0.005, (rate, changed[:10])


def test_keys_are_insensitive_to_case_and_separators() -> None:
    for key in ("password", "PASSWORD", "db_password", "X-API-Key", "apiKey", "Set-Cookie",
                "client.secret", "AUTH", "refresh_token", "privateKey"):  # fmt: skip
        assert MASKER.is_sensitive_key(key), key
    for key in ("author", "user", "cache_key", "token_count", "session_duration", "keyboard"):
        assert not MASKER.is_sensitive_key(key), key


def test_allowlist_and_custom_deny_keys() -> None:
    masker = Masker(allow_keys=["password_hint"], extra_deny_keys=["national_id"])
    out = masker.mask({"password_hint": "pet name", "nationalId": "X1", "password": "p"})
    assert out == {"password_hint": "pet name", "nationalId": "[MASKED]", "password": "[MASKED]"}
    # The custom key is looked for in free text as well.
    assert masker.mask_text("id national_id=X1 ok") == "id national_id=[MASKED] ok"
    assert Masker(deny_keys=["ssn_last4"], deny_exact=[]).mask_text("ssn_last4=1234 x=1") == (
        "ssn_last4=[MASKED] x=1"
    )


def test_custom_rule_and_token_kind() -> None:
    rule = Rule("ticket", r"TCK-\d{6}", keywords=("tck-",))
    masker = Masker(extra_rules=[rule], token="<{kind}>")
    assert masker.mask_text("see TCK-123456 and tck-1") == "see <ticket> and tck-1"
    assert masker.stats().masked == {"ticket": 1}


def test_rules_replace_the_defaults() -> None:
    masker = Masker(rules=[], mask_pairs=False)
    text = "password=hunter2 AKIAIOSFODNN7EXAMPLE"
    assert masker.mask_text(text) == text
    assert masker.mask({"password": "x"}) == {"password": "[MASKED]"}  # key rules remain


def test_partial_and_hash_styles() -> None:
    partial = Masker(style="partial")
    assert partial.mask_text("mail john@example.com") == "mail j***@example.com"
    assert partial.mask_text("card 4111-1111-1111-1111") == "card ****-****-****-1111"
    assert partial.mask_text("tok ghp_" + "a" * 36) == "tok ghp_***"
    assert partial.mask_text("password=x") == "password=[MASKED]"  # no partial view: fixed

    hashed = Masker(style="hash", hash_key="0123456789abcdef")
    a = hashed.mask_text("mail john@example.com")
    b = hashed.mask_text("again john@example.com")
    c = hashed.mask_text("mail jane@example.com")
    assert a.split()[1] == b.split()[1] != c.split()[1]
    assert a.startswith("mail [email#")
    assert "john" not in a

    mixed = Masker(styles={"email": "partial"})
    assert mixed.mask_text("a@example.com 4111111111111111") == "a***@example.com [MASKED]"


# Structures ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Login:
    user: str
    password: str
    note: str


class Model(pydantic.BaseModel):
    user: str
    api_key: str
    note: str


Point = namedtuple("Point", ["x", "y"])


def test_structures_keep_their_shape() -> None:
    data: dict[str, Any] = {
        "dc": Login("bob", "hunter2", "mail bob@example.com"),
        "model": Model(user="amy", api_key="k-123", note="fine"),
        "tuple": ("a", "password=x"),
        "set": {"x@example.com"},
        "frozen": frozenset({"y"}),
        "named": Point("x", "ssn 123-45-6789"),
        "ordered": OrderedDict([("token", "t"), ("n", 1)]),
        "bytes": b"password=abc",
        "bytearray": bytearray(b"ok"),
        "big": 4111111111111111,
        "small": 42,
        "float": 1.5,
        "none": None,
        "obj": object,
    }
    out = MASKER.mask(data)
    assert out["dc"] == {"user": "bob", "password": "[MASKED]", "note": "mail [MASKED]"}
    assert out["model"] == {"user": "amy", "api_key": "[MASKED]", "note": "fine"}
    assert out["tuple"] == ("a", "password=[MASKED]")
    assert out["set"] == {"[MASKED]"}
    assert out["frozen"] == frozenset({"y"})
    assert out["named"] == Point("x", "ssn [MASKED]")
    assert out["ordered"] == {"token": "[MASKED]", "n": 1}
    assert out["bytes"] == b"password=[MASKED]"
    assert out["bytearray"] == bytearray(b"ok")
    assert out["big"] == "[MASKED]"
    assert out["small"] == 42
    assert out["float"] == 1.5
    assert out["none"] is None
    assert out["obj"] is object


def test_never_raises_on_odd_input() -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    d: dict[str, Any] = {"a": "password=x"}
    d["self"] = d
    assert MASKER.mask(cyclic) == [1, "[MASKED:cycle]"]
    assert MASKER.mask(d) == {"a": "password=[MASKED]", "self": "[MASKED:cycle]"}

    deep: Any = "password=x"
    for _ in range(100):
        deep = [deep]
    out = MASKER.mask(deep)
    flat = json.dumps(out)
    assert "password=x" not in flat
    assert "[MASKED:too-deep]" in flat

    class Weird:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("no")

        __hash__ = object.__hash__

    assert isinstance(MASKER.mask({"w": Weird()})["w"], Weird)
    assert MASKER.mask(b"\xff\xfe password=x \x00") == b"\xff\xfe password=[MASKED] \x00"
    stats = MASKER.stats()
    assert stats.cycles >= 2
    assert stats.too_deep >= 1


def test_huge_strings_are_cut_not_scanned_forever() -> None:
    masker = Masker(max_length=1000)
    text = "x " * 100_000 + "password=hunter2"
    out = masker.mask_text(text)
    assert len(out) < 1100
    assert "hunter2" not in out
    assert out.endswith("[TRUNCATED 199016 chars]")
    assert masker.stats().truncated == 1


@given(st.text(max_size=300))
def test_mask_text_is_total_and_idempotent(text: str) -> None:
    once = MASKER.mask_text(text)
    assert isinstance(once, str)
    assert MASKER.mask_text(once) == once


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20,
)


@given(JSONISH)
def test_mask_never_raises_and_never_mutates(value: Any) -> None:
    before = copy.deepcopy(value)
    MASKER.mask(value)
    assert value == before


# Configuration errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"style": "blur"}, "'blur'"),
        ({"styles": {"email": "nope"}}, "styles\\['email'\\]"),
        ({"style": "hash"}, "hash_key"),
        ({"style": "hash", "hash_key": b"short"}, "5 bytes"),
        ({"max_length": 0}, "max_length must be an int >= 1, got 0"),
        ({"max_depth": True}, "max_depth"),
        ({"rules": ["not a rule"]}, "Rule objects"),
        ({"token": 3}, "token must be a str"),
    ],
)
def test_bad_configuration_names_the_value(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Masker(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "", "pattern": "x"}, "non-empty name"),
        ({"name": "r", "pattern": "("}, "bad pattern"),
        ({"name": "r", "pattern": "x", "group": 2}, "group 2"),
        ({"name": "r", "pattern": "x", "keywords": ("Upper",)}, "lowercase"),
        ({"name": "r", "pattern": "x", "shapes": (b"(",)}, "bad shape"),
        ({"name": "r", "pattern": "x", "number_run": "11"}, "number_run must be an int"),
    ],
)
def test_bad_rules_name_the_problem(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Rule(**kwargs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The greedy match has 19 digits (no Mastercard): its first 16 are a card.
        (" 5100 0000 0000 0008 200", " [MASKED] 200"),
        ("5100 0000 0000 0008 4111 1111 1111 1111", "[MASKED] [MASKED]"),
        ("order 41111111111111112 x", "order 41111111111111112 x"),  # inside a longer number
    ],
)
def test_a_refused_match_is_tried_again_shorter(text: str, expected: str) -> None:
    assert MASKER.mask_text(text) == expected
    if text.isascii():  # and in text that is not ASCII (scanned another way)
        assert MASKER.mask_text(f"über {text}") == f"über {expected}"


def test_numbers_are_found_in_non_ascii_text_and_several_per_line() -> None:
    # Non-ASCII text: shape offsets differ from text offsets, the whole text is scanned.
    assert MASKER.mask_text("Zahlung über 4111 1111 1111 1111 für Jörg") == (
        "Zahlung über [MASKED] für Jörg"
    )
    line = "a 4111111111111111 b 5555-5555-5555-4444 c 123-45-6789 d (415) 555-2671 e"
    assert MASKER.mask_text(line) == "a [MASKED] b [MASKED] c [MASKED] d [MASKED] e"
    assert MASKER.mask_text("ids 4111111111111111,4012888888881881") == "ids [MASKED],[MASKED]"


FLAT_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12)
)
FLAT_KEYS = st.one_of(
    st.sampled_from(["password", "user", "api-key", "Token", "n", "x_csrf"]), st.integers(0, 3)
)


@pytest.mark.parametrize("style", ["fixed", "hash"])
@given(records=st.lists(st.dictionaries(FLAT_KEYS, FLAT_VALUES, max_size=8), max_size=5))
def test_key_only_fast_path_equals_the_general_path(
    style: str, records: list[dict[Any, Any]]
) -> None:
    fast = Masker(rules=(), mask_pairs=False, style=style, hash_key="k" * 16)  # type: ignore[arg-type]
    general = Masker(style=style, hash_key="k" * 16)  # type: ignore[arg-type]
    for record in records:
        before = dict(record)
        expected = {
            k: general._mask_items([(k, v)], 1, set())[k]
            if isinstance(k, str) and general.is_sensitive_key(k)
            else v
            for k, v in record.items()
        }
        assert fast.mask(record) == expected
        assert record == before
    sensitive = sum(
        1 for r in records for k in r if isinstance(k, str) and fast.is_sensitive_key(k)
    )
    assert fast.stats().masked.get("key", 0) == sensitive
