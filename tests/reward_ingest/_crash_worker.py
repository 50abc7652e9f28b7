"""``python -m tests.reward_ingest._crash_worker URL``: the pipeline in a process to kill -9.

Prints ``ready`` once it holds its leases, ``done`` when everything is joined and
learned. The test SIGKILLs it at random moments and starts it again.
"""

from __future__ import annotations

import asyncio
import sys

from tests.reward_ingest._pipeline import drive_redis

LEASE_TTL_S = 0.3


def main() -> None:
    """Run the pipeline on the Redis at argv[1]."""
    url = sys.argv[1]
    asyncio.run(drive_redis(url, lease_ttl_s=LEASE_TTL_S, batch=50, learner_batch=20,
                            on_ready=lambda: print("ready", flush=True)))
    print("done", flush=True)


if __name__ == "__main__":
    main()
