"""Client-side rate limiting: the limiter interface, the in-process bucket, the 429 cooldown.

The transport talks to a :class:`Limiter` only through a few calls (acquire a permit, report a
success, report a 429 with its Retry-After, read the cooldown), so the in-process bucket here
and the Redis-backed one in :mod:`bitrix_mail_async.redis` are two implementations of one thing.

This module also owns the arithmetic both backends share, so that neither keeps a copy:
:class:`BucketShape` (the rate and burst checks, the default burst, the slot kept free in the
gateway's bucket, a fallback's share), :data:`AIMD` and :class:`AdaptiveRate` (lower the rate on
unexpected 429s, creep back up when quiet) and :func:`cooldown_jitter`. The Redis scripts keep
their own server-side copy of the AIMD steps, fed with these parameters.

The in-process bucket (:class:`_Bucket`) is arithmetic (GCRA): each call reserves its slot
time and sleeps once, and a learned rate is a change of two numbers. The peak bucket, which
never changes its rate, is aiolimiter's :class:`~aiolimiter.AsyncLimiter`, used through its
public API only.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import random
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Protocol, runtime_checkable

import attrs
from aiolimiter import AsyncLimiter

from bitrix_mail_async import errors
from bitrix_mail_async._config import check_count, check_number

__all__ = [
    "AIMD",
    "PLANS",
    "AdaptiveRate",
    "Aimd",
    "BucketShape",
    "InProcessLimiter",
    "Limiter",
    "Permit",
    "RateLimit",
    "RateLimitConfig",
    "cooldown_jitter",
]

log = logging.getLogger("bitrix_mail_async.ratelimit")

# The contract's documented limit for ordinary Bitrix24 plans is a leaky bucket draining
# 2 requests/s with room for a burst of 50 (Enterprise: 5/s, 250). A key may carry a lower
# limit of its own that nobody publishes, which is why the limiter also adapts downwards on
# 429s it did not expect. Starting at the ordinary plan's figures never exceeds what any plan
# allows, and the burst lets short interactive sessions run without waiting.
DEFAULT_PER_SECOND = 2.0
DEFAULT_BURST = 50
# On top of the REST bucket the gateway limits each portal to about 10 requests/s (contract
# section 1a.2), with a burst it does not publish: a burst of 50 sent at once overflows it.
# Spending bursts no faster than this keeps them inside both limits.
DEFAULT_PEAK_PER_SECOND = 10.0
DEFAULT_PEAK_BURST = 10
#: The documented REST bucket of each plan (contract section 1a): rate and burst. The portal's
#: rate above it (the peak) is the same ~10/s on both.
PLANS: Final[Mapping[str, tuple[float, int]]] = MappingProxyType(
    {"standard": (DEFAULT_PER_SECOND, DEFAULT_BURST), "enterprise": (5.0, 250)}
)


@attrs.frozen
class Permit:
    """Proof that the limiter let one request go; handed back when reporting its outcome."""

    generation: int
    waited: float = 0.0


@runtime_checkable
class Limiter(Protocol):
    """What the transport needs from a rate limiter backend."""

    async def acquire(self) -> Permit:
        """Wait out any shared cooldown and take one slot of the bucket."""
        ...

    def report_success(self, permit: Permit) -> None:
        """Note a call that was not rate limited (drives the additive increase)."""
        ...

    async def report_rate_limited(self, permit: Permit | None, retry_after: float) -> None:
        """Start a shared cooldown of ``retry_after`` seconds and adapt the rate down."""
        ...

    async def cooldown_remaining(self) -> float:
        """Seconds left of the shared cooldown (0 when none)."""
        ...

    @property
    def current_rate(self) -> float | None:
        """The rate (requests/s) the limiter allows now; None when unlimited."""
        ...

    async def aclose(self) -> None:
        """Release resources (connections of a remote backend)."""
        ...


class RateLimitConfig(Protocol):
    """Anything :class:`~bitrix_mail_async.MailClient` accepts as ``rate_limit``."""

    def create_limiter(self, *, api_key: str, scope: str | None = None) -> Limiter:
        """Build the limiter of one portal scope.

        ``scope`` names the portal (a digest, see ``_keys.Scopes``) when it is not simply the
        key's: a tenant of an app key, or a portal given by the caller. A limiter shared beyond
        the process keys its state by it; None means the key's own.
        """
        ...


# ---------------------------------------------------------------- arithmetic of both backends
@attrs.frozen
class BucketShape:
    """A configured limit as a client bucket runs it: the rate and the burst, both checked.

    ``BucketShape.of(per_second, burst)`` is the one check of a configured limit;
    ``burst=None`` means one second's worth of the rate.
    """

    per_second: float
    burst: int

    @classmethod
    def of(cls, per_second: object, burst: object) -> BucketShape:
        """Check a configured rate and burst (None: one second's worth) and build the shape."""
        rate = check_number("per_second", per_second)
        if burst is None:
            return cls(rate, max(1, math.ceil(rate)))
        return cls(rate, check_count("burst", burst))

    @property
    def capacity(self) -> int:
        """The bucket's capacity: the burst less one slot, at least one."""
        # Keep one slot of the gateway's bucket free: requests admitted evenly here arrive
        # with network jitter there, and a full bucket turns any early arrival into a 429.
        return max(1, self.burst - 1)

    def share(self, fraction: float) -> BucketShape:
        """The same limit scaled to ``fraction`` of it (one worker's part of a shared key)."""
        return BucketShape(self.per_second * fraction, max(1, round(self.burst * fraction)))


@attrs.frozen
class Aimd:
    """The parameters of the adaptive rate (the Redis scripts receive them as arguments).

    Each episode of unexpected 429s scales the rate and burst down by ``decrease`` (never
    below ``min_scale``); after ``quiet_period`` seconds without one, the rate grows by
    ``increase`` of itself, up to the configured rate.

    The floor, ``min_scale``, is a quarter of the configured rate: 0.5/s at the default
    2/s, one call per 2 s, the gateway's own default Retry-After. A gateway refusing every
    call (say with ``Retry-After: 0``) lowers the rate once per retry; from a lower floor it
    took minutes to creep back (one call per 25 s at 2 %), and the shared cooldowns, not the
    learned rate, are what hold calls back while a key is refused anyway.
    """

    decrease: float = 0.8
    increase: float = 0.05
    quiet_period: float = 1.0
    min_scale: float = 0.25


AIMD = Aimd()


@attrs.define
class AdaptiveRate:
    """AIMD arithmetic: multiplicative decrease on unexpected 429s, additive increase when quiet.

    A 429 that the bucket let through means the gateway's real limit is below ours. Each such
    episode (one generation: 429s of calls admitted before the last decrease do not count again)
    applies one decrease of :class:`Aimd`; quiet periods apply increases.
    """

    per_second: float
    burst: int
    params: Aimd = AIMD
    scale: float = 1.0
    generation: int = 0
    last_change: float = 0.0

    @property
    def rate(self) -> float:
        """Current learned rate in requests/s."""
        return self.per_second * self.scale

    @property
    def capacity(self) -> int:
        """Current bucket capacity (burst), at least one request."""
        return max(1, round(self.burst * self.scale))

    def on_rate_limited(self, generation: int, now: float) -> bool:
        """Apply a decrease for a 429 of ``generation``; True when the rate changed."""
        if generation != self.generation:
            return False
        self.generation += 1
        self.scale = max(self.params.min_scale, self.scale * self.params.decrease)
        self.last_change = now
        return True

    def on_quiet(self, now: float) -> bool:
        """Apply an increase if a quiet period has passed; True when the rate changed."""
        if self.scale >= 1.0 or now - self.last_change < self.params.quiet_period:
            return False
        self.scale = min(1.0, self.scale * (1.0 + self.params.increase))
        self.last_change = now
        return True


def cooldown_jitter(retry_after: float) -> float:
    """Small random extra wait added to Retry-After so that many clients do not return at once."""
    # Up to 10 % of the wait, never more than 250 ms: keeps "wait exactly Retry-After" honest.
    return random.uniform(0.0, min(0.1 * retry_after, 0.25))


# ---------------------------------------------------------------- the in-process bucket
#: How early a bucket's timer may grant a slot (see _Bucket._release).
_EARLY = 1e-6


class _Bucket:
    """The client's leaky bucket as arithmetic (GCRA) with one timer for all its waiting calls.

    ``_tat`` is the theoretical arrival time of the next call at the drain rate; a call may
    go ``tolerance`` (``capacity - 1`` intervals) before it, so ``capacity`` calls go at once
    from an empty bucket and then one per interval. Calls that must wait sit in a FIFO as bare
    futures; one timer, set for the head's slot, grants them in order. A waiting call thus
    costs a future, not a task and a wait set (aiolimiter's queue did: at 1,000 keys the
    waiting path cost 1.6x the CPU of pacing by hand). A new rate re-times the queue at once,
    a cancelled call leaves it without a trace, and neither ever opens a burst.
    """

    __slots__ = ("_capacity", "_interval", "_loop", "_tat", "_timer", "_tolerance", "_waiters")

    def __init__(self, rate: float, capacity: int) -> None:
        self._interval = 1.0 / rate
        self._capacity = capacity
        self._tolerance = (capacity - 1) * self._interval
        self._tat = 0.0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _due(self, now: float) -> float:
        """When the next call conforms (``<= now``: at once)."""
        return max(self._tat, now) - self._tolerance

    def take(self, now: float) -> None:
        """Take one slot at ``now``; only right after :meth:`ready` said True."""
        self._tat = max(self._tat, now) + self._interval

    async def acquire(self) -> None:
        """Take one slot: at once when the bucket has room and nobody waits, else in turn."""
        loop = self._loop = asyncio.get_running_loop()
        now = loop.time()
        if self.ready(now):
            self.take(now)
            return
        granted: asyncio.Future[None] = loop.create_future()
        self._waiters.append(granted)
        self._arm()
        try:
            await granted
        except asyncio.CancelledError:
            # A cancelled future stays queued until it reaches the head (_prune): leaving costs
            # O(1), so close() cancelling thousands of waiting calls stays linear.
            if granted.cancelled():
                self._arm()
            else:
                self.give_back()  # granted as it was cancelled: the slot goes back
            raise

    def ready(self, now: float) -> bool:
        """Whether :meth:`acquire` would take a slot at once (no wait, nobody ahead)."""
        self._prune()
        return not self._waiters and self._due(now) <= now

    def give_back(self) -> None:
        """Return the slot of a call that took one and then did not go (cancelled after it)."""
        self._tat -= self._interval
        self._arm()

    def _prune(self) -> None:
        """Drop the calls at the head of the queue that were cancelled while waiting."""
        waiters = self._waiters
        while waiters and waiters[0].cancelled():
            waiters.popleft()

    def _arm(self) -> None:
        """Set the one timer for the head of the queue (or none when nobody waits)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._prune()
        loop = self._loop
        if self._waiters and loop is not None and not loop.is_closed():
            self._timer = loop.call_at(self._due(loop.time()), self._release)

    def _release(self) -> None:
        """The timer fired: grant every waiting call whose slot has come, in order."""
        self._timer = None
        assert self._loop is not None
        # asyncio may run a timer up to its clock's resolution early: a microsecond's grace
        # keeps that from re-arming the timer for the same instant again and again.
        now = self._loop.time() + _EARLY

        waiters = self._waiters
        while waiters and self._due(now) <= now:
            granted = waiters.popleft()
            if not granted.done():  # cancelled ones are skipped: they took no slot
                self.take(now)
                granted.set_result(None)
        self._arm()

    def fill(self) -> None:
        """Mark the bucket full, as if a burst had just been spent: the next call waits a slot."""
        now = asyncio.get_running_loop().time()
        self._tat = max(self._tat, now + self._tolerance + self._interval)
        self._arm()

    def reconfigure(self, rate: float, capacity: int) -> None:
        """Switch to a new drain rate and capacity, keeping the current level (in slots).

        The waiting calls are re-timed at once: their turns come at the new rate.
        """
        now = asyncio.get_running_loop().time()
        level = max(0.0, self._tat - now) / self._interval
        self._interval = 1.0 / rate
        self._capacity = capacity
        self._tolerance = (capacity - 1) * self._interval
        self._tat = now + level * self._interval
        self._arm()


def _peak_limiter(peak: BucketShape) -> AsyncLimiter:
    """The peak bucket, one slot kept free (as the main bucket does)."""
    return AsyncLimiter(peak.capacity, peak.capacity / peak.per_second)


class InProcessLimiter:
    """Token bucket (aiolimiter) plus shared 429 cooldown for the calls of one process.

    ``peak`` adds a second, fixed bucket, so that the main bucket's burst is spent no faster
    than the gateway's per-portal rate allows.
    """

    def __init__(
        self,
        per_second: float | None,
        burst: int | None,
        *,
        adaptive: bool,
        peak: BucketShape | None = None,
    ) -> None:
        self._adaptive: AdaptiveRate | None = None
        self._bucket: _Bucket | None = None
        self._peak: AsyncLimiter | None = None
        if per_second is not None:
            shape = BucketShape.of(per_second, burst)
            self._adaptive = AdaptiveRate(per_second=shape.per_second, burst=shape.capacity)
            self._bucket = _Bucket(shape.per_second, shape.capacity)
            if peak is not None:
                self._peak = _peak_limiter(peak)
        self._adapt = adaptive and per_second is not None
        self._cooldown_until = 0.0
        self._at_once = Permit(generation=0)

    @property
    def current_rate(self) -> float | None:
        """The rate the bucket allows now (learned), None when unlimited."""
        return self._adaptive.rate if self._adaptive is not None else None

    @property
    def current_burst(self) -> int | None:
        """The bucket capacity now (learned), None when unlimited."""
        return self._adaptive.capacity if self._adaptive is not None else None

    @property
    def _generation(self) -> int:
        """The learned rate's generation, which a permit carries (0 when unlimited)."""
        return 0 if self._adaptive is None else self._adaptive.generation

    def try_acquire(self) -> Permit | None:
        """A permit now when :meth:`acquire` would not wait (no cooldown, room in the bucket).

        None when it might wait, and always with a peak bucket, which is asked only by
        awaiting it (aiolimiter). The pipeline takes this permit as a plain step, without
        the coroutine and the close() registration a wait needs (the flat road).
        """
        now = asyncio.get_running_loop().time()
        if self._peak is not None or self._cooldown_until > now:
            return None
        bucket = self._bucket
        if bucket is not None:
            if not bucket.ready(now):
                return None
            bucket.take(now)
        generation = self._generation
        permit = self._at_once
        if permit.generation != generation:  # permits are frozen: one per generation will do
            permit = self._at_once = Permit(generation=generation)
        return permit

    async def acquire(self) -> Permit:
        """Wait for the shared cooldown and then for a bucket slot."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            delay = self._cooldown_until - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            if self._bucket is not None:
                await self._bucket.acquire()
            if self._peak is not None:
                try:
                    await self._peak.acquire()
                except asyncio.CancelledError:
                    if self._bucket is not None:
                        self._bucket.give_back()  # never sent: else each cancel loses a slot
                    raise
            # A 429 may have started a cooldown while this call queued for the bucket: the
            # slot is spent, but sending now would only earn another 429.
            if self._cooldown_until <= loop.time():
                break
        return Permit(generation=self._generation, waited=loop.time() - start)

    def report_success(self, permit: Permit) -> None:
        """Let the learned rate creep back up after a quiet period."""
        if self._adapt and self._adaptive is not None and self._bucket is not None:
            now = asyncio.get_running_loop().time()
            if self._adaptive.on_quiet(now):
                self._bucket.reconfigure(self._adaptive.rate, self._adaptive.capacity)

    async def report_rate_limited(self, permit: Permit | None, retry_after: float) -> None:
        """Extend the shared cooldown and, once per episode, lower the rate."""
        now = asyncio.get_running_loop().time()
        self._cooldown_until = max(self._cooldown_until, now + retry_after)
        if (
            self._adapt
            and permit is not None
            and self._adaptive is not None
            and self._bucket is not None
            and self._adaptive.on_rate_limited(permit.generation, now)
        ):
            self._bucket.reconfigure(self._adaptive.rate, self._adaptive.capacity)
            log.info(
                "unexpected 429: lowering the client rate to %.3g/s (burst %d)",
                self._adaptive.rate,
                self._adaptive.capacity,
            )

    def fill(self) -> None:
        """Start with no burst left (a fallback that others of the key enter at the same time)."""
        if self._bucket is not None:
            self._bucket.fill()

    async def cooldown_remaining(self) -> float:
        """Seconds left of the shared cooldown."""
        return max(0.0, self._cooldown_until - asyncio.get_running_loop().time())

    async def aclose(self) -> None:
        """Nothing to release for the in-process bucket."""


def documented_plan(plan: object) -> tuple[float, int]:
    """The documented rate and burst of ``plan`` (a key of :data:`PLANS`), checked."""
    if not isinstance(plan, str) or plan not in PLANS:
        raise errors.ConfigurationError(f"plan must be one of {', '.join(map(repr, PLANS))}")
    return PLANS[plan]


@attrs.frozen
class RateLimit:
    """Client-side token bucket: ``per_second`` sustained rate with room for ``burst`` at once.

    Example: ``MailClient(rate_limit=RateLimit(per_second=5, burst=250))`` for Enterprise plans.
    With ``adaptive=True`` (the default) the client lowers its rate when the gateway answers
    429 although the bucket allowed the call, and creeps back up after quiet periods.
    ``peak_per_second`` and ``peak_burst`` (default 10 and 10: the gateway's per-portal rate,
    whose burst is not published; ``peak_per_second=None``: no peak) bound how fast a burst
    is spent; a ``per_second`` at or above ``peak_per_second`` has no peak.
    """

    per_second: float = DEFAULT_PER_SECOND
    burst: int | None = DEFAULT_BURST
    adaptive: bool = True
    peak_per_second: float | None = DEFAULT_PEAK_PER_SECOND
    peak_burst: int = DEFAULT_PEAK_BURST

    def __attrs_post_init__(self) -> None:
        self.shape  # noqa: B018 - checks the rate and burst
        self.peak  # noqa: B018 - checks the peak's figures

    @property
    def shape(self) -> BucketShape:
        """The checked rate and burst."""
        return BucketShape.of(self.per_second, self.burst)

    @property
    def peak(self) -> BucketShape | None:
        """The checked peak bucket; None without one, or when ``per_second`` is not below it."""
        if self.peak_per_second is None:
            return None
        peak = BucketShape.of(self.peak_per_second, self.peak_burst)
        # A sustained rate at or above the peak says the caller knows the portal's limit.
        return peak if peak.per_second > self.per_second else None

    @classmethod
    def documented(cls, plan: str = "standard", time_scale: float = 1.0) -> RateLimit:
        """The documented limits of ``plan`` ("standard" or "enterprise"), time-scaled.

        Standard: 2 requests/s with a burst of 50; enterprise: 5/s with 250; on both, bursts
        spent at the portal's ~10/s (burst 10). ``time_scale`` divides every rate by itself,
        as the emulator's ``LimitSettings.documented(time_scale)`` does (0.1: ten times faster).
        """
        per_second, burst = documented_plan(plan)
        scale = check_number("time_scale", time_scale)
        return cls(
            per_second=per_second / scale,
            burst=burst,
            peak_per_second=DEFAULT_PEAK_PER_SECOND / scale,
            peak_burst=DEFAULT_PEAK_BURST,
        )

    def create_limiter(self, *, api_key: str, scope: str | None = None) -> InProcessLimiter:
        """Build the in-process limiter for one client (the key is not needed here)."""
        return InProcessLimiter(
            self.per_second,
            self.burst,
            adaptive=self.adaptive,
            peak=self.peak,
        )


@attrs.frozen
class Unlimited:
    """``rate_limit=None``: no bucket, but 429 cooldowns are still shared between calls."""

    def create_limiter(self, *, api_key: str, scope: str | None = None) -> InProcessLimiter:
        """Build a limiter with no bucket."""
        return InProcessLimiter(None, None, adaptive=False)
