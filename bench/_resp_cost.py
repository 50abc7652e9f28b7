"""One Redis round trip at a time: redis-py's asyncio client against our RESP connection.

    .venv/bin/python bench/_resp_cost.py [N]

At one request in flight the decision log's write is a round trip on every
request's latency, so its client cost counts in full. Starts its own redis-server
on a free loopback port (no persistence) and, under uvloop as the router runs, times
N sequential PINGs and N sequential dedupe-script calls (``EVALSHA``, one ~330-byte
event each) through redis-py and through ``router.store._resp.RespConnection``,
plus ``RedisStore.append`` (the whole path: encode, group commit, script, settle).
Three interleaved rounds; the table shows the median wall µs per operation.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import _common
import redis.asyncio as aioredis
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.storage.keys import DECISIONS_STREAM, decision_seen_key
from router.store import RedisStore
from router.store._resp import RespConnection
from router.store.base import DEDUPE_XADD
from tests._redis_server import RedisServer

ROUNDS = 3
Op = Callable[[int], Awaitable[object]]


def _event(i: int) -> dict[str, object]:
    """A decision event of realistic size (~330 bytes of JSON)."""
    return {"event_id": f"{i:08d}-6f1c-4b7e-9a51-3c2d8e0f4a7b", "experiment": "checkout",
            "timestamp": 1_767_225_600.123 + i, "policy_version": 42, "variant": "B",
            "probabilities": {"A": 0.3622, "B": 0.2734, "C": 0.3644},
            "context": {"country": "DE", "device": "mobile", "basket": 3, "score": 0.42},
            "targeted": False, "source": "invocations", "outcome": "ok", "latency_ms": 2.7}


async def _time(op: Op, start: int, n: int) -> float:
    """µs per call of ``n`` sequential ``op`` calls."""
    began = time.perf_counter()
    for i in range(start, start + n):
        await op(i)
    return (time.perf_counter() - began) / n * 1e6


async def _measure(url: str, n: int, spool: Path) -> dict[str, float]:
    client = aioredis.Redis.from_url(url)
    script = client.register_script(DEDUPE_XADD)
    connection = RespConnection(url, connect_timeout_s=1.0, reply_timeout_s=5.0)
    store = RedisStore(url, spool_path=spool)
    await store.start()
    line = json.dumps(_event(0), separators=(",", ":"))

    def script_args(tag: str, i: int) -> tuple[str | int, ...]:
        return (2, DECISIONS_STREAM, decision_seen_key(f"{tag}-{i}"), 1_000_000, 3600, line)

    async def redis_py_script(i: int) -> object:
        _, stream, key, *args = script_args("py", i)
        return await script(keys=[stream, key], args=args)

    ops: dict[str, Op] = {
        "redis-py PING": lambda i: client.ping(),
        "RespConnection PING": lambda i: connection.call("PING"),
        "redis-py EVALSHA (dedupe script)": redis_py_script,
        "RespConnection EVALSHA (dedupe script)": lambda i: connection.call(
            "EVALSHA", script.sha, *script_args("resp", i)),
        "RedisStore.append (whole path)": lambda i: store.append(_event(i)),
    }
    await client.script_load(DEDUPE_XADD)
    samples: dict[str, list[float]] = {name: [] for name in ops}
    try:
        for rnd in range(ROUNDS):
            for name, op in ops.items():
                await _time(op, 10_000_000 * (rnd + 1), 200)  # warm-up
                samples[name].append(await _time(op, rnd * n, n))
    finally:
        await store.close()
        await connection.close()
        await client.aclose()
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str]) -> None:
    n = int(argv[1]) if len(argv) > 1 else 3000
    print(_common.run_header(f"One Redis round trip at a time, N={n}", argv))
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        medians = uvloop.run(_measure(server.url, n, Path(tmp) / "spool.jsonl"))
    print()
    print(_common.markdown_table(
        ["operation, one at a time (uvloop)", "µs wall / op"],
        [[name, f"{value:.1f}"] for name, value in medians.items()]))


if __name__ == "__main__":
    main(sys.argv)
