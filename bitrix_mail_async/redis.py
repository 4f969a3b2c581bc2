"""One rate limit shared by every process that uses the same portal (extra ``redis``).

The gateway limits the key and the portal, not the process: eight workers with eight
in-process buckets spend the portal's 2 requests/s eight times over. :class:`RedisRateLimit`
keeps the bucket, the peak, the 429 cooldown, the learned (adaptive) rate and the key's window
budget in Redis instead, so every client of one portal, in any process on any host, draws from
one bucket, and every client of one key from one window.

Design, in short:

- **One round trip per permit.** A Lua script (GCRA, "generic cell rate algorithm") reads the
  shared cooldown and the learned rate, reserves the caller's slot by advancing the
  theoretical arrival time (TAT) and returns how long to wait. The caller sleeps locally until
  its slot; nothing polls Redis. The script uses Redis's own clock (``TIME``), so hosts with
  skewed clocks still agree. A caller that had to sleep re-reads the cooldown once (a script
  too) before sending, because a 429 elsewhere may have started one meanwhile.
- **One peak for all.** The settings are :class:`~bitrix_mail_async.RateLimit`'s, the peak
  included (``peak_per_second``, ``peak_burst``: the portal's ~10/s above the REST bucket). The
  peak is a second GCRA in the same script (``<bucket>:peak``): a slot is the first time both
  admit, so the workers together spend one burst at the portal's rate, not one each at once.
- **Bounded waits.** No slot is reserved more than :data:`MAX_SLOT_WAIT` ahead: a caller
  whose slot would lie further out (a long queue, a long cooldown) sleeps until it is within
  reach and asks again, and no single sleep on Redis's word is longer. So the state has known
  bounds, and the scripts repair state past them: Redis's clock stepped back (NTP, a failover
  to a replica behind) leaves every stored time ahead of it, and without the repair every
  call of every worker would wait out the step. A TAT too far ahead is taken as a full
  bucket, a cooldown with more left than its length restarts at its length, a rate change
  "in the future" counts from now; the window budget (``_redis_window``) does the same. A
  repair is logged once at WARNING.
- **Shared 429 cooldown.** A 429 seen by any client sets ``<bucket>:cooldown`` (its end and its
  length, expiring after Retry-After, only ever extended, at most :data:`MAX_COOLDOWN`) and
  marks the peak full at the cooldown's end: calls resume at the peak rate with what is left
  of the burst, as in one process, instead of at once. (Without a peak it marks the bucket
  full: calls resume at the sustained rate.)
- **Shared adaptive rate.** The AIMD state of :class:`~bitrix_mail_async._ratelimit.AdaptiveRate`
  (scale, generation, last change) lives in ``<bucket>:rate`` and is updated by the same
  scripts, so a decrease seen by one client slows everyone sharing the bucket. The scripts do the
  AIMD steps server-side, with the parameters of :data:`~bitrix_mail_async._ratelimit.AIMD`
  and the capacity of :class:`~bitrix_mail_async._ratelimit.BucketShape` as arguments.
- **Shared window budget.** ``create_window()`` gives the key's budget of the gateway's
  ``X-RateLimit-*`` window (:class:`~bitrix_mail_async._redis_window.RedisWindow`): all
  processes and tenants of a key together never start more calls than it has room for.
- **Keys by scope** (``_keys.LIMIT_SCOPES``): the bucket, peak, cooldown and learned rate are
  ``<prefix>:{<stem>}:gcra|peak|cooldown|rate``, the stem a hash of the portal's scope (a
  tenant of an app key, a portal given by the caller) or, for a key's own portal, of the API
  key; the window is ``<prefix>:{<sha256(api key)[:32]>}:window``, shared by every tenant of
  the key. No key or token reaches Redis; the braces are a Redis Cluster hash tag keeping one
  bucket's state in one slot. Every key expires, so idle buckets vanish.
- **Redis faults lose nothing.** When Redis does not answer within ``redis_timeout``, the
  limiter falls back to an in-process bucket at ``fallback_share`` of the rate (and the window
  to this process's own budget), logs one warning per outage (a
  :class:`~bitrix_mail_async._redis_window.RedisLink` the two share), probes Redis again at
  most every ``probe_interval`` seconds and returns to it as soon as it answers. An outage
  never fails a mail call by itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any, Final
from urllib.parse import urlsplit

import attrs

from bitrix_mail_async import errors
from bitrix_mail_async._config import check_number
from bitrix_mail_async._ratelimit import (
    AIMD,
    DEFAULT_BURST,
    DEFAULT_PEAK_BURST,
    DEFAULT_PEAK_PER_SECOND,
    DEFAULT_PER_SECOND,
    BucketShape,
    InProcessLimiter,
    Permit,
    RateLimit,
)

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "bitrix_mail_async.redis needs the 'redis' extra: "
        "pip install 'bitrix-mail-async[redis]' (redis-py >= 5.0)"
    ) from exc

from bitrix_mail_async._redis_lua import (
    ACQUIRE_LUA,
    COOLDOWN_LUA,
    MAX_COOLDOWN,
    MAX_SLOT_WAIT,
    REPORT_LUA,
    STATE_TTL_MS,
)
from bitrix_mail_async._redis_window import (
    REDIS_FAULTS,
    RedisLink,
    RedisWindow,
    describe_client,
    redact_redis_url,
)

__all__ = ["MAX_COOLDOWN", "MAX_SLOT_WAIT", "RedisLimiter", "RedisRateLimit", "redact_redis_url"]

log = logging.getLogger("bitrix_mail_async.ratelimit.redis")

DEFAULT_PREFIX: Final = "bitrix-mail"
# Other workers of the same key are likely falling back at the same moment, each with its own
# bucket: a quarter of the rate keeps four of them within the limit, and the adaptive rate
# covers the rest. Slower is the safe side: a 429 storm costs more than a slow minute.
DEFAULT_FALLBACK_SHARE: Final = 0.25
# Redis on a LAN answers in well under a millisecond; half a second means it is in trouble,
# and the fallback is a better deal than making every mail call wait for it.
DEFAULT_REDIS_TIMEOUT: Final = 0.5
DEFAULT_PROBE_INTERVAL: Final = 1.0


def bucket_name(prefix: str, api_key: str) -> str:
    """The Redis key stem of an API key's bucket: the prefix and a hash, never the key."""
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:32]
    return f"{prefix}:{{{digest}}}"


