"""Real servers for the tests, started from the installed binaries on free loopback ports."""

from tests.servers.base import (
    ServerError,
    ServerUnavailable,
    free_port,
    resp,
    services_required,
    wait_until,
)
from tests.servers.postgres import ExternalPostgres, PostgresServer, find_pg_bindir
from tests.servers.redis import (
    ExternalRedis,
    RedisCluster,
    RedisSentinel,
    RedisServer,
    make_workdir,
    remove_workdir,
)

__all__ = [
    "ExternalPostgres",
    "ExternalRedis",
    "PostgresServer",
    "RedisCluster",
    "RedisSentinel",
    "RedisServer",
    "ServerError",
    "ServerUnavailable",
    "find_pg_bindir",
    "free_port",
    "make_workdir",
    "remove_workdir",
    "resp",
    "services_required",
    "wait_until",
]
