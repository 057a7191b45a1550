"""Masking beside what a user would write by hand, and the logging path beside python-json-logger.

- Log lines (~200 bytes) with no secret, then lines that each hold one secret of a different
  kind: ``Masker().mask_text`` beside a naive masker that runs one ``re.sub`` per pattern
  (the same kinds of patterns as ``DEFAULT_RULES``, with no keyword prefilter and no
  validators). One call masks one line; the ``ours/s`` column is lines per second.
- Key-only masking of a 20-field dict: ``Masker(rules=(), mask_pairs=False).mask`` beside a
  dict comprehension over a lowercase denylist.
- Formatting a record with 5 extra fields: our ``MaskingFilter`` + ``JsonFormatter`` beside
  python-json-logger's ``JsonFormatter`` alone (which masks nothing). Each call builds a
  fresh ``LogRecord`` (the same cost on both sides) and formats it.

Before the cases are returned, both sides are checked: ours changes none of the ordinary
lines and hides every secret; the naive masker's false positives are counted in its name.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import logging
import random
import re
import sys
import uuid
from collections.abc import Callable
from typing import Any

from _harness import Case
from phoenixkit.masking import Masker
from phoenixkit.masking.logging import JsonFormatter, MaskingFilter


def ordinary_lines() -> list[str]:
    """50 varied log lines of about 200 bytes with no secret (seeded: the same every run)."""
    rng = random.Random(20240501)
    templates = (
        "2024-05-01T12:{m:02d}:{s:02d}.{ms:03d}Z INFO  api.orders order {order} created for "
        "customer cus_{cust} total={price} EUR items={n} request_id={uuid} duration={dur}ms",
        "{ts} DEBUG cache.redis GET shop:product:{n}:v3 hit=true ttl={ttl}s size={size}B "
        "from node 10.0.{a}.{b}:6379 in {dur}ms (pool 7/32, cache key=product:{n})",
        "{ts} INFO  deploy build {sha} deployed to eu-west-1 by ci-runner-{n}; image "
        "registry.internal/shop/api:{sha7} took {dur}ms, {n} pods healthy, rollout=canary",
        "{ts} WARN  worker.billing job {uuid} retry {n}/5 after {dur}ms: upstream 503 from "
        "payments-svc (attempt at 2024-05-01 12:{m:02d}:{s:02d}, queue depth {size})",
        "{ts} INFO  http GET /api/v2/orders/{order}/items?page={n}&per_page=50 200 "
        "{size}B {dur}ms user_agent=Mozilla/5.0 (X11; Linux x86_64) ip=10.1.{a}.{b}",
        "{ts} INFO  sql SELECT id, status, total FROM orders WHERE customer_id = $1 AND "
        "created_at > $2 ORDER BY created_at DESC LIMIT 50 rows={n} time={dur}ms",
        "{ts} ERROR worker.mail smtp timeout after {dur}ms sending invoice INV-2024-{order} "
        "(message {uuid}); will retry in {ttl}s, backlog {size} messages, host mx{n}",
        "{ts} INFO  auth.audit session refreshed for user {n} (org {cust}) via sso provider "
        "okta; expires_in={ttl}s, mfa=true, device=macOS 14.4 Safari, risk=low",
        "{ts} INFO  files upload /var/data/uploads/{sha7}/report-{order}.pdf stored "
        "({size} bytes, sha256 {sha}...) checksum ok in {dur}ms",
        "{ts} INFO  metrics p50={dur}ms p95={ttl}ms p99={size}ms qps={n} errors=0.{n}% "
        "cpu=37.5% mem=1.2GiB gc_pause=3.1ms version=4.18.{n} build {sha7}",
    )
    lines = []
    for i in range(50):
        pod = f" pod=api-{rng.getrandbits(32):08x}-{rng.getrandbits(20):05x}"
        sha = "%040x" % rng.getrandbits(160)  # noqa: UP031 - a git SHA, zero-padded hex
        lines.append(
            templates[i % len(templates)].format(
                ts=f"2024-05-01T12:{i:02d}:{rng.randrange(60):02d}.{rng.randrange(1000):03d}Z",
                m=rng.randrange(60),
                s=rng.randrange(60),
                ms=rng.randrange(1000),
                order=rng.randrange(10**6, 10**7),
                cust=f"{rng.getrandbits(48):012x}",
                price=f"{rng.randrange(100, 99999) / 100:.2f}",
                n=rng.randrange(1, 500),
                uuid=uuid.UUID(int=rng.getrandbits(128), version=4),
                dur=rng.randrange(1, 3000),
                ttl=rng.randrange(30, 86400),
                size=rng.randrange(100, 10**6),
                a=rng.randrange(256),
                b=rng.randrange(256),
                sha=sha,
                sha7=sha[:7],
            )
            + pod
        )
    return lines


_SECRETS = (
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkFkYSJ9.dBjftJeZ4CVPmB92K27uhbUJU1p",
    "Authorization: Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "Authorization: Basic YWRhOmh1bnRlcjJodW50ZXIy",
    "AKIAIOSFODNN7EXAMPLE",
    "ASIAY34FZKBOKMUTVV7A",
    "ghp_aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5",
    "gho_16C7e42F292c6912E7710c838347Ae178B4a",
    "github_pat_11ABCDEFG0123456789abc_defghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "xoxb-2048-4096-abcdefghijABCDEFGHIJ",
    "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "postgres://app:s3cr3t-db-pass@db.internal:5432/shop",
    "redis://:r3dis-pa55w0rd@cache.internal:6379/0",
    "4111 1111 1111 1111",
    "5500-0000-0000-0004",
    "378282246310005",
    "123-45-6789",
    "GB82 WEST 1234 5698 7654 32",
    "DE89370400440532013000",
    "ada.lovelace@example.com",
    "+44 20 7946 0958",
    "(555) 123-4567",
    "password=hunter2hunter2",
    'api_key: "k-1a2b3c4d5e6f7g8h"',
    "token=tok_7f3a9c2e1b8d4f6a",
    "client_secret=cs_9a8b7c6d5e4f3a2b",
    "X-Api-Key=AbC123dEf456GhI789",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq3\n-----END RSA PRIVATE KEY-----",
)


def secret_lines(ordinary: list[str]) -> list[tuple[str, str]]:
    """50 lines of ~200 bytes, each with one secret: (line, the secret's text)."""
    out = []
    for i, line in enumerate(ordinary):
        secret = _SECRETS[i % len(_SECRETS)]
        cut = line[: max(60, 200 - len(secret) - 10)]
        cut = cut[: cut.rfind(" ")]
        out.append((f"{cut} with {secret} end", secret))
    return out


_B64URL = r"[A-Za-z0-9_-]"
NAIVE_PATTERNS = tuple(
    re.compile(p)
    for p in (
        r"-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?-----END[A-Z ]*PRIVATE KEY-----",
        rf"eyJ{_B64URL}+\.eyJ{_B64URL}+\.{_B64URL}*",
        r"(?i)bearer\s+[A-Za-z0-9._~+/-]+=*",
        r"(?i)basic\s+[A-Za-z0-9+/]+={0,2}",
        r"(?:AKIA|ASIA)[A-Z0-9]{16}",
        r"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}",
        r"(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]+|whsec_[A-Za-z0-9]+",
        r"xox[abposr]-[A-Za-z0-9-]+|https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+",
        r"AIza[0-9A-Za-z_-]{35}",
        r"(?<=://)[^:/@\s]*:[^@/\s]+(?=@)",
        r"\b(?:\d[ -]?){13,19}\b",
        r"\b\d{3}-\d{2}-\d{4}\b",
        r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
        r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
        r"\+\d{1,3}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,4}|\(\d{3}\) ?\d{3}-\d{4}",
        r"(?i)\b((?:[a-z_-]*(?:password|passwd|pwd|secret|token|api[_-]?key)[a-z_-]*)"
        r"[\"']?\s*[:=]\s*)\"?[^\s\"',;&]+\"?",
    )
)
"""What a user hand-rolls: one pattern per kind, run on every line, no prefilter, no checks."""


def naive_mask(text: str) -> str:
    for pattern in NAIVE_PATTERNS:
        text = pattern.sub("***", text)
    return text


def _one_line_at_a_time(fn: Callable[[str], object], lines: list[str]) -> Callable[[], object]:
    nxt = itertools.cycle(lines).__next__

    def call() -> object:
        return fn(nxt())

    return call


RECORD_FIELDS: dict[str, Any] = {
    "user_id": 48213,
    "email": "ada@example.com",
    "plan": "pro",
    "active": True,
    "created_at": "2024-05-01T12:30:00Z",
    "order_id": "ord_7f3a9c",
    "total": 129.95,
    "currency": "EUR",
    "items": 3,
    "coupon": None,
    "password": "hunter2hunter2",
    "api_key": "k-1a2b3c4d",
    "Authorization": "Bearer abc.def.ghi",
    "session_id": "s-0a1b2c",
    "ip": "10.1.2.3",
    "user_agent": "Mozilla/5.0",
    "path": "/api/v2/orders",
    "status": 201,
    "duration_ms": 12.5,
    "region": "eu-west-1",
}
DENY = frozenset({"password", "api_key", "authorization", "session_id", "token", "secret"})


def _peer_formatters() -> list[tuple[str, str, logging.Formatter]]:
    """python-json-logger's formatters (json and, with orjson, its orjson one), if installed."""
    if importlib.util.find_spec("pythonjsonlogger") is None:
        print(
            "  masking: python-json-logger is not installed: formatter case left out",
            file=sys.stderr,
        )
        return []
    try:
        module: Any = importlib.import_module("pythonjsonlogger.json")  # v3+
    except ImportError:
        module = importlib.import_module("pythonjsonlogger.jsonlogger")  # v2
    fmt = "%(levelname)s %(name)s %(message)s"
    out = [("json", "python-json-logger JsonFormatter", module.JsonFormatter(fmt, timestamp=True))]
    if importlib.util.find_spec("orjson") is not None:
        try:
            orjson_module: Any = importlib.import_module("pythonjsonlogger.orjson")
            out.append(
                (
                    "orjson",
                    "python-json-logger OrjsonFormatter",
                    orjson_module.OrjsonFormatter(fmt, timestamp=True),
                )
            )
        except ImportError:
            pass
    return out


def _formatter_cases() -> list[Case]:
    logger = logging.getLogger("bench.orders")
    extra = {
        "user_id": 48213,
        "order_id": "ord_7f3a9c",
        "total": 129.95,
        "path": "/api/v2/orders",
        "duration_ms": 12.5,
    }

    def record() -> logging.LogRecord:
        return logger.makeRecord(
            "bench.orders",
            logging.INFO,
            __file__,
            42,
            "order %s paid in %.1f ms",
            ("ord_7f3a9c", 12.5),
            None,
            extra=extra,
        )

    ours_filter, ours_format = MaskingFilter(), JsonFormatter()

    def ours() -> object:
        rec = record()
        ours_filter.filter(rec)
        return ours_format.format(rec)

    cases = []
    for encoder, name, peer_formatter in _peer_formatters():
        fmt = peer_formatter.format

        def peer(fmt: Callable[[logging.LogRecord], str] = fmt) -> object:
            return fmt(record())

        cases.append(
            Case(
                f"filter+format record, 5 extras (ours masks), vs {encoder}",
                ours,
                f"{name} (no masking)",
                peer,
                "records",
            )
        )
    return cases


def cases(quick: bool) -> list[Case]:
    masker = Masker()
    ordinary = ordinary_lines()
    changed = [line for line in ordinary if masker.mask_text(line) != line]
    if changed:
        raise RuntimeError(f"Masker changed ordinary lines (false positives): {changed}")
    naive_false = sum(naive_mask(line) != line for line in ordinary)
    with_secrets = secret_lines(ordinary)
    for line, secret in with_secrets:
        for masked in (masker.mask_text(line), naive_mask(line)):
            if secret.splitlines()[-1] in masked or secret in masked:
                raise RuntimeError(f"a secret was not masked in {line!r}: {masked!r}")
    secret_texts = [line for line, _ in with_secrets]

    key_masker = Masker(rules=(), mask_pairs=False)
    record = dict(RECORD_FIELDS)
    ours_record = key_masker.mask(record)
    peer_record = {k: "***" if k.lower() in DENY else v for k, v in record.items()}
    if [k for k in record if ours_record[k] != record[k]] != [
        k for k in record if peer_record[k] != record[k]
    ]:
        raise RuntimeError("key-only maskers disagree on which keys are sensitive")

    def ours_keys() -> object:
        return key_masker.mask(record)

    def peer_keys() -> object:
        return {k: "***" if k.lower() in DENY else v for k, v in record.items()}

    return [
        Case(
            "mask ~200 B line, no secret (50 lines)",
            _one_line_at_a_time(masker.mask_text, ordinary),
            f"naive re.sub x{len(NAIVE_PATTERNS)} ({naive_false}/50 false hits)",
            _one_line_at_a_time(naive_mask, ordinary),
            "lines",
        ),
        Case(
            "mask ~200 B line, one secret each (50 kinds)",
            _one_line_at_a_time(masker.mask_text, secret_texts),
            f"naive re.sub x{len(NAIVE_PATTERNS)}",
            _one_line_at_a_time(naive_mask, secret_texts),
            "lines",
        ),
        Case(
            "mask 20-field dict by key only",
            ours_keys,
            "dict comprehension + denylist",
            peer_keys,
            "records",
        ),
        *_formatter_cases(),
    ]
