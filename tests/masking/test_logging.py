"""stdlib logging integration: real loggers and handlers writing to StringIO, a pty and files.

Every leak test also runs an unmasked handler beside the masked one where that shows the
secret would have been printed, so that a test cannot pass because the secret never got
into the record in the first place.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import pty
import re
import select
import string
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from phoenixkit.errors import ConfigurationError
from phoenixkit.masking import ContextThreadPoolExecutor, Masker, correlation_scope
from phoenixkit.masking import _formatters as pfmt
from phoenixkit.masking import logging as plog
from phoenixkit.masking.logging import (
    CorrelationIdFilter,
    DevFormatter,
    JsonFormatter,
    MaskingFilter,
    configure_logging,
)

PASSWORD = "hunter2-Tr0ub4dor.3"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk"
AWS = "AKIAIOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5"
SECRETS = (PASSWORD, JWT, AWS, GITHUB)
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _reject(constant: str) -> Any:
    raise AssertionError(f"not JSON: {constant}")


def parse(text: str) -> list[dict[str, Any]]:
    """Each line of `text` as a JSON object (NaN and Infinity are refused)."""
    return [json.loads(line, parse_constant=_reject) for line in text.splitlines() if line]


def strings_in(value: Any) -> str:
    """Every string (keys and values) in a parsed JSON value, joined: what a reader sees."""
    if isinstance(value, dict):
        return "\n".join(f"{k}\n{strings_in(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "\n".join(strings_in(v) for v in value)
    return str(value)


def assert_no_secret(text: str, secrets: tuple[str, ...] = SECRETS) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret!r} leaked into {text!r}"


class RawFormatter(logging.Formatter):
    """The stdlib format plus every attribute of the record: what an unmasked log shows."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{super().format(record)} {record.__dict__!r}"


class Captured:
    """A real logger with one handler writing to a StringIO."""

    def __init__(self, name: str, handler: logging.Handler, buf: io.StringIO) -> None:
        self.log = logging.getLogger(name)
        self.handler = handler
        self.buf = buf

    def lines(self) -> list[dict[str, Any]]:
        return parse(self.buf.getvalue())


def _attach(name: str, formatter: logging.Formatter, *filters: logging.Filter) -> Captured:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    for f in filters:
        handler.addFilter(f)
    handler.setFormatter(formatter)
    captured = Captured(name, handler, buf)
    captured.log.addHandler(handler)
    captured.log.setLevel(logging.DEBUG)
    captured.log.propagate = False
    return captured


