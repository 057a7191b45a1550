"""Rate limiting: GCRA with burst, sliding windows (log and counter), fixed windows.

```
limiter = RateLimiter("100/minute", backend="memory://" | "redis://...", algorithm="gcra")
d = limiter.hit(key, cost=1)   # Decision(allowed, limit, remaining, reset_after, retry_after)
await limiter.ahit(key); limiter.peek(key); limiter.reset(key)
tiers = TieredRateLimiter(SEED_TIERS, backend=...); tiers.hit(key, tier="free")
lock = Lockout(max_failures=5, window=900, block_for=1800); lock.failure(key); lock.check(key)
rate_limit_headers(decision, rate)   # RateLimit-Policy, RateLimit, X-RateLimit-*, Retry-After
```

The algorithms are pure code in `phoenixkit.ratelimit.core`; the memory store runs them in
process and the Redis store runs their Lua twins, one script and one round trip per hit.
"""

from __future__ import annotations

from phoenixkit.ratelimit.core import ALGORITHMS, Decision, Rate
from phoenixkit.ratelimit.headers import rate_limit_headers
from phoenixkit.ratelimit.limiter import POLICIES, RateLimiter, RateLimitExceeded
from phoenixkit.ratelimit.lockout import Lockout
from phoenixkit.ratelimit.stats import Counts, RateLimiterStats
from phoenixkit.ratelimit.tiers import SEED_TIERS, TieredRateLimiter

__all__ = [
    "ALGORITHMS",
    "POLICIES",
    "SEED_TIERS",
    "Counts",
    "Decision",
    "Lockout",
    "Rate",
    "RateLimitExceeded",
    "RateLimiter",
    "RateLimiterStats",
    "TieredRateLimiter",
    "rate_limit_headers",
]
