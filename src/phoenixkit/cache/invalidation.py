"""Invalidation across instances: Redis pub/sub on one channel per namespace.

Every write, delete, tag invalidation and clear publishes a small JSON message
``{"i": instance id, "o": op, "x": [keys or tags]}`` on ``pk:c:<ns>:inval``; every other
instance of the namespace evicts its L1 copies (``o`` = ``"k"``: keys, ``"t"``: tags,
``"c"``: everything). An instance ignores the echo of its own messages by their id.

The listener is a daemon thread with its own pub/sub connection (sync redis-py, so it also
serves caches used only from asyncio; on Cluster, classic pub/sub is propagated to every
node). When the connection drops, L1 is flushed at once (messages may be lost from then on)
and again at every (re)subscription after the first, since redis-py may reconnect and
resubscribe by itself; L1 entries always keep a TTL, which bounds what a lost message costs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["CLEAR", "KEYS", "TAGS", "InvalidationListener", "decode", "encode"]

logger = logging.getLogger("phoenixkit.cache")

KEYS = "k"
TAGS = "t"
CLEAR = "c"


def encode(instance: str, op: str, items: Sequence[str] = ()) -> bytes:
    """The message of ``op`` on ``items`` sent by ``instance``."""
    return json.dumps({"i": instance, "o": op, "x": list(items)}, separators=(",", ":")).encode()


def decode(data: Any) -> tuple[str, str, list[str]] | None:
    """(instance, op, items) of a message, or None for anything that is not one."""
    try:
        msg = json.loads(data)
        instance, op, items = msg["i"], msg["o"], msg["x"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(instance, str) or op not in (KEYS, TAGS, CLEAR):
        return None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        return None
    return instance, op, items


class InvalidationListener:
    """Subscribes to ``channel`` on ``client`` and hands each foreign message to ``apply``.

    ``flush`` is called when the channel drops and when it comes back; ``connected`` tells
    whether it is subscribed now. `close` stops the thread.
    """

    def __init__(
        self,
        client: Any,
        channel: str,
        instance: str,
        apply: Callable[[str, list[str]], None],
        flush: Callable[[str], None],
        errors: tuple[type[BaseException], ...],
        retry_interval: float = 0.25,
    ) -> None:
        self.client = client
        self.channel = channel
        self.instance = instance
        self.apply = apply
        self.flush = flush
        self.errors = errors
        self.retry_interval = retry_interval
        self.connected = threading.Event()
        self._tried = threading.Event()  # the first subscription attempt is over
        self.received = 0
        self.drops = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"phoenixkit-cache-inval[{channel}]", daemon=True
        )

    def start(self, wait: float = 5.0) -> InvalidationListener:
        """Start listening; wait for the first subscription (or its failure: a cache built
        while Redis is down starts at once and subscribes when Redis is back), at most
        ``wait`` seconds."""
        self._thread.start()
        self._tried.wait(wait)
        return self

    def _run(self) -> None:
        subscribed_before = False
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.client.pubsub()
                pubsub.subscribe(self.channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.1)
                    if message is None:
                        continue
                    kind = message.get("type")
                    if kind == "subscribe":
                        if subscribed_before:  # a reconnection: messages may be lost
                            self.flush("invalidation channel resubscribed")
                        subscribed_before = True
                        self.connected.set()
                        self._tried.set()
                    elif kind == "message":
                        self._handle(message.get("data"))
            except Exception as exc:  # a drop; never let the thread die
                if not isinstance(exc, self.errors):
                    logger.warning(
                        "cache invalidation listener on %s: %s: %s",
                        self.channel, type(exc).__name__, exc,
                    )  # fmt: skip
                if self.connected.is_set():
                    self.drops += 1
                    self.flush(f"invalidation channel dropped: {type(exc).__name__}: {exc}")
                self.connected.clear()
                self._tried.set()
                self._stop.wait(self.retry_interval)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # closing a broken connection
                        pubsub.close()

    def _handle(self, data: Any) -> None:
        msg = decode(data)
        if msg is None or msg[0] == self.instance:
            return
        self.received += 1
        self.apply(msg[1], msg[2])

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