@attrs.frozen
class _LocalPermit(Permit):
    """A permit of the fallback bucket: its outcome is reported to the fallback."""


class RedisRateLimit:
    """A token bucket in Redis shared by every client of one portal, in any process.

    Example: ``MailClient(rate_limit=RedisRateLimit.documented("redis://host:6379/0"))``.
    ``url_or_client`` is a Redis URL (the limiter then owns and closes its client) or a
    ``redis.asyncio.Redis`` instance (left open). The settings are :class:`RateLimit`'s, with
    its checks and defaults, the peak included: every client of a portal spends one burst, at
    one peak rate, whichever process it runs in. While Redis is unreachable each limiter uses an
    in-process bucket at ``fallback_share`` of the rate (and of the peak).
    """

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        *,
        per_second: float = DEFAULT_PER_SECOND,
        burst: int | None = DEFAULT_BURST,
        peak_per_second: float | None = DEFAULT_PEAK_PER_SECOND,
        peak_burst: int = DEFAULT_PEAK_BURST,
        adaptive: bool = True,
        prefix: str = DEFAULT_PREFIX,
        fallback_share: float = DEFAULT_FALLBACK_SHARE,
        redis_timeout: float = DEFAULT_REDIS_TIMEOUT,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
    ) -> None:
        #: The bucket's settings, checked as :class:`RateLimit` checks them.
        self.settings = RateLimit(
            per_second=per_second,
            burst=burst,
            adaptive=adaptive,
            peak_per_second=peak_per_second,
            peak_burst=peak_burst,
        )
        self._shape = self.settings.shape
        check_number("fallback_share", fallback_share)
        if fallback_share > 1:
            raise errors.ConfigurationError("fallback_share must be at most 1")
        check_number("redis_timeout", redis_timeout)
        check_number("probe_interval", probe_interval)
        if not isinstance(prefix, str) or not prefix or any(c.isspace() for c in prefix):
            raise errors.ConfigurationError("prefix must be a non-empty string without spaces")
        if isinstance(url_or_client, str):
            scheme = urlsplit(url_or_client).scheme
            if scheme not in ("redis", "rediss", "unix"):
                raise errors.ConfigurationError(
                    "url_or_client must be a redis://, rediss:// or unix:// URL "
                    "or a redis.asyncio.Redis instance"
                )
        elif not isinstance(url_or_client, aioredis.Redis):
            raise errors.ConfigurationError(
                "url_or_client must be a Redis URL or a redis.asyncio.Redis instance, "
                f"got {type(url_or_client).__name__}"
            )
        self._target = url_or_client
        self.prefix = prefix
        self.fallback_share = float(fallback_share)
        self.redis_timeout = float(redis_timeout)
        self.probe_interval = float(probe_interval)

    @classmethod
    def documented(
        cls,
        url_or_client: str | aioredis.Redis,
        *,
        plan: str = "standard",
        time_scale: float = 1.0,
    ) -> RedisRateLimit:
        """The documented limits of ``plan``, shared in Redis (see ``RateLimit.documented``)."""
        limit = RateLimit.documented(plan, time_scale)
        return cls(
            url_or_client,
            per_second=limit.per_second,
            burst=limit.burst,
            peak_per_second=limit.peak_per_second,
            peak_burst=limit.peak_burst,
        )

    @property
    def per_second(self) -> float:
        """The sustained rate, requests/s."""
        return self._shape.per_second

    @property
    def burst(self) -> int | None:
        """The burst as configured (None: one second's worth of the rate)."""
        return self.settings.burst

    @property
    def adaptive(self) -> bool:
        """Whether unexpected 429s lower the shared rate."""
        return self.settings.adaptive

    @property
    def peak_per_second(self) -> float | None:
        """The rate a burst is spent at, as configured (None: no peak)."""
        return self.settings.peak_per_second

    @property
    def peak_burst(self) -> int:
        """The peak bucket's burst, as configured."""
        return self.settings.peak_burst

    @property
    def redacted_target(self) -> str:
        """Where the bucket lives, with any password replaced by ``***``."""
        if isinstance(self._target, str):
            return redact_redis_url(self._target)
        return describe_client(self._target)

    def __repr__(self) -> str:
        peak = self.settings.peak
        peak_text = "None" if peak is None else f"{peak.per_second:g}/s burst {peak.burst}"
        return (
            f"RedisRateLimit({self.redacted_target!r}, per_second={self.per_second:g}, "
            f"burst={self.burst}, peak={peak_text}, prefix={self.prefix!r}, "
            f"adaptive={self.adaptive})"
        )

    def create_limiter(self, *, api_key: str, scope: str | None = None) -> RedisLimiter:
        """Build the limiter of one portal scope; its Redis keys are hashes, never secrets.

        The bucket, cooldown, learned rate and peak are keyed by ``scope`` (the portal), else by
        a hash of ``api_key``; the window always by the key's hash (``_keys.LIMIT_SCOPES``).
        """
        if isinstance(self._target, str):
            client = aioredis.Redis.from_url(
                self._target,
                socket_timeout=self.redis_timeout,
                socket_connect_timeout=self.redis_timeout,
                # Our fallback is the retry: redis-py's default backoff would hold every mail
                # call for seconds while Redis is down.
                retry=Retry(NoBackoff(), 0),
            )
            owns = True
        else:
            client, owns = self._target, False
        key_stem = bucket_name(self.prefix, api_key)
        return RedisLimiter(
            client,
            bucket=key_stem if scope is None else bucket_name(self.prefix, f"scope\n{scope}"),
            window=f"{key_stem}:window",
            shape=self._shape,
            peak=self.settings.peak,
            adaptive=self.adaptive,
            fallback_share=self.fallback_share,
            redis_timeout=self.redis_timeout,
            probe_interval=self.probe_interval,
            owns_client=owns,
            where=self.redacted_target,
        )


