"""What every router shares: nodes, the policy under a lock, health probes, counters and
status. The SQLAlchemy and psycopg routers add only how a statement reaches a node."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from phoenixkit._clock import Clock
from phoenixkit.replicas.health import HealthChecker
from phoenixkit.replicas.policy import (
    PRIMARY,
    PolicyConfig,
    Probe,
    ReplicaPolicy,
    format_lsn,
    parse_lsn,
)
from phoenixkit.replicas.status import NodeStatus, RouterStatus
from phoenixkit.replicas.tokens import decode_token, encode_token

__all__ = ["NodeLike", "RequestToken", "RouterCore", "carried", "named_replicas", "pinned"]

log = logging.getLogger("phoenixkit.replicas")


def named_replicas(replicas: Sequence[Any] | Mapping[str, Any]) -> Mapping[str, Any]:
    """Replicas by name: a mapping as given, a sequence as ``replica-0``, ``replica-1``..."""
    if isinstance(replicas, Mapping):
        return replicas
    if isinstance(replicas, (str, bytes)):
        raise TypeError(
            "replicas must be a list of URLs, engines or pools (or a mapping of names to them),"
            f" not one string: {replicas!r}"
        )
    return {f"replica-{i}": r for i, r in enumerate(replicas)}


_PINNED: contextvars.ContextVar[bool] = contextvars.ContextVar("phoenixkit_replicas_pinned")
_CARRIED: contextvars.ContextVar[Mapping[RouterCore, RequestToken]] = contextvars.ContextVar(
    "phoenixkit_replicas_carried"
)


def pinned() -> bool:
    """Inside ``use_primary()`` (this thread or task)?"""
    return _PINNED.get(False)


def carried(router: RouterCore) -> RequestToken | None:
    """The `RequestToken` of ``router`` that the current request carries, if any."""
    found = _CARRIED.get(None)
    return None if found is None else found.get(router)


class RequestToken:
    """One request's read-your-writes position for one router.

    ``received``: the LSN the request came with (None: no valid token); ``lsn``: the
    furthest position known, moved on by every commit that wrote during the request (a
    session's or `PsycopgRouter.write`'s). ``token`` is ``lsn`` encoded (signed with the
    router's ``token_key``) for the response; ``changed`` says whether it must be sent.
    Shared by reference: threads and tasks the request starts advance the same object.
    """

    __slots__ = ("_lock", "lsn", "received", "router")

    def __init__(self, router: RouterCore, received: int | None) -> None:
        self.router = router
        self.received = received
        self.lsn = received
        self._lock = threading.Lock()

    def advance(self, lsn: int) -> None:
        """Move on to ``lsn`` (never back)."""
        with self._lock:
            if self.lsn is None or lsn > self.lsn:
                self.lsn = lsn

    @property
    def changed(self) -> bool:
        """Did a write during the request move the position past what it came with?"""
        lsn = self.lsn
        return lsn is not None and (self.received is None or lsn > self.received)

    @property
    def token(self) -> str | None:
        """``lsn`` as a token for a cookie or header (None: no position)."""
        lsn = self.lsn
        return None if lsn is None else encode_token(lsn, key=self.router.token_key)

    def __repr__(self) -> str:
        return f"RequestToken(received={self.received!r}, lsn={self.lsn!r})"


class NodeLike(Protocol):
    name: str
    reads: int
    read_failures: int
    evictions: int
    readmissions: int

    @property
    def url(self) -> str: ...

    def recycle(self) -> None: ...

    def close(self) -> None: ...

    def fetch_replica(self) -> Sequence[Any]: ...

    def fetch_primary_lsn(self) -> str: ...

    def fetch_replay_lsn(self) -> str | None: ...


class RouterCore:
    """Nodes, policy, health and counters; subclasses route statements to ``node``s."""

    def __init__(
        self,
        primary: NodeLike,
        replicas: Mapping[str, NodeLike],
        config: PolicyConfig,
        *,
        probe_interval: float,
        token_key: bytes | None,
        clock: Clock,
        start: bool,
        check_replay: bool = True,
    ) -> None:
        self.clock = clock
        self.check_replay = check_replay
        self.replay_checks = 0
        self.token_key = token_key
        self._lock = threading.Lock()
        self._primary = primary
        self._replicas = dict(replicas)
        self.policy = ReplicaPolicy(self._replicas, config)
        self.failovers = self.evictions = self.readmissions = 0
        self._writes = 0
        self.health = HealthChecker(
            {name: node.fetch_replica for name, node in self._replicas.items()},
            self._primary.fetch_primary_lsn,
            self._on_probe,
            interval=probe_interval,
            clock=clock,
        )
        self.health.probe_now()
        for name, state in self.policy.nodes.items():
            if not state.admitted:
                log.warning("replica %s starts out of rotation: %s", name, state.reason)
        if start:
            self.health.start()

    @contextlib.contextmanager
    def carry(self, token: str | int | None) -> Iterator[RequestToken]:
        """Make ``token`` (a request's cookie or header; None or a bad token: no position)
        this thread's or task's read-your-writes position for the block: sessions opened
        in it start from it, and commits that write move it on. Yields the `RequestToken`
        whose ``token`` the response should carry (when ``changed``)."""
        received: int | None
        if isinstance(token, int):
            received = None if isinstance(token, bool) else token
        else:
            received = decode_token(token, key=self.token_key)
        request = RequestToken(self, received)
        with self._carry_again(request):
            yield request

    @contextlib.contextmanager
    def _carry_again(self, request: RequestToken) -> Iterator[None]:
        outer = _CARRIED.get(None)
        reset = _CARRIED.set({self: request} if outer is None else {**outer, self: request})
        try:
            yield
        finally:
            _CARRIED.reset(reset)

    def _start_lsn(self, lsn: int | None) -> tuple[int | None, RequestToken | None]:
        """A session's starting LSN: its own token's or the request's, the later."""
        request = carried(self)
        if request is not None and request.lsn is not None and (lsn is None or request.lsn > lsn):
            lsn = request.lsn
        return lsn, request

    @contextlib.contextmanager
    def use_primary(self) -> Iterator[None]:
        """Send every statement of every session in this block (this thread or task) to the
        primary."""
        reset = _PINNED.set(True)
        try:
            yield
        finally:
            _PINNED.reset(reset)

    def _count_write(self) -> None:
        with self._lock:
            self._writes += 1

    def _read_node(self, chosen: str | None, lsn: int | None, primary: bool) -> NodeLike:
        """The node for a read: ``chosen`` (this transaction's) or a new choice."""
        if chosen is None and lsn is not None and self.check_replay and not primary:
            self._catch_up(lsn)
        with self._lock:
            if primary or _PINNED.get(False):
                node = self._primary
            else:
                name = chosen
                if name is None:
                    name = self.policy.route(lsn, self.clock()).node
                node = self._replicas.get(name, self._primary)
            node.reads += 1
        return node

    def _catch_up(self, lsn: int) -> None:
        """No replica is known to have replayed ``lsn``: ask the likeliest, live (probes
        are up to one interval old; a replica usually replays a commit within a
        millisecond). One short query on its pool, before the session takes a connection."""
        with self._lock:
            candidates = self.policy.behind(lsn)
        for name in candidates:
            try:
                text = self._replicas[name].fetch_replay_lsn()
            except Exception as exc:  # its probes will tell; the read goes elsewhere
                log.debug("replay check on replica %s failed: %s", name, exc)
                continue
            with self._lock:
                self.replay_checks += 1
                if text is not None:
                    self.policy.seen(name, parse_lsn(text))
            if text is not None and parse_lsn(text) >= lsn:
                return

    def _on_probe(self, name: str, probe: Probe) -> None:
        with self._lock:
            was_in, is_in = self.policy.observe(name, probe)
            reason = self.policy.nodes[name].reason
            node = self._replicas[name]
            if was_in and not is_in:
                node.evictions += 1
                self.evictions += 1
            elif is_in and not was_in and node.evictions:
                node.readmissions += 1
                self.readmissions += 1
        if was_in != is_in:
            self._transition(node, is_in, reason)

    def _read_failed(self, name: str, exc: BaseException) -> None:
        with self._lock:
            node = self._replicas[name]
            node.read_failures += 1
            self.failovers += 1
            was_in = self.policy.fail(name, type(exc).__name__)
            if was_in:
                node.evictions += 1
                self.evictions += 1
        log.warning(
            "read on replica %s failed (%s); retried on the primary", name, type(exc).__name__
        )
        if was_in:
            self._transition(node, False, self.policy.nodes[name].reason)

    def _transition(self, node: NodeLike, admitted: bool, reason: str) -> None:
        # Connections opened before the change may point at a dead or re-roled server.
        node.recycle()
        if admitted:
            log.info("replica %s back in rotation", node.name)
        else:
            log.warning("replica %s out of rotation: %s", node.name, reason)

    # Status ----------------------------------------------------------------------------------

    def status(self) -> RouterStatus:
        """Every node's role, rotation, lag and counters; the router's counters."""
        with self._lock:
            p = self._primary
            nodes = [
                NodeStatus(
                    name=PRIMARY,
                    role="primary",
                    url=p.url,
                    in_rotation=True,
                    reason="",
                    replay_lsn=None,
                    lag_bytes=None,
                    lag_seconds=None,
                    reads=p.reads,
                    writes=self._writes,
                    read_failures=0,
                    evictions=0,
                    readmissions=0,
                )
            ]
            for name, n in self._replicas.items():
                s = self.policy.nodes[name]
                nodes.append(
                    NodeStatus(
                        name=name,
                        role="replica",
                        url=n.url,
                        in_rotation=s.admitted,
                        reason=s.reason,
                        replay_lsn=None if s.replay_lsn is None else format_lsn(s.replay_lsn),
                        lag_bytes=s.lag_bytes,
                        lag_seconds=s.lag_seconds,
                        reads=n.reads,
                        writes=0,
                        read_failures=n.read_failures,
                        evictions=n.evictions,
                        readmissions=n.readmissions,
                    )
                )
            pol = self.policy
            return RouterStatus(
                nodes=tuple(nodes),
                spills=pol.spills,
                consistency_reads=pol.consistency_reads,
                refused=pol.refused,
                failovers=self.failovers,
                evictions=self.evictions,
                readmissions=self.readmissions,
                probe_rounds=self.health.rounds,
                replay_checks=self.replay_checks,
            )

    stats = status

    def close(self) -> None:
        """Stop the health thread and dispose the engines built from URLs."""
        self.health.stop()
        for node in (self._primary, *self._replicas.values()):
            node.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
