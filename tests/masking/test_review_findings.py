"""Regressions for the findings of the masking review (B: denial of service, A: leaks,
C: logging robustness, D: false positives). Each test failed before its fix."""

from __future__ import annotations

import enum
import io
import logging
import logging.handlers
import pickle
import random
import string
import typing
from collections import namedtuple
from collections.abc import Callable
from typing import Any

import pydantic
import pytest

from phoenixkit.masking import JsonFormatter, Masker, MaskingFilter
from phoenixkit.masking import _records as plog

MASKER = Masker()
M = "[MASKED]"


# B: work on one line is linear in its length ------------------------------------------------


def _b64url(n: int) -> str:
    rnd = random.Random(n)
    return "".join(rnd.choice(string.ascii_letters + string.digits + "-_") for _ in range(n))


ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "cv repeated": lambda n: "cv" * (n // 2),
    "key repeated": lambda n: "key" * (n // 3),
    "pass. repeated": lambda n: "pass." * (n // 5),
    "password=, repeated": lambda n: "password=," * (n // 10),
    "random base64url": _b64url,
    "random base64url, then @": lambda n: _b64url(n - 2) + " @",
    "letters, then @": lambda n: "a" * (n - 2) + " @",
    "a. repeated, then @": lambda n: "a." * (n // 2 - 1) + " @",
    "a@ then a. repeated": lambda n: "a@" + "a." * (n // 2 - 2) + "1",
    "scheme-like runs, then @": lambda n: "a://" * (n // 4) + "@",
    "eyJ repeated": lambda n: "eyJ" * (n // 3),
    "-eyJ repeated": lambda n: "-eyJ" * (n // 4),
    "digits": lambda n: "4" * n,
    "digits and spaces": lambda n: ("1234 " * n)[:n],
    "digits and dashes": lambda n: ("123-" * n)[:n],
    "brackets after a key": lambda n: "password=" + "[" * (n - 9),
    "unterminated quotes": lambda n: 'password="x ' * (n // 12),
    "quoted keys with spaces": lambda n: '"x password ' * (n // 12),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_megabyte_lines_finish(name: str) -> None:
    """A megabyte of each adversarial shape is scanned whole (no cut) and finishes. Linear
    work takes well under a second here; super-linear work (a regex backtracking over the
    line) would take hours on 1 MB, so the timeout only guards against that, it is not a
    speed limit. Speed is measured in benchmarks/bench_masking.py."""
    make = ADVERSARIAL[name]
    masker = Masker(max_length=1_100_000)
    text = make(1_000_000)
    assert len(text) <= masker.max_length  # the whole input is scanned, not cut
    out = masker.mask_text(text)
    assert isinstance(out, str)
    assert len(out) <= len(text)


# A1: pairs in free text -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{\\"password\\":\\"hunter2\\"}', '{\\"password\\":\\"[MASKED]\\"}'),
        ('token=\\"abc123\\" ok', 'token=\\"[MASKED]\\" ok'),
        (
            'body="{\\"user\\": \\"bob\\", \\"password\\": \\"hunter2\\"}"',
            'body="{\\"user\\": \\"bob\\", \\"password\\": \\"[MASKED]\\"}"',
        ),
        (
            '{\\"password\\": \\"a\\\\\\"b\\", \\"x\\": 1}',
            '{\\"password\\": \\"[MASKED]\\", \\"x\\": 1}',
        ),
        ('{"password": "hun\\"ter2xyz", "user": "bob"}', '{"password": "[MASKED]", "user": "bob"}'),
        ('{"password": ["hunter2"], "user": "bob"}', '{"password": [MASKED], "user": "bob"}'),
        ("{'user': ['bob'], 'password': ['hunter2']}", "{'user': ['bob'], 'password': [MASKED]}"),
        ("<QueryDict: {'password': ['hunter2']}>", "<QueryDict: {'password': [MASKED]}>"),
        ('{"password": {"value": "a}b"}, "n": 1}', '{"password": [MASKED], "n": 1}'),
        ("password=(hunter2)tail ok", "password=[MASKED] ok"),
        ("{'password': b'hunter2'}", "{'password': b'[MASKED]'}"),
        ('{"password"=>"hunter2"}', '{"password"=>"[MASKED]"}'),
        ("opts = {:password => 'hunter2'}", "opts = {:password => '[MASKED]'}"),
    ],
)  # fmt: skip
def test_pairs_with_escaped_quotes_brackets_prefixes(text: str, expected: str) -> None:
    assert MASKER.mask_text(text) == expected
    assert MASKER.mask_text(expected) == expected


# A2: where keys start, spaces, quoted keys with spaces, long or open quotes ------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("exec mysql --password=hunter2 -u root", "exec mysql --password=[MASKED] -u root"),
        ("run -password=hunter2", "run -password=[MASKED]"),
        ("2fa_secret=hunter2", "2fa_secret=[MASKED]"),
        ("password        = hunter2", "password        = [MASKED]"),
        ('{"api key": "hunter2", "n": 1}', '{"api key": "[MASKED]", "n": 1}'),
        ('{"Secret Key": "hunter2"}', '{"Secret Key": "[MASKED]"}'),
        ('{\\"client secret\\": \\"hunter2\\"}', '{\\"client secret\\": \\"[MASKED]\\"}'),
        ("password='hunter2 and more\nnext line", "password='[MASKED]\nnext line"),
        ('password="hunter2 and more', 'password="[MASKED]'),
    ],
)  # fmt: skip
def test_key_starts_spaces_and_quoted_keys(text: str, expected: str) -> None:
    assert MASKER.mask_text(text) == expected


def test_long_values_are_masked_whole() -> None:
    long = "SECRETVAL" * 70  # 630 characters
    quoted = MASKER.mask_text(f'"cookie": "{long}", "n": 1\nnext')
    assert quoted == '"cookie": "[MASKED]\nnext'
    assert MASKER.mask_text(f"token={long} ok") == "token=[MASKED] ok"


# A3: URL escapes are separators --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("u=X-Amz-Credential%3DAKIAIOSFODNN7EXAMPLE%2F24", "u=X-Amz-Credential%3D[MASKED]%2F24"),
        ("key%20AKIAIOSFODNN7EXAMPLE", "key%20[MASKED]"),
        ("t%3Dghp_" + "a" * 36, "t%3D[MASKED]"),
        ("%22sk_live_" + "a" * 24 + "%22", "%22[MASKED]%22"),
        ("cc%3D4111111111111111", "cc%3D[MASKED]"),
        ("q=x%204111111111111111%20y", "q=x%20[MASKED]%20y"),  # "20" is not the card's
    ],
)  # fmt: skip
def test_percent_escapes_separate_tokens(text: str, expected: str) -> None:
    assert MASKER.mask_text(text) == expected


# A4: e-mail addresses after ':' and '/' --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("href=mailto:alice@example.com", "href=mailto:[MASKED]"),
        ("email:alice@example.com", "email:[MASKED]"),
        ("GET /users/alice@example.com/profile", "GET /users/[MASKED]/profile"),
    ],
)
def test_emails_after_colon_and_slash(text: str, expected: str) -> None:
    assert MASKER.mask_text(text) == expected
    # A DSN's password is the url_password rule's: the host stays readable.
    assert MASKER.mask_text("postgres://app:s3cr3t@db.internal:5432/app") == (
        "postgres://app:[MASKED]@db.internal:5432/app"
    )


# A5: mapping args of a log call ----------------------------------------------------------------


def _log_through(formatter: logging.Formatter, *filters: logging.Filter) -> io.StringIO:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    for f in filters:
        handler.addFilter(f)
    handler.setFormatter(formatter)
    log = logging.getLogger("phoenixkit.tests.review")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.warning("login %(user)s %(password)s", {"user": "bob", "password": "hunter2"})
    finally:
        log.removeHandler(handler)
    return buf


def test_mapping_args_are_judged_by_key() -> None:
    with_filter = _log_through(JsonFormatter(), MaskingFilter()).getvalue()
    assert '"message":"login bob [MASKED]"' in with_filter
    formatter_alone = _log_through(JsonFormatter()).getvalue()
    assert '"message":"login bob [MASKED]"' in formatter_alone
    assert "hunter2" not in with_filter + formatter_alone


# A6: header values run to the end of the line --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Cookie: theme=dark; remember=abc123\nnext", "Cookie: [MASKED]\nnext"),
        ("Set-Cookie: id=abc; Path=/; HttpOnly", "Set-Cookie: [MASKED]"),
        ("Authorization: ApiKey abc123def456", "Authorization: [MASKED]"),
        ("Proxy-Authorization: SSWS abc123 x", "Proxy-Authorization: [MASKED]"),
        ("Authorization: Bearer abc.def.123456 extra", "Authorization: Bearer [MASKED]"),
        ('"msg": "Cookie: a=1; b=2\\nHost: x"', '"msg": "Cookie: [MASKED]\\nHost: x"'),
        ('{"Cookie": "a=1; b=2", "n": 1}', '{"Cookie": "[MASKED]", "n": 1}'),
    ],
)  # fmt: skip
def test_header_values_are_masked_to_the_end_of_the_line(text: str, expected: str) -> None:
    assert MASKER.mask_text(text) == expected


# A7: key names ---------------------------------------------------------------------------------

NOW_SENSITIVE = [
    "PHPSESSID", "connect.sid", "aiohttp_session", "user_session", "laravel_session",
    "XSRF-TOKEN", "symfony", "cvv2", "card_cvc", "pin_code", "user_pin", "userPIN",
    "otp_code", "mfa_code", "totp", "auth_code", "auth_header", "X-Auth", "encryption_key",
    "signing_key", "SAMLResponse", "client_assertion", "code_verifier", "X-Session",
    "sessionKey",
]  # fmt: skip
STILL_NOT_SENSITIVE = ["session_duration", "auth_method", "author", "spin", "sessions",
                       "session_count", "tokenizer", "oauth", "pinned"]  # fmt: skip


def test_more_sensitive_key_names() -> None:
    assert [k for k in NOW_SENSITIVE if not MASKER.is_sensitive_key(k)] == []
    assert [k for k in STILL_NOT_SENSITIVE if MASKER.is_sensitive_key(k)] == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user_pin=1234 ok", "user_pin=[MASKED] ok"),
        ("otp=123456 ok", "otp=[MASKED] ok"),
        ("sid=abc123 ok", "sid=[MASKED] ok"),
        ("jwt=abc.def ok", "jwt=[MASKED] ok"),
        ("PHPSESSID=abc123def456", "PHPSESSID=[MASKED]"),
        ("connect.sid=s%3Aabc123", "connect.sid=[MASKED]"),
        ("X-Auth: abc123 ok", "X-Auth: [MASKED] ok"),
    ],
)
def test_short_names_in_free_text(text: str, expected: str) -> None:
    assert MASKER.mask_text(text) == expected


