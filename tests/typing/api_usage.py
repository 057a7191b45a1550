"""Typed usage of the public API, checked by ``mypy --strict`` in ``nox -s lint``.

Not a test module (pytest does not collect it): a user's view of the types. A change that
breaks how users' code type-checks fails the lint session.
"""

from __future__ import annotations

from phoenixkit import __version__
from phoenixkit.errors import ConfigurationError, MissingDependencyError, PhoenixError
from phoenixkit.serialization import Codec, JsonCodec, PickleCodec, Serializer, get_codec
from phoenixkit.testing import FakeClock

version: str = __version__

serializer = Serializer("json", compress_threshold=1024, accept=["msgpack"])
blob: bytes = serializer.dumps({"a": 1})
value: object = serializer.loads(blob)
signed = Serializer(PickleCodec(key=b"0123456789abcdef"))
codec: Codec = get_codec("json")
json_codec: Codec = JsonCodec()

clock = FakeClock(start=10.0)
now: float = clock()
later: float = clock.advance(5)
clock.sleep(1.5)
slept: list[float] = clock.sleeps


def handle(exc: PhoenixError) -> str:
    if isinstance(exc, MissingDependencyError):
        return exc.extra
    if isinstance(exc, ConfigurationError):
        return str(exc)
    return type(exc).__name__