class RedisLimiter:
    """The :class:`~bitrix_mail_async._ratelimit.Limiter` of one client, backed by Redis."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        bucket: str,
        window: str,
        shape: BucketShape,
        peak: BucketShape | None,
        adaptive: bool,
        fallback_share: float,
        redis_timeout: float,
        probe_interval: float,
        owns_client: bool,
        where: str,
    ) -> None:
        self._shape = shape
        self._client = client
        self._owns_client = owns_client
        self._where = where
        self._bucket = bucket
        self._window_key = window
        self._keys = [f"{bucket}:gcra", f"{bucket}:cooldown", f"{bucket}:rate", f"{bucket}:peak"]
        self._adaptive = adaptive
        self._timeout = redis_timeout
        self._acquire_script = client.register_script(ACQUIRE_LUA)
        self._report_script = client.register_script(REPORT_LUA)
        self._cooldown_script = client.register_script(COOLDOWN_LUA)
        # The scripts' arguments, from the shared shape and AIMD parameters (see the scripts).
        self._shape_args = [repr(shape.per_second), str(shape.capacity)]
        # The most a burst and one slot add to the horizon at any learned rate: a burst takes
        # at most (capacity * scale + 1) intervals of 1 / (per_second * scale) seconds.
        reach = (shape.capacity + 2 / AIMD.min_scale) / shape.per_second
        self._peak_args = ["0", "0"]
        if peak is not None:
            # The peak bucket is fixed (not learned); its TAT lies at most a burst past a slot.
            reach = max(reach, (peak.capacity + 1) / peak.per_second)
            interval = 1 / peak.per_second
            self._peak_args = [
                str(round(interval * 1e6)),
                str(round(peak.capacity * interval * 1e6)),
            ]
        self._acquire_args = [
            *self._shape_args,
            "1" if adaptive else "0",
            repr(AIMD.increase),
            str(round(AIMD.quiet_period * 1_000_000)),
            str(STATE_TTL_MS),
            str(round(MAX_SLOT_WAIT * 1_000_000)),
            str(round(reach * 1_000_000)),
            *self._peak_args,
        ]
        share = shape.share(fallback_share)
        self._fallback = InProcessLimiter(
            share.per_second,
            share.burst,
            adaptive=adaptive,
            peak=None if peak is None else peak.share(fallback_share),
        )
        self._scale = 1.0
        self._link = RedisLink(
            where,
            probe_interval,
            lambda: self._fallback.current_rate or 0.0,
            on_outage=self._outage_started,
        )
        self._window: RedisWindow | None = None
        self._closed = False

    def __repr__(self) -> str:
        mode = "fallback" if self._link.in_fallback else "redis"
        rate = f"{self.current_rate:.3g}/s"
        return f"<RedisLimiter {self._where} bucket={self._bucket} rate={rate} {mode}>"

    # ------------------------------------------------------------------ state
    @property
    def bucket(self) -> str:
        """The Redis key stem of this limiter's bucket (prefix and key hash)."""
        return self._bucket

    @property
    def in_fallback(self) -> bool:
        """True while Redis is unreachable and the in-process fallback bucket is used."""
        return self._link.in_fallback

    @property
    def redis_calls(self) -> int:
        """Script calls answered by Redis, the window's too (for tests and monitoring)."""
        return self._link.answers

    @property
    def current_rate(self) -> float:
        """The shared learned rate from the last Redis reply (the fallback's while in fallback)."""
        if self._link.in_fallback:
            rate = self._fallback.current_rate
            if rate is not None:
                return rate
        return self._shape.per_second * self._scale

    def _redis_answered(self, scale: Any) -> None:
        self._link.answered()
        self._scale = float(scale)

    async def _run(self, script: Any, args: list[str]) -> list[Any]:
        async with asyncio.timeout(self._timeout):
            reply: list[Any] = await script(keys=self._keys, args=args)
        return reply

    async def _reserve(self) -> tuple[float, int | None]:
        """Reserve the next slot of the shared bucket: (seconds until it, generation).

        The generation is None when the slot lies past :data:`MAX_SLOT_WAIT`: nothing was
        reserved, and the caller asks again after the wait.
        """
        reply = await self._run(self._acquire_script, self._acquire_args)
        wait_us, scale, generation, reserved, repaired = reply
        self._redis_answered(scale)
        if int(repaired):
            self._repaired()
        return int(wait_us) / 1_000_000, int(generation) if int(reserved) else None

    def _repaired(self) -> None:
        log.warning(
            "Redis at %s holds rate limit state for bucket %s further ahead than any wait it "
            "sets (has its clock gone back?); it was reset to the safe side",
            self._where,
            self._bucket,
        )

    # ------------------------------------------------------------------ Limiter
    async def acquire(self) -> Permit:
        """Reserve a slot in the shared bucket (one round trip) and sleep until it comes."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            if not self._link.use_redis():
                permit = await self._fallback.acquire()
                return _LocalPermit(generation=permit.generation, waited=loop.time() - start)
            try:
                wait, generation = await self._reserve()
            except REDIS_FAULTS as exc:
                self._link.failed(exc)
                continue
            if generation is None:
                # The slot lies past the horizon: ask again once it is within reach.
                await asyncio.sleep(min(wait, MAX_SLOT_WAIT))
                continue
            wait = max(min(wait, MAX_SLOT_WAIT), await self._fallback.cooldown_remaining())
            if wait <= 0:
                return Permit(generation=generation, waited=loop.time() - start)
            await asyncio.sleep(wait)
            # The slot is ours, but a 429 anywhere may have started a cooldown while we slept.
            remaining = await self.cooldown_remaining()
            if remaining <= 0:
                return Permit(generation=generation, waited=loop.time() - start)
            await asyncio.sleep(min(remaining, MAX_SLOT_WAIT))
            # The reserved slot fell inside the cooldown; the next one lies after it.

    def report_success(self, permit: Permit) -> None:
        """Feed the fallback's AIMD; the shared rate creeps up inside the acquire script."""
        if isinstance(permit, _LocalPermit):
            self._fallback.report_success(permit)

    async def report_rate_limited(self, permit: Permit | None, retry_after: float) -> None:
        """Start (or extend) the shared cooldown and, once per episode, lower the shared rate."""
        local = permit if isinstance(permit, _LocalPermit) else None
        # Kept locally too, so this process honours it even if Redis does not answer.
        await self._fallback.report_rate_limited(local, retry_after)
        if not self._link.use_redis():
            return
        generation = permit.generation if permit is not None and local is None else -1
        args = [
            str(max(0, round(retry_after * 1_000_000))),
            str(generation),
            "1" if self._adaptive else "0",
            repr(AIMD.decrease),
            repr(AIMD.min_scale),
            *self._shape_args,
            str(STATE_TTL_MS),
            *self._peak_args,
        ]
        try:
            _left, scale, new_generation = await self._run(self._report_script, args)
        except REDIS_FAULTS as exc:
            self._link.failed(exc)
            return
        self._redis_answered(scale)
        if generation >= 0 and int(new_generation) == generation + 1:
            log.info("unexpected 429: lowering the shared rate to %.3g/s", self.current_rate)

    async def cooldown_remaining(self) -> float:
        """Seconds left of the shared cooldown (the local one while Redis is unreachable)."""
        local = await self._fallback.cooldown_remaining()
        if self._link.in_fallback:
            return local
        try:
            left_us, repaired = await self._run(self._cooldown_script, [])
        except REDIS_FAULTS as exc:
            self._link.failed(exc)
            return local
        self._link.answered()
        if int(repaired):
            self._repaired()
        return max(local, int(left_us) / 1_000_000)

    def _outage_started(self) -> None:
        # Every worker of the key falls back at the same moment: a full fallback bucket each
        # would send a burst per worker on top of the shared rate. Start them empty.
        self._fallback.fill()

    def create_window(self) -> RedisWindow:
        """The key's window budget, shared in Redis with every process of the key."""
        if self._window is None:
            self._window = RedisWindow(
                self._client, key=self._window_key, link=self._link, timeout=self._timeout
            )
        return self._window

    async def aclose(self) -> None:
        """Let the window's readings reach Redis, then close the client if this limiter made it.

        A caller's client stays open.
        """
        if self._closed:
            return
        self._closed = True
        if self._window is not None:
            await self._window.aclose()
        if self._owns_client:
            await self._client.aclose()