@pytest.fixture
def logger_name(request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"phoenixkit.tests.{request.node.name}"
    yield name
    log = logging.getLogger(name)
    for h in list(log.handlers):
        log.removeHandler(h)
    for f in list(log.filters):
        log.removeFilter(f)


@pytest.fixture
def captured(logger_name: str) -> Captured:
    """MaskingFilter + JsonFormatter on a handler, as configure_logging sets them up."""
    return _attach(logger_name, JsonFormatter(), MaskingFilter())


@pytest.fixture
def plain(logger_name: str) -> io.StringIO:
    """An unmasked handler added *before* the masked one: it shows what would leak."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(RawFormatter())
    logging.getLogger(logger_name).addHandler(handler)
    return buf


@pytest.fixture
def restore_root() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.handlers[:] = handlers
    root.setLevel(level)


# Secrets do not get out ------------------------------------------------------------------------


def test_secrets_in_message_args_are_masked(plain: io.StringIO, captured: Captured) -> None:
    captured.log.info("login ada password=%s jwt %s key %s", PASSWORD, JWT, AWS)
    assert PASSWORD in plain.getvalue()
    [line] = captured.lines()
    assert line["message"].startswith("login ada password=[MASKED] jwt ")
    assert_no_secret(captured.buf.getvalue())


def test_secrets_in_extra_fields_are_masked(plain: io.StringIO, captured: Captured) -> None:
    extra = {
        "password": PASSWORD,  # a sensitive name: masked whatever the value
        "X-API-Key": "plain-looking-value",
        "note": f"deploy token {GITHUB} used",  # a harmless name holding a secret
        "request": {"headers": {"Authorization": f"Bearer {JWT}"}, "path": "/orders/42"},
        "order_id": 42,
        "keys": [AWS, "ok"],
    }
    captured.log.warning("request done", extra=extra)
    assert GITHUB in plain.getvalue()
    [line] = captured.lines()
    assert line["password"] == "[MASKED]"
    assert line["X-API-Key"] == "[MASKED]"
    assert line["note"] == "deploy token [MASKED] used"
    assert line["request"] == {"headers": {"Authorization": "[MASKED]"}, "path": "/orders/42"}
    assert line["order_id"] == 42
    assert line["keys"] == ["[MASKED]", "ok"]
    assert_no_secret(captured.buf.getvalue() + "plain-looking-value")


def _fail_login() -> None:
    try:
        raise ConnectionError(f"auth failed for postgres://app:{PASSWORD}@db/shop")
    except ConnectionError as exc:
        raise RuntimeError(f"login failed, session jwt={JWT}") from exc


def test_exception_text_is_masked(plain: io.StringIO, captured: Captured) -> None:
    try:
        _fail_login()
    except RuntimeError:
        captured.log.exception("could not log in")
    assert JWT in plain.getvalue()
    assert PASSWORD in plain.getvalue()  # the chained cause holds it too
    [line] = captured.lines()
    assert line["message"] == "could not log in"
    assert "RuntimeError: login failed, session jwt=[MASKED]" in line["exception"]
    assert "ConnectionError: auth failed for postgres://app:[MASKED]@db/shop" in line["exception"]
    assert_no_secret(captured.buf.getvalue())


def _checkpoint(log: logging.Logger) -> None:
    log.warning("checkpoint", stack_info=True)  # leaked by the stack: password=hunter2-Tr0ub4dor.3


def test_stack_info_is_masked(plain: io.StringIO, captured: Captured) -> None:
    _checkpoint(captured.log)
    assert PASSWORD in plain.getvalue()  # the stack quotes the source line, comment included
    [line] = captured.lines()
    assert line["stack"].startswith("Stack (most recent call last):")
    assert "_checkpoint" in line["stack"]
    assert_no_secret(captured.buf.getvalue())


def test_secrets_do_not_reach_a_file(logger_name: str, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.addFilter(MaskingFilter())
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger(logger_name)
    log.addHandler(handler)
    log.propagate = False
    try:
        log.error("token=%s", GITHUB, extra={"aws": AWS, "secret": "x"})
    finally:
        handler.close()
    text = path.read_text(encoding="utf-8")
    assert_no_secret(text)
    assert parse(text)[0]["secret"] == "[MASKED]"


def test_masked_message_is_not_formatted_again(logger_name: str, captured: Captured) -> None:
    later = io.StringIO()  # a plain handler after ours gets the masked record
    handler = logging.StreamHandler(later)
    handler.setFormatter(logging.Formatter("%(message)s"))
    captured.log.addHandler(handler)
    captured.log.info("100%% done, password=%s", PASSWORD)
    assert later.getvalue() == "100% done, password=[MASKED]\n"
    assert captured.lines()[0]["message"] == "100% done, password=[MASKED]"


def test_exc_info_is_cleared_so_other_formatters_cannot_reformat_it(logger_name: str) -> None:
    from pythonjsonlogger.json import JsonFormatter as PeerFormatter

    for keep, leaks in ((False, False), (True, True)):
        buf = io.StringIO()
        handler = logging.StreamHandler(buf)
        handler.addFilter(MaskingFilter(keep_exc_info=keep))
        handler.setFormatter(PeerFormatter())  # re-formats exc_info, ignoring exc_text
        log = logging.getLogger(f"{logger_name}.{keep}")
        log.addHandler(handler)
        log.propagate = False
        try:
            raise ValueError(f"password={PASSWORD}")
        except ValueError:
            log.exception("failed")
        log.removeHandler(handler)
        assert (PASSWORD in buf.getvalue()) is leaks
        assert "ValueError: password=" in buf.getvalue()


# The JSON line --------------------------------------------------------------------------------


def test_json_line_has_the_fields(captured: Captured) -> None:
    with correlation_scope("req-42"):
        captured.log.info("hello %s", "world", extra={"user_id": 7, "plan": "pro"})
    captured.log.debug("outside")
    first, second = captured.lines()
    assert list(first)[:5] == ["timestamp", "level", "logger", "message", "correlation_id"]
    assert ISO_MS.fullmatch(first["timestamp"])
    assert first["level"] == "INFO"
    assert first["logger"] == captured.log.name
    assert first["message"] == "hello world"
    assert first["correlation_id"] == "req-42"
    assert (first["user_id"], first["plan"]) == (7, "pro")
    assert "exception" not in first
    assert "stack" not in first
    assert "correlation_id" not in second
    assert second["level"] == "DEBUG"


def test_timestamp_is_utc_from_record_created() -> None:
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "m", None, None)
    record.created = 1_700_000_000.123456
    line = json.loads(JsonFormatter(mask=False).format(record))
    assert line["timestamp"] == "2023-11-14T22:13:20.123Z"
    record.created = 1_700_000_061.9999
    assert json.loads(JsonFormatter().format(record))["timestamp"] == "2023-11-14T22:14:21.999Z"
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    record.created = now
    parsed = dt.datetime.fromisoformat(json.loads(JsonFormatter().format(record))["timestamp"])
    assert parsed.tzinfo is not None
    assert abs(parsed.timestamp() - now) < 0.001


def test_static_fields_rename_and_collisions(logger_name: str) -> None:
    fmt = JsonFormatter(static_fields={"service": "shop"}, rename={"level": "severity"})
    cap = _attach(logger_name, fmt, MaskingFilter())
    cap.log.warning("x", extra={"service": "other", "level": 5, "logger": "mine"})
    [line] = cap.lines()
    assert line["severity"] == "WARNING"
    assert line["service"] == "shop"
    assert line["extra_service"] == "other"
    assert line["level"] == 5  # "level" is no longer one of ours after the rename
    assert line["extra_logger"] == "mine"
    assert line["logger"] == logger_name


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"rename": {"lvl": "severity"}}, "'lvl'"),
        ({"rename": {"level": ""}}, "''"),
        ({"rename": {"level": "message"}}, "same name"),
        ({"static_fields": {"timestamp": 1}}, "'timestamp'"),
        ({"mask": "yes"}, "'yes'"),
    ],
)
def test_json_formatter_rejects_bad_options(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(named)):
        JsonFormatter(**kwargs)


@pytest.fixture(params=["orjson", "json"])
def encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on each encoder: orjson (when installed) and the stdlib json fallback."""
    if request.param == "orjson":
        pytest.importorskip("orjson")
        monkeypatch.setattr(pfmt, "_ORJSON", None)  # looked up again: found
    else:
        monkeypatch.setattr(pfmt, "_ORJSON", False)  # as if not installed
    return str(request.param)


def test_json_without_orjson_installed() -> None:
    code = (
        "import sys, logging; sys.modules['orjson'] = None\n"  # makes `import orjson` fail
        "from phoenixkit.masking import _formatters as plog\n"
        "r = logging.LogRecord('a', 20, 'f', 1, 'password=%s é', ('pw12345678',), None)\n"
        "print(plog.JsonFormatter().format(r)); print(plog._ORJSON)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    line, state = proc.stdout.splitlines()
    assert json.loads(line)["message"] == "password=[MASKED] é"
    assert state == "False"


class Opaque:
    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    __repr__ = __str__


def test_odd_extra_values_still_give_valid_json(encoder: str, logger_name: str) -> None:
    cycle: dict[str, Any] = {"name": "loop"}
    cycle["self"] = cycle
    extra = {
        "nan": float("nan"),
        "big": 2**70,
        "tuple_keys": {(1, 2): "a"},
        "raw": b"bytes password=" + PASSWORD.encode(),
        "tags": {"x"},
        "when": dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc),
        "opaque": Opaque(f"token {GITHUB}"),  # str() holds a secret the masker never saw
        "broken": Unprintable(),
        "cycle": cycle,
        "surrogate": "\udc80",
    }
    for fmt in (JsonFormatter(mask=False), JsonFormatter()):
        cap = _attach(logger_name, fmt, MaskingFilter())
        cap.log.info("odd", extra=extra)
        [line] = cap.lines()
        cap.log.removeHandler(cap.handler)
        assert line["message"] == "odd"
        assert line["nan"] is None
        assert str(line["big"]) == str(2**70)
        assert "[MASKED]" in line["raw"]
        assert line["tags"] == ["x"]
        assert line["when"].startswith("2024-05-01")
        assert line["opaque"] == "token [MASKED]"
        assert line["broken"] == "[unprintable Unprintable]"
        assert line["cycle"] == {"name": "loop", "self": "[MASKED:cycle]"}
        assert_no_secret(cap.buf.getvalue())
    assert (pfmt._ORJSON is not False) is (encoder == "orjson")


def test_json_formatter_alone_masks(logger_name: str) -> None:
    cap = _attach(logger_name, JsonFormatter())  # no filter: the formatter masks
    with correlation_scope("r1"):
        cap.log.info("password=%s", PASSWORD, extra={"api_key": "k", "note": AWS})
    try:
        raise KeyError(f"jwt {JWT}")
    except KeyError:
        cap.log.exception("oops", stack_info=True)
    first, second = cap.lines()
    assert first["message"] == "password=[MASKED]"
    assert (first["api_key"], first["note"], first["correlation_id"]) == ("[MASKED]",) * 2 + ("r1",)
    assert "KeyError" in second["exception"]
    assert_no_secret(cap.buf.getvalue())


def test_json_formatter_alone_does_not_change_the_record() -> None:
    record = logging.LogRecord("a", logging.INFO, __file__, 1, "pw=%s", (PASSWORD,), None)
    record.__dict__["password"] = PASSWORD
    JsonFormatter().format(record)
    assert (record.msg, record.args, record.__dict__["password"]) == (
        "pw=%s",
        (PASSWORD,),
        PASSWORD,
    )


def test_json_formatter_mask_false_trusts_the_filter(logger_name: str) -> None:
    cap = _attach(logger_name, JsonFormatter(mask=False))
    cap.log.info("password=%s", PASSWORD)
    assert PASSWORD in cap.buf.getvalue()  # mask=False without a filter: the user's choice


def test_custom_masker_and_no_double_masking(logger_name: str) -> None:
    masker = Masker(token="<{kind}>")
    filt = MaskingFilter(masker)
    cap = _attach(logger_name, JsonFormatter(mask=Masker()), filt)
    cap.log.addFilter(filt)  # on the logger and on the handler
    cap.log.info("password=%s key %s", PASSWORD, AWS, extra={"token": "t0k3n"})
    [line] = cap.lines()
    assert line["message"] == "password=<key> key <aws_access_key>"
    assert line["token"] == "<key>"
    assert masker.stats().total_masked == 3  # filtered once, not re-masked by the formatter


# The filter -----------------------------------------------------------------------------------


def _record(msg: object = "m", args: Any = None, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("a", logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_filter_is_idempotent_and_always_true() -> None:
    masker = Masker()
    filt = MaskingFilter(masker)
    record = _record("password=%s", (PASSWORD,), secret="s")
    assert filt.filter(record) is True
    once = dict(record.__dict__)
    assert MaskingFilter(masker).filter(record) is True
    assert filt.filter(record) is True
    assert record.__dict__ == once
    assert record.msg == "password=[MASKED]"
    assert record.args is None
    assert masker.stats().total_masked == 2


def test_filter_adds_correlation_id() -> None:
    filt = MaskingFilter()
    record = _record()
    with correlation_scope("abc-1"):
        filt.filter(record)
    assert record.__dict__["correlation_id"] == "abc-1"
    record = _record()
    filt.filter(record)
    assert record.__dict__["correlation_id"] is None
    record = _record(correlation_id="mine")
    with correlation_scope("abc-2"):
        filt.filter(record)
    assert record.__dict__["correlation_id"] == "mine"


def test_correlation_id_filter_alone() -> None:
    filt = CorrelationIdFilter()
    with correlation_scope("cid-9"):
        records = [_record(), _record(correlation_id="kept")]
        assert all(filt.filter(r) for r in records)
    assert [r.__dict__["correlation_id"] for r in records] == ["cid-9", "kept"]
    assert records[0].msg == "m"


def test_correlation_id_crosses_threads(captured: Captured) -> None:
    def work(n: int) -> None:
        captured.log.info("task %d", n)

    with correlation_scope("req-threads"):
        with ContextThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(work, range(4)))
        with ThreadPoolExecutor(max_workers=1) as plain_pool:  # no context copy: no id
            plain_pool.submit(work, 99).result()
    lines = captured.lines()
    assert len(lines) == 5
    with_id = [line for line in lines if line.get("correlation_id") == "req-threads"]
    assert sorted(line["message"] for line in with_id) == [f"task {n}" for n in range(4)]
    assert [line for line in lines if "correlation_id" not in line] == [
        {**lines[-1], "message": "task 99"}
    ]


def test_filter_survives_bad_args_and_broken_str(
    captured: Captured, capsys: pytest.CaptureFixture[str]
) -> None:
    captured.log.info("%d items for %s", "many", PASSWORD)
    captured.log.info(Unprintable())
    captured.log.info("value %s", Unprintable(), extra={"obj": Unprintable()})
    cycle: list[Any] = []
    cycle.append(cycle)
    captured.log.info("cycle", extra={"data": cycle, "deep": [[[[["password=x"]]]]]})
    bad_args, bad_msg, bad_arg, cyc = captured.lines()
    assert bad_args["message"] == "%d items for %s [args that did not fit the format: str, str]"
    assert bad_msg["message"] == "[unprintable Unprintable]"
    assert bad_arg["message"] == "value %s [args that did not fit the format: Unprintable]"
    assert bad_arg["obj"] == "[unprintable Unprintable]"
    assert cyc["data"] == ["[MASKED:cycle]"]
    assert cyc["deep"] == [[[[["password=[MASKED]"]]]]]
    assert capsys.readouterr().err == ""  # logging printed no "--- Logging error ---"
    assert_no_secret(captured.buf.getvalue())


def test_filter_blanks_what_it_cannot_mask() -> None:
    record = _record(f"password={PASSWORD}", None, note=AWS)
    record.exc_info = ("not", "an", "exc_info")  # type: ignore[assignment]
    assert MaskingFilter().filter(record) is True
    assert record.msg == plog._FAILED
    assert record.__dict__["note"] == plog._FAILED
    assert (record.exc_info, record.exc_text) == (None, plog._FAILED)
    assert_no_secret(JsonFormatter(mask=False).format(record))
    odd = _record(f"password={PASSWORD}")
    odd.exc_info = ("not", "an", "exc_info")  # type: ignore[assignment]
    line = json.loads(JsonFormatter().format(odd))  # the formatter alone fails safe too
    assert line == {"level": "INFO", "message": plog._FAILED}
    assert "[MASKED:" in DevFormatter().format(odd)


def test_maskers_must_be_maskers() -> None:
    with pytest.raises(ConfigurationError, match="'nope'"):
        MaskingFilter("nope")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="colors='auto'"):
        DevFormatter(colors="auto")  # type: ignore[arg-type]


# The development formatter ---------------------------------------------------------------------

DEV_LINE = re.compile(
    r"\d\d:\d\d:\d\d\.\d{3} INFO     (?P<logger>\S+) \[req-7\] hello ada "
    r'user_id=7 password=\[MASKED\] note="two words" data=\{"a":1\}'
)


def test_dev_formatter_line(logger_name: str) -> None:
    cap = _attach(logger_name, DevFormatter(colors=False), MaskingFilter())
    with correlation_scope("req-7"):
        cap.log.info(
            "hello %s",
            "ada",
            extra={"user_id": 7, "password": PASSWORD, "note": "two words", "data": {"a": 1}},
        )
    try:
        raise ValueError(f"token={GITHUB}")
    except ValueError:
        cap.log.exception("failed")
    first, *rest = cap.buf.getvalue().splitlines()
    match = DEV_LINE.fullmatch(first)
    assert match is not None, first
    assert match["logger"] == logger_name
    assert "\x1b[" not in cap.buf.getvalue()
    assert rest[0].endswith(f"ERROR    {logger_name} failed")
    assert rest[1] == "Traceback (most recent call last):"
    assert rest[-1] == "ValueError: token=[MASKED]"
    assert_no_secret(cap.buf.getvalue())


def test_dev_formatter_colours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    record = _record("hi")
    assert DevFormatter(colors=True).format(record).split()[1] == "\x1b[32mINFO"
    assert "\x1b[" not in DevFormatter(colors=False).format(record)
    assert "\x1b[" not in DevFormatter(stream=io.StringIO()).format(record)
    master, replica = pty.openpty()
    with os.fdopen(replica, "w") as tty, os.fdopen(master, "rb", buffering=0):
        assert tty.isatty()
        assert "\x1b[32m" in DevFormatter(stream=tty).format(record)
        assert "\x1b[" not in DevFormatter(stream=tty, colors=False).format(record)
        monkeypatch.setenv("NO_COLOR", "1")
        assert "\x1b[" not in DevFormatter(stream=tty).format(record)
    error = _record("bad")
    error.levelno, error.levelname = logging.ERROR, "ERROR"
    assert "\x1b[31mERROR" in DevFormatter(colors=True).format(error)


# configure_logging ----------------------------------------------------------------------------


def test_configure_logging_json_and_idempotent(restore_root: logging.Logger) -> None:
    root = restore_root
    other = logging.NullHandler()
    root.addHandler(other)
    first_buf, second_buf = io.StringIO(), io.StringIO()
    first = configure_logging("DEBUG", stream=first_buf, static_fields={"service": "shop"})
    second = configure_logging("warning", stream=second_buf, json=True)
    assert first is not second
    assert first not in root.handlers
    assert second in root.handlers
    assert other in root.handlers
    assert sum(h.get_name() == "phoenixkit.configure_logging" for h in root.handlers) == 1
    assert root.level == logging.WARNING
    log = logging.getLogger("phoenixkit.tests.configured")
    log.info("dropped: below WARNING")
    log.warning("password=%s", PASSWORD, extra={"token": GITHUB})
    assert first_buf.getvalue() == ""
    [line] = parse(second_buf.getvalue())
    assert (line["message"], line["token"]) == ("password=[MASKED]", "[MASKED]")
    assert "service" not in line


def test_configure_logging_picks_dev_on_a_tty(restore_root: logging.Logger) -> None:
    buf = io.StringIO()
    handler = configure_logging(15, stream=buf, static_fields={"service": "shop"})
    assert isinstance(handler.formatter, JsonFormatter)  # a StringIO is not a terminal
    logging.getLogger("phoenixkit.tests.configured").log(15, "level 15")
    assert parse(buf.getvalue())[0]["service"] == "shop"
    master, replica = pty.openpty()
    with os.fdopen(replica, "w") as tty, os.fdopen(master, "rb", buffering=0) as reader:
        handler = configure_logging(stream=tty)
        assert isinstance(handler.formatter, DevFormatter)
        logging.getLogger("phoenixkit.tests.configured").info("on a terminal %s", AWS)
        ready, _, _ = select.select([reader], [], [], 5)
        assert ready
        out = reader.read(4096).decode()
        handler = configure_logging(stream=io.StringIO())  # let go of the tty before closing it
    assert "on a terminal [MASKED]" in out
    assert "\x1b[32mINFO" in out
    assert isinstance(configure_logging(stream=tty, json=True).formatter, JsonFormatter)


@pytest.mark.parametrize("level", ["LOUD", "", -1, True, 2.5, None])
def test_configure_logging_rejects_bad_levels(restore_root: logging.Logger, level: Any) -> None:
    before = list(restore_root.handlers)
    with pytest.raises(ConfigurationError, match=re.escape(repr(level))):
        configure_logging(level, stream=io.StringIO())
    assert restore_root.handlers == before


# Generated secrets ----------------------------------------------------------------------------

_B64URL = string.ascii_letters + string.digits + "_-"
_UPPER_DIGITS = string.ascii_uppercase + string.digits
_ALNUM = string.ascii_letters + string.digits
# Password characters a `password=<value>` pair carries unquoted (punctuation that ends a
# value, such as `,;&"'`, would end it in any key=value log format too).
_PW_CHARS = "".join(c for c in string.printable if c not in " \t\n\r\x0b\x0c\"',;&}])")

passwords = st.text(_PW_CHARS, min_size=10, max_size=40).filter(
    lambda s: any(c.isdigit() for c in s) and any(c.isalpha() for c in s)
)
jwts = st.builds(
    "eyJ{}.eyJ{}.{}".format,
    st.text(_B64URL, min_size=8, max_size=60),
    st.text(_B64URL, min_size=8, max_size=120),
    st.text(_B64URL, min_size=8, max_size=86),
)
aws_keys = st.builds("AKIA{}".format, st.text(_UPPER_DIGITS, min_size=16, max_size=16))
github_tokens = st.builds("ghp_{}".format, st.text(_ALNUM, min_size=36, max_size=36))
secrets = st.one_of(
    passwords.map(lambda p: (p, f"password={p}")),
    jwts.map(lambda t: (t, t)),
    aws_keys.map(lambda k: (k, k)),
    github_tokens.map(lambda t: (t, t)),
)
"""(secret, how it is written in text): the text that must never reach the output."""
words = st.text(string.ascii_letters + string.digits + ".:/-_#()", max_size=40)
noise = st.lists(words, max_size=5).map(" ".join)


@settings(max_examples=150)
@given(secret=secrets, before=noise, after=noise, where=st.sampled_from(["arg", "extra", "key"]))
def test_generated_secrets_never_reach_the_json(
    secret: tuple[str, str], before: str, after: str, where: str
) -> None:
    value, written = secret
    assume(value not in before and value not in after)  # the noise must not hold it
    text = f"{before} {written} {after}"
    extra: dict[str, Any] = {"order_id": 1042}
    msg, args = "event %s done", ("x",)
    if where == "arg":
        args = (text,)
    elif where == "extra":
        extra["details"] = {"note": text, "list": [text]}
    else:
        extra["client_secret"] = value  # a sensitive key name, whatever the value
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.addFilter(MaskingFilter())
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("phoenixkit.tests.generated")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.warning(msg, *args, extra=extra)
    finally:
        log.removeHandler(handler)
    [line] = parse(buf.getvalue())
    del line["timestamp"]
    assert line["order_id"] == 1042
    assert value not in strings_in(line)
