"""structlog processors in a real structlog pipeline rendering JSON into a StringIO."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from phoenixkit.errors import ConfigurationError
from phoenixkit.masking import ContextThreadPoolExecutor, Masker, MaskingFilter, correlation_scope
from phoenixkit.masking.structlog import MaskingProcessor, add_correlation_id
from tests.masking.test_logging import (
    AWS,
    GITHUB,
    JWT,
    PASSWORD,
    assert_no_secret,
    noise,
    parse,
    secrets,
    strings_in,
)


@pytest.fixture
def buf() -> Iterator[io.StringIO]:
    """structlog configured with our processors, printing JSON lines into the yielded buffer."""
    out = io.StringIO()
    structlog.configure(
        processors=[add_correlation_id, MaskingProcessor(), structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    yield out
    structlog.reset_defaults()


def test_secrets_in_events_and_keys_are_masked(buf: io.StringIO) -> None:
    log = structlog.get_logger()
    with correlation_scope("req-1"):
        log.info(
            f"login ada password={PASSWORD}",
            api_key="plain-looking-value",
            headers={"Authorization": f"Bearer {JWT}", "Accept": "*/*"},
            note=f"key {AWS} and {GITHUB}",
            items=[1, 2],
        )
    [line] = parse(buf.getvalue())
    assert line == {
        "event": "login ada password=[MASKED]",
        "api_key": "[MASKED]",
        "headers": {"Authorization": "[MASKED]", "Accept": "*/*"},
        "note": "key [MASKED] and [MASKED]",
        "items": [1, 2],
        "correlation_id": "req-1",
    }
    assert_no_secret(buf.getvalue() + "plain-looking-value")


def test_exceptions_are_rendered_and_masked(buf: io.StringIO) -> None:
    log = structlog.get_logger()
    try:
        raise RuntimeError(f"connect failed: postgres://app:{PASSWORD}@db/shop token={GITHUB}")
    except RuntimeError:
        log.exception("db down")
    [line] = parse(buf.getvalue())
    assert line["event"] == "db down"
    assert "exc_info" not in line
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert line["exception"].endswith(
        "RuntimeError: connect failed: postgres://app:[MASKED]@db/shop token=[MASKED]"
    )
    assert_no_secret(buf.getvalue())


def test_correlation_id_is_added_not_overwritten(buf: io.StringIO) -> None:
    log = structlog.get_logger()
    log.info("no scope")
    with correlation_scope("req-2"):
        log.info("scoped")
        log.info("explicit", correlation_id="given")
        with ContextThreadPoolExecutor(max_workers=2) as pool:
            pool.submit(log.info, "in a thread").result()
    lines = parse(buf.getvalue())
    assert [line.get("correlation_id") for line in lines] == [None, "req-2", "given", "req-2"]


def test_processor_returns_a_masked_copy() -> None:
    processor = MaskingProcessor(Masker(token="<{kind}>"))
    event: dict[str, Any] = {"event": f"jwt {JWT}", "password": "p", "n": 3}
    masked = processor(None, "info", event)
    assert masked == {"event": "jwt <jwt>", "password": "<key>", "n": 3}
    assert event == {"event": f"jwt {JWT}", "password": "p", "n": 3}
    assert add_correlation_id(None, "info", {}) == {}


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")

    __repr__ = __str__


def test_processor_never_raises_on_odd_events() -> None:
    processor = MaskingProcessor()
    cycle: dict[str, Any] = {}
    cycle["me"] = cycle
    masked = processor(None, "info", {"event": "x", "cycle": cycle, "obj": Unprintable()})
    assert masked["cycle"] == {"me": "[MASKED:cycle]"}
    assert isinstance(masked["obj"], Unprintable)  # left for the renderer, as structlog does
    assert processor(None, "info", {"event": "x", "exc_info": False}) == {"event": "x"}
    assert processor(None, "info", {"event": "x", "exc_info": "odd"}) == {"event": "x"}
    exc = ValueError(f"password={PASSWORD}")
    text = processor(None, "error", {"event": "e", "exc_info": exc})["exception"]
    assert text == "ValueError: password=[MASKED]"


def test_processor_rejects_a_bad_masker() -> None:
    with pytest.raises(ConfigurationError, match="'masker'"):
        MaskingProcessor("masker")  # type: ignore[arg-type]
    assert "format_exc_info=False" in repr(MaskingProcessor(format_exc_info=False))


@settings(max_examples=100)
@given(secret=secrets, before=noise, after=noise, as_event=st.booleans())
def test_generated_secrets_never_reach_the_output(
    secret: tuple[str, str], before: str, after: str, as_event: bool
) -> None:
    value, written = secret
    assume(value not in before and value not in after)  # the noise must not hold it
    text = f"{before} {written} {after}"
    out = io.StringIO()
    structlog.configure(
        processors=[add_correlation_id, MaskingProcessor(), structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    try:
        log = structlog.get_logger()
        if as_event:
            log.warning(text, order_id=7)
        else:
            log.warning("event", order_id=7, details={"note": text}, token=value)
    finally:
        structlog.reset_defaults()
    [line] = parse(out.getvalue())
    assert line["order_id"] == 7
    assert value not in strings_in(line)
    assert json.loads(out.getvalue())["order_id"] == 7


# structlog's ProcessorFormatter: stdlib records rendered by structlog -----------------------


def _formatter_handler(*processors: Any) -> tuple[logging.Handler, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                *processors,
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ]
        )
    )
    return handler, out


@pytest.fixture
def foreign() -> Iterator[tuple[logging.Logger, io.StringIO, io.StringIO]]:
    """A stdlib logger with two ProcessorFormatter handlers: masked, and unmasked (which shows
    that the secret did reach the formatter)."""
    log = logging.getLogger("tests.masking.structlog.foreign")
    masked, masked_out = _formatter_handler(MaskingProcessor())
    plain, plain_out = _formatter_handler()
    log.addHandler(masked)
    log.addHandler(plain)
    log.setLevel(logging.INFO)
    log.propagate = False
    yield log, masked_out, plain_out
    log.removeHandler(masked)
    log.removeHandler(plain)


@pytest.mark.parametrize(
    ("msg", "args", "expected"),
    [
        ("%(password)s", {"password": PASSWORD}, "[MASKED]"),
        (
            "login %(user)s with password %(password)s!",
            {"user": "ada", "password": PASSWORD},
            "login ada with password [MASKED]!",
        ),
        ("%(api_key)r|%(n)d", {"api_key": PASSWORD, "n": 7}, "[MASKED]|7"),
        ("%(api_key)r%(n)d", {"api_key": PASSWORD, "n": 7}, "[MASKED]"),  # where is 7?
        ("100%% %(token)-30s|", {"token": PASSWORD}, "100% [MASKED]|"),
        ("%(pass(word))s.", {"pass(word)": PASSWORD}, "[MASKED]."),
        ("user %(user)s", {"user": "ada"}, "user ada"),
    ],
)
def test_foreign_mapping_args_are_masked_by_key(
    foreign: tuple[logging.Logger, io.StringIO, io.StringIO],
    msg: str,
    args: dict[str, Any],
    expected: str,
) -> None:
    log, masked, plain = foreign
    log.info(msg, args)
    assert parse(masked.getvalue()) == [{"event": expected}]
    if expected != "user ada":
        assert PASSWORD in plain.getvalue()  # the secret did reach the formatter
        assert_no_secret(masked.getvalue())


SENSITIVE = ("password", "api_key", "token")
TEMPLATE_PART = st.one_of(
    st.text(alphabet="ab =:%'\"", max_size=6).map(lambda s: ("text", s)),
    st.tuples(
        st.sampled_from([*SENSITIVE, "user", "note"]),
        st.sampled_from(["s", "r", "-12s", "12s", "a"]),
    ).map(lambda t: ("key", t)),
)
VALUE = st.text(alphabet="ab =:%'\"xyz", min_size=6, max_size=14)


@settings(max_examples=200)
@given(parts=st.lists(TEMPLATE_PART, min_size=1, max_size=6), values=st.data())
def test_foreign_mapping_args_never_leak(
    parts: list[tuple[str, Any]], values: st.DataObject
) -> None:
    # Templates whose literal text and other values look like the secret's, so that where
    # the value sits in the formatted text is ambiguous.
    template = "".join(
        p.replace("%", "%%") if kind == "text" else f"%({p[0]}){p[1]}" for kind, p in parts
    )
    keys = {p[0] for kind, p in parts if kind == "key"}
    assume(keys)
    args = {k: values.draw(VALUE, label=k) for k in sorted(keys)}
    secrets_in = [args[k] for k in SENSITIVE if k in args]
    # The text without the secrets (a newline cannot be part of one): where it holds one
    # anyway, the secret is in the literal text or in another value, not a leak.
    reference = template % {k: "\n" if k in SENSITIVE else v for k, v in args.items()}
    assume(all(secret not in reference for secret in secrets_in))
    log = logging.getLogger("tests.masking.structlog.generated")
    handler, out = _formatter_handler(MaskingProcessor())
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning(template, args)
    finally:
        log.removeHandler(handler)
    [line] = parse(out.getvalue())
    for secret in secrets_in:
        assert secret not in line["event"], (template, args, line)  # no token spells it


def test_masking_filter_keeps_structlog_event_dicts() -> None:
    """A MaskingFilter on a handler that renders structlog events with ProcessorFormatter
    masks the event dict and keeps it a dict (the formatter needs one)."""
    handler, out = _formatter_handler()
    handler.addFilter(MaskingFilter())
    std = logging.getLogger("tests.masking.structlog.wrapped")
    std.addHandler(handler)
    std.setLevel(logging.INFO)
    std.propagate = False
    structlog.configure(
        processors=[structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    try:
        log = structlog.get_logger("tests.masking.structlog.wrapped")
        log.info(f"key {AWS}", password=PASSWORD, n=3)
        std.info("%(password)s", {"password": PASSWORD})
    finally:
        structlog.reset_defaults()
        std.removeHandler(handler)
    assert parse(out.getvalue()) == [
        {"event": "key [MASKED]", "password": "[MASKED]", "n": 3},
        {"event": "[MASKED]"},
    ]
