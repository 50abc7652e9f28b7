"""A real redis-server for the joiner and learner tests (a plugin: ``pytest_plugins``)."""

from __future__ import annotations

import pytest
import redis

from tests._redis_server import RedisServer, redis_server_fixture

redis_server = redis_server_fixture(scope="session")
"""A ``RedisServer`` for the session (modules load this with ``pytest_plugins``)."""


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The server's URL, emptied (FLUSHALL) for this test."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url
