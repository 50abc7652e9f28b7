"""Shutdown ends within a bound, whatever the registry and the decision store are doing."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import httpx
import pytest
import redis
import uvicorn

from common.config import ExperimentConfig, Settings, parse_settings
from router.app import create_app
from router.registry import MemoryRegistry
from router.state import build_state
from router.store import MemoryStore
from router.sync import RegistrySync
from tests._redis_server import RedisServer
from tests._servers import free_port
from tests._wait import wait_for, wait_for_async
from tests.router._stack import experiment

CLOSE_BOUND_S = 5.0
VARIANTS = [{"name": "A", "url": "http://127.0.0.1:9/a"},
            {"name": "B", "url": "http://127.0.0.1:9/b"}]


class _WaitForFeed:
    """Notices through ``asyncio.wait_for``, as redis-py's socket writes wait: on Python
    3.11 it drops a cancel that arrives as the awaited result does."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.waiting = False

    async def wait(self, timeout_s: float) -> None:
        self.waiting = True
        with suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout_s)
        self.event.clear()

    async def close(self) -> None:
        pass


class _WaitForRegistry(MemoryRegistry):
    def __init__(self) -> None:
        super().__init__()
        self.feed = _WaitForFeed()

    def changes(self) -> _WaitForFeed:  # type: ignore[override]
        return self.feed


def test_sync_close_ends_even_when_a_cancel_is_lost() -> None:
    """A notice that lands as ``close`` cancels the watcher, waiting in a ``wait_for``:
    the cancel is lost and the watcher goes on. Trying every tick between the notice
    and the cancel hits that window deterministically."""
    settings = parse_settings({"experiments": [experiment(backend="http", variants=VARIANTS)]})

    async def scenario(ticks: int) -> bool:
        registry = _WaitForRegistry()
        sync = RegistrySync(build_state(settings, MemoryStore()), registry, poll_s=30.0)
        await sync.start()
        await wait_for_async(lambda: registry.feed.waiting)  # the watcher waits for a notice
        registry.feed.event.set()
        for _ in range(ticks):
            await asyncio.sleep(0)
        closing = asyncio.create_task(sync.close())
        done, _ = await asyncio.wait({closing}, timeout=CLOSE_BOUND_S)
        return closing in done

    hung = [ticks for ticks in range(6) if not asyncio.run(scenario(ticks))]
    assert hung == [], f"close() still waiting after {CLOSE_BOUND_S} s (ticks {hung})"


def test_a_memory_registry_notice_does_not_swallow_the_watchers_cancel() -> None:
    async def scenario(ticks: int) -> bool:
        registry = MemoryRegistry()
        feed = registry.changes()
        waiting = asyncio.create_task(feed.wait(30.0))
        await asyncio.sleep(0.01)
        await registry.put(ExperimentConfig.model_validate(
            experiment(backend="http", variants=VARIANTS)))  # the notice
        for _ in range(ticks):
            await asyncio.sleep(0)
        if not waiting.cancel():
            return True  # it had returned already: nothing to lose
        with suppress(asyncio.CancelledError):
            await waiting
        return waiting.cancelled()

    swallowed = [ticks for ticks in range(6) if not asyncio.run(scenario(ticks))]
    assert swallowed == [], f"the cancel was lost (ticks {swallowed})"


# -- against a real redis-server in every state ---------------------------------------------

EXIT_BOUND_S = 15.0  # each close step is bounded at a few seconds; shutdowns take ~0.2 s
ROUNDS = 2
STATES = ("up", "down", "frozen", "refusing writes", "out of memory", "busy script")


def _spin(port: int) -> None:
    # A script that never ends: Redis answers everyone else BUSY until SCRIPT KILL.
    with redis.Redis(port=port) as client, suppress(redis.RedisError):
        client.eval("while true do end", 0)


def _ping(port: int) -> str:
    try:
        return str(redis.Redis(port=port, socket_timeout=0.2).ping())
    except redis.RedisError as exc:
        return str(exc)


@contextmanager
def broken(state: str, server: RedisServer) -> Iterator[None]:
    """``server`` in ``state`` for the block; able to stop normally after it."""
    if state == "down":
        server.stop(kill=True)
    elif state == "frozen":
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)
    elif state != "up":
        with redis.Redis(port=server.port) as client:
            if state == "refusing writes":
                client.config_set("min-replicas-to-write", 1)
            elif state == "out of memory":
                client.config_set("maxmemory-policy", "noeviction")
                client.config_set("maxmemory", 1)
            else:
                client.config_set("busy-reply-threshold", 50)
                threading.Thread(target=_spin, args=(server.port,), daemon=True).start()
                wait_for(lambda: "BUSY" in _ping(server.port), 5,
                         message="the script did not start")
    try:
        yield
    finally:
        if state == "frozen" and server.pid is not None:
            os.kill(server.pid, signal.SIGCONT)
        elif state == "busy script":
            with redis.Redis(port=server.port) as client, suppress(redis.RedisError):
                client.script_kill()


