"""Hypothesis strategies that generate real-looking secrets and personal data of every kind
the masker promises to catch, and a corpus of ordinary log lines that hold none."""

from __future__ import annotations

import base64
import random
import re
import string

from hypothesis import strategies as st

ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"
UPPER_DIGITS = string.ascii_uppercase + string.digits


def _s(alphabet: str, lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=lo, max_size=hi)


def _luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["4", "51", "55", "2221", "2720", "34", "37", "6011", "65"]))
    length = draw(st.sampled_from([16, 19, 13])) if prefix == "4" else 16  # Visa: 13, 16, 19
    if prefix in ("34", "37"):
        length = 15
    body = prefix + draw(_s(string.digits, length - 1 - len(prefix), length - 1 - len(prefix)))
    number = body + _luhn_digit(body)
    sep = draw(st.sampled_from(["", " ", "-"]))
    if not sep:
        return number
    if length == 15:
        return sep.join([number[:4], number[4:10], number[10:]])
    groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    return sep.join(groups)


@st.composite
def ssns(draw: st.DrawFn) -> str:
    area = draw(st.integers(1, 899).filter(lambda a: a != 666))
    group = draw(st.integers(1, 99))
    serial = draw(st.integers(1, 9999))
    return f"{area:03d}-{group:02d}-{serial:04d}"


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country, length = draw(st.sampled_from([("DE", 18), ("FR", 23), ("GB", 18), ("NL", 14)]))
    if country == "GB":
        bban = "".join(draw(_s(string.ascii_uppercase, 4, 4))) + draw(_s(string.digits, 14, 14))
    elif country == "NL":
        bban = draw(_s(string.ascii_uppercase, 4, 4)) + draw(_s(string.digits, 10, 10))
    else:
        bban = draw(_s(string.digits, length, length))
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    iban = f"{country}{check:02d}{bban}"
    if draw(st.booleans()):
        iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


@st.composite
def jwts(draw: st.DrawFn) -> str:
    header = "eyJ" + draw(_s(B64URL, 4, 40))
    payload = "eyJ" + draw(_s(B64URL, 4, 120))
    return f"{header}.{payload}.{draw(_s(B64URL, 0, 86))}"


@st.composite
def basic_credentials(draw: st.DrawFn) -> str:
    user = draw(_s(ALNUM, 1, 12))
    password = draw(_s(ALNUM + "!#$%", 1, 16))
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@st.composite
def bearer_tokens(draw: st.DrawFn) -> str:
    return draw(_s(ALNUM + "._-", 7, 60)) + draw(st.sampled_from(string.digits))


