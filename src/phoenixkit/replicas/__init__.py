"""Read-replica router: lag-aware routing, read-your-writes by LSN, failover and recovery.

```
router = ReplicaRouter(primary=url_or_engine, replicas=[...]); with router.session() as s: ...
router.status()
```

The decisions (admit, evict, choose, spill) live in `phoenixkit.replicas.policy` as pure
code; `phoenixkit.replicas.health` probes the replicas; `phoenixkit.replicas.sqlalchemy`
routes a SQLAlchemy Session's (or AsyncSession's) statements, `phoenixkit.replicas.psycopg`
reads and writes through psycopg pools; `phoenixkit.replicas.http` carries read-your-writes
tokens through ASGI and WSGI requests. Needs the ``postgres`` extra.
"""

from __future__ import annotations

from phoenixkit.replicas.health import HealthChecker
from phoenixkit.replicas.http import (
    ReadYourWritesMiddleware,
    ReadYourWritesWSGIMiddleware,
    RequestToken,
    carry_token,
    current_token,
)
from phoenixkit.replicas.policy import (
    PRIMARY,
    NoReplicaAvailable,
    PolicyConfig,
    Probe,
    ReplicaPolicy,
    format_lsn,
    parse_lsn,
)
from phoenixkit.replicas.psycopg import PsycopgRouter
from phoenixkit.replicas.sqlalchemy import ReplicaRouter, RoutedSession
from phoenixkit.replicas.status import NodeStatus, RouterStatus
from phoenixkit.replicas.tokens import (
    COOKIE_NAME,
    HEADER_NAME,
    cookie_header,
    decode_token,
    encode_token,
    token_from_asgi,
    token_from_wsgi,
)

__all__ = [
    "COOKIE_NAME",
    "HEADER_NAME",
    "PRIMARY",
    "HealthChecker",
    "NoReplicaAvailable",
    "NodeStatus",
    "PolicyConfig",
    "Probe",
    "PsycopgRouter",
    "ReadYourWritesMiddleware",
    "ReadYourWritesWSGIMiddleware",
    "ReplicaPolicy",
    "ReplicaRouter",
    "RequestToken",
    "RoutedSession",
    "RouterStatus",
    "carry_token",
    "cookie_header",
    "current_token",
    "decode_token",
    "encode_token",
    "format_lsn",
    "parse_lsn",
    "token_from_asgi",
    "token_from_wsgi",
]
