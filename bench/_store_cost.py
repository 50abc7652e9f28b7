"""What one decision-log append costs: plain XADD pipeline vs the dedupe Lua script.

Starts its own redis-server on a free loopback port (no persistence), then times
``RedisStore.append`` at concurrency 1 (one append at a time: a round trip each) and
64 (group commit: the flusher batches whatever is queued), once with
``dedupe_live=False`` (a pipeline of ``XADD MAXLEN ~``) and once with the dedupe
script (``SET NX EX`` + ``XADD`` per event, one EVALSHA per batch). Rounds alternate
the two modes and the median is reported, since these machines are shared and noisy.
Also reported: Redis's own CPU per event (``INFO cpu``), the cost the script adds on
the server, and the mean batch size.

    .venv/bin/python bench/_store_cost.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router.store import RedisStore
from tests._redis_server import RedisServer

ROUNDS = 5
APPENDS = {1: 2_000, 64: 32_000}  # per round, by concurrency


def _event(i: int) -> dict[str, Any]:
    """A decision event of realistic size (~330 bytes of JSON)."""
    return {"event_id": f"{i:08d}-6f1c-4b7e-9a51-3c2d8e0f4a7b", "experiment": "checkout",
            "timestamp": 1_767_225_600.123 + i, "policy_version": 42, "variant": "B",
            "p": 0.2734, "arms": ["A", "B", "C"], "probs": [0.3622, 0.2734, 0.3644],
            "context": {"country": "DE", "device": "mobile", "basket": 3.0, "hour": 14.0},
            "targeted": False, "unit": "user-1234567"}


def _redis_cpu_s(url: str) -> float:
    with redis.Redis.from_url(url) as client:
        info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _run(url: str, spool_dir: Path, *, dedupe: bool, concurrency: int,
               total: int, offset: int) -> tuple[float, float, float]:
    """(µs per append, Redis CPU µs per event, mean batch size) of one timed run."""
    store = RedisStore(url, spool_path=spool_dir / f"spool-{offset}.jsonl", dedupe_live=dedupe)
    await store.start()
    per_worker = total // concurrency

    async def worker(first: int) -> None:
        for i in range(first, first + per_worker):
            await store.append(_event(i))

    cpu_before = _redis_cpu_s(url)
    started = time.perf_counter()
    await asyncio.gather(*(worker(offset + w * per_worker) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = _redis_cpu_s(url) - cpu_before
    await store.close()
    count = per_worker * concurrency
    return elapsed / count * 1e6, cpu / count * 1e6, count / max(store.flushes, 1)


def main() -> None:
    """Print a Markdown table of the medians."""
    results: dict[tuple[int, bool], list[tuple[float, float, float]]] = {}
    with RedisServer() as server, tempfile.TemporaryDirectory() as spool_dir:
        offset = 0
        for _ in range(ROUNDS):
            for concurrency, total in APPENDS.items():
                for dedupe in (False, True):
                    with redis.Redis.from_url(server.url) as client:
                        client.flushall()
                    run = asyncio.run(_run(server.url, Path(spool_dir), dedupe=dedupe,
                                           concurrency=concurrency, total=total,
                                           offset=offset))
                    results.setdefault((concurrency, dedupe), []).append(run)
                    offset += total
    print("| concurrency | mode | µs/append | Redis CPU µs/event | mean batch | script/plain |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for concurrency in APPENDS:
        plain = statistics.median(r[0] for r in results[concurrency, False])
        for dedupe in (False, True):
            runs = results[concurrency, dedupe]
            us, cpu, batch = (statistics.median(r[k] for r in runs) for k in range(3))
            mode = "dedupe script" if dedupe else "plain XADD pipeline"
            print(f"| {concurrency} | {mode} | {us:.1f} | {cpu:.1f} | {batch:.1f} "
                  f"| {us / plain:.2f}x |")


if __name__ == "__main__":
    main()
