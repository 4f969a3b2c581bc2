"""The switches of the gateway's limits on ``MailEmulator``, each off until asked for.

- ``emu.set_window(limit=300, period=60)``: the per-key sliding window, with the
  ``X-RateLimit-*`` headers on every answer to a key;
- ``emu.set_portal_limit(per_second=10, burst=10, rest_per_second=2, rest_burst=50,
  retry_after=2, portal=None)``: the buckets every key of a portal shares (one portal, or the
  default of all);
- ``emu.set_queue(concurrency=2, timeout=30, service_time=0, retry_after=10)``: the portal
  queue, 504 ``QUEUE_TIMEOUT`` after too long a wait;
- ``emu.set_circuit_breaker(threshold=12, period=3600, retry_after=60, probe_every=50)``;
- ``emu.enable_gateway_limits(time_scale=1.0, plan="standard")``: all four with the
  documented figures, durations multiplied by ``time_scale``;
  ``emu.disable_gateway_limits()`` switches them off.

The defaults are the documented figures (the settings classes of
:mod:`~bitrix_mail_async.testing.limits` hold them); ``None`` as the first argument switches a
mechanism off. ``emu.set_rate_limit`` (a key's own token bucket) stays on ``MailEmulator``.
"""

from __future__ import annotations

from bitrix_mail_async.testing.limits import (
    BreakerSettings,
    Limits,
    LimitSettings,
    PortalRate,
    QueueSettings,
    WindowSettings,
)

__all__ = ["LimitControls"]


class LimitControls:
    """Run-time switches of the gateway's limits; the class using it provides ``limits``."""

    @property
    def limits(self) -> Limits:
        """The limit mechanisms the switches configure."""
        raise NotImplementedError

    def set_window(
        self, limit: int | None = WindowSettings.limit, period: float = WindowSettings.period
    ) -> None:
        """Allow each key ``limit`` requests per sliding ``period`` seconds (``None``: off)."""
        settings = WindowSettings(limit, period) if limit is not None else None
        self.limits.window.configure(settings)

    def set_portal_limit(
        self,
        per_second: float | None = PortalRate.per_second,
        burst: int = PortalRate.burst,
        *,
        rest_per_second: float | None = PortalRate.rest_per_second,
        rest_burst: int = PortalRate.rest_burst,
        retry_after: float = PortalRate.retry_after,
        portal: str | None = None,
    ) -> None:
        """Limit every portal, or only ``portal``, as a bucket its keys share (``None``: off)."""
        rate = None
        if per_second is not None:
            rate = PortalRate(per_second, burst, rest_per_second, rest_burst, retry_after)
        self.limits.portal.configure(rate, portal)

    def set_queue(
        self,
        concurrency: int | None = QueueSettings.concurrency,
        timeout: float = QueueSettings.timeout,
        service_time: float = QueueSettings.service_time,
        retry_after: float = QueueSettings.retry_after,
    ) -> None:
        """Run at most ``concurrency`` calls per portal at once, the rest queued (``None``: off)."""
        settings = None
        if concurrency is not None:
            settings = QueueSettings(concurrency, timeout, service_time, retry_after)
        self.limits.queue.configure(settings)

    def set_circuit_breaker(
        self,
        threshold: int | None = BreakerSettings.threshold,
        period: float = BreakerSettings.period,
        retry_after: float = BreakerSettings.retry_after,
        probe_every: int = BreakerSettings.probe_every,
    ) -> None:
        """Block a request after ``threshold`` identical failures in ``period`` (``None``: off)."""
        settings = None
        if threshold is not None:
            settings = BreakerSettings(threshold, period, retry_after, probe_every)
        self.limits.breaker.configure(settings)

    def enable_gateway_limits(self, time_scale: float = 1.0, plan: str = "standard") -> None:
        """Switch on window, portal bucket, queue and breaker with the documented figures."""
        self.limits.apply(LimitSettings.documented(time_scale, plan))

    def disable_gateway_limits(self) -> None:
        """Switch off window, portal bucket, queue and breaker (``set_rate_limit`` stays)."""
        self.limits.apply(LimitSettings())
