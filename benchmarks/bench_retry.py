"""Retry policies beside tenacity, the library a user would reach for.

- The success path: a decorated function that succeeds at once. Ours calls it directly
  (tenacity is entered only after a failure); tenacity runs its whole loop every call.
- One failure then success, with no wait: the cost of the retry machinery itself (ours
  hands the retry to a fresh tenacity loop, so both sides do the same work there).
"""

from __future__ import annotations

import tenacity

from _harness import Case
from phoenixkit.retry import retry


def _noop() -> int:
    return 1


class _FailOnce:
    """Fails every other call: each measured call is one failure then one success."""

    def __init__(self) -> None:
        self.fail = False

    def __call__(self) -> int:
        self.fail = not self.fail
        if self.fail:
            raise ConnectionError("once")
        return 1


def cases(quick: bool) -> list[Case]:
    ours_ok = retry(3, on=(ConnectionError,))(_noop)
    peer_ok = tenacity.retry(
        stop=tenacity.stop_after_attempt(3),
        retry=tenacity.retry_if_exception_type(ConnectionError),
        reraise=True,
    )(_noop)

    ours_flaky = retry(3, on=(ConnectionError,), wait=lambda n: 0.0)(_FailOnce())
    peer_flaky = tenacity.retry(
        stop=tenacity.stop_after_attempt(3),
        retry=tenacity.retry_if_exception_type(ConnectionError),
        wait=tenacity.wait_none(),
        reraise=True,
    )(_FailOnce())
    for fn in (ours_ok, peer_ok, ours_flaky, peer_flaky):
        if fn() != 1:
            raise RuntimeError("a retry benchmark function does not return 1")
    return [
        Case("success path, decorated def", ours_ok, "tenacity @retry", peer_ok, "calls"),
        Case("one failure then success", ours_flaky, "tenacity @retry", peer_flaky, "calls"),
    ]