def _prefixed(prefixes: list[str], alphabet: str, lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.builds(lambda p, s: p + s, st.sampled_from(prefixes), _s(alphabet, lo, hi))


PRIVATE_KEY = st.builds(
    lambda kind, body: (
        f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"
    ),
    st.sampled_from(["", "RSA ", "EC ", "OPENSSH "]),
    st.lists(_s(ALNUM + "+/", 20, 64), min_size=1, max_size=4).map("\n".join),
)

PASSWORD_VALUES = _s(ALNUM + "!#$%^*-_+.~@/&,;:=[](){}", 6, 40)
SENSITIVE_KEYS = st.sampled_from(
    ["password", "db_password", "apiKey", "X-Api-Key", "client_secret", "access_token",
     "refresh_token", "Authorization", "AWS_SECRET_ACCESS_KEY", "session_id", "passwd",
     "private_key", "csrf_token", "set-cookie", "credentials", "pwd"]
)  # fmt: skip

# (kind, strategy of the secret itself, how to put it in text: the secret is what must vanish)
SECRETS: dict[str, st.SearchStrategy[tuple[str, str]]] = {
    "jwt": jwts().map(lambda s: (s, s)),
    "bearer": bearer_tokens().map(lambda s: (f"Authorization: Bearer {s}", s)),
    "basic_auth": basic_credentials().map(lambda s: (f"Authorization: Basic {s}", s)),
    "aws_access_key": _prefixed(["AKIA", "ASIA", "ABIA", "ACCA"], UPPER_DIGITS, 16, 16).map(
        lambda s: (s, s)
    ),
    "github_token": st.one_of(
        _prefixed(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"], ALNUM, 36, 40),
        _prefixed(["github_pat_"], ALNUM + "_", 22, 82),
    ).map(lambda s: (s, s)),
    "stripe_key": _prefixed(["sk_live_", "sk_test_", "rk_live_", "pk_live_"], ALNUM, 10, 99).map(
        lambda s: (s, s)
    ),
    "slack_token": _prefixed(["xoxb-", "xoxp-", "xoxa-", "xoxs-"], ALNUM + "-", 10, 60).map(
        lambda s: (s, s)
    ),
    "google_api_key": _prefixed(["AIza"], ALNUM + "_-", 35, 35).map(lambda s: (s, s)),
    "private_key": PRIVATE_KEY.map(lambda s: (s, s.split("\n", 1)[1].rsplit("\n", 1)[0])),
    "url_password": st.tuples(
        st.sampled_from(["postgres", "redis", "mysql", "https", "amqp"]),
        _s(ALNUM, 1, 12),
        _s(ALNUM + "!$%*~-", 4, 30),
        st.sampled_from(["db.internal:5432", "10.0.0.5", "cache:6379/0", "example.com"]),
    )
    .filter(lambda t: t[2] not in f"{t[0]}://{t[1]}:@{t[3]}/x")
    .map(lambda t: (f"{t[0]}://{t[1]}:{t[2]}@{t[3]}/x", t[2])),
    "card_number": card_numbers().map(lambda s: (s, s)),
    "us_ssn": ssns().map(lambda s: (s, s)),
    "iban": ibans().map(lambda s: (s, s)),
    "email": st.tuples(
        _s(string.ascii_lowercase + string.digits + "._", 1, 20).filter(
            lambda s: s[0] not in "._" and s[-1] not in "._"
        ),
        _s(string.ascii_lowercase, 2, 12),
        st.sampled_from(["com", "org", "io", "co.uk", "example"]),
    ).map(lambda t: (f"{t[0]}@{t[1]}.{t[2]}", f"{t[0]}@{t[1]}.{t[2]}")),
    "phone": st.one_of(
        st.tuples(
            st.integers(1, 99),
            st.integers(100, 999),
            st.integers(100, 999),
            st.integers(1000, 9999),
        ).map(lambda t: f"+{t[0]} {t[1]} {t[2]} {t[3]}"),
        st.tuples(st.integers(200, 999), st.integers(200, 999), st.integers(1000, 9999)).map(
            lambda t: f"({t[0]}) {t[1]}-{t[2]}"
        ),
    ).map(lambda s: (s, s)),
    "key_value": st.tuples(
        SENSITIVE_KEYS, st.sampled_from(["=", ": ", " = ", "="]), PASSWORD_VALUES
    ).map(lambda t: (f"{t[0]}{t[1]}{t[2]}", t[2])),
}

# What may stand right before and after a secret in a log line (secrets are delimited).
SEPARATORS = st.sampled_from([" ", "\n", "\t", '"', "'", "(", ")", ",", ";", "[", "]", "|", "<"])
# Words of at most five characters: no generated secret (six or more) can hide in them.
WORDS = ["user", "login", "ok", "at", "from", "id", "GET", "POST", "200", "the", "req", "done",
         "via", "/api", "x=1", "a.b", "k:v", "INFO", "-", "_"]  # fmt: skip
FILLER = st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join)
TOKEN = re.compile(r"\[(?:MASKED[^\]]*|[a-z_]+#[0-9a-f]{12})\]")


def visible(masked: str) -> str:
    """The masked text without the masker's own tokens (a secret may spell ``MASKED``)."""
    return TOKEN.sub("", masked)


@st.composite
def secret_in_text(draw: st.DrawFn, kinds: list[str] | None = None) -> tuple[str, str, str]:
    """(kind, text holding the secret, the secret)."""
    kind = draw(st.sampled_from(kinds or sorted(SECRETS)))
    shown, secret = draw(SECRETS[kind])
    before = draw(FILLER) + draw(SEPARATORS)
    after = draw(SEPARATORS) + draw(FILLER)
    if kind == "key_value":  # a value ends at whitespace, quotes, commas...
        after = " " + draw(FILLER)
        before = draw(FILLER) + " "
    return kind, f"{before}{shown}{after}", secret


def ordinary_lines(n: int, seed: int = 20261123) -> list[str]:
    """``n`` realistic log lines with no secret and no personal data, deterministic."""
    rnd = random.Random(seed)

    def hexs(k: int) -> str:
        return "".join(rnd.choice("0123456789abcdef") for _ in range(k))

    def uuid() -> str:
        return f"{hexs(8)}-{hexs(4)}-4{hexs(3)}-{rnd.choice('89ab')}{hexs(3)}-{hexs(12)}"

    def ts() -> str:
        y, mo, d = 2026, rnd.randint(1, 12), rnd.randint(1, 28)
        h, mi, s, ms = (
            rnd.randint(0, 23),
            rnd.randint(0, 59),
            rnd.randint(0, 59),
            rnd.randint(0, 999),
        )
        return rnd.choice(
            [
                f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{ms:03d}Z",
                f"{y}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d},{ms:03d}",
                f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}+01:00",
                f"{d:02d}/Nov/{y}:{h:02d}:{mi:02d}:{s:02d} +0000",
                str(1_790_000_000_000 + rnd.randint(0, 10**10)),
            ]
        )

    templates = [
        lambda: (
            f"{ts()} INFO order.service order_id=ORD-{rnd.randint(2020, 2026)}-{rnd.randint(100000, 999999)} user={uuid()} total={rnd.randint(1, 999)}.{rnd.randint(0, 99):02d} EUR items={rnd.randint(1, 9)}"
        ),
        lambda: (
            f"{ts()} DEBUG git deploy sha={hexs(40)} branch=main short={hexs(7)} took={rnd.randint(1, 900)}ms"
        ),
        lambda: (
            f'127.0.0.1 - - [{ts()}] "GET /api/v1/orders/{rnd.randint(1, 10**6)}?page={rnd.randint(1, 50)} HTTP/1.1" {rnd.choice([200, 201, 304, 404, 500])} {rnd.randint(100, 99999)}'
        ),
        lambda: (
            f"{ts()} WARNING payments latency_ms={rnd.randint(1, 5000)} p99={rnd.random() * 100:.3f} retries={rnd.randint(0, 5)} request_id={uuid()}"
        ),
        lambda: (
            f"{ts()} INFO cache hit_ratio=0.{rnd.randint(0, 999):03d} cache_key=user:{rnd.randint(1, 10**6)} ttl={rnd.randint(1, 3600)}s token_count={rnd.randint(1, 4096)}"
        ),
        lambda: (
            f"{ts()} INFO invoice #{rnd.randint(10**8, 10**10)} paid ${rnd.randint(1, 9)},{rnd.randint(100, 999)}.{rnd.randint(0, 99):02d} via card ending {rnd.randint(1000, 9999)}"
        ),
        lambda: (
            f"{ts()} ERROR db query failed after {rnd.random():.4f}s: SELECT * FROM orders WHERE id = {rnd.randint(1, 10**7)} AND status = 'open'"
        ),
        lambda: (
            f"{ts()} INFO worker[{rnd.randint(1, 64)}] processed batch {rnd.randint(1, 10**5)}/{rnd.randint(10**5, 10**6)} rows={rnd.randint(1, 10**6)} rate={rnd.randint(1, 10**6)}/s version=3.{rnd.randint(0, 20)}.{rnd.randint(0, 9)}"
        ),
        lambda: (
            f"{ts()} INFO http GET https://api.example.com/v2/items/{rnd.randint(1, 10**6)} -> {rnd.choice([200, 429, 503])} in {rnd.randint(1, 999)}ms host=10.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"
        ),
        lambda: (
            f"{ts()} INFO session_duration={rnd.randint(1, 7200)}s author=alice auth_method=oauth tokens_used={rnd.randint(1, 10**5)} pool size={rnd.randint(1, 20)}"
        ),
        lambda: (
            f"{ts()} INFO shipment {rnd.choice(['DHL', 'UPS', 'FEDEX'])}{rnd.randint(10**9, 10**10)} weight={rnd.randint(1, 50)}.{rnd.randint(0, 9)}kg sku=SKU-{rnd.randint(10000, 99999)}-{rnd.choice('ABCDEF')}"
        ),
        lambda: (
            f"{ts()} DEBUG k8s pod=web-{hexs(10)}-{hexs(5)} node=ip-10-0-{rnd.randint(0, 255)}-{rnd.randint(0, 255)} restarts={rnd.randint(0, 9)} cpu={rnd.randint(1, 999)}m"
        ),
    ]
    return [rnd.choice(templates)() for _ in range(n)]