def test_short_names_in_free_text_keep_ordinary_words() -> None:
    text = "spin=3 pinned=true inside=1 ping=4ms session_duration=5 auth_method=oauth"
    assert MASKER.mask_text(text) == text


# A8: named tuples, str subclasses and bytes as keys ------------------------------------------

Creds = namedtuple("Creds", "user password")


class Typed(typing.NamedTuple):
    user: str
    api_key: str


class Field(str, enum.Enum):
    PASSWORD = "password"
    USER = "user"


class Name(str):
    pass


def test_named_tuple_fields_are_keys() -> None:
    assert MASKER.mask(Creds("bob", "hunter2")) == Creds("bob", M)
    out = MASKER.mask(Typed("bob", "k-123"))
    assert type(out) is Typed
    assert out == Typed("bob", M)


@pytest.mark.parametrize(
    "masker", [MASKER, Masker(rules=(), mask_pairs=False)], ids=["all", "keys"]
)
def test_str_subclass_and_bytes_keys_are_judged(masker: Masker) -> None:
    record = {Field.PASSWORD: "hunter2", Field.USER: "bob", Name("api_key"): "k", b"token": "t"}
    out = masker.mask(record)
    assert out == {Field.PASSWORD: M, Field.USER: "bob", Name("api_key"): M, b"token": M}
    assert masker.mask(record) == out  # the fast path's cached plan agrees


