"""Process plumbing shared by the server helpers: ports, processes, waiting, tiny RESP."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REQUIRE_ENV = "PHOENIXKIT_REQUIRE_SERVICES"


def services_required() -> bool:
    """True when a missing server must fail the run instead of skipping (CI)."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false", "no")


class ServerUnavailable(Exception):
    """A server cannot be started here (binary missing, or an external URL was given)."""


class ServerError(RuntimeError):
    """A server was expected to start (binaries present) but did not."""


def find_binary(name: str, *extra_dirs: str | Path) -> str:
    for d in extra_dirs:
        candidate = Path(d) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise ServerUnavailable(
            f"{name!r} is not installed (not on PATH); install it (e.g. apt-get install "
            f"redis-server postgresql) or set an env URL to use an existing server"
        )
    return found


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, bus_offset: int | None = None) -> int:
    """A free 127.0.0.1 TCP port; with ``bus_offset``, port + offset is free as well."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if bus_offset is None:
            return port
        if port + bus_offset < 65536 and _port_free(port + bus_offset):
            return port
    raise ServerError("no free port pair found on 127.0.0.1")


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.02,
    on_timeout: Callable[[], str] | None = None,
) -> None:
    """Poll ``predicate`` until it is true, or raise ServerError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout else ""
            raise ServerError(f"timed out after {timeout}s waiting for {what}\n{detail}")
        time.sleep(interval)


class Process:
    """A server process in its own session, so a SIGKILL takes all of its children too."""

    def __init__(
        self, argv: Sequence[str], *, log: Path, user: str | None = None, cwd: Path | None = None
    ) -> None:
        self.argv = list(argv)
        self.log = log
        self.user = user
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self.user,
                cwd=self.cwd,
            )

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def signal_group(self, sig: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group and reap it."""
        self.signal_group(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=30)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if not self.alive:
            return
        self.signal_group(sig)
        assert self.popen is not None
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def resp(port: int, *args: str, timeout: float = 2.0) -> Any:
    """Send one command to a Redis server on 127.0.0.1:port and return the decoded reply.

    A deliberately small RESP2 client (simple strings, errors, integers, bulk strings,
    arrays) so the fixtures work before, and independently of, redis-py.
    """
    payload = f"*{len(args)}\r\n".encode()
    for a in args:
        b = a.encode()
        payload += b"$%d\r\n%s\r\n" % (len(b), b)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        reader = s.makefile("rb")
        return _read_reply(reader)


def _read_reply(reader: Any) -> Any:
    line = reader.readline()
    if not line:
        raise ConnectionError("connection closed")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise RuntimeError(body.decode())
    if kind == b":":
        return int(body)
    if kind == b"$":
        n = int(body)
        if n < 0:
            return None
        data = reader.read(n + 2)
        return data[:-2].decode()
    if kind == b"*":
        n = int(body)
        return None if n < 0 else [_read_reply(reader) for _ in range(n)]
    raise RuntimeError(f"unexpected RESP reply {line!r}")
