"""Fingerprints and sketches: pure code, checked exhaustively with hypothesis."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phoenixkit.errors import ConfigurationError
from phoenixkit.querymon.fingerprint import fingerprint, normalize
from phoenixkit.querymon.sketch import Sketch, WindowedSketch

# Fingerprints ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SELECT * FROM users WHERE id = 1", "select *  from users where id=2"),
        ("SELECT * FROM users WHERE id = 1", "SELECT * FROM users WHERE id = %s"),
        ("SELECT * FROM users WHERE id = $1", "SELECT * FROM users WHERE id = :id"),
        ("SELECT * FROM t WHERE name = 'bob'", "SELECT * FROM t WHERE name = 'it''s'"),
        ("SELECT * FROM t WHERE x IN (1, 2, 3)", "SELECT * FROM t WHERE x IN (4)"),
        ("SELECT * FROM t WHERE x IN (%s, %s)", "SELECT * FROM t WHERE x IN (%(a)s)"),
        ("INSERT INTO t (a, b) VALUES (1, 'x')", "INSERT INTO t (a, b) VALUES (2, 'y'), (3, 'z')"),
        ("SELECT 1 -- trailing comment", "/* leading */ SELECT 2;"),
        ("SELECT $$a body$$", "SELECT $tag$other$tag$"),
        ("SELECT E'\\n' , 1.5e3", "SELECT 'x', -2"),
        ("select\n\tcount(*)\nfrom   orders", "SELECT COUNT(*) FROM ORDERS"),
    ],
)
def test_queries_that_differ_only_in_values_share_a_fingerprint(a: str, b: str) -> None:
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a).id == fingerprint(b).id


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SELECT * FROM users WHERE id = 1", "SELECT * FROM orders WHERE id = 1"),
        ('SELECT * FROM "Users"', "SELECT * FROM users"),
        ("SELECT a FROM t", "SELECT b FROM t"),
        ("SELECT * FROM t WHERE x = 1", "SELECT * FROM t WHERE x > 1"),
        ("SELECT x::int FROM t", "SELECT x FROM t"),
        ("SELECT * FROM table1", "SELECT * FROM table2"),
    ],
)
def test_different_queries_do_not(a: str, b: str) -> None:
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(a).id != fingerprint(b).id


def test_normal_form() -> None:
    sql = "SELECT name, 42 FROM users /* c */ WHERE id IN (1,2,3) AND note = 'x' AND y = :y"
    assert normalize(sql) == "select name,? from users where id in (...) and note=? and y=?"
    assert normalize("SELECT x::int") == "select x::int"


@given(st.text(max_size=300))
def test_any_text_fingerprints_without_error(sql: str) -> None:
    fp = fingerprint(sql)
    assert isinstance(fp, str)
    assert len(fp.id) == 16
    assert fingerprint(sql) == fp  # deterministic


@given(
    table=st.sampled_from(["users", "orders", "line_items"]),
    values=st.lists(st.integers() | st.text(alphabet="abc' ", max_size=8), min_size=1),
)
def test_literals_never_leak_into_the_fingerprint(table: str, values: list[int | str]) -> None:
    def lit(v: int | str) -> str:
        return str(v) if isinstance(v, int) else "'" + v.replace("'", "''") + "'"

    sql = (
        f"SELECT * FROM {table} WHERE k IN ({', '.join(map(lit, values))}) AND v = {lit(values[0])}"
    )
    assert fingerprint(sql) == f"select*from {table} where k in (...) and v=?"


def test_malformed_sql_still_fingerprints() -> None:
    assert fingerprint("SELECT 'unterminated") == "select ?"
    assert fingerprint("SELECT /* open comment") == "select"
    assert fingerprint("SELECT $$ open") == "select ?"
    assert fingerprint(b"SELECT 1") == "select ?"  # type: ignore[arg-type]


# Sketches ---------------------------------------------------------------------------------

VALUES = st.lists(
    st.floats(min_value=1e-6, max_value=3600, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=500,
)


@settings(max_examples=300)
@given(values=VALUES, q=st.floats(min_value=0, max_value=1))
def test_quantiles_are_within_one_percent_of_the_exact_sample_quantile(
    values: list[float], q: float
) -> None:
    sketch = Sketch(0.01)
    for v in values:
        sketch.add(v)
    exact = sorted(values)[math.floor(q * (len(values) - 1))]
    assert abs(sketch.quantile(q) - exact) <= 0.01 * exact * (1 + 1e-9)
    assert sketch.count == len(values)
    assert sketch.sum == pytest.approx(sum(values))


@given(a=VALUES, b=VALUES, q=st.sampled_from([0.5, 0.9, 0.95, 0.99]))
def test_merging_equals_one_sketch_of_everything(a: list[float], b: list[float], q: float) -> None:
    one, left, right = Sketch(), Sketch(), Sketch()
    for v in a + b:
        one.add(v)
    for v in a:
        left.add(v)
    for v in b:
        right.add(v)
    left.merge(Sketch.from_dict(right.to_dict()))  # as from another process
    assert left.buckets == one.buckets
    assert left.quantile(q) == one.quantile(q)
    assert (left.count, left.min, left.max) == (one.count, one.min, one.max)


def test_memory_is_bounded() -> None:
    sketch = Sketch(0.01, max_buckets=64)
    for i in range(1, 100_000):
        sketch.add(i * 1e-6 * (1.07 ** (i % 300)))
    assert len(sketch.buckets) <= 64
    assert sketch.count == 99_999
    assert sketch.quantile(1.0) == sketch.max  # the top is exact enough: clamped to max


def test_zeros_empty_and_bad_input() -> None:
    sketch = Sketch()
    assert math.isnan(sketch.quantile(0.5))
    sketch.add(0.0)
    sketch.add(math.nan)
    sketch.add(2.0)
    assert sketch.count == 2
    assert sketch.quantile(0) == 0.0
    assert sketch.quantile(1) == pytest.approx(2.0, rel=0.01)
    with pytest.raises(ConfigurationError, match="quantile must be in"):
        sketch.quantile(1.5)
    with pytest.raises(ConfigurationError, match="relative_accuracy"):
        Sketch(0)
    with pytest.raises(ConfigurationError, match="cannot merge"):
        sketch.merge(Sketch(0.02))


def test_windowed_sketch_forgets_old_slices() -> None:
    w = WindowedSketch(slices=3, slice_seconds=60)
    w.add(1.0, now=0)
    w.add(2.0, now=61)
    w.add(3.0, now=125)
    assert w.merged(now=130).count == 3
    assert w.merged(now=185).count == 2  # the slice of t=0 has left the window
    assert w.merged(now=500).count == 0
    w.add(4.0, now=500)
    assert w.merged(now=500).max == 4.0
