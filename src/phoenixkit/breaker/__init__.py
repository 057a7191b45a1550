"""Circuit breaker: failure-rate and slow-call windows, native asyncio, pybreaker-compatible.

```
br = CircuitBreaker("payments", failure_rate_threshold=0.5, minimum_calls=10,
                    window_size=100, open_duration=30.0, half_open_max_calls=5)
br.call(fn, *args); await br.acall(afn, *args); @br on def / async def; br.state
```

The decisions live in `phoenixkit.breaker.core` as pure code; `CircuitBreaker` carries them
out without holding a lock across the protected call.
"""

from __future__ import annotations

from phoenixkit.breaker.breaker import BreakerStats, CircuitBreaker, CircuitOpenError, StateView
from phoenixkit.breaker.core import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    OPEN,
    BreakerConfig,
)
from phoenixkit.breaker.shared import RedisBreakerState

__all__ = [
    "CLOSED",
    "DISABLED",
    "FORCED_OPEN",
    "HALF_OPEN",
    "OPEN",
    "BreakerConfig",
    "BreakerStats",
    "CircuitBreaker",
    "CircuitOpenError",
    "RedisBreakerState",
    "StateView",
]
