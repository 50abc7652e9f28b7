"""Where a server's time goes: py-spy's raw samples, summed by area, file and function.

``py-spy record --format raw --nolineno --full-filenames`` writes one line per
distinct stack, ``frame;frame;...;leaf COUNT``, each frame ``function (file)``;
files are shown here relative to site-packages, the stdlib or the project. py-spy
keeps only samples of threads that are running, so a share of the samples is a
share of the process's CPU, and share × the CPU µs per request measured over the
same load gives µs per request.

Samples of threads other than the event loop's (stacks rooted in
``Thread._bootstrap``: the spool's and asyncio's executor threads, which only wait
on their queues in this benchmark) are counted apart: py-spy's idle detection
misses some of those waits.

Self time is the leaf frame's (C code called from Python, such as ``json``'s
encoder, ``hmac`` or uvloop's own loop, counts as its Python caller's);
inclusive time counts a function once per sample it appears in, anywhere on the
stack.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*)\)$")
_STDLIB = re.compile(r"^.*/lib/python3\.\d+/")
THREAD_ROOT = "Thread._bootstrap (threading.py)"

# First match wins: (area, substrings of the leaf frame's file).
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("router: request handler (fast_path, routes/, validation, events, errors)",
     ("router/fast_path.py", "router/routes/", "router/validation.py", "router/events.py",
      "router/errors.py", "router/state.py")),
    ("router: context from the header (context.py)", ("router/context.py",)),
    ("router: guardrails (guardrails.py)", ("router/guardrails.py",)),
    ("router: decision (experiments.py, event_ids.py) + bandit policy and sampling",
     ("router/experiments.py", "router/event_ids.py", "bandit/")),
    ("router: metrics (metrics.py) + prometheus_client",
     ("router/metrics.py", "prometheus_client/")),
    ("router: SageMaker backend, our code (backends/)", ("router/backends/",)),
    ("router: decision log, our code (store/, common/storage/)",
     ("router/store/", "common/storage/")),
    ("pass-through handler (bench/_proxy_apps.py)", ("_proxy_apps.py",)),
    ("hmac/hashlib (+ botocore, email.message): SigV4 signing",
     ("botocore/", "hmac.py", "email/", "hashlib.py")),
    ("aiohttp client (+ yarl, multidict)", ("aiohttp/", "yarl/", "multidict/")),
    ("hiredis + redis-py (decision log)", ("redis/", "hiredis/")),
    ("FastAPI layer (+ opentelemetry lookups of its telemetry middleware)",
     ("fastapi/", "opentelemetry/")),
    ("Starlette (routing, middleware, Request, Response)", ("starlette/",)),
    ("uvicorn (httptools protocol, ASGI glue)", ("uvicorn/",)),
    ("uuid (request ids of error answers)", ("uuid.py",)),
    ("json (stdlib)", ("json/",)),
    ("event loop: uvloop run loop (C) + asyncio", ("asyncio/", "uvloop/")),
)
OTHER = "other (stdlib, typing, ...)"

# The router's hot path step by step: (label, frame), inclusive time of each frame.
ROUTER_STEPS: tuple[tuple[str, str], ...] = (
    ("whole request: RouterApp (raw ASGI, ahead of FastAPI)",
     "RouterApp.__call__ (router/fast_path.py)"),
    ("├ serve_invocation", "serve_invocation (router/routes/invocations.py)"),
    ("│ ├ _decide: headers, body, context, decision", "_decide (router/routes/invocations.py)"),
    ("│ │ ├ context from X-Bandit-Context", "ContextExtractor.extract (router/context.py)"),
    ("│ │ └ Experiment.decide (policy, guardrails.adjust, sample, event id)",
     "Experiment.decide (router/experiments.py)"),
    ("│ └ _invoke_and_log", "_invoke_and_log (router/routes/invocations.py)"),
    ("│   ├ SageMakerBackend.invoke: sign + aiohttp POST + read",
     "SageMakerBackend.invoke (router/backends/sagemaker.py)"),
    ("│   │ └ SigV4 signing (cached key)", "SigV4Signer.sign (router/backends/_sigv4.py)"),
    ("│   ├ decision_event (the log record)", "decision_event (router/events.py)"),
    ("│   ├ store.append (encode, write or queue, await the reply)",
     "RedisStore.append (router/store/redis.py)"),
    ("│   │ └ our RESP connection: pack, write, await the reply",
     "RespConnection._send (router/store/_resp.py)"),
    ("│   └ store.append (memory://)", "MemoryStore.append (router/store/memory.py)"),
    ("├ Starlette Response (build + send)", "Response.__call__ (starlette/responses.py)"),
    ("└ after the answer: guardrails + metrics", "_account (router/routes/invocations.py)"),
    ("flusher task: batches queued behind a write in flight",
     "GroupCommit._flush_loop (common/storage/group_commit.py)"),
    ("RESP replies read (data_received)", "_Protocol.data_received (router/store/_resp.py)"),
)


def record(py_spy: str, pid: int, seconds: int, output: Path, *, rate: int = 200) -> Path:
    """``py-spy record`` on ``pid`` for ``seconds``, raw format, aggregated by function."""
    argv = [py_spy, "record", "--pid", str(pid), "--duration", str(seconds),
            "--rate", str(rate), "--format", "raw", "--nolineno", "--full-filenames",
            "-o", str(output)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60,
                          check=False)
    if done.returncode != 0 or not output.exists():
        raise RuntimeError(f"py-spy failed (status {done.returncode}): {done.stderr[-2000:]}")
    return output


@dataclass(frozen=True, slots=True)
class Profile:
    """Sample counts of the event loop's thread, and of the other threads."""

    total: int
    other_threads: int
    self_time: Counter[str]
    inclusive: Counter[str]
    by_area: Counter[str]
    by_file: Counter[str]


