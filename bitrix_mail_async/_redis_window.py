"""The gateway's window budget shared through Redis, and the link to Redis it shares.

:class:`RedisWindow` keeps the budget of :class:`~bitrix_mail_async._window.WindowBudget` (its
module docstring is the algorithm) in the Redis hash ``<prefix>:{<key hash>}:window``, so that
every process (and every tenant) of one key spends one budget: N processes never start more
calls than the window has room for in total.

- **Admission** is one Lua script: take one unit of the budget, or return how long to wait
  (until ``Reset`` while the budget is 0, then one probe per ``PROBE_HOLD`` for all processes;
  a missing hash means nothing is known yet: :data:`~bitrix_mail_async._window.COLD_START`
  calls of all processes together start, as in one process, and the rest wait for a reading).
  Times are Redis's own (``TIME``), so hosts with skewed clocks agree. No wait is longer than
  :data:`~bitrix_mail_async._window.MAX_RESET`: a ``Reset`` or probe further ahead than any
  reading sets means Redis's clock went back since it was written, and the scripts drop the
  budget (the next call probes) instead of making every process wait out the step.
- **Readings** go to Redis from ``settle()`` (which is sync) through a second script run in a
  tracked background task: the same accept rule (a reading counts when it is not more generous
  than the budget, or when ``Reset`` has passed), the budget being ``Remaining`` less this
  process's calls in flight. Garbage headers drop the shared budget at once, absent ones once
  its ``Reset`` has passed; both then leave a ``none`` mark (the gateway sends no window), and
  a call that finds it goes without waiting. The hash expires a little after ``Reset`` or the
  probe hold, the mark after :data:`~bitrix_mail_async._window.MAX_RESET`.
- **A local mirror** (a :class:`~bitrix_mail_async._window.WindowBudget`) hears every answer
  too. While it knows of no window (the gateway sends no headers, or sent garbage) a call
  starts without a Redis round trip; while Redis is unreachable it is the budget.
- :class:`RedisLink` is whether Redis answers: one fallback mode per limiter, shared by the
  limiter and its window, so an outage gives one warning whichever of them met it first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bitrix_mail_async._window import (
    COLD_START,
    MAX_RESET,
    PROBE_HOLD,
    WindowBudget,
    WindowReading,
    read_window,
)

__all__ = ["REDIS_FAULTS", "RedisLink", "RedisWindow", "describe_client", "redact_redis_url"]

log = logging.getLogger("bitrix_mail_async.ratelimit.redis")

# What "Redis is not answering" looks like: the client's own errors, socket errors, and our
# asyncio.timeout around every call (a caller's client may retry for far longer than we wait).
REDIS_FAULTS: Final = (RedisError, OSError, TimeoutError)

# Calls waiting for a probe's answer ask Redis again after as long as the probe has been out,
# at least _LEAST_POLL and at most _PROBE_POLL: the answer usually comes in milliseconds, and
# only the publishing process's waiters are woken when it comes; calls that waited a poll for
# it would then start together, on limiter slots long due, in one bunch. A waiting call asks
# about five times in the first _PROBE_POLL, then once per _PROBE_POLL.
_PROBE_POLL: Final = PROBE_HOLD / 10
_LEAST_POLL: Final = 0.005
# A budget whose Reset passed this long ago is stale: the hash goes and the next call probes.
_KEEP_MS: Final = 5_000
_NONE_MS: Final = round(MAX_RESET * 1000)
# The publish script's answer when it dropped the budget (-1: the reading was not accepted).
_DROPPED: Final = -2

# KEYS[1] = <key stem>:window, a hash of budget, reset_at and next_probe (µs of Redis time) or
# of none=1 (the gateway sends no window); until the first reading also of cold, the calls
# admitted while nothing was known (their reset_at, the cold start's time, names that cold
# start). Times are doubles written with %.0f (see redis.py).
_PRELUDE = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function fmt(x) return string.format('%.0f', x) end
local function keep(ends, margin_ms)
  redis.call('PEXPIRE', KEYS[1], fmt(math.ceil((math.max(ends, now) - now) / 1000) + margin_ms))
end
local st = redis.call('HMGET', KEYS[1], 'budget', 'reset_at', 'next_probe', 'none', 'cold')
if st[1] and not st[4] and ((tonumber(st[2]) or 0) > now + $MAX_RESET
                            or (tonumber(st[3]) or 0) > now + $PROBE_HOLD) then
  -- a Reset or a probe further ahead than any reading sets: Redis's clock went back since
  -- it was written. What the budget says is void: nothing is known, the next call probes.
  redis.call('DEL', KEYS[1])
  st = {false, false, false, false, false}
end
"""


