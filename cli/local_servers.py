"""Local servers for the demo and the tests: uvicorn in a thread, moto's server.

One place for both, so the live demo (package code, which cannot import tests)
and the test suite start and stop them the same way: on 127.0.0.1 only, on free
ports (never 6379: somebody's real Redis), stopped by the block that started them.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import IO, Any

import uvicorn

REAL_REDIS_PORT = 6379


class LocalServerError(RuntimeError):
    """A local server did not start."""


def free_port() -> int:
    """A loopback port nothing listens on right now (never 6379)."""
    while True:
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port != REAL_REDIS_PORT:
            return port


@contextmanager
def serve_in_thread(app: Any, *, timeout_s: float = 15.0, **config: Any) -> Iterator[str]:
    """Serve ``app`` on a free 127.0.0.1 port in a thread until the block ends; yields its URL.

    The socket is bound here (port 0) and handed to uvicorn: no race for the port.
    ``config`` goes to ``uvicorn.Config`` (e.g. ``http="h11"``).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options: dict[str, Any] = {"log_level": "error", "access_log": False, "lifespan": "on",
                               **config}
    server = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise LocalServerError(f"a server did not start on 127.0.0.1:{port}")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        sock.close()


def moto_available() -> bool:
    """Whether moto's server can run here (``moto[server]`` is a dev dependency)."""
    return (importlib.util.find_spec("moto") is not None
            and importlib.util.find_spec("flask") is not None)


def _moto_command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    found = str(script) if script.exists() else shutil.which("moto_server")
    if found:
        return [found, "-H", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=0.5):  # noqa: S310
            return True
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def moto_server(timeout_s: float = 20.0, attempts: int = 3) -> Iterator[str]:
    """moto's server on a free loopback port until the block ends; yields its URL.

    Its log goes to a temporary file (a pipe nobody reads could fill and stall it).
    Stopped by its PID: terminate, then kill if it lingers.
    """
    for attempt in range(attempts):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in _stop
        proc = subprocess.Popen(_moto_command(port),  # noqa: S603 - our interpreter's tool
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None and not _answers(url):
            if time.monotonic() > deadline:
                _stop(proc, log)
                raise LocalServerError(f"moto's server did not answer on {url} in {timeout_s:g} s")
            time.sleep(0.05)
        if proc.poll() is None:
            break
        log.seek(0)
        tail = log.read().decode(errors="replace").strip().splitlines()[-1:]
        _stop(proc, log)
        if attempt == attempts - 1:
            raise LocalServerError(f"moto's server exited with {proc.returncode}: "
                            f"{tail[0] if tail else 'no output'}")
    try:
        yield url
    finally:
        _stop(proc, log)


def _stop(proc: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    log.close()


