"""Tests for phoenixkit.serialization: codecs, the envelope, compression and pickle safety."""

from __future__ import annotations

import contextlib
import datetime
import decimal
import hashlib
import hmac
import pickle
import sys
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from phoenixkit.errors import (
    ConfigurationError,
    MissingDependencyError,
    PhoenixError,
    SerializationError,
    SignatureError,
)
from phoenixkit.serialization import (
    ENVELOPE_VERSION,
    Codec,
    JsonCodec,
    MsgpackCodec,
    PickleCodec,
    Serializer,
    get_codec,
)

KEY = b"0123456789abcdef-test-key"
OTHER_KEY = b"fedcba9876543210-other-key"

JSON_ID, MSGPACK_ID, PICKLE_ID = 1, 2, 3
FLAG_ZLIB = 0x01
HEADER = 5


def envelope(codec_id: int, payload: bytes, *, flags: int = 0, version: int = 1) -> bytes:
    """Build an envelope by hand, independently of Serializer.dumps."""
    return b"PK" + bytes((version, codec_id, flags)) + payload


def sign(body: bytes, key: bytes = KEY) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest() + body


# -- a pickle gadget whose unpickling has a visible side effect --------------------------------

SIDE_EFFECTS: list[str] = []


def _record_side_effect(tag: str) -> str:
    SIDE_EFFECTS.append(tag)
    return tag


class Gadget:
    """Unpickling this calls ``_record_side_effect``: stands in for an RCE payload."""

    def __init__(self, tag: str = "pwned") -> None:
        self.tag = tag

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_record_side_effect, (self.tag,))


@pytest.fixture(autouse=True)
def _clear_side_effects() -> Iterator[None]:
    SIDE_EFFECTS.clear()
    yield
    SIDE_EFFECTS.clear()


def gadget_envelope(key: bytes = KEY) -> bytes:
    return Serializer(PickleCodec(key)).dumps(Gadget())


def test_gadget_fires_when_unpickled_with_the_right_key() -> None:
    # Positive control: proves the negative tests below would notice an unpickling.
    assert Serializer(PickleCodec(KEY)).loads(gadget_envelope()) == "pwned"
    assert SIDE_EFFECTS == ["pwned"]


# -- strategies --------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)

msgpack_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
msgpack_keys = st.text(max_size=10) | st.binary(max_size=10) | st.integers(-(2**63), 2**64 - 1)
msgpack_values = st.recursive(
    msgpack_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(msgpack_keys, children, max_size=5)
    ),
    max_leaves=30,
)

pickle_scalars = (
    msgpack_scalars
    | st.complex_numbers(allow_nan=False)
    | st.decimals(allow_nan=False)
    | st.datetimes()
    | st.fractions()
)
pickle_hashables = st.text(max_size=10) | st.integers() | st.binary(max_size=10)
pickle_values = st.recursive(
    pickle_scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.frozensets(pickle_hashables, max_size=5)
        | st.sets(pickle_hashables, max_size=5)
        | st.dictionaries(pickle_hashables, children, max_size=5)
    ),
    max_leaves=30,
)

thresholds = st.none() | st.integers(min_value=0, max_value=200)


