"""The processes ``bench/proxy.py`` runs: each server in its own subprocess, stopped by PID.

Every server listens on a free loopback port (never 6379) and writes its log in
the run's temp dir; ``Fleet`` stops them in reverse order (SIGTERM, then SIGKILL
after 10 s). nginx, its config and its pid/log files live in the temp dir too;
``redis-server`` is started as ``tests/_redis_server.py`` starts it (no
persistence, loopback only) on a port of its own.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
APPS = Path(__file__).resolve().parent / "_proxy_apps.py"
DEFAULT_REDIS_PORT = 6379  # somebody else's Redis: never ours
STARTUP_TIMEOUT_S = 30.0

ENDPOINT = "bench-endpoint"
VARIANTS = ("Variant1", "Variant2", "Variant3")
REQUEST_BODY = json.dumps({"instances": [[0.5, -1.2, 0.3, 0.9, -0.4, 0.1]]},
                          separators=(",", ":"))
REQUEST_CONTEXT = json.dumps({"segment": "returning", "device": "mobile", "score": 0.42,
                              "visits": 7}, separators=(",", ":"))
REQUEST_HEADERS = {"Content-Type": "application/json", "Accept": "application/json",
                   "X-Bandit-Context": REQUEST_CONTEXT}
INSTALL_HINT = ("install them with `apt-get update && apt-get install -y wrk nginx "
                "redis-server` (Debian/Ubuntu)")


class BenchError(RuntimeError):
    """A server would not start, answered wrongly, or a tool is missing."""


def free_port() -> int:
    """A loopback TCP port nobody listens on now (never 6379)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != DEFAULT_REDIS_PORT:
            return port


def find_tool(name: str) -> str | None:
    """``name`` on PATH, or in /usr/sbin (nginx lives there and not every PATH has it)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    return found


def require_tools(names: list[str]) -> dict[str, str]:
    """The path of each tool; ``BenchError`` naming every missing one and how to install."""
    paths = {name: find_tool(name) for name in names}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        raise BenchError(f"missing: {', '.join(missing)}; {INSTALL_HINT}")
    return {name: path for name, path in paths.items() if path is not None}


def tool_version(argv: list[str]) -> str:
    """The first line a ``--version``-style command prints (stdout or stderr)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0] if lines else "?"


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
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Fleet:
    """Every server of a run, stopped in reverse order of start."""

    directory: Path
    servers: list[Server] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], port: int, *,
              env: dict[str, str] | None = None) -> Server:
        log = self.directory / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                       env=env, stdin=subprocess.DEVNULL)
        server = Server(name, process, port, log, f"http://127.0.0.1:{port}")
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        while self.servers:
            self.servers.pop().stop()


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


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _get_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
            return 200 <= int(response.status) < 300
    except (OSError, urllib.error.HTTPError):
        return False


def invocations_url(base: str) -> str:
    return f"{base}/endpoints/{ENDPOINT}/invocations"


def check_invocation(server: Server) -> str:
    """POST the benchmark's request once; the invoked variant, or ``BenchError``."""
    request = urllib.request.Request(invocations_url(server.url),  # noqa: S310 (loopback)
                                     data=REQUEST_BODY.encode(), headers=REQUEST_HEADERS,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            body = response.read()
            variant = response.headers.get("X-Amzn-Invoked-Production-Variant")
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raise BenchError(f"{server.name} answered {exc.code}: {exc.read()[:500]!r}\n"
                         f"{server.log_tail()}") from None
    except OSError as exc:
        raise BenchError(f"{server.name} did not answer: {exc}\n{server.log_tail()}") from None
    if status != 200 or variant not in VARIANTS or b"predictions" not in body:
        raise BenchError(f"{server.name} answered {status}, variant {variant!r}, "
                         f"body {body[:200]!r}")
    return str(variant)


# --- the servers -------------------------------------------------------------------


def start_variant(fleet: Fleet) -> Server:
    """(a) the variant: a raw ASGI app under uvicorn."""
    port = free_port()
    server = fleet.spawn("variant", [sys.executable, str(APPS), "variant", str(port)], port)
    wait_until(server, lambda: _tcp_open(port))
    return server


def start_passthrough(fleet: Fleet, variant: Server) -> Server:
    """(c) FastAPI + aiohttp pass-through to ``variant``."""
    port = free_port()
    server = fleet.spawn("passthrough", [sys.executable, str(APPS), "passthrough", str(port),
                                         variant.url], port)
    wait_until(server, lambda: _get_ok(f"{server.url}/ping"))
    return server


NGINX_CONF = """\
# Generated by bench/proxy.py: nginx as a weighted proxy, the floor of what a proxy adds.
worker_processes 1;
daemon off;
{user}
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/nginx-body;
    proxy_temp_path {dir}/nginx-proxy;
    fastcgi_temp_path {dir}/nginx-fastcgi;
    uwsgi_temp_path {dir}/nginx-uwsgi;
    scgi_temp_path {dir}/nginx-scgi;
    keepalive_requests 1000000;

    # A weighted split per request ($request_id is random per request).
    split_clients "${{request_id}}" $variant {{
        34% Variant1;
        33% Variant2;
        *   Variant3;
    }}
{upstreams}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://$variant;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Amzn-SageMaker-Target-Variant $variant;
        }}
    }}
}}
"""

UPSTREAM = """\
    upstream {name} {{
        server 127.0.0.1:{port};
        keepalive 64;
        keepalive_requests 1000000;
    }}
"""


def start_nginx(fleet: Fleet, nginx: str, variant: Server) -> Server:
    """(b) nginx: ``split_clients`` over three upstreams (the same variant process, told
    which variant by header), upstream keep-alive, one worker, in the foreground."""
    port = free_port()
    directory = fleet.directory
    upstreams = "".join(UPSTREAM.format(name=name, port=variant.port) for name in VARIANTS)
    # Running as root, nginx's worker would switch to "nobody", who cannot enter the temp dir.
    user = "user root;" if os.geteuid() == 0 else ""
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=directory, port=port, upstreams=upstreams,
                                      user=user))
    server = fleet.spawn("nginx", [nginx, "-p", str(directory), "-c", str(conf),
                                   "-e", str(directory / "nginx-error.log")], port)
    wait_until(server, lambda: _tcp_open(port))
    return server


