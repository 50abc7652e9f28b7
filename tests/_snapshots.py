"""Publishing policy snapshots from tests, the way the learner publishes them."""

from __future__ import annotations

import redis

from common.storage.keys import policy_key
from common.storage.snapshots import PUBLISH_SNAPSHOT_LUA

_PUBLISH = PUBLISH_SNAPSHOT_LUA + "return publish_snapshot(KEYS[1], ARGV[1], ARGV[2])"


def publish_snapshot(client: redis.Redis, experiment: str, blob: bytes) -> int:
    """Publish ``blob`` as ``experiment``'s newest snapshot on Redis; its version."""
    script = client.register_script(_PUBLISH)
    return int(script(keys=[policy_key(experiment)], args=[blob, experiment]))