def _script(body: str) -> str:
    """A script of the window: the prelude, ``body``, and the constants they name."""
    return (
        (_PRELUDE + body)
        .replace("$MAX_RESET", str(round(MAX_RESET * 1_000_000)))
        .replace("$PROBE_HOLD", str(round(PROBE_HOLD * 1_000_000)))
    )


# ARGV: probe hold (µs), probe poll (µs), keep (ms), cold start (calls), least poll (µs).
# Returns the wait in µs; 0: admitted; negative: admitted while nothing is known, minus the
# cold start's time.
_ADMIT_LUA: Final = _script(
    """
if st[4] then return '0' end
local hold, margin = tonumber(ARGV[1]), tonumber(ARGV[3])
if not st[1] then
  -- nothing known: a few calls start (the in-process budget's cold start, for every process
  -- together), the others wait for their answers (or the hold); the first reading counts
  redis.call('HSET', KEYS[1], 'budget', tostring(tonumber(ARGV[4]) - 1), 'reset_at', fmt(now),
             'next_probe', fmt(now + hold), 'cold', '1')
  keep(now + hold, margin)
  return '-' .. fmt(now)
end
local budget, reset_at, next_probe = tonumber(st[1]), tonumber(st[2]), tonumber(st[3])
local function admitted()
  if not st[5] then return '0' end
  redis.call('HINCRBY', KEYS[1], 'cold', 1)
  return '-' .. st[2]
end
if budget > 0 then
  redis.call('HSET', KEYS[1], 'budget', tostring(budget - 1))
  return admitted()
end
if now < reset_at then return fmt(reset_at - now) end
if now >= next_probe then
  redis.call('HSET', KEYS[1], 'next_probe', fmt(now + hold))
  keep(now + hold, margin)
  return admitted()
end
-- a probe is out: ask again after as long as it has been out (its answer usually comes
-- within a round trip), between the least poll and the poll
local out = math.min(now - (next_probe - hold), tonumber(ARGV[2]))
return fmt(math.min(next_probe - now, math.max(tonumber(ARGV[5]), out)))
"""
)

# ARGV: kind (reading | absent | garbage), budget, reset (µs), keep (ms), none mark TTL (ms),
#       this process's calls of a cold start and that cold start's time.
# Returns the accepted budget, -1 (not accepted) or -2 (dropped).
_PUBLISH_LUA: Final = _script(
    """
local kind = ARGV[1]
local known = st[1] and not st[4]
local passed = not known or now >= tonumber(st[2])
if kind == 'garbage' or (kind == 'absent' and passed) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'none', '1')
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return -2
end
if kind ~= 'reading' then return -1 end
local budget = tonumber(ARGV[2])
if known and budget > tonumber(st[1]) and not passed then return -1 end
if known and st[5] then
  -- the first reading: the cold start's calls of other processes may still be on their way
  -- (this process subtracted its own in flight); counted as if all were
  local own = 0
  if ARGV[7] == st[2] then own = tonumber(ARGV[6]) end
  budget = math.max(0, budget - math.max(0, tonumber(st[5]) - own))
end
local reset_at = now + tonumber(ARGV[3])
redis.call('HDEL', KEYS[1], 'none', 'cold')
redis.call('HSET', KEYS[1], 'budget', tostring(budget), 'reset_at', fmt(reset_at),
           'next_probe', '0')
keep(reset_at, tonumber(ARGV[4]))
return budget
"""
)


