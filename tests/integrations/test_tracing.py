"""OpenTelemetry spans from phoenixkit.integrations.tracing, read back through the SDK's
in-memory exporter: cache and limiters on a real Redis, batch SQL and replica routing on a
real PostgreSQL primary with its streaming replica."""

from __future__ import annotations

import inspect
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import StatusCode
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from phoenixkit._backends import get_backend
from phoenixkit.batch import ItemsFailed
from phoenixkit.breaker import CircuitBreaker, CircuitOpenError
from phoenixkit.cache import MemoryTier, TieredCache, cached
from phoenixkit.errors import ConfigurationError
from phoenixkit.integrations import tracing
from phoenixkit.integrations.tracing import (
    instrument_tracing,
    instrumented_modules,
    uninstrument_tracing,
)
from phoenixkit.ratelimit import Lockout, RateLimiter, TieredRateLimiter
from phoenixkit.testing import FakeClock
from tests.servers import PostgresServer, RedisServer


class Spans:
    """The finished spans of one test, by name."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter

    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.all() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, [s.name for s in self.all()]
        return found[0]

    def attrs(self, name: str) -> dict[str, Any]:
        return dict(self.one(name).attributes or {})

    def clear(self) -> None:
        self.exporter.clear()


def _provider(**kw: Any) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(**kw)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@pytest.fixture(autouse=True)
def _never_left_instrumented() -> Iterator[None]:
    """A failing test must not leave the classes wrapped for the tests after it."""
    yield
    uninstrument_tracing()


@pytest.fixture
def spans() -> Iterator[Spans]:
    provider, exporter = _provider()
    instrument_tracing(provider)
    yield Spans(exporter)
    uninstrument_tracing()
    provider.shutdown()


def _a(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _values(span: ReadableSpan) -> list[Any]:
    return list(_a(span).values())


# cache -----------------------------------------------------------------------------------


@pytest.fixture
def namespace() -> str:
    return f"tr{uuid.uuid4().hex[:10]}"


def test_cache_reads_say_hit_miss_and_tier_on_redis(
    spans: Spans, redis_server: RedisServer, namespace: str
) -> None:
    with (
        TieredCache(MemoryTier(maxsize=100, ttl=60), redis_server.url, namespace=namespace) as a,
        TieredCache(MemoryTier(maxsize=100, ttl=60), redis_server.url, namespace=namespace) as b,
    ):
        assert a.get("user:42", "dflt") == "dflt"
        miss = spans.attrs("phoenixkit.cache.get")
        assert miss["phoenixkit.cache.hit"] is False
        assert miss["phoenixkit.cache.namespace"] == namespace
        assert "phoenixkit.cache.tier" not in miss
        a.set("user:42", {"name": "Ada"})
        assert len(spans.named("phoenixkit.cache.set")) == 1  # set -> set_many: one span
        assert spans.named("phoenixkit.cache.set_many") == []
        spans.clear()
        assert a.get("user:42") == {"name": "Ada"}  # a's L1
        assert b.get("user:42") == {"name": "Ada"}  # b's L1 is empty: Redis
        tiers = [_a(s)["phoenixkit.cache.tier"] for s in spans.named("phoenixkit.cache.get")]
        assert tiers == ["l1", "l2"]
        spans.clear()
        assert b.get_many(iter(["user:42", "user:7"])) == {"user:42": {"name": "Ada"}}
        many = spans.attrs("phoenixkit.cache.get_many")
        assert (many["phoenixkit.cache.keys"], many["phoenixkit.cache.hits"]) == (2, 1)
        a.delete("user:42")
        a.invalidate_tags("t1", "t2")
        assert spans.attrs("phoenixkit.cache.invalidate_tags")["phoenixkit.cache.tags"] == 2
        deadline = time.monotonic() + 10  # guards against a hang only: the set and the delete
        while b.stats().invalidations_received < 2 and time.monotonic() < deadline:
            time.sleep(0.001)  # b drops its L1 copy when a's delete reaches it
        assert b.get("user:42") is None
    for span in spans.all():  # the raw key is never recorded by default
        assert not any("user:42" in str(v) for v in _values(span)), span.name


def test_keys_are_hashed_by_default_raw_or_left_out_on_request(namespace: str) -> None:
    cache = TieredCache(MemoryTier(maxsize=10, ttl=60), namespace=namespace)
    found = {}
    for keys in ("hash", "raw", "none"):
        provider, exporter = _provider()
        instrument_tracing(provider, keys=keys, key_salt=b"fleet-wide")
        cache.get("user:42")
        cache.get("user:42")
        uninstrument_tracing()
        got = [dict(s.attributes or {}) for s in exporter.get_finished_spans()]
        found[keys] = [
            a.get("phoenixkit.cache.key_hash", a.get("phoenixkit.cache.key")) for a in got
        ]
    first, second = found["hash"]
    assert first == second
    assert isinstance(first, str)
    assert "42" not in first
    assert found["raw"] == ["user:42", "user:42"]
    assert found["none"] == [None, None]
    provider, exporter = _provider()
    instrument_tracing(provider, keys="hash", key_salt=b"another")
    cache.get("user:42")
    uninstrument_tracing()
    other = _a(exporter.get_finished_spans()[0])["phoenixkit.cache.key_hash"]
    assert other != first  # keyed: no dictionary of user ids reverses it without the salt


def test_get_or_set_and_cached_functions(spans: Spans, namespace: str) -> None:
    cache = TieredCache(MemoryTier(maxsize=10, ttl=60), namespace=namespace)

    def load() -> int:
        cache.get("inner")  # a cache call made by the loader is a child span
        return 7

    assert cache.get_or_set("k", load) == 7
    outer = spans.one("phoenixkit.cache.get_or_set")
    inner = spans.one("phoenixkit.cache.get")
    assert inner.parent is not None
    assert inner.parent.span_id == outer.context.span_id
    assert _a(outer)["phoenixkit.cache.loaded"] is True
    assert _a(outer)["phoenixkit.cache.hit"] is False
    spans.clear()
    assert cache.get_or_set("k", load) == 7
    assert spans.attrs("phoenixkit.cache.get_or_set")["phoenixkit.cache.tier"] == "l1"
    spans.clear()

    @cached(cache)
    def double(x: int) -> int:
        return 2 * x

    assert double(21) == 42  # L1 cannot answer: a span, through the get_or_set path
    miss = spans.attrs("phoenixkit.cache.get_or_set")
    assert miss["phoenixkit.cache.loaded"] is True
    spans.clear()
    assert double(21) == 42  # an L1 hit of a decorated function stays on its fast path
    assert spans.all() == []


@pytest.mark.asyncio
async def test_async_cache_twins_on_redis(redis_server: RedisServer, namespace: str) -> None:
    provider, exporter = _provider()
    instrument_tracing(provider)
    try:
        with TieredCache(
            MemoryTier(maxsize=10, ttl=60), redis_server.url, namespace=namespace
        ) as c:
            await c.aset("a", 1)
            assert await c.aget("a") == 1
            assert await c.aget("zz", "d") == "d"

            async def aload() -> int:
                await c.aget("inner")
                return 5

            assert await c.aget_or_set("b", aload) == 5
            assert await c.aget_many(["a", "b", "c"]) == {"a": 1, "b": 5}
            await c.adelete("a")
            await c.ainvalidate_tags("x")

            @cached(c)
            async def triple(x: int) -> int:
                return 3 * x

            assert await triple(2) == 6  # a miss: through the async get_or_set path
            assert await triple(2) == 6  # an L1 hit: no span
    finally:
        uninstrument_tracing()
        await get_backend(redis_server.url).aclose()
    names = [s.name for s in exporter.get_finished_spans()]
    assert names == [
        "phoenixkit.cache.set",
        "phoenixkit.cache.get",
        "phoenixkit.cache.get",
        "phoenixkit.cache.get",  # the loader's, inside get_or_set
        "phoenixkit.cache.get_or_set",
        "phoenixkit.cache.get_many",
        "phoenixkit.cache.delete",
        "phoenixkit.cache.invalidate_tags",
        "phoenixkit.cache.get_or_set",
    ]
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    loaded = next(s for s in exporter.get_finished_spans() if s.name.endswith("get_or_set"))
    inner = [s for s in exporter.get_finished_spans() if s.parent is not None]
    assert [s.parent.span_id for s in inner] == [loaded.context.span_id]  # type: ignore[union-attr]
    assert _a(by_name["phoenixkit.cache.get_many"])["phoenixkit.cache.hits"] == 2


_KEY = st.sampled_from(["a", "b", "c", "", "x" * 300]) | st.integers(0, 2)
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("get"), _KEY, st.sampled_from([None, 0, "d"])),
        st.tuples(st.just("set"), _KEY, st.integers(0, 9) | st.none()),
        st.tuples(st.just("get_or_set"), _KEY, st.integers(0, 9) | st.none()),
        st.tuples(st.just("get_many"), st.lists(_KEY, max_size=4), st.none()),
        st.tuples(st.just("delete"), _KEY, st.none()),
        st.tuples(st.just("invalidate_tags"), st.sampled_from(["t", "u"]), st.none()),
    ),
    max_size=25,
)


def _play(ops: list[tuple[str, Any, Any]]) -> list[Any]:
    cache = TieredCache(MemoryTier(maxsize=3, ttl=60, clock=FakeClock()), namespace="prop")
    out: list[Any] = []
    for op, key, arg in ops:
        try:
            if op == "get":
                out.append(cache.get(key, arg))
            elif op == "set":
                out.append(cache.set(key, arg, tags=["t"]))
            elif op == "get_or_set":
                out.append(cache.get_or_set(key, lambda arg=arg: arg, tags=["u"]))  # type: ignore[misc]
            elif op == "get_many":
                out.append(cache.get_many(key))
            else:
                out.append(getattr(cache, op)(key))
        except Exception as exc:  # a bad key fails alike, traced or not
            out.append((type(exc), str(exc)))
    return out


@given(_OPS)
def test_tracing_never_changes_what_the_cache_answers(ops: list[tuple[str, Any, Any]]) -> None:
    plain = _play(ops)
    provider, exporter = _provider()
    instrument_tracing(provider, keys="raw")
    try:
        traced = _play(ops)
    finally:
        uninstrument_tracing()
    assert traced == plain
    assert len(exporter.get_finished_spans()) == len(ops)  # one span per call, none nested


def test_an_unsampled_span_leaves_results_alone(namespace: str) -> None:
    provider, exporter = _provider(sampler=ALWAYS_OFF)
    instrument_tracing(provider)
    try:
        cache = TieredCache(MemoryTier(maxsize=10, ttl=60), namespace=namespace)
        assert cache.get("nope", "dflt") == "dflt"
        assert cache.get_or_set("k", lambda: 3) == 3
    finally:
        uninstrument_tracing()
    assert exporter.get_finished_spans() == ()


# limiters --------------------------------------------------------------------------------


def test_limiter_decisions_on_redis(spans: Spans, redis_server: RedisServer) -> None:
    name = f"tr-{uuid.uuid4().hex[:8]}"
    limiter = RateLimiter("2/minute", backend=redis_server.url, name=name)
    assert limiter.hit("client-1").allowed
    assert limiter.hit("client-1", cost=1).allowed
    assert not limiter.hit("client-1").allowed
    hits = spans.named("phoenixkit.ratelimit.hit")
    assert [_a(s)["phoenixkit.ratelimit.allowed"] for s in hits] == [True, True, False]
    assert [_a(s)["phoenixkit.ratelimit.remaining"] for s in hits] == [1, 0, 0]
    last = dict(hits[-1].attributes or {})
    assert last["phoenixkit.ratelimit.name"] == name
    assert last["phoenixkit.ratelimit.limit"] == 2
    assert last["phoenixkit.ratelimit.retry_after"] > 0
    assert _a(hits[1])["phoenixkit.ratelimit.cost"] == 1
    assert hits[-1].status.status_code is StatusCode.UNSET  # a denial is an answer, not an error
    assert not any("client-1" in str(v) for s in hits for v in _values(s))
    spans.clear()
    tiers = TieredRateLimiter({"free": "1/minute"}, backend=redis_server.url, name=name + "t")
    tiers.hit("client-2", tier="free")
    assert spans.attrs("phoenixkit.ratelimit.hit")["phoenixkit.ratelimit.tier"] == "free"
    lock = Lockout(max_failures=1, backend=redis_server.url, name=name + "l")
    lock.failure("login-1")
    assert lock.check("login-1").allowed is False
    check = spans.attrs("phoenixkit.ratelimit.lockout.check")
    assert check["phoenixkit.ratelimit.lockout.allowed"] is False
    assert len(spans.named("phoenixkit.ratelimit.lockout.failure")) == 1


@pytest.mark.asyncio
async def test_async_limiter_twins_on_redis(redis_server: RedisServer) -> None:
    provider, exporter = _provider()
    instrument_tracing(provider)
    try:
        limiter = RateLimiter("5/minute", backend=redis_server.url, name=uuid.uuid4().hex[:8])
        await limiter.ahit("k", cost=2)
        await limiter.apeek("k")
    finally:
        uninstrument_tracing()
        await get_backend(redis_server.url).aclose()
    hit, peek = exporter.get_finished_spans()
    assert (hit.name, peek.name) == ("phoenixkit.ratelimit.hit", "phoenixkit.ratelimit.peek")
    assert _a(hit)["phoenixkit.ratelimit.remaining"] == 3
    assert _a(hit)["phoenixkit.ratelimit.cost"] == 2
    assert _a(peek)["phoenixkit.ratelimit.remaining"] == 2


# breaker ---------------------------------------------------------------------------------


def test_breaker_calls_failures_and_rejections(spans: Spans) -> None:
    br = CircuitBreaker("tr-payments", minimum_calls=1, window_size=1, open_duration=60)

    def pay() -> str:
        return "paid"

    def boom() -> None:
        raise ValueError("card declined")

    assert br.call(pay) == "paid"
    ok = spans.attrs("phoenixkit.breaker.call")
    assert ok == {
        "phoenixkit.breaker.name": "tr-payments",
        "phoenixkit.breaker.state": "closed",
        "code.function": pay.__qualname__,
    }
    spans.clear()
    with pytest.raises(ValueError, match="declined"):
        br.call(boom)
    failed = spans.one("phoenixkit.breaker.call")
    assert failed.status.status_code is StatusCode.ERROR
    assert _a(failed)["phoenixkit.breaker.state_after"] == "open"
    assert [e.name for e in failed.events] == ["exception"]
    spans.clear()
    with pytest.raises(CircuitOpenError):
        br.call(pay)
    rejected = spans.one("phoenixkit.breaker.call")
    assert rejected.status.status_code is StatusCode.ERROR
    assert rejected.status.description == "circuit open"
    assert _a(rejected)["phoenixkit.breaker.rejected"] is True
    assert _a(rejected)["phoenixkit.breaker.state"] == "open"


@pytest.mark.asyncio
async def test_breaker_acall_and_a_decorator_made_after_instrumenting(spans: Spans) -> None:
    br = CircuitBreaker("tr-async")

    @br
    async def fetch(x: int) -> int:
        return x + 1

    assert await fetch(1) == 2
    assert await br.acall(fetch.__wrapped__, 2) == 3  # type: ignore[attr-defined]
    names = [s.name for s in spans.all()]
    assert names == ["phoenixkit.breaker.call", "phoenixkit.breaker.call"]


def test_a_function_decorated_with_a_breaker_before_instrumenting_is_traced() -> None:
    br = CircuitBreaker("tr-early")

    @br
    def early(x: int) -> int:
        return x * 2

    provider, exporter = _provider()
    instrument_tracing(provider)
    try:
        assert early(4) == 8
        assert [s.name for s in exporter.get_finished_spans()] == ["phoenixkit.breaker.call"]
    finally:
        uninstrument_tracing()
        provider.shutdown()
    assert early(5) == 10  # still works once the original methods are back


# batch -----------------------------------------------------------------------------------


def test_run_batches_has_a_child_span_per_chunk_call(spans: Spans) -> None:
    from phoenixkit import batch

    def write(chunk: list[int]) -> None:
        if 7 in chunk:
            raise ValueError("bad item")

    report = batch.run_batches(range(10), write, size=4, concurrency=2)
    assert report.failed == 1
    run = spans.one("phoenixkit.batch.run_batches")
    attrs = dict(run.attributes or {})
    assert attrs["phoenixkit.batch.items"] == 10
    assert attrs["phoenixkit.batch.chunks"] == 3
    assert (attrs["phoenixkit.batch.succeeded"], attrs["phoenixkit.batch.failed"]) == (9, 1)
    assert run.status.status_code is StatusCode.ERROR
    chunks = spans.named("phoenixkit.batch.chunk")
    assert all(c.parent is not None and c.parent.span_id == run.context.span_id for c in chunks)
    assert all(c.context.trace_id == run.context.trace_id for c in chunks)  # across threads
    # 3 chunks, and the failing one (4..7) bisected: 4..5, 6..7, 6, 7
    assert sorted(_a(c)["phoenixkit.batch.items"] for c in chunks) == [1, 1, 2, 2, 2, 4, 4]
    failing = [c for c in chunks if c.status.status_code is StatusCode.ERROR]
    assert sorted(_a(c)["phoenixkit.batch.items"] for c in failing) == [1, 2, 4]


@pytest.mark.asyncio
async def test_arun_batches_chunks_and_partial_failures(spans: Spans) -> None:
    from phoenixkit.batch import runner

    async def write(chunk: list[int]) -> None:
        if 3 in chunk:
            raise ItemsFailed([(chunk.index(3), ValueError("no"))])

    report = await runner.arun_batches(range(6), write, size=3)
    assert report.failed == 1
    run = spans.one("phoenixkit.batch.arun_batches")
    chunks = spans.named("phoenixkit.batch.chunk")
    assert len(chunks) == 2
    assert all(c.parent.span_id == run.context.span_id for c in chunks)
    partial = [c for c in chunks if c.status.status_code is StatusCode.ERROR]
    assert _a(partial[0])["phoenixkit.batch.failed"] == 1


@pytest.fixture
def engine(pg_primary: PostgresServer) -> Iterator[sa.engine.Engine]:
    eng = sa.create_engine(pg_primary.sqlalchemy_url)
    yield eng
    eng.dispose()


@pytest.fixture
def table(engine: sa.engine.Engine) -> Iterator[sa.Table]:
    meta = sa.MetaData()
    t = sa.Table(
        f"trace_{uuid.uuid4().hex[:10]}",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("qty", sa.Integer, sa.CheckConstraint("qty >= 0"), nullable=False),
    )
    meta.create_all(engine)
    yield t
    meta.drop_all(engine)


def test_bulk_insert_and_copy_on_postgres(
    spans: Spans, engine: sa.engine.Engine, table: sa.Table
) -> None:
    from phoenixkit.batch import bulk_insert, copy_rows

    rows = [{"id": i, "qty": -1 if i == 5 else i} for i in range(10)]
    report = bulk_insert(engine, table, rows, size=4)
    assert report.failed == 1
    bulk = spans.one("phoenixkit.batch.bulk_insert")
    run = spans.one("phoenixkit.batch.run_batches")
    assert run.parent is not None
    assert run.parent.span_id == bulk.context.span_id
    chunks = spans.named("phoenixkit.batch.chunk")
    assert len(chunks) == 3
    assert all(c.parent.span_id == run.context.span_id for c in chunks)  # type: ignore[union-attr]
    attrs = dict(bulk.attributes or {})
    assert attrs["phoenixkit.batch.table"] == table.name
    assert attrs["phoenixkit.batch.failed"] == 1
    spans.clear()
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert copy_rows(raw, table.name, ["id", "qty"], [(100, 1), (101, 2)]) == 2
        raw.commit()
    copied = spans.attrs("phoenixkit.batch.copy_rows")
    assert copied["phoenixkit.batch.items"] == 2
    assert copied["phoenixkit.batch.table"] == table.name


# replicas --------------------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "tracing_rows"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


@pytest.fixture
def rows_table(pg_primary: PostgresServer, pg_replica: PostgresServer) -> Iterator[None]:
    eng = sa.create_engine(pg_primary.sqlalchemy_url)
    Base.metadata.create_all(eng)
    eng.dispose()
    if pg_replica.replay_paused():
        pg_replica.resume_replay()
    pg_replica.wait_caught_up()
    yield
    if pg_replica.replay_paused():
        pg_replica.resume_replay()


@pytest.fixture
def routed(
    pg_primary: PostgresServer, pg_replica: PostgresServer, rows_table: None
) -> Iterator[Any]:
    from phoenixkit.replicas import ReplicaRouter
    from phoenixkit.testing import FakeClock

    router = ReplicaRouter(
        pg_primary.sqlalchemy_url, {"r1": pg_replica.sqlalchemy_url}, clock=FakeClock(), start=False
    )
    yield router
    router.close()


def _routes(spans: Spans) -> list[tuple[Any, Any]]:
    return [
        (_a(s)["phoenixkit.replicas.node"], _a(s)["phoenixkit.replicas.reason"])
        for s in spans.named("phoenixkit.replicas.route")
    ]


def test_sqlalchemy_routing_spans_name_the_node_and_the_reason(
    spans: Spans, routed: Any, pg_replica: PostgresServer
) -> None:
    name = uuid.uuid4().hex
    with routed.session() as s:
        s.execute(sa.select(Row).where(Row.name == name)).all()  # a read: the replica
        s.execute(sa.select(Row).where(Row.name == name)).all()  # same transaction
        s.execute(sa.insert(Row).values(name=name))  # a write
        s.execute(sa.select(Row).where(Row.name == name)).all()  # a read after it
        s.commit()
        token = s.token
    assert _routes(spans) == [
        ("r1", "replica"),
        ("r1", "transaction"),
        ("primary", "write"),
        ("primary", "read_after_write"),
    ]
    spans.clear()
    with routed.use_primary(), routed.session() as s:
        s.execute(sa.select(Row)).all()
    assert _routes(spans) == [("primary", "pinned")]
    spans.clear()
    pg_replica.pause_replay()
    name2 = uuid.uuid4().hex
    with routed.session(token=token) as s:
        s.execute(sa.insert(Row).values(name=name2))
        s.commit()
        token = s.token
    with routed.session(token=token) as s:  # the replica has not replayed that write
        assert s.execute(sa.select(Row).where(Row.name == name2)).all() != []
    assert _routes(spans)[-1] == ("primary", "consistency")


def test_psycopg_router_spans(
    spans: Spans, rows_table: None, pg_primary: PostgresServer, pg_replica: PostgresServer
) -> None:
    from phoenixkit.replicas import PsycopgRouter
    from phoenixkit.testing import FakeClock

    nodes = {"r1": pg_replica.url}
    with PsycopgRouter(pg_primary.url, nodes, clock=FakeClock(), start=False) as router:
        assert router.read("SELECT pg_is_in_recovery()") == [(True,)]
        router.write("INSERT INTO tracing_rows (name) VALUES (%s)", ("p",))
        with router.connection() as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            inside = spans.all()  # the connection span is still open here
        with router.use_primary(), router.connection() as conn:
            conn.execute("SELECT 1")
    assert [s.name for s in inside].count("phoenixkit.replicas.connection") == 1  # write's
    read = spans.attrs("phoenixkit.replicas.read")
    assert (read["phoenixkit.replicas.node"], read["phoenixkit.replicas.reason"]) == (
        "r1",
        "replica",
    )
    conns = [dict(s.attributes or {}) for s in spans.named("phoenixkit.replicas.connection")]
    reasons = [(a["phoenixkit.replicas.node"], a["phoenixkit.replicas.reason"]) for a in conns]
    assert reasons == [("primary", "write"), ("r1", "replica"), ("primary", "pinned")]
    write = spans.one("phoenixkit.replicas.write")
    assert _a(write)["phoenixkit.replicas.reason"] == "write"
    first_conn = spans.named("phoenixkit.replicas.connection")[0]
    assert first_conn.parent is not None
    assert first_conn.parent.span_id == write.context.span_id


def test_a_psycopg_read_retried_on_the_primary_names_the_primary(
    spans: Spans, rows_table: None, pg_primary: PostgresServer, pg_replica: PostgresServer
) -> None:
    """The replica's connection dies under the read: the span names the node that answered."""
    import psycopg

    from phoenixkit.replicas import PsycopgRouter
    from phoenixkit.testing import FakeClock

    app = f"tr-{uuid.uuid4().hex[:10]}"
    pool = {"min_size": 1, "max_size": 1, "kwargs": {"application_name": app}}
    nodes = {"r1": pg_replica.url}
    with PsycopgRouter(
        pg_primary.url, nodes, clock=FakeClock(), start=False, pool_options=pool
    ) as router:
        assert router.read("SELECT pg_is_in_recovery()") == [(True,)]  # r1's pooled connection
        with psycopg.connect(pg_replica.url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (app,),
            ).fetchall()
        assert killed == [(True,)]
        spans.clear()
        assert router.read("SELECT pg_is_in_recovery()") == [(False,)]  # the primary answered
        assert router.status().failovers == 1
    read = spans.attrs("phoenixkit.replicas.read")
    assert read["phoenixkit.replicas.node"] == "primary"
    assert read["phoenixkit.replicas.reason"] == "failover"
    assert read["phoenixkit.replicas.failed_node"] == "r1"
    assert spans.one("phoenixkit.replicas.read").status.status_code is StatusCode.UNSET


