"""The router's decisions as pure code: LSNs, admit / evict, choose, spill.

No I/O, no locks, no clock of its own: the health checker feeds `Probe` results in, the
router asks `ReplicaPolicy.route` where a read goes, and every method that depends on time
takes ``now`` (monotonic seconds). The carrier (`phoenixkit.replicas.sqlalchemy`) holds a
lock around these calls, never across I/O.

A replica's life::

    unknown ──(first healthy probe)──> in
    in ──(evict_after failed probes in a row | lag over a limit | not in recovery
          | a read on it failed)──> out
    out ──(readmit_after healthy probes in a row)──> in

A probe is *healthy* when it reached the server, the server is in recovery (a standby) and
its lag is within ``max_lag_bytes`` and ``max_lag_seconds``. Lag is never judged from the
replay timestamp alone: the prober reports 0 s when the replica has replayed all it received
or all the primary has written, so an idle primary does not look like lag.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from phoenixkit.errors import ConfigurationError, PhoenixError

__all__ = [
    "PRIMARY",
    "NoReplicaAvailable",
    "NodeState",
    "PolicyConfig",
    "Probe",
    "ReplicaPolicy",
    "Route",
    "admit",
    "choose",
    "evict",
    "format_lsn",
    "observe",
    "parse_lsn",
    "unhealthy_reason",
]

PRIMARY = "primary"
"""The name `Route.node` carries when a read goes to the primary."""

_LSN = re.compile(r"\A([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})\Z")
Strategy = Literal["round_robin", "weighted", "least_lag"]


class NoReplicaAvailable(PhoenixError):
    """No replica may serve this read and the primary may not either (policy or cap)."""


def parse_lsn(text: str) -> int:
    """``'16/B374D848'`` -> its 64-bit position; the order is ``pg_wal_lsn_diff``'s."""
    match = _LSN.match(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigurationError(f"not a PostgreSQL LSN ('X/Y' in hex): {text!r}")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(position: int) -> str:
    """The inverse of `parse_lsn`: PostgreSQL's own spelling (upper-case hex)."""
    if isinstance(position, bool) or not isinstance(position, int):
        raise ConfigurationError(f"an LSN position must be an int, got {position!r}")
    if not 0 <= position < 1 << 64:
        raise ConfigurationError(f"an LSN position must be in [0, 2**64), got {position!r}")
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


@dataclass(frozen=True)
class Probe:
    """What one health probe of a replica found. ``ok=False``: it could not be reached."""

    ok: bool
    in_recovery: bool = True
    replay_lsn: int | None = None
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class PolicyConfig:
    """Thresholds, checked at construction (a bad value names itself).

    ``evict_after``: consecutive failed probes that take a replica out. ``readmit_after``:
    consecutive healthy probes that bring it back. ``max_lag_bytes`` / ``max_lag_seconds``:
    None disables that limit, otherwise > 0. ``on_no_replica``: ``"primary"`` sends a read
    to the primary when no replica is in, ``"raise"`` raises `NoReplicaAvailable`.
    ``max_spill_rate``: reads per second the primary takes in place of replicas (a token
    bucket, burst one second's worth); over it a read raises; None: no cap.
    """

    strategy: Strategy = "round_robin"
    weights: Mapping[str, float] = field(default_factory=dict)
    max_lag_bytes: int | None = 16 * 1024 * 1024
    max_lag_seconds: float | None = 10.0
    evict_after: int = 2
    readmit_after: int = 3
    on_no_replica: Literal["primary", "raise"] = "primary"
    max_spill_rate: float | None = None

    def __post_init__(self) -> None:
        if self.strategy not in ("round_robin", "weighted", "least_lag"):
            raise ConfigurationError(
                f"strategy must be 'round_robin', 'weighted' or 'least_lag', got {self.strategy!r}"
            )
        for name, weight in self.weights.items():
            if not _positive(weight):
                raise ConfigurationError(f"weight of {name!r} must be > 0, got {weight!r}")
        for attr in ("max_lag_bytes", "max_lag_seconds", "max_spill_rate"):
            value = getattr(self, attr)
            if value is not None and not _positive(value):
                raise ConfigurationError(f"{attr} must be > 0 or None, got {value!r}")
        for attr in ("evict_after", "readmit_after"):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{attr} must be an int >= 1, got {value!r}")
        if self.on_no_replica not in ("primary", "raise"):
            raise ConfigurationError(
                f"on_no_replica must be 'primary' or 'raise', got {self.on_no_replica!r}"
            )


def _positive(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value > 0
    )


@dataclass(frozen=True)
class NodeState:
    """One replica as the policy sees it (immutable; transitions return a new one)."""

    admitted: bool = False
    ever_admitted: bool = False
    failures: int = 0  # consecutive failed probes
    streak: int = 0  # consecutive healthy probes
    replay_lsn: int | None = None
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    reason: str = "not probed yet"  # why it is out ("" when in)


def unhealthy_reason(probe: Probe, config: PolicyConfig) -> str:
    """Why a probe that reached its server is not healthy ("" when it is)."""
    if not probe.in_recovery:
        return "not in recovery (a primary, or promoted)"
    limit_b, limit_s = config.max_lag_bytes, config.max_lag_seconds
    if limit_b is not None and probe.lag_bytes is not None and probe.lag_bytes > limit_b:
        return f"lag {probe.lag_bytes} bytes > max_lag_bytes {limit_b}"
    if limit_s is not None and probe.lag_seconds is not None and probe.lag_seconds > limit_s:
        return f"lag {probe.lag_seconds:.3f} s > max_lag_seconds {limit_s}"
    return ""


def admit(state: NodeState) -> NodeState:
    """Bring a replica into rotation."""
    return replace(state, admitted=True, ever_admitted=True, reason="")


def evict(state: NodeState, reason: str) -> NodeState:
    """Take a replica out of rotation; it needs ``readmit_after`` healthy probes to return."""
    return replace(state, admitted=False, streak=0, reason=reason)


def observe(state: NodeState, probe: Probe, config: PolicyConfig) -> NodeState:
    """The state after one probe (the module docstring's transitions)."""
    if not probe.ok:
        failures = state.failures + 1
        state = replace(state, failures=failures, streak=0)
        if state.admitted and failures >= config.evict_after:
            return evict(state, f"{failures} failed probes: {probe.error or 'unreachable'}")
        if not state.admitted:
            return replace(state, reason=probe.error or "unreachable")
        return state
    state = replace(
        state,
        failures=0,
        replay_lsn=probe.replay_lsn,
        lag_bytes=probe.lag_bytes,
        lag_seconds=probe.lag_seconds,
    )
    reason = unhealthy_reason(probe, config)
    if reason:
        return evict(state, reason)
    state = replace(state, streak=state.streak + 1)
    if not state.admitted and (not state.ever_admitted or state.streak >= config.readmit_after):
        return admit(state)
    return state


def choose(
    candidates: Mapping[str, NodeState],
    config: PolicyConfig,
    turn: int,
    credit: dict[str, float] | None = None,
) -> str | None:
    """Pick one of ``candidates`` (already filtered: in, caught up) by ``config.strategy``.

    ``turn`` counts the reads routed so far (round-robin); ``credit`` is the weighted
    strategy's running state (smooth weighted round-robin, as nginx does), updated in place.
    """
    if not candidates:
        return None
    names = sorted(candidates)
    if config.strategy == "round_robin":
        return names[turn % len(names)]
    if config.strategy == "least_lag":
        return min(
            names,
            key=lambda n: (candidates[n].lag_bytes or 0, candidates[n].lag_seconds or 0.0, n),
        )
    credit = {} if credit is None else credit
    total = 0.0
    for name in names:
        weight = float(config.weights.get(name, 1.0))
        credit[name] = credit.get(name, 0.0) + weight
        total += weight
    best = max(names, key=lambda n: (credit[n], -names.index(n)))
    credit[best] -= total
    return best


@dataclass(frozen=True)
class Route:
    """Where a read goes: a replica's name or `PRIMARY`, and why (``replica``, ``spill``:
    no replica is in, ``consistency``: none has replayed the session's LSN yet)."""

    node: str
    why: Literal["replica", "spill", "consistency"]


class ReplicaPolicy:
    """Every replica's `NodeState` plus the routing counters. Not thread-safe by itself."""

    def __init__(self, names: Iterable[str], config: PolicyConfig) -> None:
        self.config = config
        self.nodes: dict[str, NodeState] = {name: NodeState() for name in names}
        self._routes = {name: Route(name, "replica") for name in self.nodes}
        self._live: tuple[str, ...] = ()  # admitted names, sorted: the round-robin fast path
        self.turn = 0
        self.credit: dict[str, float] = {}
        self._tokens = config.max_spill_rate or 0.0
        self._refilled: float | None = None
        self.spills = self.consistency_reads = self.refused = 0

    def observe(self, name: str, probe: Probe) -> tuple[bool, bool]:
        """Apply a probe; returns (was in, is in)."""
        old = self.nodes[name]
        new = self.nodes[name] = observe(old, probe, self.config)
        if old.admitted != new.admitted:
            self._relive()
        return old.admitted, new.admitted

    def _relive(self) -> None:
        self._live = tuple(sorted(n for n, s in self.nodes.items() if s.admitted))

    def fail(self, name: str, error: str) -> bool:
        """A read on ``name`` failed (its server went away): out now. True if it was in."""
        old = self.nodes[name]
        self.nodes[name] = replace(evict(old, f"a read failed: {error}"), failures=old.failures)
        self._relive()
        return old.admitted

    def behind(self, min_lsn: int, limit: int = 2) -> list[str]:
        """When no replica in rotation is known to have replayed ``min_lsn``: those worth
        asking live (most replayed first, at most ``limit``). Empty when one is known to."""
        live = [(n, s) for n, s in self.nodes.items() if s.admitted]
        if any(s.replay_lsn is not None and s.replay_lsn >= min_lsn for _, s in live):
            return []
        live.sort(key=lambda item: (-(item[1].replay_lsn or 0), item[0]))
        return [n for n, _ in live[:limit]]

    def seen(self, name: str, replay_lsn: int) -> None:
        """A replay position read outside the probes (it only ever moves forward)."""
        state = self.nodes[name]
        if state.replay_lsn is None or replay_lsn > state.replay_lsn:
            self.nodes[name] = replace(state, replay_lsn=replay_lsn)

    def route(self, min_lsn: int | None, now: float, exclude: Iterable[str] = ()) -> Route:
        """Where the next read goes. ``min_lsn``: the session's read-your-writes token."""
        live_names = self._live
        if min_lsn is None and not exclude and live_names and self.config.strategy == "round_robin":
            # The common case, without allocating: what `choose` would pick from them all.
            self.turn += 1
            return self._routes[live_names[(self.turn - 1) % len(live_names)]]
        skip = set(exclude)
        live = {n: s for n, s in self.nodes.items() if s.admitted and n not in skip}
        if min_lsn is not None:
            ready = {
                n: s
                for n, s in live.items()
                if s.replay_lsn is not None and s.replay_lsn >= min_lsn
            }
        else:
            ready = live
        name = choose(ready, self.config, self.turn, self.credit)
        if name is not None:
            self.turn += 1
            return self._routes[name]
        if not live and self.config.on_no_replica == "raise":
            self.refused += 1
            raise NoReplicaAvailable(
                f"no replica is in rotation ({self._reasons(skip)}) and on_no_replica='raise'"
            )
        if not self._take(now):
            self.refused += 1
            raise NoReplicaAvailable(
                f"no replica can serve this read ({self._reasons(skip)}) and the primary "
                f"already takes max_spill_rate={self.config.max_spill_rate} reads/s"
            )
        if live:
            self.consistency_reads += 1
            return Route(PRIMARY, "consistency")
        self.spills += 1
        return Route(PRIMARY, "spill")

    def _take(self, now: float) -> bool:
        rate = self.config.max_spill_rate
        if rate is None:
            return True
        if self._refilled is not None:
            self._tokens = min(rate, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def _reasons(self, skip: set[str]) -> str:
        parts = [
            f"{n}: {'excluded' if n in skip else s.reason or 'behind the session LSN'}"
            for n, s in sorted(self.nodes.items())
        ]
        return "; ".join(parts) or "none configured"