def redact_redis_url(url: str) -> str:
    """The URL with its password (in the user part or the query) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None and "password=" not in parts.query.lower():
        return url
    netloc = parts.netloc
    if parts.password is not None:
        host = netloc.rpartition("@")[2]
        netloc = f"{parts.username or ''}:***@{host}"
    query = "&".join(
        f"{name}=***" if name.lower() == "password" else f"{name}={value}"
        for name, _, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def describe_client(client: Redis) -> str:
    """Where a caller's Redis client connects (no password), for reprs and logs."""
    kwargs: dict[str, Any] = dict(client.connection_pool.connection_kwargs)
    if "path" in kwargs:
        where = f"unix://{kwargs['path']}"
    else:
        where = f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
    return f"<Redis {where}/{kwargs.get('db', 0)}>"


class RedisLink:
    """Whether Redis answers: the fallback mode one limiter and its window share."""

    def __init__(
        self,
        where: str,
        probe_interval: float,
        fallback_rate: Callable[[], float],
        on_outage: Callable[[], None] = lambda: None,
    ) -> None:
        self.where = where
        """Where Redis is, for log lines (any password redacted)."""
        self.answers = 0
        """Script calls Redis answered (the limiter's and the window's)."""
        self._probe_interval = probe_interval
        self._fallback_rate = fallback_rate
        self._on_outage = on_outage
        self._since: float | None = None
        self._next_probe = 0.0

    @property
    def in_fallback(self) -> bool:
        """True from a Redis fault until Redis answers again."""
        return self._since is not None

    def use_redis(self) -> bool:
        """Whether this call should ask Redis (in fallback: only one probe per interval)."""
        if self._since is None:
            return True
        now = asyncio.get_running_loop().time()
        if now < self._next_probe:
            return False
        # This call is the probe; the others keep using the fallback until it answers.
        self._next_probe = now + self._probe_interval
        return True

    def failed(self, exc: BaseException) -> None:
        """Redis did not answer: enter the fallback (one warning per outage) or stay in it."""
        now = asyncio.get_running_loop().time()
        self._next_probe = now + self._probe_interval
        if self._since is None:
            self._since = now
            self._on_outage()
            log.warning(
                "Redis rate limit at %s unreachable (%s); using an in-process bucket at "
                "%.3g/s until it answers again",
                self.where,
                type(exc).__name__,
                self._fallback_rate(),
            )
        else:
            log.debug("Redis at %s still unreachable (%s)", self.where, type(exc).__name__)

    def answered(self) -> None:
        """Redis answered: count it, and leave the fallback if in it."""
        self.answers += 1
        if self._since is not None:
            down = asyncio.get_running_loop().time() - self._since
            self._since = None
            log.info(
                "Redis at %s answers again after %.1fs; shared bucket resumed", self.where, down
            )