def assert_same_types(a: Any, b: Any) -> None:
    """Equal values with equal types all the way down (so b"x" never comes back as "x")."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, (list, tuple)):
        for x, y in zip(a, b, strict=True):
            assert_same_types(x, y)
    elif isinstance(a, dict):
        for k in a:
            assert_same_types(a[k], b[k])


# -- round trips -------------------------------------------------------------------------------


@given(value=json_values, threshold=thresholds)
def test_json_round_trip(value: Any, threshold: int | None) -> None:
    s = Serializer("json", compress_threshold=threshold)
    data = s.dumps(value)
    assert data[:4] == b"PK" + bytes((ENVELOPE_VERSION, JSON_ID))
    assert s.loads(data) == value
    assert s.loads(bytearray(data)) == value
    assert s.loads(memoryview(data)) == value


@given(value=msgpack_values, threshold=thresholds)
def test_msgpack_round_trip_keeps_bytes_and_str_apart(value: Any, threshold: int | None) -> None:
    s = Serializer("msgpack", compress_threshold=threshold)
    data = s.dumps(value)
    assert data[:4] == b"PK" + bytes((ENVELOPE_VERSION, MSGPACK_ID))
    out = s.loads(data)
    assert out == value
    assert_same_types(out, value)


def test_msgpack_bytes_stay_bytes() -> None:
    s = Serializer("msgpack")
    out = s.loads(s.dumps({b"k": b"\x00\xff", "k": "text", 1: [b"", ""]}))
    assert out == {b"k": b"\x00\xff", "k": "text", 1: [b"", ""]}
    assert type(out[b"k"]) is bytes
    assert type(out["k"]) is str
    assert [type(x) for x in out[1]] == [bytes, str]


@given(value=pickle_values, threshold=thresholds)
def test_pickle_round_trip(value: Any, threshold: int | None) -> None:
    s = Serializer(PickleCodec(KEY), compress_threshold=threshold)
    data = s.dumps(value)
    assert data[:4] == b"PK" + bytes((ENVELOPE_VERSION, PICKLE_ID))
    out = s.loads(data)
    assert out == value
    assert_same_types(out, value)


def test_pickle_round_trip_of_rich_objects() -> None:
    value = {
        "when": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        "price": decimal.Decimal("12.50"),
        "tags": frozenset({"a", "b"}),
        "pair": (1, b"2"),
    }
    s = Serializer(PickleCodec(KEY))
    assert s.loads(s.dumps(value)) == value


def test_str_key_is_the_same_as_its_utf8_bytes() -> None:
    data = Serializer(PickleCodec(KEY.decode())).dumps([1, 2])
    assert Serializer(PickleCodec(KEY)).loads(data) == [1, 2]


def test_json_is_compact_utf8() -> None:
    data = Serializer("json", compress_threshold=None).dumps({"a": [1, 2], "é": "ü"})
    assert data == envelope(JSON_ID, '{"a":[1,2],"é":"ü"}'.encode())


def test_default_serializer_is_json_with_a_1024_byte_threshold() -> None:
    s = Serializer()
    assert isinstance(s.codec, JsonCodec)
    assert s.compress_threshold == 1024
    assert "JsonCodec" in repr(s)


# -- compression -------------------------------------------------------------------------------


def flags_of(data: bytes) -> int:
    return data[4]


def json_payload_of_length(n: int) -> str:
    """A JSON string value whose encoding is exactly ``n`` bytes (quotes included)."""
    assert n >= 2
    return "a" * (n - 2)


@given(value=json_values, threshold=thresholds, level=st.integers(min_value=-1, max_value=9))
@example(value=json_payload_of_length(100), threshold=100, level=6)
@example(value=json_payload_of_length(99), threshold=100, level=6)
@example(value="x" * 5000, threshold=None, level=9)
@example(value="x" * 5000, threshold=0, level=0)
def test_compression_happens_exactly_when_at_threshold_and_smaller(
    value: Any, threshold: int | None, level: int
) -> None:
    s = Serializer("json", compress_threshold=threshold, compress_level=level)
    raw = JsonCodec().dumps(value)
    data = s.dumps(value)
    packed = zlib.compress(raw, level)
    should_compress = threshold is not None and len(raw) >= threshold and len(packed) < len(raw)
    if should_compress:
        assert flags_of(data) == FLAG_ZLIB
        assert data[HEADER:] == packed
        assert len(data) < HEADER + len(raw)
    else:
        assert flags_of(data) == 0
        assert data[HEADER:] == raw
    assert s.loads(data) == value


def test_compresses_at_the_threshold() -> None:
    s = Serializer("json", compress_threshold=100)
    value = json_payload_of_length(100)
    data = s.dumps(value)
    assert flags_of(data) == FLAG_ZLIB
    assert s.loads(data) == value


def test_never_compresses_below_the_threshold() -> None:
    s = Serializer("json", compress_threshold=100)
    value = json_payload_of_length(99)  # very compressible, but one byte short
    data = s.dumps(value)
    assert flags_of(data) == 0
    assert data == envelope(JSON_ID, b'"' + b"a" * 97 + b'"')


def test_does_not_compress_when_it_would_not_shrink() -> None:
    s = Serializer("msgpack", compress_threshold=0)
    # 2 KiB of hash-chain output: no redundancy for zlib to find.
    chunks = []
    h = b"seed"
    for _ in range(64):
        h = hashlib.sha256(h).digest()
        chunks.append(h)
    value = b"".join(chunks)
    raw = MsgpackCodec().dumps(value)
    assert len(zlib.compress(raw, 6)) >= len(raw)  # the premise
    data = s.dumps(value)
    assert flags_of(data) == 0
    assert s.loads(data) == value


def test_tiny_payload_at_threshold_zero_stays_uncompressed() -> None:
    s = Serializer("json", compress_threshold=0)
    data = s.dumps(1)
    assert data == envelope(JSON_ID, b"1")


def test_threshold_none_disables_compression() -> None:
    s = Serializer("json", compress_threshold=None)
    value = "z" * 1_000_000
    data = s.dumps(value)
    assert flags_of(data) == 0
    assert len(data) == HEADER + len(value) + 2
    assert s.loads(data) == value


def test_compress_level_zero_never_sets_the_flag() -> None:
    # Level 0 "stores": the output is always larger than the input, so it is never kept.
    s = Serializer("json", compress_threshold=0, compress_level=0)
    data = s.dumps("y" * 10_000)
    assert flags_of(data) == 0


def test_reader_decompresses_regardless_of_its_own_threshold() -> None:
    data = Serializer("json", compress_threshold=0).dumps("q" * 5000)
    assert flags_of(data) == FLAG_ZLIB
    assert Serializer("json", compress_threshold=None).loads(data) == "q" * 5000


# -- decompression bombs -----------------------------------------------------------------------


def zlib_bomb(inflated_size: int, fill: bytes = b"a") -> bytes:
    """A zlib stream of a JSON string inflating to ``inflated_size`` bytes, built in chunks."""
    comp = zlib.compressobj(9)
    parts = [comp.compress(b'"')]
    chunk = fill * (1 << 20)
    remaining = inflated_size - 2
    while remaining > 0:
        piece = chunk[: min(remaining, len(chunk))]
        parts.append(comp.compress(piece))
        remaining -= len(piece)
    parts.append(comp.compress(b'"'))
    parts.append(comp.flush())
    return b"".join(parts)


def test_decompression_bomb_is_refused_with_bounded_memory() -> None:
    bomb = envelope(JSON_ID, zlib_bomb(256 * 1024 * 1024), flags=FLAG_ZLIB)
    assert len(bomb) < 1024 * 1024  # a small entry...
    s = Serializer("json", max_size=1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(SerializationError, match=r"max_size=1048576"):
            s.loads(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # ...that would inflate to 256 MiB, but the reader never holds more than ~max_size.
    assert peak < 16 * 1024 * 1024


@given(size=st.integers(min_value=2, max_value=5000), max_size=st.integers(1, 5000))
@example(size=1000, max_size=1000)
@example(size=1001, max_size=1000)
def test_max_size_bounds_the_inflated_size_exactly(size: int, max_size: int) -> None:
    writer = Serializer("json", compress_threshold=0)
    value = json_payload_of_length(size)
    data = writer.dumps(value)
    assume(flags_of(data) == FLAG_ZLIB)
    reader = Serializer("json", max_size=max_size)
    if size <= max_size:
        assert reader.loads(data) == value
    else:
        with pytest.raises(SerializationError, match="max_size"):
            reader.loads(data)


def test_max_size_does_not_apply_to_uncompressed_entries() -> None:
    # max_size bounds *inflation*; a plain entry is already in memory at its real size.
    data = Serializer("json", compress_threshold=None).dumps("b" * 100)
    assert Serializer("json", max_size=10).loads(data) == "b" * 100


# -- envelope recognition ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello world",
        b'{"a":1}',
        b"\x80\x05\x95",  # a bare pickle
        b"pk\x01\x01\x00null",  # wrong-case magic
        b"KP\x01\x01\x00null",
        b"\x00PK\x01\x01\x00",
    ],
)
def test_non_envelope_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(SerializationError, match="not a phoenixkit envelope"):
        Serializer().loads(data)


@pytest.mark.parametrize("data", [b"P", b"PK", b"PK\x01", b"PK\x01\x01"])
def test_truncated_header_is_refused(data: bytes) -> None:
    # NOTE: the message says "bad magic bytes" even when the magic is fine and the header is
    # merely short (b"PK\x01\x01"); it still says it is not an envelope.
    with pytest.raises(SerializationError, match="envelope"):
        Serializer().loads(data)


def test_empty_payload_after_a_valid_header_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="invalid JSON"):
        Serializer().loads(envelope(JSON_ID, b""))


@pytest.mark.parametrize("version", [ENVELOPE_VERSION + 1, 0, 255])
def test_unknown_version_is_refused_not_misread(version: int) -> None:
    good = Serializer().dumps({"a": 1})
    data = good[:2] + bytes((version,)) + good[3:]
    with pytest.raises(SerializationError, match=rf"version {version} is not supported") as ei:
        Serializer().loads(data)
    assert f"reads version {ENVELOPE_VERSION}" in str(ei.value)


@pytest.mark.parametrize("flags", [0x02, 0x03, 0x04, 0x80, 0xFF])
def test_unknown_flags_are_refused(flags: int) -> None:
    data = envelope(JSON_ID, b"null", flags=flags)
    with pytest.raises(SerializationError, match=rf"unknown envelope flags {flags:#04x}"):
        Serializer().loads(data)


@pytest.mark.parametrize("garbage", [b"", b"\x00", b"not zlib at all", b"\x78\x9c\xff\xff\xff"])
def test_corrupt_zlib_is_a_serialization_error(garbage: bytes) -> None:
    with pytest.raises(SerializationError, match="compressed payload"):
        Serializer().loads(envelope(JSON_ID, garbage, flags=FLAG_ZLIB))


def test_zlib_checksum_mismatch_is_a_serialization_error() -> None:
    packed = bytearray(zlib.compress(b'"' + b"c" * 3000 + b'"'))
    packed[-1] ^= 0xFF  # adler-32 trailer
    with pytest.raises(SerializationError, match="corrupt compressed payload"):
        Serializer().loads(envelope(JSON_ID, bytes(packed), flags=FLAG_ZLIB))


@given(data=st.data())
def test_any_truncation_of_the_zlib_stream_is_a_serialization_error(data: st.DataObject) -> None:
    full = Serializer("json", compress_threshold=0).dumps({"k": "v" * 2000, "n": list(range(50))})
    assert flags_of(full) == FLAG_ZLIB
    cut = data.draw(st.integers(min_value=HEADER, max_value=len(full) - 1))
    with pytest.raises(SerializationError, match="compressed payload"):
        Serializer().loads(full[:cut])


def test_truncated_zlib_says_truncated() -> None:
    full = Serializer("json", compress_threshold=0).dumps("t" * 4000)
    with pytest.raises(SerializationError, match="truncated compressed payload"):
        Serializer().loads(full[:-2])


# -- codecs the reader does not accept ---------------------------------------------------------


def test_json_reader_refuses_a_pickle_envelope_without_unpickling() -> None:
    data = gadget_envelope()
    with pytest.raises(SerializationError, match=r"codec id 3.*does not accept") as ei:
        Serializer("json").loads(data)
    assert "json" in str(ei.value)
    assert SIDE_EFFECTS == []


def test_json_and_msgpack_reader_refuses_a_pickle_envelope_without_unpickling() -> None:
    with pytest.raises(SerializationError, match="does not accept") as ei:
        Serializer("json", accept=["msgpack"]).loads(gadget_envelope())
    assert "['json', 'msgpack']" in str(ei.value)
    assert SIDE_EFFECTS == []


def test_compressed_pickle_envelope_is_refused_without_unpickling() -> None:
    data = Serializer(PickleCodec(KEY), compress_threshold=0).dumps([Gadget()] * 200)
    assert flags_of(data) == FLAG_ZLIB
    with pytest.raises(SerializationError, match="does not accept"):
        Serializer("json").loads(data)
    assert SIDE_EFFECTS == []


def test_pickle_bytes_relabelled_as_json_are_not_unpickled() -> None:
    body = pickle.dumps(Gadget())
    for payload in (body, sign(body)):
        with pytest.raises(SerializationError):
            Serializer("json").loads(envelope(JSON_ID, payload))
    assert SIDE_EFFECTS == []


def test_msgpack_reader_refuses_json_envelope_unless_accepted() -> None:
    data = Serializer("json").dumps({"a": 1})
    with pytest.raises(SerializationError, match=r"codec id 1"):
        Serializer("msgpack").loads(data)
    assert Serializer("msgpack", accept=["json"]).loads(data) == {"a": 1}


@pytest.mark.parametrize("codec_id", [0, 4, 200, 255])
def test_unknown_codec_id_is_refused(codec_id: int) -> None:
    with pytest.raises(SerializationError, match=rf"codec id {codec_id}\b"):
        Serializer("json", accept=["msgpack", PickleCodec(KEY)]).loads(envelope(codec_id, b"null"))


def test_accept_lets_a_reader_read_other_codecs_while_writing_its_own() -> None:
    json_entry = Serializer("json").dumps({"a": [1, 2]})
    msgpack_entry = Serializer("msgpack").dumps({"b": b"\x00"})
    pickle_entry = Serializer(PickleCodec(KEY)).dumps({"c": (1, 2)})

    reader = Serializer("msgpack", accept=["json", PickleCodec(KEY)])
    assert reader.loads(json_entry) == {"a": [1, 2]}
    assert reader.loads(msgpack_entry) == {"b": b"\x00"}
    assert reader.loads(pickle_entry) == {"c": (1, 2)}
    # It still writes with its own codec.
    assert reader.dumps(1)[3] == MSGPACK_ID


def test_accept_migrating_away_from_pickle_still_verifies_signatures() -> None:
    reader = Serializer("json", accept=[PickleCodec(OTHER_KEY)])
    with pytest.raises(SignatureError):
        reader.loads(gadget_envelope(KEY))
    assert SIDE_EFFECTS == []


def test_accept_does_not_replace_the_writing_codec() -> None:
    # A second codec with the same id in accept does not shadow the primary one: the id maps
    # to the writing codec. Key rotation is PickleCodec(new, previous_keys=[old]).
    s = Serializer(PickleCodec(KEY), accept=[PickleCodec(OTHER_KEY)])
    assert s.loads(s.dumps([1])) == [1]
    with pytest.raises(SignatureError):
        s.loads(Serializer(PickleCodec(OTHER_KEY)).dumps([1]))


def test_accept_takes_codec_instances_and_names() -> None:
    s = Serializer("json", accept=(c for c in ["msgpack", MsgpackCodec()]))
    assert s.loads(Serializer("msgpack").dumps([b"x"])) == [b"x"]


def test_accept_refuses_pickle_by_name_and_unknown_names() -> None:
    with pytest.raises(ConfigurationError, match="key"):
        Serializer("json", accept=["pickle"])
    with pytest.raises(ConfigurationError, match="'yaml'"):
        Serializer("json", accept=["yaml"])


# -- PickleCodec: signatures -------------------------------------------------------------------


@given(bit=st.integers(min_value=0))
def test_any_flipped_bit_in_a_pickle_payload_is_a_signature_error(bit: int) -> None:
    SIDE_EFFECTS.clear()
    good = gadget_envelope()
    body_bits = (len(good) - HEADER) * 8
    bit %= body_bits
    tampered = bytearray(good)
    tampered[HEADER + bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(SignatureError, match="HMAC"):
        Serializer(PickleCodec(KEY)).loads(bytes(tampered))
    assert SIDE_EFFECTS == []


@pytest.mark.parametrize("where", ["signature-first", "signature-last", "body-first", "body-last"])
def test_tampered_pickle_payload_is_refused(where: str) -> None:
    good = bytearray(gadget_envelope())
    index = {
        "signature-first": HEADER,
        "signature-last": HEADER + 31,
        "body-first": HEADER + 32,
        "body-last": len(good) - 1,
    }[where]
    good[index] ^= 0x01
    with pytest.raises(SignatureError):
        Serializer(PickleCodec(KEY)).loads(bytes(good))
    assert SIDE_EFFECTS == []


def test_wrong_key_is_a_signature_error_and_nothing_is_unpickled() -> None:
    with pytest.raises(SignatureError, match="refusing to unpickle"):
        Serializer(PickleCodec(OTHER_KEY)).loads(gadget_envelope(KEY))
    assert SIDE_EFFECTS == []


def test_unsigned_pickle_is_refused() -> None:
    body = pickle.dumps(Gadget())
    with pytest.raises(SignatureError):
        Serializer(PickleCodec(KEY)).loads(envelope(PICKLE_ID, body))
    assert SIDE_EFFECTS == []


@pytest.mark.parametrize("length", [0, 1, 31, 32])
def test_short_pickle_payload_is_a_signature_error(length: int) -> None:
    with pytest.raises(SignatureError):
        PickleCodec(KEY).loads(b"\x00" * length)


def test_signature_error_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError):
        PickleCodec(KEY).loads(b"x" * 40)


def test_pickle_codec_signs_with_hmac_sha256_over_the_pickle() -> None:
    data = PickleCodec(KEY).dumps({"x": 1})
    sig, body = data[:32], data[32:]
    assert hmac.compare_digest(sig, hmac.new(KEY, body, hashlib.sha256).digest())
    assert pickle.loads(body) == {"x": 1}


def test_signature_is_checked_before_unpickling_even_for_a_signed_reader_of_other_codecs() -> None:
    # A signed-by-attacker payload (attacker does not know the key) under pickle's codec id.
    forged = envelope(PICKLE_ID, sign(pickle.dumps(Gadget()), key=b"attacker-key-0123456"))
    with pytest.raises(SignatureError):
        Serializer("json", accept=[PickleCodec(KEY)]).loads(forged)
    assert SIDE_EFFECTS == []


def test_validly_signed_pickle_with_a_removed_class_is_a_serialization_error() -> None:
    # An entry written before a deploy that removed/renamed its class: the signature verifies,
    # but the body cannot be unpickled. Serializer.loads promises SerializationError.
    body = pickle.dumps(Gadget()).replace(b"_record_side_effect", b"_gone_side_effect__")
    data = envelope(PICKLE_ID, sign(body))
    # An unpickling error (AttributeError here) is reported as a SerializationError.
    with pytest.raises(SerializationError):
        Serializer(PickleCodec(KEY)).loads(data)
    assert SIDE_EFFECTS == []


def test_validly_signed_truncated_pickle_is_a_serialization_error() -> None:
    body = pickle.dumps(list(range(100)), protocol=5)[:-5]
    data = envelope(PICKLE_ID, sign(body))
    # pickle.UnpicklingError is reported as a SerializationError.
    with pytest.raises(SerializationError):
        Serializer(PickleCodec(KEY)).loads(data)


# -- PickleCodec: keys -------------------------------------------------------------------------


@pytest.mark.parametrize("key", [b"", b"short", b"x" * 15, "x" * 15])
def test_pickle_key_shorter_than_16_bytes_is_a_configuration_error(key: bytes | str) -> None:
    with pytest.raises(ConfigurationError, match=r"at least 16 bytes, got \d+") as ei:
        PickleCodec(key)
    assert str(len(key)) in str(ei.value)


def test_pickle_key_length_is_counted_in_utf8_bytes() -> None:
    PickleCodec("é" * 8)  # 8 characters, 16 bytes
    with pytest.raises(ConfigurationError):
        PickleCodec("é" * 7 + "a")  # 15 bytes


@pytest.mark.parametrize("key", [None, 1234567890123456789, bytearray(b"x" * 32)])
def test_pickle_key_of_the_wrong_type_is_a_configuration_error(key: Any) -> None:
    with pytest.raises(ConfigurationError, match=type(key).__name__):
        PickleCodec(key)


def test_pickle_key_of_16_bytes_is_enough() -> None:
    PickleCodec(b"k" * 16)


def test_pickle_codec_repr_hides_the_key() -> None:
    assert KEY.decode() not in repr(PickleCodec(KEY))
    assert KEY.decode() not in repr(Serializer(PickleCodec(KEY)))
    assert repr(PickleCodec(KEY)) == "PickleCodec(key=***)"


# -- get_codec and constructor arguments -------------------------------------------------------


def test_get_codec_by_name() -> None:
    assert isinstance(get_codec("json"), JsonCodec)
    assert isinstance(get_codec("msgpack"), MsgpackCodec)


def test_get_codec_returns_codec_instances_unchanged() -> None:
    codec = PickleCodec(KEY)
    assert get_codec(codec) is codec


def test_get_codec_pickle_by_name_demands_a_key() -> None:
    with pytest.raises(ConfigurationError, match="secret key"):
        get_codec("pickle")
    with pytest.raises(ConfigurationError, match="key"):
        Serializer("pickle")


@pytest.mark.parametrize("name", ["yaml", "JSON", "", "pickle5"])
def test_unknown_codec_name_is_a_configuration_error_naming_it(name: str) -> None:
    with pytest.raises(ConfigurationError, match=f"unknown codec {name!r}"):
        get_codec(name)
    with pytest.raises(ConfigurationError, match=f"unknown codec {name!r}"):
        Serializer(name)


@pytest.mark.parametrize("obj", [None, 3, object(), b"json"])
def test_non_codec_object_is_a_configuration_error(obj: Any) -> None:
    with pytest.raises(ConfigurationError, match="not a codec"):
        get_codec(obj)


def test_custom_codec_plugs_in() -> None:
    class Upper:
        name = "upper"
        codec_id = 42

        def dumps(self, value: Any) -> bytes:
            return str(value).upper().encode()

        def loads(self, data: bytes) -> Any:
            return data.decode()

    assert isinstance(Upper(), Codec)
    s = Serializer(Upper(), compress_threshold=None)
    data = s.dumps("abc")
    assert data == envelope(42, b"ABC")
    assert s.loads(data) == "ABC"
    with pytest.raises(SerializationError, match="codec id 42"):
        Serializer().loads(data)


def test_builtin_codecs_satisfy_the_protocol_with_distinct_ids() -> None:
    codecs = [JsonCodec(), MsgpackCodec(), PickleCodec(KEY)]
    assert all(isinstance(c, Codec) for c in codecs)
    assert [c.codec_id for c in codecs] == [JSON_ID, MSGPACK_ID, PICKLE_ID]
    assert [c.name for c in codecs] == ["json", "msgpack", "pickle"]


@pytest.mark.parametrize(
    ("kwargs", "shown"),
    [
        ({"compress_threshold": -1}, "-1"),
        ({"compress_threshold": True}, "True"),
        ({"compress_threshold": "x"}, "'x'"),
        ({"compress_threshold": 1.5}, "1.5"),
        ({"compress_level": 10}, "10"),
        ({"compress_level": -2}, "-2"),
        ({"compress_level": "6"}, "'6'"),
        ({"compress_level": None}, "None"),
        ({"max_size": 0}, "0"),
        ({"max_size": -5}, "-5"),
        ({"max_size": 1.0}, "1.0"),
        ({"max_size": None}, "None"),
    ],
)
def test_bad_constructor_arguments_are_configuration_errors_naming_the_value(
    kwargs: dict[str, Any], shown: str
) -> None:
    (name,) = kwargs
    with pytest.raises(ConfigurationError) as ei:
        Serializer(**kwargs)
    message = str(ei.value)
    assert name in message
    assert message.endswith(f"got {shown}")
    assert isinstance(ei.value, ValueError)


@pytest.mark.parametrize("kwargs", [{"compress_level": True}, {"max_size": True}])
def test_bool_is_not_accepted_as_an_int_setting(kwargs: dict[str, Any]) -> None:
    # isinstance(True, int): bools must be refused explicitly (max_size=True would be 1).
    with pytest.raises(ConfigurationError, match="True"):
        Serializer(**kwargs)


@pytest.mark.parametrize(
    ("kwargs"),
    [
        {"compress_threshold": 0},
        {"compress_threshold": None},
        {"compress_level": -1},
        {"compress_level": 0},
        {"compress_level": 9},
        {"max_size": 1},
    ],
)
def test_edge_constructor_arguments_are_accepted(kwargs: dict[str, Any]) -> None:
    s = Serializer(**kwargs)
    assert s.loads(s.dumps([1, "a"])) == [1, "a"]


# -- values that cannot be encoded -------------------------------------------------------------


@pytest.mark.parametrize(
    ("codec", "value", "type_name"),
    [
        ("json", object(), "object"),
        ("json", {1, 2}, "set"),
        ("json", b"bytes", "bytes"),
        ("json", {"k": object()}, "dict"),
        ("json", {(1, 2): "tuple key"}, "dict"),
        ("json", "\ud800", "str"),  # lone surrogate: not encodable as UTF-8
        ("msgpack", object(), "object"),
        ("msgpack", 2**64, "int"),
        ("msgpack", {1, 2}, "set"),
        (PickleCodec(KEY), lambda: None, "function"),
        (PickleCodec(KEY), (x for x in ()), "generator"),
    ],
)
def test_unserialisable_value_is_a_serialization_error_naming_its_type(
    codec: Any, value: Any, type_name: str
) -> None:
    with pytest.raises(SerializationError, match=rf"\b{type_name}\b"):
        Serializer(codec).dumps(value)


def test_circular_value_is_a_serialization_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="list"):
        Serializer("json").dumps(loop)


def nested_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def test_too_deeply_nested_value_is_a_serialization_error() -> None:
    value = nested_list(sys.getrecursionlimit() * 10)
    # json.dumps raises RecursionError here; it is reported as a SerializationError.
    with pytest.raises(SerializationError, match="list"):
        Serializer("json").dumps(value)


# -- loads of arbitrary bytes: SerializationError or a value, nothing else ---------------------

headers = st.sampled_from(
    [
        envelope(JSON_ID, b""),
        envelope(JSON_ID, b"", flags=FLAG_ZLIB),
        envelope(MSGPACK_ID, b""),
        envelope(MSGPACK_ID, b"", flags=FLAG_ZLIB),
        envelope(PICKLE_ID, b""),
        envelope(PICKLE_ID, b"", flags=FLAG_ZLIB),
        b"",
    ]
)


@st.composite
def candidate_entries(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, often behind a valid-looking header, sometimes really compressed."""
    head = draw(headers)
    body = draw(st.binary(max_size=300))
    if head and head[4] & FLAG_ZLIB and draw(st.booleans()):
        body = zlib.compress(body)
    return head + body


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300) | candidate_entries())
@example(data=envelope(JSON_ID, b"\xff\xfe"))
@example(data=envelope(JSON_ID, b"1" * 5000))  # int too long to convert
@example(data=envelope(MSGPACK_ID, b"\xc1"))
def test_loads_of_arbitrary_bytes_only_raises_serialization_error(data: bytes) -> None:
    for reader in (
        Serializer("json"),
        Serializer("msgpack"),
        Serializer("json", accept=["msgpack"]),
    ):
        with contextlib.suppress(SerializationError):
            reader.loads(data)