def _settings(url: str, spool: Path) -> Settings:
    return parse_settings({"store": url, "decision_log": {"spool_path": str(spool)},
                           "experiments": [experiment(endpoint="churn-ep", backend="http",
                                                      variants=VARIANTS)]})


def _traffic(url: str) -> None:
    # A few decisions to log while the store misbehaves (the variants are not there).
    for _ in range(2):
        with suppress(httpx.TransportError):
            httpx.post(f"{url}/endpoints/churn-ep/invocations", content=b"{}", timeout=3)


@pytest.mark.parametrize("state", STATES)
def test_the_router_shuts_down_within_a_bound_whatever_state_redis_is_in(
        state: str, tmp_path: Path) -> None:
    """The router app (Redis store, registry and stats source) under uvicorn, stopped as
    SIGTERM stops it, ``ROUNDS`` times."""
    for round_ in range(ROUNDS):
        with RedisServer() as server:
            app = create_app(_settings(server.url, tmp_path / f"spool-{round_}.jsonl"),
                             environ={})
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="error",
                                                           lifespan="on"))
            thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]},
                                      daemon=True)
            thread.start()
            try:
                wait_for(functools.partial(_started_or_ended, uvicorn_server, thread), 30,
                         message="no start")
                assert uvicorn_server.started, "the server thread ended before it started"
                with broken(state, server):
                    _traffic(url)
                    uvicorn_server.should_exit = True  # what uvicorn's SIGTERM handler does
                    thread.join(EXIT_BOUND_S)
                    assert not thread.is_alive(), (
                        f"round {round_}: the router still shutting down {EXIT_BOUND_S} s "
                        f"after it was told to, with redis {state}")
            finally:
                uvicorn_server.should_exit = True
                thread.join(EXIT_BOUND_S)
                sock.close()


SCRIPT = Path(sys.executable).with_name("bandit-router")
SERVE_STATES = ("refusing writes",)  # each `serve` costs seconds of imports
CONFIG = """\
store: {url}
decision_log: {{spool_path: {spool}}}
experiments:
  - name: churn
    endpoint: churn-ep
    backend: http
    variants: [{{name: A, url: "http://127.0.0.1:9/a"}}, {{name: B, url: "http://127.0.0.1:9/b"}}]
    policy: {{type: thompson}}
"""


def test_serve_exits_on_sigterm_with_redis_refusing_writes(tmp_path: Path) -> None:
    with ExitStack() as stack:
        runs = []
        for state in SERVE_STATES:
            server = stack.enter_context(RedisServer())
            port = free_port()
            config = tmp_path / f"{port}.yaml"
            config.write_text(CONFIG.format(url=server.url, spool=tmp_path / f"{port}.jsonl"))
            log = tmp_path / f"{port}.log"
            with open(log, "wb") as output:
                process = subprocess.Popen(  # noqa: S603 - the project's own script
                    [str(SCRIPT), "serve", "--config", str(config), "--port", str(port),
                     "--log-level", "warning"], stdout=output, stderr=subprocess.STDOUT)
            stack.callback(_reap, process)
            runs.append((state, server, f"http://127.0.0.1:{port}", process, log))
        for _, _, url, process, log in runs:
            _wait_ready(url, process, log)
        for state, server, url, process, _ in runs:
            stack.enter_context(broken(state, server))
            _traffic(url)
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + EXIT_BOUND_S
        for state, _, _, process, log in runs:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise AssertionError(f"serve still running {EXIT_BOUND_S} s after SIGTERM "
                                     f"with redis {state}:\n{log.read_text()}") from None
            assert "Traceback" not in log.read_text(), (state, log.read_text())


def _started_or_ended(server: uvicorn.Server, thread: threading.Thread) -> bool:
    return server.started or not thread.is_alive()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    def ready() -> bool:
        assert process.poll() is None, log.read_text()
        with suppress(httpx.TransportError):
            return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
        return False

    wait_for(ready, 60, interval=0.05, message=log.read_text)


def _reap(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)
