"""A real ``redis-server`` for tests: on a free loopback port, in a temp dir, stopped by PID.

    with RedisServer() as server:          # started, answers PING
        use(server.url)                    # redis://127.0.0.1:PORT/0
        server.stop()                      # SIGTERM (or kill=True: SIGKILL) by PID
        server.start()                     # same port, same dir

``redis_server_fixture()`` makes a pytest fixture of it. By default nothing is
persisted (``--save "" --appendonly no``); ``appendonly=True`` keeps an AOF fsynced
on every write, so data survives ``stop(kill=True)`` and ``start()``. It never uses
6379, and fails (not skips) when ``redis-server`` is missing: ``make system-deps``
installs it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests._servers import REAL_REDIS_PORT, free_port

STARTUP_TIMEOUT_S = 10.0


def redis_server_binary() -> str:
    """The path of ``redis-server``; a clear error if it is not installed."""
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError("redis-server is not installed: run `make system-deps` "
                           "(apt-get install redis-server); the tests need a real one")
    return path


class RedisServer:
    """One ``redis-server`` process this test owns; ``start()``/``stop()`` at will."""

    def __init__(self, *, port: int | None = None, appendonly: bool = False) -> None:
        self.port = port if port is not None else free_port()
        if self.port == REAL_REDIS_PORT:
            raise ValueError("refusing to run a test redis-server on 6379")
        self.appendonly = appendonly
        self._tmp = tempfile.TemporaryDirectory(prefix="test-redis-")
        self.directory = Path(self._tmp.name)
        self._log = self.directory / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The running server's PID, or None when stopped."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the server (on the same port and dir as before) and wait for PING."""
        if self._process is not None:
            raise RuntimeError(f"redis-server on port {self.port} is already running")
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.directory), "--save", "", "--daemonize", "no",
                "--protected-mode", "yes", "--logfile", ""]
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        with open(self._log, "ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - our own fixed argv
                args, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory)
        self._wait_until_ready()

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server by PID: SIGTERM (a clean shutdown) or SIGKILL (a crash)."""
        process, self._process = self._process, None
        if process is None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def close(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> RedisServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"redis-server on port {self.port} exited at start:\n"
                                   + self._log.read_text(errors="replace")[-2000:])
            if _answers_ping(self.port):
                return
            time.sleep(0.02)
        self.stop(kill=True)
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING "
                           f"within {STARTUP_TIMEOUT_S} s")


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_server_fixture(scope: Any = "session", **options: Any) -> Callable[[], Any]:
    """A pytest fixture yielding a started ``RedisServer(**options)``, stopped after."""

    @pytest.fixture(scope=scope)
    def fixture() -> Iterator[RedisServer]:
        with RedisServer(**options) as server:
            yield server

    return fixture
