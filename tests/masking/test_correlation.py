"""Correlation ids: validation, header parsing, context scoping, threads, asyncio, real HTTP."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import requests
from hypothesis import example, given
from hypothesis import strategies as st

from phoenixkit.errors import ConfigurationError
from phoenixkit.masking import correlation
from phoenixkit.masking.correlation import (
    MAX_CORRELATION_ID_LENGTH,
    ContextThreadPoolExecutor,
    CorrelationAuth,
    ahttpx_event_hook,
    correlation_id_from_headers,
    correlation_scope,
    ensure_correlation_id,
    get_correlation_id,
    httpx_event_hook,
    inject_correlation_id,
    is_valid_correlation_id,
    new_correlation_id,
    outgoing_headers,
    reset_correlation_id,
    set_correlation_id,
    wrap_context,
)

SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@/+=-"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"

valid_ids = st.text(alphabet=SAFE, min_size=1, max_size=MAX_CORRELATION_ID_LENGTH)
lower_hex = "0123456789abcdef"


@pytest.fixture(autouse=True)
def _no_correlation_id() -> Iterator[None]:
    # Tests share one thread and context: start each without an id and undo whatever it set.
    token = correlation._CORRELATION_ID.set(None)
    yield
    correlation._CORRELATION_ID.reset(token)


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["a", "req-123", TRACE, "svc/api:v1@host+x=y_z.0", "x" * MAX_CORRELATION_ID_LENGTH],
)
def test_valid_ids(value: str) -> None:
    assert is_valid_correlation_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "a b",
        "a\nb",
        "a\x00",
        "a\x7f",
        "\u00e9t\u00e9",
        "'quoted'",
        '"q"',
        "a;b",
        "<script>",
        "x" * (MAX_CORRELATION_ID_LENGTH + 1),
        b"bytes",
        None,
        42,
        ["a"],
    ],
)
def test_invalid_ids(value: object) -> None:
    assert not is_valid_correlation_id(value)


@given(valid_ids)
def test_ids_from_the_safe_set_are_valid(value: str) -> None:
    assert is_valid_correlation_id(value)


@given(
    valid_ids,
    st.integers(min_value=0, max_value=MAX_CORRELATION_ID_LENGTH),
    st.characters(exclude_characters=SAFE),
)
def test_any_character_outside_the_safe_set_is_rejected(value: str, at: int, bad: str) -> None:
    assert not is_valid_correlation_id(value[:at] + bad + value[at:])


@given(st.text(alphabet=SAFE, min_size=MAX_CORRELATION_ID_LENGTH + 1, max_size=400))
def test_overlong_ids_are_rejected(value: str) -> None:
    assert not is_valid_correlation_id(value)


def test_new_ids_are_32_hex_and_distinct() -> None:
    ids = {new_correlation_id() for _ in range(100)}
    assert len(ids) == 100
    for value in ids:
        assert len(value) == 32
        assert set(value) <= set(lower_hex)
        assert is_valid_correlation_id(value)
        parsed = uuid.UUID(value)  # a UUID4: version and variant bits set
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)


# --- the context variable ---------------------------------------------------------------------


def test_set_get_reset() -> None:
    assert get_correlation_id() is None
    outer = set_correlation_id("outer")
    inner = set_correlation_id("inner")
    assert get_correlation_id() == "inner"
    reset_correlation_id(inner)
    assert get_correlation_id() == "outer"
    reset_correlation_id(outer)
    assert get_correlation_id() is None


@pytest.mark.parametrize("value", ["a b", "", "x\r\nSet-Cookie: 1", None, 7])
def test_set_rejects_an_invalid_id_and_names_it(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="invalid correlation id") as info:
        set_correlation_id(value)
    assert repr(value) in str(info.value)
    assert get_correlation_id() is None


def test_set_error_truncates_a_huge_value() -> None:
    with pytest.raises(ConfigurationError) as info:
        set_correlation_id("A" * 1_000_000 + " ")
    message = str(info.value)
    assert "'AAAA" in message
    assert "length 1000001" in message
    assert len(message) < 300


def test_scope_sets_a_given_id_and_restores() -> None:
    with correlation_scope("given") as value:
        assert value == "given"
        assert get_correlation_id() == "given"
        with correlation_scope() as nested:
            assert nested != "given"
            assert get_correlation_id() == nested
        assert get_correlation_id() == "given"
    assert get_correlation_id() is None


def test_scope_generates_an_id() -> None:
    with correlation_scope() as value:
        assert len(value) == 32
        assert get_correlation_id() == value


def test_scope_restores_after_an_exception() -> None:
    token = set_correlation_id("before")
    with pytest.raises(RuntimeError), correlation_scope("during"):
        raise RuntimeError("boom")
    assert get_correlation_id() == "before"
    reset_correlation_id(token)


def test_scope_rejects_an_invalid_id() -> None:
    with pytest.raises(ConfigurationError, match="'bad id'"), correlation_scope("bad id"):
        pass  # pragma: no cover
    assert get_correlation_id() is None


# --- incoming headers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Request-ID": "abc"},
        {"x-request-id": "abc"},
        {"X-REQUEST-ID": "abc"},
        {"X-Request-Id": "  abc\t"},
        {"X-Correlation-ID": "abc"},
        [(b"x-request-id", b"abc")],
        [(b"X-Correlation-Id", b"abc")],
        [[b"x-request-id", b"abc"]],
        {"HTTP_X_REQUEST_ID": "abc", "wsgi.input": object(), "REQUEST_METHOD": "GET"},
        {"HTTP_X_CORRELATION_ID": "abc"},
        httpx.Headers({"X-Request-ID": "abc"}),
        requests.structures.CaseInsensitiveDict({"X-Request-ID": "abc"}),
    ],
)
def test_id_from_each_header_shape(headers: Any) -> None:
    assert correlation_id_from_headers(headers) == "abc"


def test_id_from_an_email_message() -> None:
    # http.server's `self.headers` is an email.message.Message: not a Mapping, but has items().
    import email.message

    message = email.message.Message()
    message["X-Request-ID"] = "abc"
    assert correlation_id_from_headers(message) == "abc"


def test_header_precedence() -> None:
    both = {"X-Request-ID": "rid", "X-Correlation-ID": "cid", "traceparent": TRACEPARENT}
    assert correlation_id_from_headers(both) == "rid"
    assert correlation_id_from_headers({**both, "X-Request-ID": "bad id"}) == "cid"
    no_ids = {"X-Request-ID": "bad id", "X-Correlation-ID": "x" * 200, "traceparent": TRACEPARENT}
    assert correlation_id_from_headers(no_ids) == TRACE
    assert correlation_id_from_headers({**no_ids, "traceparent": "junk"}) is None


def test_first_value_of_a_repeated_header_wins() -> None:
    assert correlation_id_from_headers([(b"x-request-id", b"one"), (b"x-request-id", b"two")]) == (
        "one"
    )
    assert correlation_id_from_headers(
        [(b"x-request-id", b"bad id"), (b"x-request-id", b"two")]
    ) is (None)


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        [],
        "X-Request-ID: abc",
        b"x-request-id",
        42,
        object(),
        [b"x-request-id"],
        [(b"x-request-id", b"abc", b"extra")],
        {"X-Request-ID": None},
        {"X-Request-ID": 123},
        {"X-Request-ID": ["abc"]},
        [(b"x-request-id", b"\xff\xfe")],
        [(b"x-request-id", "caf\u00e9".encode())],
        [(b"\xff", b"abc")],
        type("ItemsNeedsArguments", (), {"items": lambda self, n: []})(),
        {"X-Request-ID": "x" * 10_000_000},
        {"traceparent": "00-" + "a" * 10_000_000},
    ],
)
def test_odd_input_gives_none(headers: Any) -> None:
    assert correlation_id_from_headers(headers) is None


def test_an_endless_header_iterable_is_bounded() -> None:
    endless = itertools.chain(
        itertools.repeat((b"x-other", b"v")), [(b"x-request-id", b"never-reached")]
    )
    assert correlation_id_from_headers(endless) is None


def test_a_request_id_within_the_first_entries_is_found() -> None:
    headers = [(f"x-h{i}".encode(), b"v") for i in range(200)] + [(b"x-request-id", b"abc")]
    assert correlation_id_from_headers(headers) == "abc"


header_names = st.sampled_from(
    [
        "X-Request-ID",
        "x-request-id",
        "X-Correlation-ID",
        "traceparent",
        "Traceparent",
        "HTTP_X_REQUEST_ID",
        "HTTP_X_CORRELATION_ID",
        "HTTP_TRACEPARENT",
    ]
)
any_value = st.one_of(
    st.text(),
    st.binary(),
    st.none(),
    st.integers(),
    valid_ids,
    st.from_regex(r"\A[0-9a-fA-F]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?\Z"),
)
any_name = st.one_of(header_names, st.text(max_size=30))
any_headers = st.one_of(
    st.dictionaries(any_name, any_value, max_size=8),
    st.lists(
        st.tuples(
            st.one_of(header_names.map(str.encode), st.binary(max_size=30), st.text()),
            st.one_of(st.binary(), any_value),
        ),
        max_size=8,
    ),
    st.lists(any_value, max_size=4),
    any_value,
)


@given(any_headers)
def test_never_raises_and_returns_none_or_a_valid_id(headers: Any) -> None:
    found = correlation_id_from_headers(headers)
    assert found is None or is_valid_correlation_id(found)


@given(valid_ids, st.sampled_from(["X-Request-ID", "x-request-id", "X-Correlation-Id"]))
def test_a_valid_id_round_trips(value: str, name: str) -> None:
    assert correlation_id_from_headers({name: value}) == value
    assert correlation_id_from_headers([(name.encode(), value.encode())]) == value
    environ_key = "HTTP_" + name.upper().replace("-", "_")
    assert correlation_id_from_headers({environ_key: value}) == value


@given(
    st.text(alphabet=SAFE, min_size=1, max_size=60),
    st.characters(exclude_characters=SAFE),
    st.text(alphabet=SAFE, min_size=1, max_size=60),
)
@example("a", "\ud800", "b")  # a lone surrogate: its UTF-8 form is not valid UTF-8
@example("a", "\x00", "b")
@example("a", "\u00e9", "b")
def test_a_request_id_with_a_bad_character_is_ignored(head: str, bad: str, tail: str) -> None:
    value = head + bad + tail
    assert correlation_id_from_headers({"X-Request-ID": value}) is None
    # Header bytes as a client could send them ("surrogatepass": a str with a lone surrogate
    # has no strict UTF-8 form, and such bytes must be refused, not raise).
    for raw in (value.encode("utf-8", "surrogatepass"), value.encode("latin-1", "replace")):
        assert correlation_id_from_headers([(b"x-request-id", raw)]) is None


@given(st.text(alphabet=SAFE, min_size=MAX_CORRELATION_ID_LENGTH + 1, max_size=300))
def test_an_overlong_request_id_is_ignored(value: str) -> None:
    assert correlation_id_from_headers({"X-Request-ID": value}) is None


hex_id = st.text(alphabet=lower_hex, min_size=32, max_size=32).filter(lambda s: set(s) != {"0"})
hex_parent = st.text(alphabet=lower_hex, min_size=16, max_size=16).filter(lambda s: set(s) != {"0"})
hex_flags = st.text(alphabet=lower_hex, min_size=2, max_size=2)


@given(hex_id, hex_parent, hex_flags)
def test_a_valid_traceparent_gives_its_trace_id(trace: str, parent: str, flags: str) -> None:
    assert correlation_id_from_headers({"traceparent": f"00-{trace}-{parent}-{flags}"}) == trace
    assert correlation_id_from_headers({"HTTP_TRACEPARENT": f"00-{trace}-{parent}-{flags}"}) == (
        trace
    )


@given(
    st.text(alphabet=lower_hex, min_size=2, max_size=2).filter(lambda v: v not in ("00", "ff")),
    hex_id,
    hex_parent,
    hex_flags,
    st.one_of(st.just(""), st.text(alphabet=SAFE, max_size=20).map(lambda s: "-" + s)),
)
def test_a_later_version_is_read_forward_compatibly(
    version: str, trace: str, parent: str, flags: str, rest: str
) -> None:
    header = f"{version}-{trace}-{parent}-{flags}{rest}"
    assert correlation_id_from_headers({"traceparent": header}) == trace


@pytest.mark.parametrize(
    "traceparent",
    [
        f"ff-{TRACE}-{PARENT}-01",
        f"00-{'0' * 32}-{PARENT}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE.upper()}-{PARENT}-01",
        f"00-{TRACE}-{PARENT.upper()}-01",
        f"0A-{TRACE}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-0F",
        f"00-{TRACE[:-1]}-{PARENT}-01",
        f"00-{TRACE}a-{PARENT}-01",
        f"00-{TRACE}-{PARENT[:-1]}-01",
        f"00-{TRACE}-{PARENT}-1",
        f"00-{TRACE}-{PARENT}-01-extra",
        f"00-{TRACE}-{PARENT}-01x",
        f"01-{TRACE}-{PARENT}-01x",
        f"00_{TRACE}_{PARENT}_01",
        f"0-{TRACE}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}",
        "",
        TRACE,
    ],
)
def test_an_invalid_traceparent_gives_none(traceparent: str) -> None:
    assert correlation_id_from_headers({"traceparent": traceparent}) is None


@given(
    hex_id.filter(lambda s: any(c in "abcdef" for c in s)),
    hex_parent,
    st.sampled_from(["wrong-length", "upper", "zero-trace", "zero-parent", "version-ff"]),
)
def test_broken_traceparents_give_none(trace: str, parent: str, breakage: str) -> None:
    header = {
        "wrong-length": f"00-{trace}0-{parent}-01",
        "upper": f"00-{trace.upper()}-{parent}-01",
        "zero-trace": f"00-{'0' * 32}-{parent}-01",
        "zero-parent": f"00-{trace}-{'0' * 16}-01",
        "version-ff": f"ff-{trace}-{parent}-01",
    }[breakage]
    assert correlation_id_from_headers({"traceparent": header}) is None


# --- ensure_correlation_id --------------------------------------------------------------------


def test_ensure_takes_the_incoming_id_over_the_current_one() -> None:
    set_correlation_id("current")
    assert ensure_correlation_id({"X-Request-ID": "incoming"}) == "incoming"
    assert get_correlation_id() == "incoming"


def test_ensure_keeps_the_current_id_without_a_valid_incoming_one() -> None:
    set_correlation_id("current")
    assert ensure_correlation_id({"X-Request-ID": "not valid"}) == "current"
    assert ensure_correlation_id() == "current"
    assert get_correlation_id() == "current"


def test_ensure_generates_and_sets_a_new_id() -> None:
    value = ensure_correlation_id({})
    assert len(value) == 32
    assert get_correlation_id() == value
    assert ensure_correlation_id() == value


# --- threads ----------------------------------------------------------------------------------


def _set_and_read(value: str) -> tuple[str | None, str | None]:
    before = get_correlation_id()
    set_correlation_id(value)
    return before, get_correlation_id()


def test_executor_tasks_see_the_submitters_id_and_do_not_leak_back() -> None:
    with ContextThreadPoolExecutor(max_workers=2) as pool, correlation_scope("parent"):
        assert pool.submit(get_correlation_id).result() == "parent"
        assert pool.submit(_set_and_read, "child").result() == ("parent", "child")
        assert get_correlation_id() == "parent"
        assert pool.submit(get_correlation_id).result() == "parent"
        with correlation_scope("other"):
            assert pool.submit(get_correlation_id).result() == "other"


def test_executor_map_and_keyword_arguments() -> None:
    def read(n: int, *, suffix: str) -> str:
        return f"{get_correlation_id()}-{n}{suffix}"

    with ContextThreadPoolExecutor(max_workers=3) as pool, correlation_scope("m"):
        assert list(pool.map(lambda n: read(n, suffix="!"), range(4))) == [
            "m-0!",
            "m-1!",
            "m-2!",
            "m-3!",
        ]
        assert pool.submit(read, 9, suffix="?").result() == "m-9?"


def test_wrapped_callable_in_a_thread_sees_the_id_from_wrap_time() -> None:
    seen: list[tuple[str | None, str | None]] = []
    with correlation_scope("at-wrap"):
        wrapped = wrap_context(lambda: seen.append(_set_and_read("in-thread")))
    with correlation_scope("at-start"):
        thread = threading.Thread(target=wrapped)
        thread.start()
        thread.join()
        assert get_correlation_id() == "at-start"
    assert seen == [("at-wrap", "in-thread")]


def test_each_call_of_a_wrapped_callable_gets_a_fresh_copy() -> None:
    with correlation_scope("snap"):
        wrapped = wrap_context(_set_and_read)
    assert wrapped("first") == ("snap", "first")
    assert wrapped("second") == ("snap", "second")
    assert get_correlation_id() is None


def test_a_wrapped_callable_can_be_called_concurrently_and_recursively() -> None:
    barrier = threading.Barrier(4)

    def meet() -> str | None:
        barrier.wait(timeout=30)
        return get_correlation_id()

    with correlation_scope("shared"):
        wrapped = wrap_context(meet)
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(lambda _: wrapped(), range(4))) == ["shared"] * 4

    def depth(n: int) -> int:
        return n if n == 0 else recursive(n - 1) + 1

    recursive = wrap_context(depth)
    assert recursive(5) == 5


def test_wrap_context_keeps_the_name_and_doc() -> None:
    def documented() -> None:
        """Docs."""

    wrapped = wrap_context(documented)
    assert wrapped.__name__ == "documented"
    assert wrapped.__doc__ == "Docs."


# --- asyncio ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_concurrent_tasks_each_see_their_own_id() -> None:
    entered = [asyncio.Event(), asyncio.Event()]

    async def handle(index: int, value: str) -> list[str | None]:
        seen = []
        with correlation_scope(value):
            entered[index].set()
            await entered[1 - index].wait()  # both scopes are open now
            for _ in range(3):
                seen.append(get_correlation_id())
                await asyncio.sleep(0)
        return seen

    with correlation_scope("parent"):
        first, second = await asyncio.gather(handle(0, "task-a"), handle(1, "task-b"))
        assert get_correlation_id() == "parent"
    assert first == ["task-a"] * 3
    assert second == ["task-b"] * 3


@pytest.mark.asyncio
async def test_to_thread_carries_the_id() -> None:
    with correlation_scope("async-parent"):
        assert await asyncio.to_thread(get_correlation_id) == "async-parent"


# --- outgoing headers -------------------------------------------------------------------------


def test_outgoing_headers() -> None:
    assert outgoing_headers() == {}
    with correlation_scope("out"):
        assert outgoing_headers() == {"X-Request-ID": "out"}
        assert outgoing_headers("X-Correlation-ID") == {"X-Correlation-ID": "out"}


def test_inject_adds_without_overwriting() -> None:
    headers: dict[str, str] = {"Accept": "*/*"}
    assert inject_correlation_id(headers) is headers
    assert headers == {"Accept": "*/*"}  # no id set: nothing added
    with correlation_scope("inj"):
        assert inject_correlation_id(headers) == {"Accept": "*/*", "X-Request-ID": "inj"}
        kept = {"x-request-id": "theirs"}
        assert inject_correlation_id(kept) == {"x-request-id": "theirs"}
        custom: dict[str, str] = inject_correlation_id({}, header="X-Trace")
        assert custom == {"X-Trace": "inj"}


@pytest.mark.parametrize("header", ["", "X Request", "X-Request-ID\r\n", "Na:me", 5])
def test_a_bad_header_name_is_rejected(header: Any) -> None:
    with pytest.raises(ConfigurationError, match="invalid HTTP header name"):
        outgoing_headers(header)
    with pytest.raises(ConfigurationError, match=repr(header).replace("\\", "\\\\")):
        inject_correlation_id({}, header=header)
    with pytest.raises(ConfigurationError):
        CorrelationAuth(header=header)


def test_correlation_auth_rejects_a_non_callable_inner() -> None:
    with pytest.raises(ConfigurationError, match=r"HTTPBasicAuth"):
        CorrelationAuth(("user", "password"))  # type: ignore[arg-type]


class _EchoHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(
            {
                "request_id": self.headers.get("X-Request-ID"),
                "authorization": self.headers.get("Authorization"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, name="echo-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


def test_httpx_client_with_the_event_hook(echo_url: str) -> None:
    with httpx.Client(event_hooks={"request": [httpx_event_hook]}, trust_env=False) as client:
        assert client.get(echo_url).json()["request_id"] is None
        with correlation_scope("httpx-sync"):
            assert client.get(echo_url).json()["request_id"] == "httpx-sync"
            response = client.get(echo_url, headers={"X-Request-ID": "explicit"})
            assert response.json()["request_id"] == "explicit"


@pytest.mark.asyncio
async def test_httpx_async_client_with_the_async_hook(echo_url: str) -> None:
    async def fetch(client: httpx.AsyncClient, value: str) -> Any:
        with correlation_scope(value):
            return (await client.get(echo_url)).json()["request_id"]

    hooks = {"request": [ahttpx_event_hook]}
    async with httpx.AsyncClient(event_hooks=hooks, trust_env=False) as client:
        ids = await asyncio.gather(fetch(client, "a-1"), fetch(client, "a-2"))
    assert list(ids) == ["a-1", "a-2"]


def test_requests_session_with_correlation_auth(echo_url: str) -> None:
    with requests.Session() as session:
        session.trust_env = False
        session.auth = CorrelationAuth()
        with session.get(echo_url) as response:
            assert response.json()["request_id"] is None
        with correlation_scope("requests-id"), session.get(echo_url) as response:
            assert response.json()["request_id"] == "requests-id"


def test_correlation_auth_chains_an_inner_auth(echo_url: str) -> None:
    auth = CorrelationAuth(requests.auth.HTTPBasicAuth("user", "secret"), header="X-Request-ID")
    assert "HTTPBasicAuth" in repr(auth)
    with requests.Session() as session, correlation_scope("chained"):
        session.trust_env = False
        with session.get(echo_url, auth=auth) as response:
            body = response.json()
    assert body["request_id"] == "chained"
    assert body["authorization"].startswith("Basic ")


def test_module_does_not_import_http_clients() -> None:
    code = (
        "import sys, phoenixkit.masking.correlation\n"
        "print(','.join(m for m in ('httpx', 'requests') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_a_fresh_context_has_no_id() -> None:
    set_correlation_id("here")
    assert contextvars.Context().run(get_correlation_id) is None
