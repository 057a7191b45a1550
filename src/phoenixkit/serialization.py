"""Serialization: codecs, compression above a threshold, and a versioned envelope.

Values stored in a shared place (Redis) are written as an *envelope*::

    b"PK" | version (1 byte) | codec id (1 byte) | flags (1 byte) | payload

so that a reader recognises phoenixkit entries, refuses ones from a newer format version
instead of misreading them, and knows which codec wrote each entry. JSON is the default;
msgpack is an extra; pickle is used only when asked for, and then every payload is signed
with HMAC-SHA256 and verified *before* it is unpickled, because unpickling bytes read from
a shared Redis is remote code execution for anyone who can write to it.

Payloads at or above ``compress_threshold`` bytes are zlib-compressed when that makes them
smaller; decompression is bounded by ``max_size`` (no decompression bombs).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import zlib
from collections.abc import Iterable
from typing import Any, ClassVar, Protocol, runtime_checkable

from phoenixkit._optional import require
from phoenixkit.errors import ConfigurationError, SerializationError, SignatureError

__all__ = [
    "ENVELOPE_VERSION",
    "Codec",
    "JsonCodec",
    "MsgpackCodec",
    "PickleCodec",
    "Serializer",
    "get_codec",
]

ENVELOPE_VERSION = 1
"""The envelope format written by this version of phoenixkit."""

_MAGIC = b"PK"
_HEADER = len(_MAGIC) + 3
_FLAG_ZLIB = 0x01
_KNOWN_FLAGS = _FLAG_ZLIB


@runtime_checkable
class Codec(Protocol):
    """Turns values into bytes and back. ``codec_id`` is its byte in the envelope."""

    @property
    def name(self) -> str: ...

    @property
    def codec_id(self) -> int: ...

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class JsonCodec:
    """Compact UTF-8 JSON (the default): safe to read from anywhere, readable in redis-cli."""

    name: ClassVar[str] = "json"
    codec_id: ClassVar[int] = 1

    # One encoder for every call: json.dumps builds a new one per call for non-default
    # options, which costs about a microsecond on small values.
    _encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

    def dumps(self, value: Any) -> bytes:
        try:
            return self._encoder.encode(value).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(
                f"cannot encode {type(value).__name__} value as JSON: {exc}"
            ) from exc

    def loads(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise SerializationError(f"invalid JSON payload: {exc}") from exc

    def __repr__(self) -> str:
        return "JsonCodec()"


class MsgpackCodec:
    """msgpack (extra ``msgpack``): compact and fast, keeps bytes distinct from str."""

    name: ClassVar[str] = "msgpack"
    codec_id: ClassVar[int] = 2

    def __init__(self) -> None:
        self._msgpack = require("msgpack", extra="msgpack", feature="the msgpack codec")

    def dumps(self, value: Any) -> bytes:
        try:
            data: bytes = self._msgpack.packb(value, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(
                f"cannot encode {type(value).__name__} value as msgpack: {exc}"
            ) from exc
        return data

    def loads(self, data: bytes) -> Any:
        try:
            return self._msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:  # msgpack raises several unrelated types on bad input
            raise SerializationError(f"invalid msgpack payload: {exc}") from exc

    def __repr__(self) -> str:
        return "MsgpackCodec()"


class PickleCodec:
    """pickle, opt-in only, each payload signed with HMAC-SHA256 under ``key``.

    A payload whose signature does not verify raises `SignatureError` and is never
    unpickled. Every process that reads the entries needs the same key; keep it secret.
    To rotate keys, pass the old ones as ``previous_keys``: entries they signed are still
    read, new entries are signed with ``key``.
    """

    name: ClassVar[str] = "pickle"
    codec_id: ClassVar[int] = 3
    _SIG = 32

    def __init__(self, key: bytes | str, *, previous_keys: Iterable[bytes | str] = ()) -> None:
        self._key = self._check_key(key)
        self._keys = [self._key, *(self._check_key(k) for k in previous_keys)]

    @staticmethod
    def _check_key(key: bytes | str) -> bytes:
        if isinstance(key, str):
            key = key.encode()
        if not isinstance(key, bytes) or len(key) < 16:
            raise ConfigurationError(
                "PickleCodec needs a secret key of at least 16 bytes, got "
                f"{f'{len(key)} bytes' if isinstance(key, bytes) else type(key).__name__}"
            )
        return key

    def dumps(self, value: Any) -> bytes:
        try:
            body = pickle.dumps(value, protocol=5)
        except Exception as exc:  # pickling raises many types (PicklingError, TypeError...)
            raise SerializationError(f"cannot pickle {type(value).__name__} value: {exc}") from exc
        return hmac.new(self._key, body, hashlib.sha256).digest() + body

    def loads(self, data: bytes) -> Any:
        sig, body = data[: self._SIG], data[self._SIG :]
        if len(sig) != self._SIG or not any(
            hmac.compare_digest(sig, hmac.new(k, body, hashlib.sha256).digest()) for k in self._keys
        ):
            raise SignatureError("pickle payload failed its HMAC check; refusing to unpickle")
        try:
            return pickle.loads(body)  # noqa: S301 - verified above, opt-in only
        except Exception as exc:  # a class renamed since it was stored, a truncated body...
            raise SerializationError(f"cannot unpickle a signed payload: {exc!r}") from exc

    def __repr__(self) -> str:
        return "PickleCodec(key=***)"


def get_codec(codec: str | Codec) -> Codec:
    """Return a codec by name (``"json"``, ``"msgpack"``) or ``codec`` itself."""
    if not isinstance(codec, str):
        if isinstance(codec, type) or not isinstance(codec, Codec):
            raise ConfigurationError(f"not a codec: {codec!r}")
        return codec
    if codec == "json":
        return JsonCodec()
    if codec == "msgpack":
        return MsgpackCodec()
    if codec == "pickle":
        raise ConfigurationError(
            "codec 'pickle' must be built with a secret key: PickleCodec(key=...)"
        )
    raise ConfigurationError(f"unknown codec {codec!r}: use 'json', 'msgpack' or a Codec")


class Serializer:
    """Encodes values into envelopes and decodes them back.

    ``codec`` writes new entries. ``accept`` lists further codecs this serializer reads
    (to migrate from one codec to another without a flush); a payload written by a codec
    that is neither is refused, so a JSON-only reader never unpickles anything.
    """

    def __init__(
        self,
        codec: str | Codec = "json",
        *,
        compress_threshold: int | None = 1024,
        compress_level: int = 6,
        max_size: int = 64 * 1024 * 1024,
        accept: Iterable[str | Codec] = (),
    ) -> None:
        if compress_threshold is not None and (
            isinstance(compress_threshold, bool)
            or not isinstance(compress_threshold, int)
            or compress_threshold < 0
        ):
            raise ConfigurationError(
                f"compress_threshold must be an int >= 0 or None, got {compress_threshold!r}"
            )
        if isinstance(compress_level, bool) or not (
            isinstance(compress_level, int) and -1 <= compress_level <= 9
        ):
            raise ConfigurationError(
                f"compress_level must be an int from -1 to 9, got {compress_level!r}"
            )
        if isinstance(max_size, bool) or not (isinstance(max_size, int) and max_size > 0):
            raise ConfigurationError(f"max_size must be an int > 0, got {max_size!r}")
        self.codec = get_codec(codec)
        self.compress_threshold = compress_threshold
        self.compress_level = compress_level
        self.max_size = max_size
        self._codecs: dict[int, Codec] = {self.codec.codec_id: self.codec}
        for extra in accept:
            c = get_codec(extra)
            self._codecs.setdefault(c.codec_id, c)
        self._header = _MAGIC + bytes((ENVELOPE_VERSION, self.codec.codec_id))

    def dumps(self, value: Any) -> bytes:
        """Encode ``value`` as an envelope (compressed when large enough to gain)."""
        payload = self.codec.dumps(value)
        flags = 0
        threshold = self.compress_threshold
        if threshold is not None and len(payload) >= threshold:
            packed = zlib.compress(payload, self.compress_level)
            if len(packed) < len(payload):
                payload, flags = packed, _FLAG_ZLIB
        return self._header + bytes((flags,)) + payload

    def loads(self, data: bytes | bytearray | memoryview) -> Any:
        """Decode an envelope. Raises `SerializationError` for anything else."""
        data = bytes(data)
        if data[:2] != _MAGIC:
            raise SerializationError("not a phoenixkit envelope (bad magic bytes)")
        if len(data) < _HEADER:
            raise SerializationError(f"truncated envelope header ({len(data)} bytes)")
        version, codec_id, flags = data[2], data[3], data[4]
        if version != ENVELOPE_VERSION:
            raise SerializationError(
                f"envelope format version {version} is not supported by this phoenixkit "
                f"(it reads version {ENVELOPE_VERSION})"
            )
        if flags & ~_KNOWN_FLAGS:
            raise SerializationError(f"unknown envelope flags {flags:#04x}")
        codec = self._codecs.get(codec_id)
        if codec is None:
            raise SerializationError(
                f"entry written by codec id {codec_id}, which this serializer does not "
                f"accept (it reads {sorted(c.name for c in self._codecs.values())})"
            )
        payload = data[_HEADER:]
        if flags & _FLAG_ZLIB:
            payload = self._inflate(payload)
        return codec.loads(payload)

    def _inflate(self, payload: bytes) -> bytes:
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(payload, self.max_size)
        except zlib.error as exc:
            raise SerializationError(f"corrupt compressed payload: {exc}") from exc
        if inflater.unconsumed_tail:
            raise SerializationError(
                f"compressed payload inflates beyond max_size={self.max_size} bytes"
            )
        if not inflater.eof:
            raise SerializationError("truncated compressed payload")
        if inflater.unused_data:
            raise SerializationError("trailing bytes after the compressed payload")
        return out

    def __repr__(self) -> str:
        return f"Serializer(codec={self.codec!r}, compress_threshold={self.compress_threshold!r})"