# A9: passwords in URLs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:p@ss@cache:6379/0 ok", "redis://:[MASKED]@cache:6379/0 ok"),
        ("postgres://app:s3cr3t@x@db/shop", "postgres://app:[MASKED]@db/shop"),
        ("postgres://app:s3cr3t/x@db/shop", "postgres://app:[MASKED]@db/shop"),
        ('"dsn":"pg:\\/\\/app:s3cr3t@db\\/shop"', '"dsn":"pg:\\/\\/app:[MASKED]@db\\/shop"'),
    ],
)  # fmt: skip
def test_url_passwords_with_at_slash_and_json_escapes(text: str, expected: str) -> None:
    assert MASKER.mask_text(text) == expected


def test_a_port_and_a_path_are_not_a_password() -> None:
    text = "GET http://localhost:3000/@vite/client 200"
    assert MASKER.mask_text(text) == text


# A10: more Slack tokens; a trailing dash ---------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    ["xapp-1-A0123456789-1234567890123-" + "a" * 64, "xoxe-1-" + "a" * 60],
)
def test_slack_app_and_refresh_tokens(secret: str) -> None:
    assert MASKER.mask_text(f"tok {secret} ok") == "tok [MASKED] ok"


@pytest.mark.parametrize(
    "value", ["4111111111111111", "4111 1111 1111 1111", "123-45-6789", "+1 415 555 2671"]
)
def test_a_trailing_dash_does_not_hide_a_number(value: str) -> None:
    assert MASKER.mask_text(f"see {value}- ok") == "see [MASKED]- ok"
    longer = "see 123-45-6789-0000 ok"  # a dashed number that goes on is one number
    assert MASKER.mask_text(longer) == longer


