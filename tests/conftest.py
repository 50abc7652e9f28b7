"""Fixtures for the whole suite: one real redis-server, started once per session."""

from __future__ import annotations

import pytest
import redis

from tests._redis_server import RedisServer, redis_server_fixture

redis_server = redis_server_fixture(scope="session")
"""A ``RedisServer`` (``.url``, ``.port``) shared by every test; never stop it in a test
(a test that kills Redis starts its own ``RedisServer``)."""


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL (db 0), emptied (FLUSHALL: every db) for this test."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url
