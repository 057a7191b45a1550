"""structlog processors in a real structlog pipeline rendering JSON into a StringIO."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from phoenixkit.errors import ConfigurationError
from phoenixkit.masking import ContextThreadPoolExecutor, Masker, correlation_scope
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
