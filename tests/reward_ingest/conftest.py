"""Fixtures shared by the reward_ingest tests: a real redis-server for the whole session."""

from __future__ import annotations

import pytest
import redis

from tests._redis_server import RedisServer, redis_server_fixture

redis_server = redis_server_fixture(scope="session")
"""A ``RedisServer`` (``.url``, ``.port``) started once per session; never stop it here."""


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, emptied (FLUSHALL) for this test."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url
