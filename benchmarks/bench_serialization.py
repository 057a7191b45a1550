"""Serializer round trips (dumps + loads) beside what a user would write by hand.

Peers produce and read ``bytes``, as a value written to and read back from Redis does:
``json.loads(json.dumps(v).encode())``, ``msgpack.unpackb(msgpack.packb(v))`` and
``pickle.loads(pickle.dumps(v))``. The pickle peer is *unsigned*: that case shows what
the HMAC check (which keeps a shared Redis from becoming remote code execution) costs.

The large value is a dict of ~50 KB (the size of its JSON), repetitive as real records
are. Our Serializer compresses it (threshold 1024 bytes; about 10x smaller in Redis and on
the wire) while the peers do not, so each large case also runs with compression off: the
envelope's own overhead.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
from collections.abc import Callable
from typing import Any

from _harness import Case
from phoenixkit.serialization import Codec, PickleCodec, Serializer

PICKLE_KEY = b"benchmark-secret-key-32-bytes!!!"

SMALL: dict[str, Any] = {
    "id": 48213,
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "active": True,
    "plan": "pro",
    "score": 98.5,
    "quota": 10_000,
    "roles": ["admin", "billing"],
    "created_at": "2024-05-01T12:30:00Z",
    "last_login": None,
}


def large_value() -> dict[str, Any]:
    """~50 KB of JSON: 320 order records with repeated field names and values."""
    return {
        f"order:{i:05d}": {
            "id": i,
            "customer": f"customer-{i % 97}",
            "status": ("paid", "pending", "shipped")[i % 3],
            "total": round(i * 1.37, 2),
            "items": [{"sku": f"SKU-{(i * 7 + j) % 50:03d}", "qty": j + 1} for j in range(2)],
            "tags": ["priority"] if i % 5 == 0 else [],
        }
        for i in range(320)
    }


def _roundtrip(ser: Serializer, value: Any) -> Callable[[], object]:
    dumps, loads = ser.dumps, ser.loads
    if loads(dumps(value)) != value:
        raise RuntimeError(f"{ser!r} does not round-trip the benchmark value")

    def ours() -> object:
        return loads(dumps(value))

    return ours


def _json_peer(value: Any) -> Callable[[], object]:
    def peer() -> object:
        return json.loads(json.dumps(value).encode())

    return peer


def _msgpack_peer(value: Any) -> Callable[[], object]:
    import msgpack

    packb, unpackb = msgpack.packb, msgpack.unpackb

    def peer() -> object:
        return unpackb(packb(value))

    return peer


def _pickle_peer(value: Any) -> Callable[[], object]:
    def peer() -> object:
        return pickle.loads(pickle.dumps(value))  # the unsigned baseline

    return peer


PeerFactory = Callable[[Any], Callable[[], object]]


def cases(quick: bool) -> list[Case]:
    large = large_value()
    codecs: list[tuple[str, str | Codec, str, PeerFactory]] = [
        ("json", "json", "json.dumps/loads", _json_peer),
    ]
    if importlib.util.find_spec("msgpack") is not None:  # an extra
        codecs.append(("msgpack", "msgpack", "msgpack.packb/unpackb", _msgpack_peer))
    codecs.append(
        ("pickle+HMAC", PickleCodec(PICKLE_KEY), "pickle.dumps/loads (unsigned)", _pickle_peer)
    )
    out = [
        Case(
            f"roundtrip small dict, {label}",
            _roundtrip(Serializer(codec), SMALL),
            peer_name,
            peer(SMALL),
        )
        for label, codec, peer_name, peer in codecs
    ]
    for label, codec, peer_name, peer in codecs:
        out.append(
            Case(
                f"roundtrip 50KB dict, {label} (ours compresses)",
                _roundtrip(Serializer(codec), large),
                peer_name,
                peer(large),
            )
        )
        out.append(
            Case(
                f"roundtrip 50KB dict, {label} (no compression)",
                _roundtrip(Serializer(codec, compress_threshold=None), large),
                peer_name,
                peer(large),
            )
        )
    return out
