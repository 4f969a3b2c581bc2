"""The gateway's limits together: which are on with which figures, and the mechanisms themselves.

:class:`LimitSettings` is the ``limits=`` argument of ``MailEmulator``: one field per mechanism,
``None`` for off (the default: everything off). :meth:`LimitSettings.documented` switches them
all on with the documented figures, optionally time-scaled for tests: ``time_scale=0.1``
divides every duration by 10 (window period, queue timeout, every ``retryAfter``, the unit
``X-RateLimit-Reset`` is rounded to) and multiplies every rate by 10, while counts (the window's
300, the queue's 2, the breaker's 12 and 50, bucket sizes) stay. :class:`Limits` holds the
mechanisms of one emulator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bitrix_mail_async._ratelimit import PLANS
from bitrix_mail_async.testing.limits.base import Clock
from bitrix_mail_async.testing.limits.breaker import BreakerSettings, CircuitBreaker
from bitrix_mail_async.testing.limits.buckets import PortalBucket, PortalRate, TokenBucketLimiter
from bitrix_mail_async.testing.limits.queue import PortalQueue, QueueSettings
from bitrix_mail_async.testing.limits.window import SlidingWindow, WindowSettings

__all__ = ["LimitSettings", "Limits"]


@dataclass(frozen=True)
class LimitSettings:
    """Which of the gateway's limits an emulator applies, with which figures (``None``: off)."""

    window: WindowSettings | None = None
    portal: PortalRate | None = None
    queue: QueueSettings | None = None
    breaker: BreakerSettings | None = None

    @classmethod
    def documented(cls, time_scale: float = 1.0, plan: str = "standard") -> LimitSettings:
        """Every limit on with the documented figures, durations multiplied by ``time_scale``.

        ``plan`` ("standard" or "enterprise") picks the REST bucket under the portal's rate,
        from the same table as the client's ``RateLimit.documented(plan, time_scale)``.
        """
        if not time_scale > 0:
            raise ValueError("time_scale must be positive")
        if plan not in PLANS:
            raise ValueError(f"plan must be one of {', '.join(map(repr, PLANS))}")
        rest, rest_burst = PLANS[plan]

        def scaled(seconds: float) -> float:
            # Rounded so 2 s at 0.3 reads 0.6, not 0.6000000000000001, on the wire.
            return round(seconds * time_scale, 6)

        return cls(
            window=WindowSettings(
                period=scaled(WindowSettings.period), step=scaled(WindowSettings.step)
            ),
            portal=PortalRate(
                per_second=PortalRate.per_second / time_scale,
                rest_per_second=rest / time_scale,
                rest_burst=rest_burst,
                retry_after=scaled(PortalRate.retry_after),
            ),
            queue=QueueSettings(
                timeout=scaled(QueueSettings.timeout),
                service_time=scaled(QueueSettings.service_time),
                retry_after=scaled(QueueSettings.retry_after),
            ),
            breaker=BreakerSettings(
                period=scaled(BreakerSettings.period),
                retry_after=scaled(BreakerSettings.retry_after),
            ),
        )


class Limits:
    """The limit mechanisms of one emulator, all off until configured."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        #: The key's own limit of ``emu.set_rate_limit`` (kept beside the gateway's limits).
        self.key_bucket = TokenBucketLimiter(clock)
        self.window = SlidingWindow(clock)
        self.portal = PortalBucket(clock)
        self.queue = PortalQueue()
        self.breaker = CircuitBreaker(clock)

    def apply(self, settings: LimitSettings) -> None:
        """Configure the gateway's four limits as ``settings`` says (the key bucket stays)."""
        self.window.configure(settings.window)
        self.portal.reset()
        self.portal.configure(settings.portal)
        self.queue.configure(settings.queue)
        self.breaker.configure(settings.breaker)

    def settings(self) -> LimitSettings:
        """The gateway's four limits as configured now (a portal's own figures aside)."""
        return LimitSettings(
            window=self.window.settings,
            portal=self.portal.default,
            queue=self.queue.settings,
            breaker=self.breaker.settings,
        )

    def forget(self) -> None:
        """Forget what every mechanism counted (window, buckets, breaker); the figures stay."""
        self.window.configure(self.window.settings)
        self.portal.refill()
        self.breaker.configure(self.breaker.settings)
        bucket = self.key_bucket
        bucket.configure(bucket.per_second, bucket.burst, bucket.retry_after)

    def off(self) -> None:
        """Switch every mechanism off, the key bucket included."""
        self.apply(LimitSettings())
        self.key_bucket.configure(None)