class RedisWindow:
    """How many calls of one key may start now, by the gateway's window, for every process."""

    def __init__(self, client: Redis, *, key: str, link: RedisLink, timeout: float) -> None:
        self.local = WindowBudget()
        """The mirror: this process's calls in flight, the budget while Redis is away."""
        self._link = link
        self._keys = [key]
        self._timeout = timeout
        self._admit_script = client.register_script(_ADMIT_LUA)
        self._publish_script = client.register_script(_PUBLISH_LUA)
        self._admit_args = [
            str(round(PROBE_HOLD * 1_000_000)),
            str(round(_PROBE_POLL * 1_000_000)),
            str(_KEEP_MS),
            str(COLD_START),
            str(round(_LEAST_POLL * 1_000_000)),
        ]
        self._admitted = 0  # every call counted in flight, ever (see _publish)
        self._taking = 0  # admission scripts sent and not answered yet
        # This process's calls of the last cold start it took part in, and that start's time.
        self._cold = 0
        self._cold_start = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def key(self) -> str:
        """The Redis key of the shared budget (prefix and key hash, never the API key)."""
        return self._keys[0]

    def _local_only(self) -> bool:
        # No window known (no headers, or garbage): nothing to share, no round trip.
        return self.local.budget is None or self._link.in_fallback

    def try_admit(self) -> bool:
        """Count one call in flight when it needs no Redis round trip and may start now."""
        if self._local_only() and self.local.try_admit():
            self._admitted += 1
            return True
        return False

    async def admit(self) -> float:
        """Wait until the shared window has room for one more call and count it; the wait."""
        loop = asyncio.get_running_loop()
        waited = 0.0
        while True:
            if self._local_only():
                if not self.local.try_admit():
                    waited += await self.local.admit()
                self._admitted += 1
                return waited
            wait = await self._take()
            if wait is None:
                continue  # Redis failed: the local mirror decides from now on
            if wait <= 0.0:
                # Counted in the mirror too, so its readings subtract it and settle() balances it.
                self.local.count_admitted()
                self._admitted += 1
                return waited
            start = loop.time()
            if self._changed is None:
                self._changed = loop.create_future()
            await asyncio.wait((self._changed,), timeout=wait)
            waited += loop.time() - start

    async def _take(self) -> float | None:
        """Take one unit of the shared budget: 0.0, the wait, or None when Redis failed."""
        self._taking += 1
        try:
            async with asyncio.timeout(self._timeout):
                wait_us = await self._admit_script(keys=self._keys, args=self._admit_args)
        except REDIS_FAULTS as exc:
            self._link.failed(exc)
            return None
        finally:
            self._taking -= 1
        self._link.answered()
        wait = int(wait_us)
        if wait < 0:
            # Admitted in a cold start (named by its time): counted, for the first reading.
            if -wait != self._cold_start:
                self._cold_start, self._cold = -wait, 0
            self._cold += 1
            return 0.0
        # The script never asks for more (see the prelude); a clamp costs nothing.
        return min(wait / 1_000_000, MAX_RESET)

    def settle(self, headers: Mapping[str, str] | None) -> WindowReading | None:
        """One admitted call ended: the mirror learns its headers, Redis hears of them."""
        known = self.local.budget is not None
        reading = self.local.settle(headers)
        if self.local.budget is None:
            self._wake()  # no window any more: waiting calls go at once
        if headers is None or self._closed or self._link.in_fallback:
            return reading
        if reading is not None:
            self._publish("reading", reading)
        elif known:  # the mirror had a budget: the others may have to drop it too
            try:
                read_window(headers)
            except ValueError:
                self._publish("garbage", None)
            else:
                self._publish("absent", None)
        return reading

    def _publish(self, kind: str, reading: WindowReading | None) -> None:
        """Send the outcome of one answer to Redis in a tracked background task."""
        send = self._send(kind, reading, self.local.in_flight, self._admitted)
        task = asyncio.get_running_loop().create_task(send)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(
        self, kind: str, reading: WindowReading | None, in_flight: int, admitted: int
    ) -> None:
        budget = reset_us = 0
        if reading is not None:
            # Calls this process admitted since the answer (or is admitting now) were not
            # counted in its Remaining either: subtracted too, as the in-process budget would.
            since = self._admitted - admitted + self._taking
            budget = max(0, reading.remaining - in_flight - since)
            reset_us = round(reading.reset * 1_000_000)
        argv = [kind, str(budget), str(reset_us), str(_KEEP_MS), str(_NONE_MS)]
        argv += [str(self._cold), str(self._cold_start)]
        try:
            async with asyncio.timeout(self._timeout):
                result = int(await self._publish_script(keys=self._keys, args=argv))
        except REDIS_FAULTS as exc:
            self._link.failed(exc)
            return
        self._link.answered()
        if result > 0 or result == _DROPPED:
            self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)

    async def drain(self) -> None:
        """Wait until every reading handed to :meth:`settle` has reached Redis (or failed)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Publish nothing more and wait for what is on its way (each bounded by the timeout)."""
        self._closed = True
        await self.drain()