def start_redis(fleet: Fleet, redis_server: str) -> Server:
    """Our own redis-server: a free loopback port, no persistence, in the temp dir."""
    port = free_port()
    data = fleet.directory / "redis"
    data.mkdir()
    server = fleet.spawn("redis", [redis_server, "--port", str(port), "--bind", "127.0.0.1",
                                   "--dir", str(data), "--save", "", "--appendonly", "no",
                                   "--daemonize", "no", "--protected-mode", "yes",
                                   "--logfile", ""], port)
    server.url = f"redis://127.0.0.1:{port}/0"
    wait_until(server, lambda: _answers_ping(port))
    return server


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_stream_length(port: int, key: str) -> int:
    """``XLEN key`` on our redis-server (a raw RESP call: no client needed)."""
    command = f"*2\r\n$4\r\nXLEN\r\n${len(key)}\r\n{key}\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command)
        reply = sock.recv(64)
    if not reply.startswith(b":"):
        raise BenchError(f"XLEN {key}: unexpected reply {reply!r}")
    return int(reply[1:].split(b"\r\n", 1)[0])


ROUTER_CONFIG = """\
# Generated by bench/proxy.py: every per-request feature on.
store: {store}
decision_log:
  spool_path: {spool}
experiments:
  - name: bench
    endpoint: {endpoint}
    backend: sagemaker
    variants:
      - name: Variant1
      - name: Variant2
      - name: Variant3
    policy:
      type: thompson
    context:
      from: header
    guardrails:
      error_rate: 0.5
      p99_ms: 5000.0
      window_s: 60.0
      cooldown_s: 120.0
      min_requests: 20
      probe_share: 0.05
"""


def router_env(directory: Path, variant: Server) -> dict[str, str]:
    """The router's environment: the variant as SageMaker Runtime, dummy static keys, and no
    AWS config or metadata lookups from this machine."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update({
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": variant.url,
        "AWS_ACCESS_KEY_ID": "AKIDBENCHMARK",
        "AWS_SECRET_ACCESS_KEY": "bench-secret-key",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(directory / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(directory / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    return env


def start_router(fleet: Fleet, name: str, store: str, variant: Server,
                 command: str | None = None) -> Server:
    """(d)/(e) ``bandit-router serve`` from a generated config, SageMaker backend on the
    variant (signed requests), Thompson, context from the header, guardrails on.
    ``command`` replaces ``.venv/bin/bandit-router`` (split as a shell would)."""
    port = free_port()
    directory = fleet.directory
    config = directory / f"{name}.yaml"
    config.write_text(ROUTER_CONFIG.format(store=store, endpoint=ENDPOINT,
                                           spool=directory / f"{name}-spool.jsonl"))
    executable = shlex.split(command) if command else [str(BIN / "bandit-router")]
    server = fleet.spawn(name, [*executable, "serve", "--config", str(config),
                                "--port", str(port), "--log-level", "warning"],
                         port, env=router_env(directory, variant))
    wait_until(server, lambda: _get_ok(f"{server.url}/readyz"))
    return server


def readyz(server: Server) -> dict[str, object]:
    """The router's ``/readyz`` document."""
    with urllib.request.urlopen(f"{server.url}/readyz", timeout=5) as response:  # noqa: S310
        document: dict[str, object] = json.loads(response.read())
        return document


# --- CPU accounting ---------------------------------------------------------------

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live children (nginx's worker), in seconds."""
    total = 0.0
    for each in (pid, *_children(pid)):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime
    return total


def machine_busy() -> tuple[float, float]:
    """(CPU seconds all CPUs spent busy, wall seconds) since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    busy = (user + nice + system + irq + softirq + steal) * _TICK_S
    return busy, time.monotonic()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found
