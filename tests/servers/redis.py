"""Real Redis servers for the tests: a single server, a 3-master Cluster, a Sentinel."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.servers.base import (
    Process,
    ServerError,
    ServerUnavailable,
    find_binary,
    free_port,
    resp,
    wait_until,
)

START_TIMEOUT = 20.0


class RedisServer:
    """One redis-server on a free 127.0.0.1 port, no persistence, in its own directory."""

    def __init__(self, workdir: Path, *, port: int | None = None, args: Sequence[str] = ()):
        self.binary = find_binary("redis-server")
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.args = list(args)
        self.process = Process(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                "--daemonize", "no",
                *self.args,
            ],
            log=self.workdir / "redis.log",
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            return bool(resp(self.port, "PING") == "PONG")
        except (OSError, RuntimeError):
            return False

    def start(self) -> RedisServer:
        self.process.start()
        wait_until(
            lambda: self._check_alive() and self.ping(),
            timeout=START_TIMEOUT,
            what=f"redis-server on port {self.port}",
            on_timeout=self.process.log_tail,
        )
        return self

    def _check_alive(self) -> bool:
        if not self.process.alive:
            raise ServerError(f"redis-server exited:\n{self.process.log_tail()}")
        return True

    def kill(self) -> None:
        """SIGKILL the server (a crash: nothing is flushed, clients see resets)."""
        self.process.kill()

    def restart(self) -> None:
        """Start again on the same port after :meth:`kill` or :meth:`stop`."""
        if self.process.alive:
            self.process.stop()
        self.start()

    def stop(self) -> None:
        self.process.stop()


class RedisCluster:
    """A Redis Cluster of ``masters`` masters (no replicas), built with redis-cli."""

    def __init__(self, workdir: Path, *, masters: int = 3) -> None:
        self.cli = find_binary("redis-cli")
        self.workdir = workdir
        self.nodes: list[RedisServer] = []
        for i in range(masters):
            port = free_port(bus_offset=10000)
            self.nodes.append(
                RedisServer(
                    workdir / f"node{i}",
                    port=port,
                    args=[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ],
                )
            )

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]

    def start(self) -> RedisCluster:
        for n in self.nodes:
            n.start()
        done = subprocess.run(
            [
                self.cli, "--cluster", "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas", "0", "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        if done.returncode != 0:
            raise ServerError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")
        self.wait_ok()
        return self

    def state_ok(self, port: int) -> bool:
        info = resp(port, "CLUSTER", "INFO")
        return "cluster_state:ok" in info and "cluster_slots_assigned:16384" in info

    def wait_ok(self) -> None:
        for n in self.nodes:
            wait_until(
                lambda n=n: self.state_ok(n.port),  # type: ignore[misc]
                timeout=START_TIMEOUT,
                what=f"cluster_state:ok on node {n.port}",
            )

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def restart(self, index: int) -> None:
        """Restart one node (it rejoins from its nodes.conf) and wait for state ok."""
        self.nodes[index].restart()
        self.wait_ok()

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()


class RedisSentinel:
    """One redis-server in sentinel mode monitoring ``master`` as ``service``."""

    def __init__(self, workdir: Path, master: RedisServer, *, service: str = "mymaster"):
        self.binary = find_binary("redis-server")
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.master = master
        self.service = service
        self.port = free_port()
        conf = workdir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {workdir}\n"
            f"sentinel monitor {service} 127.0.0.1 {master.port} 1\n"
            f"sentinel down-after-milliseconds {service} 1000\n"
        )
        self.process = Process([self.binary, str(conf), "--sentinel"], log=workdir / "sentinel.log")

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.service}/0"

    def start(self) -> RedisSentinel:
        self.process.start()
        wait_until(
            lambda: (
                resp(self.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
                == ["127.0.0.1", str(self.master.port)]
            ),
            timeout=START_TIMEOUT,
            what=f"sentinel on port {self.port}",
            on_timeout=self.process.log_tail,
        )
        return self

    def stop(self) -> None:
        self.process.stop()


def make_workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"phoenixkit-{prefix}-"))


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class ExternalRedis:
    """A server or cluster given by URL (env override): it cannot be killed here."""

    def __init__(self, url: str) -> None:
        self.url = url

    def kill(self, *args: object) -> None:
        raise ServerUnavailable(f"cannot kill external server {self.url!r}")

    restart = kill

    def stop(self) -> None:
        pass