# instrumenting ---------------------------------------------------------------------------


def _patched() -> dict[tuple[Any, str], Any]:
    return {(owner, name): vars(owner)[name] for owner, name, _, _ in tracing._S.patches}


def test_uninstrument_restores_and_instrumenting_twice_wraps_once(namespace: str) -> None:
    from phoenixkit.batch import runner

    originals = {
        "get": TieredCache.__dict__["get"],
        "aget": TieredCache.__dict__["aget"],
        "call": CircuitBreaker.__dict__["call"],
        "run": runner.run_batches,
    }
    provider, exporter = _provider()
    instrument_tracing(provider)
    first = _patched()
    instrument_tracing(provider)  # again: re-instrumented, not wrapped twice
    second = _patched()
    assert set(first) == set(second)
    assert TieredCache.get.__wrapped__ is originals["get"]  # type: ignore[attr-defined]
    assert inspect.signature(TieredCache.get) == inspect.signature(originals["get"])
    assert inspect.iscoroutinefunction(TieredCache.aget)
    assert TieredCache.aget.__name__ == "aget"
    assert runner.run_batches.__wrapped__ is originals["run"]  # type: ignore[attr-defined]
    stale = TieredCache.get
    cache = TieredCache(MemoryTier(maxsize=10, ttl=60), namespace=namespace)
    cache.get("k")
    assert len(exporter.get_finished_spans()) == 1  # one span, not two
    assert instrumented_modules() == ("cache", "ratelimit", "breaker", "batch", "replicas")
    uninstrument_tracing()
    uninstrument_tracing()  # harmless
    assert instrumented_modules() == ()
    assert TieredCache.__dict__["get"] is originals["get"]
    assert TieredCache.__dict__["aget"] is originals["aget"]
    assert CircuitBreaker.__dict__["call"] is originals["call"]
    assert runner.run_batches is originals["run"]
    from phoenixkit import batch

    assert batch.run_batches is originals["run"]
    for (owner, name), _ in first.items():
        assert not getattr(vars(owner)[name], "__phoenixkit_traced__", False), (owner, name)
    assert stale(cache, "k", "d") == "d"  # a wrapper kept elsewhere passes through
    assert len(exporter.get_finished_spans()) == 1


def test_only_the_modules_asked_for(namespace: str) -> None:
    provider, exporter = _provider()
    instrument_tracing(provider, modules=("breaker",))
    try:
        assert "get" in TieredCache.__dict__
        assert not hasattr(TieredCache.get, "__wrapped__")
        TieredCache(MemoryTier(maxsize=10, ttl=60), namespace=namespace).get("k")
        CircuitBreaker("tr-only").call(lambda: None)
    finally:
        uninstrument_tracing()
    assert [s.name for s in exporter.get_finished_spans()] == ["phoenixkit.breaker.call"]


def test_without_the_otel_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from phoenixkit.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    with pytest.raises(MissingDependencyError, match="otel"):
        instrument_tracing()
    assert instrumented_modules() == ()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"keys": "plain"}, "keys='plain'"),
        ({"modules": ("cache", "queues")}, "queues"),
        ({"modules": "cache"}, "modules must be"),
        ({"key_salt": "text"}, "key_salt"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        instrument_tracing(**options)
    assert instrumented_modules() == ()
