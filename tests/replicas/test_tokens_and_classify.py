"""Read-your-writes tokens (encode / decode / sign) and which statements count as reads."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from phoenixkit.replicas import (
    cookie_header,
    decode_token,
    encode_token,
    token_from_asgi,
    token_from_wsgi,
)
from phoenixkit.replicas._classify import is_read, is_read_text
from tests.replicas.conftest import Item

LSNS = st.integers(min_value=0, max_value=2**64 - 1)
KEY = b"0123456789abcdef"


@given(LSNS)
def test_tokens_round_trip(position: int) -> None:
    assert decode_token(encode_token(position)) == position
    signed = encode_token(position, key=KEY)
    assert decode_token(signed, key=KEY) == position
    assert decode_token(signed, key=b"another key....") is None
    assert decode_token(encode_token(position), key=KEY) is None  # unsigned: refused


def test_token_from_lsn_text_is_cookie_safe() -> None:
    token = encode_token("16/B374D848")
    assert token == "16b374d848"
    assert decode_token(token) == 0x16B374D848


@pytest.mark.parametrize("bad", [None, "", "xyz", "1/2", "-5", "1" * 17, "ab.cd", 12])
def test_bad_tokens_decode_to_none(bad: object) -> None:
    assert decode_token(bad) is None  # type: ignore[arg-type]


def test_tampered_signed_token_is_refused() -> None:
    signed = encode_token(1000, key=KEY)
    forged = f"{0xFFFFFFFF:x}" + signed[signed.index(".") :]
    assert decode_token(forged, key=KEY) is None


@pytest.mark.parametrize(
    ("sql", "read"),
    [
        ("SELECT 1", True),
        ("  select * from t where x = 1", True),
        ("WITH a AS (SELECT 1) SELECT * FROM a", True),
        ("SHOW server_version", True),
        ("SELECT last_updated FROM t", True),
        ("INSERT INTO t VALUES (1)", False),
        ("SELECT * FROM t FOR UPDATE", False),
        ("SELECT * FROM t FOR NO KEY UPDATE", False),
        ("SELECT * FROM t FOR KEY SHARE", False),
        ("SELECT nextval('s')", False),
        ("SELECT 1; DELETE FROM t", False),
        ("SELECT * INTO t2 FROM t", False),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", False),
        ("SELECT pg_advisory_lock(1)", False),
        ("UPDATE t SET x = 1", False),
        ("CALL p()", False),
        ("VACUUM", False),
    ],
)
def test_text_is_a_read_only_when_known_to_be(sql: str, read: bool) -> None:
    assert is_read_text(sql) is read
    assert is_read(sa.text(sql), sa) is read


def test_constructs() -> None:
    select = sa.select(Item)
    assert is_read(select, sa)
    assert is_read(sa.union(select, select), sa)
    assert not is_read(select.with_for_update(), sa)
    assert not is_read(sa.insert(Item), sa)
    assert not is_read(sa.update(Item), sa)
    assert not is_read(sa.delete(Item), sa)
    assert not is_read(None, sa)
    moved = sa.delete(Item).returning(Item.id).cte("moved")
    assert not is_read(sa.select(moved.c.id), sa)
    assert not is_read(sa.select(Item).join(moved, moved.c.id == Item.id), sa)
    assert not is_read(sa.select(Item).add_cte(moved), sa)
    assert not is_read(sa.select(sa.func.count()).select_from(moved), sa)
    plain = sa.select(Item.id).cte("plain")
    assert is_read(sa.select(plain.c.id), sa)


def test_token_from_asgi_and_wsgi_requests() -> None:
    token = encode_token(1234, key=KEY)
    scope = {"type": "http", "headers": [(b"cookie", f"a=1; phoenixkit_lsn={token}".encode())]}
    assert token_from_asgi(scope) == token
    assert decode_token(token_from_asgi(scope), key=KEY) == 1234
    with_header = {"headers": [*scope["headers"], (b"x-phoenixkit-lsn", b"ff")]}
    assert token_from_asgi(with_header) == "ff"  # the header wins over the cookie
    assert token_from_asgi({"headers": []}) is None
    assert token_from_asgi({"headers": [(b"cookie", b"bad\\x00=;;")]}) is None
    assert token_from_wsgi({"HTTP_COOKIE": f"phoenixkit_lsn={token}"}) == token
    assert token_from_wsgi({"HTTP_X_PHOENIXKIT_LSN": "ab"}) == "ab"
    assert token_from_wsgi({}) is None


def test_cookie_header() -> None:
    name, value = cookie_header("4d2", max_age=30)
    assert name == "Set-Cookie"
    assert value == "phoenixkit_lsn=4d2; Max-Age=30; Path=/; HttpOnly; SameSite=Lax"