@settings(max_examples=300)
@given(data=st.binary(max_size=300) | candidate_entries())
def test_pickle_loads_of_arbitrary_bytes_only_raises_signature_or_serialization_error(
    data: bytes,
) -> None:
    with contextlib.suppress(SignatureError, SerializationError):
        Serializer(PickleCodec(KEY)).loads(data)


def test_deeply_nested_json_entry_is_a_serialization_error() -> None:
    data = envelope(JSON_ID, b"[" * 200_000)
    # json.loads raises RecursionError on deep nesting (an entry anyone with write access
    # to the shared Redis can plant); it is reported as a SerializationError.
    with pytest.raises(SerializationError):
        Serializer("json").loads(data)


def test_deeply_nested_msgpack_entry_is_a_serialization_error() -> None:
    data = envelope(MSGPACK_ID, b"\x91" * 200_000)
    with pytest.raises(SerializationError):
        Serializer("msgpack").loads(data)


def test_serialization_errors_are_phoenix_errors_and_value_errors() -> None:
    with pytest.raises(PhoenixError):
        Serializer().loads(b"nope")
    with pytest.raises(ValueError):  # noqa: PT011 - the type is the point
        Serializer().loads(b"nope")


# -- missing msgpack ---------------------------------------------------------------------------


def test_missing_msgpack_is_a_missing_dependency_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)
    for build in (MsgpackCodec, lambda: get_codec("msgpack"), lambda: Serializer("msgpack")):
        with pytest.raises(MissingDependencyError) as ei:
            build()
        err = ei.value
        assert isinstance(err, ImportError)
        assert err.extra == "msgpack"
        assert err.name == "msgpack"
        assert "pip install 'phoenixkit[msgpack]'" in str(err)
        assert "msgpack codec" in str(err)
        assert isinstance(err.__cause__, ImportError)


