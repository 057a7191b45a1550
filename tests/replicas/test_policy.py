"""The router's pure decisions: LSNs, admit / evict, choice among replicas, spill.

The admit / evict policy is driven by hypothesis (`RuleBasedStateMachine`) beside a
reference model written differently: it keeps each replica's whole history of probe
outcomes and decides "in rotation?" from that history alone, by its trailing runs
(the rules of issue 6: out after N failed probes in a row or one lagging / not-in-recovery
probe or a failed read; back after M healthy probes in a row; the very first healthy probe
admits).
"""

from __future__ import annotations

import functools
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from phoenixkit.errors import ConfigurationError
from phoenixkit.replicas.policy import (
    PRIMARY,
    NodeState,
    NoReplicaAvailable,
    PolicyConfig,
    Probe,
    ReplicaPolicy,
    Route,
    choose,
    format_lsn,
    observe,
    parse_lsn,
)

LSNS = st.integers(min_value=0, max_value=2**64 - 1)
HEALTHY, FAIL, LAGGING, NOT_STANDBY, READ_FAILED = "healthy", "fail", "lag", "primary", "read"


# LSN text -------------------------------------------------------------------------------


@given(LSNS)
def test_format_and_parse_are_inverse(position: int) -> None:
    text = format_lsn(position)
    assert parse_lsn(text) == position
    assert parse_lsn(text.lower()) == position


@given(LSNS, LSNS)
def test_lsn_order_is_the_order_of_positions(a: int, b: int) -> None:
    # parse_lsn maps 'X/Y' onto X * 2**32 + Y: a total order, the integers'.
    assert (parse_lsn(format_lsn(a)) < parse_lsn(format_lsn(b))) == (a < b)
    assert parse_lsn(format_lsn(a)) - parse_lsn(format_lsn(b)) == a - b


def test_known_lsns() -> None:
    assert parse_lsn("0/0") == 0
    assert parse_lsn("16/B374D848") == 0x16 << 32 | 0xB374D848
    assert parse_lsn("0/3000060") > parse_lsn("0/300005F")
    assert parse_lsn("1/0") > parse_lsn("0/FFFFFFFF")
    assert format_lsn(0x16 << 32 | 0xB374D848) == "16/B374D848"


@pytest.mark.parametrize("bad", ["", "0", "0/", "/1", "1/2/3", "G/1", "123456789/0", " 0/1", 7])
def test_bad_lsn_text_is_rejected(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="LSN"):
        parse_lsn(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, 2**64, True, 1.5])
def test_bad_lsn_positions_are_rejected(bad: object) -> None:
    with pytest.raises(ConfigurationError):
        format_lsn(bad)  # type: ignore[arg-type]


# Configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_lag_bytes", 0),
        ("max_lag_bytes", -5),
        ("max_lag_seconds", 0.0),
        ("max_lag_seconds", float("nan")),
        ("max_spill_rate", 0),
        ("evict_after", 0),
        ("readmit_after", 1.5),
        ("strategy", "random"),
        ("on_no_replica", "replica"),
        ("weights", {"a": 0}),
    ],
)
def test_bad_configuration_names_the_value(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=field.rstrip("s") if field != "weights" else "a"):
        PolicyConfig(**{field: value})  # type: ignore[arg-type]


def test_limits_may_be_disabled() -> None:
    config = PolicyConfig(max_lag_bytes=None, max_lag_seconds=None)
    state = observe(NodeState(), Probe(True, lag_bytes=10**12, lag_seconds=1e6), config)
    assert state.admitted


# One replica's transitions ------------------------------------------------------------------


def test_lag_in_bytes_or_seconds_evicts_and_says_why() -> None:
    config = PolicyConfig(max_lag_bytes=100, max_lag_seconds=1.0)
    state = observe(NodeState(), Probe(True, replay_lsn=5, lag_bytes=0, lag_seconds=0.0), config)
    assert state.admitted
    by_bytes = observe(state, Probe(True, replay_lsn=5, lag_bytes=101, lag_seconds=0.0), config)
    assert not by_bytes.admitted
    assert "101 bytes" in by_bytes.reason
    by_time = observe(state, Probe(True, replay_lsn=5, lag_bytes=0, lag_seconds=1.5), config)
    assert not by_time.admitted
    assert "1.500 s" in by_time.reason


