"""The subprocess servers the benchmarks start, one way for all: each stopped by its PID.

Every server gets a free loopback port (never 6379: somebody else's Redis) and a
log file in the run's temp dir; ``wait_until`` polls it until it answers and
fails with its log if it dies first. ``Fleet`` stops what it started in reverse
order: SIGTERM, then SIGKILL after 10 s, and SIGKILL for the rest if a stop is
interrupted (Ctrl-C). ``bench/_loop_servers.py`` and ``bench/_proxy_servers.py``
start their own servers with it; ``redis-server`` and ``bandit-router serve``
start here, as both need them.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from cli.local_servers import free_port

__all__ = ["BIN", "BenchError", "Fleet", "Server", "find_tool", "free_port", "get_json",
           "http_ok", "redis_command", "require_tools", "start_redis", "start_serve",
           "tcp_open", "wait_until"]

BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class BenchError(RuntimeError):
    """A server would not start, answered wrongly, or a tool is missing."""


@dataclass
class Server:
    """One running process we started: its name, PID, base URL and log file."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    url: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL if it is still there after 10 s."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of its log, or "" if there is none."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Fleet:
    """Every server of a run, logging to ``directory``, stopped in reverse order of start."""

    directory: Path
    cwd: Path | None = None  # where the servers run; None: ``directory``
    servers: list[Server] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], port: int, *,
              env: dict[str, str] | None = None) -> Server:
        """Start ``argv`` with its output in ``<directory>/<name>.log``; not waited for."""
        log = self.directory / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=env,
                                       cwd=self.cwd or self.directory)
        server = Server(name, process, port, log, f"http://127.0.0.1:{port}")
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        """Stop every server, last started first; SIGKILL the rest if a stop is interrupted."""
        try:
            while self.servers:
                self.servers[-1].stop()
                self.servers.pop()
        finally:
            while self.servers:
                self.servers.pop().process.kill()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop_all()


def wait_until(server: Server, ready: Callable[[], bool],
               timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    """Poll ``ready`` until it holds; ``BenchError`` with the log if the process dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(f"{server.name} exited at start (status "
                             f"{server.process.returncode}):\n{server.log_tail()}")
        if ready():
            return
        time.sleep(0.05)
    raise BenchError(f"{server.name} did not become ready within {timeout_s:.0f} s:\n"
                     f"{server.log_tail()}")


# --- tools ----------------------------------------------------------------------------


def find_tool(name: str) -> str | None:
    """``name`` on PATH, or in /usr/sbin (nginx lives there and not every PATH has it)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")


def require_tools(names: list[str]) -> dict[str, str]:
    """The path of each tool; ``BenchError`` naming every missing one and how to install."""
    paths = {name: find_tool(name) for name in names}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        raise BenchError(f"missing: {', '.join(missing)}; install with `apt-get update && "
                         f"apt-get install -y {' '.join(missing)}` (Debian/Ubuntu)")
    return {name: path for name, path in paths.items() if path is not None}


# --- is it answering? -----------------------------------------------------------------


def tcp_open(port: int) -> bool:
    """Whether something accepts connections on the loopback ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    """Whether a GET of ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
            return 200 <= int(response.status) < 300
    except OSError:  # URLError and HTTPError are OSErrors
        return False


def get_json(url: str, timeout_s: float = 5.0) -> dict[str, object]:
    """The JSON document a GET of ``url`` answers."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (loopback)
        document: dict[str, object] = json.loads(response.read())
        return document


def redis_command(port: int, *words: str, timeout_s: float = 5.0) -> bytes:
    """One command to the redis-server on ``port`` in raw RESP (no client needed);
    the first bytes of its reply."""
    request = b"*%d\r\n" % len(words)
    for word in words:
        data = word.encode()
        request += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(request)
        return sock.recv(64)


def _redis_ready(port: int) -> bool:
    try:
        return redis_command(port, "PING", timeout_s=0.5).startswith(b"+PONG")
    except OSError:
        return False


# --- the servers both benchmarks run --------------------------------------------------


def start_redis(fleet: Fleet, binary: str | None = None) -> Server:
    """Our own ``redis-server`` (``binary``, or the one ``find_tool`` finds), started as
    ``tests/_redis_server.py`` starts it: loopback only, no persistence, its data in
    the run's temp dir; its ``url`` is ``redis://127.0.0.1:PORT/0``."""
    binary = binary or require_tools(["redis-server"])["redis-server"]
    port = free_port()
    data = fleet.directory / "redis"
    data.mkdir(exist_ok=True)  # a second fleet of the same run starts a Redis here again
    server = fleet.spawn("redis", [binary, "--port", str(port), "--bind", "127.0.0.1",
                                   "--dir", str(data), "--save", "", "--appendonly", "no",
                                   "--daemonize", "no", "--protected-mode", "yes",
                                   "--logfile", ""], port)
    server.url = f"redis://127.0.0.1:{port}/0"
    wait_until(server, lambda: _redis_ready(port))
    return server


def start_serve(fleet: Fleet, name: str, config: Path, *, command: list[str] | None = None,
                env: dict[str, str] | None = None) -> Server:
    """``bandit-router serve --config config`` (or ``command serve ...``) on a free port,
    logging warnings only; ready when ``/readyz`` answers 2xx."""
    port = free_port()
    executable = command or [str(BIN / "bandit-router")]
    server = fleet.spawn(name, [*executable, "serve", "--config", str(config),
                                "--port", str(port), "--log-level", "warning"], port, env=env)
    wait_until(server, lambda: http_ok(f"{server.url}/readyz"))
    return server