def test_a_phone_number_followed_by_more_digit_groups() -> None:
    assert "1000" not in MASKER.mask_text(" +1 100 100 1000 200 200")


# C1: masked records still pickle ---------------------------------------------------------------


def test_filtered_records_pickle() -> None:
    record = logging.LogRecord("a", logging.INFO, __file__, 1, "password=%s", ("hunter2",), None)
    record.__dict__["token"] = "t-1"
    assert MaskingFilter().filter(record)
    copy = pickle.loads(pickle.dumps(record))
    assert copy.getMessage() == "password=[MASKED]"
    line = JsonFormatter().format(copy)  # marked: not masked again, still fine
    assert '"message":"password=[MASKED]"' in line
    assert '"token":"[MASKED]"' in line
    assert plog._is_marked(copy)
    socket = logging.handlers.SocketHandler("127.0.0.1", 9)
    try:
        assert len(socket.makePickle(record)) > 0
    finally:
        socket.close()


# C2: one value that cannot be masked -----------------------------------------------------------


class Broken(pydantic.BaseModel):
    x: int

    @pydantic.field_serializer("x")
    def _boom(self, value: int) -> int:
        raise RuntimeError("no")


def test_one_unmaskable_value_is_replaced_alone() -> None:
    masker = Masker()
    out = masker.mask({"user": "bob", "n": 10**5000, "m": Broken(x=1), "l": ["ok", Broken(x=2)]})
    assert out == {
        "user": "bob",
        "n": "[MASKED:unmaskable]",
        "m": "[MASKED:unmaskable]",
        "l": ["ok", "[MASKED:unmaskable]"],
    }
    assert masker.stats().errors == 3
    hashed = Masker(style="hash", hash_key="k" * 16)
    assert hashed.mask({"password": 10**5000})["password"].startswith("[key#")
    line = JsonFormatter().format(_record_with(user="bob", big=10**5000))
    assert '"user":"bob"' in line
    assert '"big":"[MASKED:unmaskable]"' in line


def _record_with(**extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("a", logging.INFO, __file__, 1, "x", None, None)
    record.__dict__.update(extra)
    return record


# D: false positives ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "dd.trace_id=4111111111111111 dd.span_id=5555555555554444",
        "user_id=4111111111111111 offset=378282246310005",
        '{"id": "4111111111111111"}',
        # Luhn-valid, with an issuer's prefix but not a length that issuer uses
        "order 40000000000000006 shipped",  # 17 digits: no Visa
        "order 400000000000006 shipped",  # 15 digits: no Visa
        "order 550000000000004 shipped",  # 15 digits: no Mastercard
        "order 3700000000000007 shipped",  # 16 digits: no Amex
        "order 601100000000001 shipped",  # 15 digits: no Discover
        "order 3600000000004 shipped",  # 13 digits: no Diners
        "order 353000000000003 shipped",  # 15 digits: no JCB
        "stats 123 45 6789 done",  # spaced SSN shape, no "ssn" near
    ],
)
def test_numbers_that_are_not_cards_or_ssns(text: str) -> None:
    assert MASKER.mask_text(text) == text


def test_spaced_ssn_next_to_the_word() -> None:
    assert MASKER.mask_text("SSN: 123 45 6789") == "SSN: [MASKED]"


@pytest.mark.parametrize(
    "text",
    [
        "tokenizer=cl100k_base model=gpt-4",
        "secretary=Jane",
        "authorization_status=approved credential_type=oauth",
        "password_length=12 session_token_count=3",
        "token_expires_at=2026-11-23T10:00:00Z",
    ],
)
def test_allowed_key_names(text: str) -> None:
    assert MASKER.mask_text(text) == text


def test_allowed_key_values_are_still_scanned() -> None:
    assert MASKER.mask_text("token_type=AKIAIOSFODNN7EXAMPLE") == "token_type=[MASKED]"