def test_a_primary_posing_as_a_replica_never_gets_in() -> None:
    state = observe(NodeState(), Probe(True, in_recovery=False), PolicyConfig())
    assert not state.admitted
    assert "not in recovery" in state.reason


# Choice -----------------------------------------------------------------------------------


def _in(lag: int = 0, replay: int = 0) -> NodeState:
    return NodeState(admitted=True, ever_admitted=True, replay_lsn=replay, lag_bytes=lag)


def test_round_robin_takes_turns() -> None:
    nodes = {"b": _in(), "a": _in(), "c": _in()}
    config = PolicyConfig()
    assert [choose(nodes, config, turn) for turn in range(6)] == ["a", "b", "c"] * 2


def test_least_lag_takes_the_closest() -> None:
    nodes = {"a": _in(lag=500), "b": _in(lag=20), "c": _in(lag=300)}
    assert choose(nodes, PolicyConfig(strategy="least_lag"), 0) == "b"


def test_nothing_to_choose_from() -> None:
    assert choose({}, PolicyConfig(), 0) is None


@given(st.dictionaries(st.sampled_from("abcde"), st.integers(1, 6), min_size=1))
def test_weighted_choice_is_exactly_proportional_per_cycle(weights: dict[str, int]) -> None:
    config = PolicyConfig(strategy="weighted", weights=weights)
    nodes = {name: _in() for name in weights}
    credit: dict[str, float] = {}
    total = sum(weights.values())
    for _cycle in range(3):
        picks = Counter(choose(nodes, config, 0, credit) for _ in range(total))
        assert picks == Counter(weights)


# Routing and spill ------------------------------------------------------------------------


def test_read_your_writes_goes_to_a_replica_that_has_replayed_the_token() -> None:
    policy = ReplicaPolicy(["a", "b"], PolicyConfig())
    policy.observe("a", Probe(True, replay_lsn=100, lag_bytes=0))
    policy.observe("b", Probe(True, replay_lsn=200, lag_bytes=0))
    assert {policy.route(150, 0.0).node for _ in range(4)} == {"b"}
    assert policy.route(250, 0.0) == Route(PRIMARY, "consistency")
    assert policy.consistency_reads == 1
    assert policy.spills == 0


def test_spill_when_every_replica_is_out_and_the_cap() -> None:
    policy = ReplicaPolicy(["a"], PolicyConfig(max_spill_rate=2.0))
    policy.observe("a", Probe(False, error="refused"))
    assert policy.route(None, 10.0).why == "spill"
    assert policy.route(None, 10.0).why == "spill"
    with pytest.raises(NoReplicaAvailable, match=r"max_spill_rate=2\.0") as caught:
        policy.route(None, 10.0)
    assert "a: refused" in str(caught.value)
    assert policy.route(None, 10.5).why == "spill"  # half a second refills one read
    assert (policy.spills, policy.refused) == (3, 1)


def test_on_no_replica_raise() -> None:
    policy = ReplicaPolicy(["a"], PolicyConfig(on_no_replica="raise"))
    with pytest.raises(NoReplicaAvailable, match="on_no_replica='raise'"):
        policy.route(None, 0.0)
    # Read-your-writes still falls back to the primary: a replica is in, but behind.
    policy.observe("a", Probe(True, replay_lsn=1, lag_bytes=0))
    assert policy.route(2, 0.0) == Route(PRIMARY, "consistency")


def test_excluded_replicas_are_skipped() -> None:
    policy = ReplicaPolicy(["a", "b"], PolicyConfig())
    for name in "ab":
        policy.observe(name, Probe(True, replay_lsn=1, lag_bytes=0))
    assert {policy.route(None, 0.0, exclude=["a"]).node for _ in range(3)} == {"b"}


# The state machine against a reference model ------------------------------------------------


@functools.cache
def model_in(history: tuple[str, ...], n: int, m: int) -> bool:
    """In rotation after ``history`` (a tuple of outcomes), from its trailing runs."""
    if not history:
        return False
    last = history[-1]
    if last in (LAGGING, NOT_STANDBY, READ_FAILED):
        return False
    run = len(history) - len(tuple(_strip(history, last)))
    before = history[: len(history) - run]
    if last == FAIL:
        return model_in(before, n, m) and run < n
    if model_in(before, n, m):
        return True
    ever = any(model_in(before[:j], n, m) for j in range(len(before) + 1))
    return not ever or run >= m