def short_file(path: str) -> str:
    """``path`` relative to site-packages, the stdlib or the project."""
    if "site-packages/" in path:
        return path.rsplit("site-packages/", 1)[1]
    root = f"{ROOT}/"
    if path.startswith(root):
        return path.removeprefix(root)
    return _STDLIB.sub("", path)


def _split(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame)
    if match is None:
        return frame, ""
    return match.group("function"), short_file(match.group("file"))


def area_of(file: str) -> str:
    """The area a leaf frame's file belongs to."""
    for area, needles in AREAS:
        if any(needle in file for needle in needles):
            return area
    return OTHER


def parse(raw: str) -> Profile:
    """A ``Profile`` of py-spy's raw output."""
    total = other_threads = 0
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_area: Counter[str] = Counter()
    by_file: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = []
        for frame in stack.split(";"):
            function, file = _split(frame)
            frames.append(f"{function} ({file})" if file else function)
        if frames[0] == THREAD_ROOT:
            other_threads += count
            continue
        total += count
        leaf = frames[-1]
        self_time[leaf] += count
        file = _split(leaf)[1]
        by_file[file] += count
        by_area[area_of(file)] += count
        for frame in set(frames):
            inclusive[frame] += count
    return Profile(total, other_threads, self_time, inclusive, by_area, by_file)


def _pct(count: int, total: int) -> str:
    return f"{100.0 * count / total:.1f} %" if total else "-"


def _us(count: int, total: int, us_per_request: float | None) -> str:
    if not total or us_per_request is None:
        return "-"
    return f"{us_per_request * count / total:.1f}"


Table = tuple[str, list[str], list[list[str]]]


def tables(profile: Profile, us_per_request: float | None, *, top: int = 20) -> list[Table]:
    """(title, headers, rows) for: the router's steps (when it is the router), areas by
    self time, functions by self time, functions by inclusive time (the entry frames
    that wrap everything left out)."""
    total = profile.total
    result: list[Table] = []
    steps = [[label, _pct(profile.inclusive[frame], total),
              _us(profile.inclusive[frame], total, us_per_request)]
             for label, frame in ROUTER_STEPS if profile.inclusive[frame]]
    if profile.inclusive[ROUTER_STEPS[0][1]]:  # the router's profile
        result.append(("The router's hot path, step by step (inclusive)",
                       ["step", "share of samples", "≈ CPU µs / request"], steps))
    areas = [[area, _pct(n, total), _us(n, total, us_per_request)]
             for area, n in profile.by_area.most_common()]
    result.append(("Self time by area (the leaf frame's file)",
                   ["area", "share of samples", "≈ CPU µs / request"], areas))
    selfs = [[frame, _pct(n, total), _us(n, total, us_per_request)]
             for frame, n in profile.self_time.most_common(top)]
    result.append((f"Self time by function (top {top})",
                   ["function (file)", "self", "≈ CPU µs / request"], selfs))
    # Frames on (nearly) every sample are the entry points (main, asyncio.run, ...).
    inner = [(frame, n) for frame, n in profile.inclusive.most_common() if n < 0.97 * total]
    inclusive = [[frame, _pct(n, total), _us(n, total, us_per_request),
                  _pct(profile.self_time[frame], total)]
                 for frame, n in inner[:top]]
    result.append((f"Inclusive time by function (top {top}, entry frames left out)",
                   ["function (file)", "inclusive", "≈ CPU µs / request", "self"], inclusive))
    return result