def test_missing_msgpack_also_fails_when_only_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)
    with pytest.raises(ImportError, match=r"phoenixkit\[msgpack\]"):
        Serializer("json", accept=["msgpack"])


def test_json_works_without_msgpack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)
    s = Serializer("json")
    assert s.loads(s.dumps({"a": 1})) == {"a": 1}
    # A msgpack entry is refused as an unaccepted codec, not an ImportError.
    with pytest.raises(SerializationError, match="codec id 2"):
        s.loads(envelope(MSGPACK_ID, b"\xc0"))


def test_pickle_key_rotation_reads_entries_signed_with_previous_keys() -> None:
    old_writer = Serializer(PickleCodec(OTHER_KEY))
    rotated = Serializer(PickleCodec(KEY, previous_keys=[OTHER_KEY]))
    assert rotated.loads(old_writer.dumps({"a": 1})) == {"a": 1}
    # New entries are signed with the new key only: a reader with just the old key refuses.
    with pytest.raises(SignatureError):
        old_writer.loads(rotated.dumps({"a": 1}))
    with pytest.raises(ConfigurationError, match="3 bytes"):
        PickleCodec(KEY, previous_keys=[b"old"])


def test_trailing_bytes_after_a_compressed_payload_are_refused() -> None:
    s = Serializer("json", compress_threshold=0)
    blob = s.dumps("x" * 1000)
    assert blob[4] & 1
    with pytest.raises(SerializationError, match="trailing bytes"):
        s.loads(blob + b"junk")


def test_truncated_header_says_so() -> None:
    with pytest.raises(SerializationError, match="truncated envelope header"):
        Serializer().loads(b"PK\x01\x01")


def test_get_codec_refuses_a_class() -> None:
    with pytest.raises(ConfigurationError, match="not a codec"):
        get_codec(JsonCodec)  # type: ignore[arg-type]