def _strip(history: tuple[str, ...], outcome: str) -> tuple[str, ...]:
    end = len(history)
    while end and history[end - 1] == outcome:
        end -= 1
    return history[:end]


def _reached(replayed: int | None, min_lsn: int) -> bool:
    return replayed is not None and replayed >= min_lsn


class PolicyMachine(RuleBasedStateMachine):
    @initialize(
        n=st.integers(1, 4),
        m=st.integers(1, 4),
        count=st.integers(1, 3),
        strategy=st.sampled_from(["round_robin", "weighted", "least_lag"]),
    )
    def build(self, n: int, m: int, count: int, strategy: str) -> None:
        self.n, self.m = n, m
        self.names = [f"r{i}" for i in range(count)]
        config = PolicyConfig(
            strategy=strategy,  # type: ignore[arg-type]
            max_lag_bytes=1000,
            evict_after=n,
            readmit_after=m,
        )
        self.policy = ReplicaPolicy(self.names, config)
        self.history: dict[str, tuple[str, ...]] = dict.fromkeys(self.names, ())
        self.replayed: dict[str, int | None] = dict.fromkeys(self.names)
        self.now = 0.0

    @rule(
        data=st.data(),
        outcome=st.sampled_from([HEALTHY, HEALTHY, FAIL, LAGGING, NOT_STANDBY]),
        replay=st.integers(0, 50),
    )
    def probe(self, data: st.DataObject, outcome: str, replay: int) -> None:
        name = data.draw(st.sampled_from(self.names))
        probe = {
            HEALTHY: Probe(True, replay_lsn=replay, lag_bytes=10, lag_seconds=0.0),
            FAIL: Probe(False, error="boom"),
            LAGGING: Probe(True, replay_lsn=replay, lag_bytes=5000, lag_seconds=0.0),
            NOT_STANDBY: Probe(True, in_recovery=False),
        }[outcome]
        was_in = model_in(self.history[name], self.n, self.m)
        before, after = self.policy.observe(name, probe)
        self.history[name] += (outcome,)
        if outcome != FAIL:
            self.replayed[name] = probe.replay_lsn
        assert (before, after) == (was_in, model_in(self.history[name], self.n, self.m))

    @rule(data=st.data())
    def read_failed(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(self.names))
        assert self.policy.fail(name, "gone") == model_in(self.history[name], self.n, self.m)
        self.history[name] += (READ_FAILED,)

    @rule(min_lsn=st.one_of(st.none(), st.integers(0, 60)))
    def route(self, min_lsn: int | None) -> None:
        self.now += 1.0
        ready = {
            name
            for name in self.names
            if model_in(self.history[name], self.n, self.m)
            and (
                min_lsn is None
                or (self.replayed[name] is not None and self.replayed[name] >= min_lsn)
            )
        }
        route = self.policy.route(min_lsn, self.now)
        if ready:
            assert route.node in ready
            assert route.why == "replica"
        else:
            assert route.node == PRIMARY
            anyone_in = any(model_in(h, self.n, self.m) for h in self.history.values())
            assert route.why == ("consistency" if anyone_in else "spill")

    @invariant()
    def rotation_matches_the_model(self) -> None:
        for name in self.names:
            assert self.policy.nodes[name].admitted == model_in(self.history[name], self.n, self.m)


TestPolicyMachine = PolicyMachine.TestCase


def test_behind_names_whom_to_ask_live_and_seen_only_moves_forward() -> None:
    policy = ReplicaPolicy(["a", "b", "c"], PolicyConfig())
    policy.observe("a", Probe(True, replay_lsn=10, lag_bytes=0))
    policy.observe("b", Probe(True, replay_lsn=30, lag_bytes=0))
    policy.observe("c", Probe(False, error="down"))  # never in: never asked
    assert policy.behind(40) == ["b", "a"]
    assert policy.behind(40, limit=1) == ["b"]
    assert policy.behind(30) == []  # b is known to have it
    policy.seen("a", 50)
    policy.seen("a", 20)
    assert policy.nodes["a"].replay_lsn == 50
    assert policy.route(45, 0.0) == Route("a", "replica")
