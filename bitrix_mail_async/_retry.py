"""Retry rules: which failures are retried, how long to wait, and why POSTs are special.

The gateway has no idempotency key (contract section 1): a repeated POST sends the message
twice. So a call with a side effect is repeated only when the gateway provably did not act on
it: a 429 (rejected before any work), or a connection that failed before the request was
written. Any failure after that point raises instead, marked as "outcome unknown".
"""

from __future__ import annotations

import enum
import random

import attrs

from bitrix_mail_async._config import check_count, check_number

__all__ = ["Failure", "RetryPolicy", "should_retry"]


class Failure(enum.Enum):
    """Kinds of failed attempts, as the retry rules see them."""

    RATE_LIMITED = "rate_limited"  # 429: the gateway rejected the call before acting
    NOT_SENT = "not_sent"  # connect failed or timed out: the request never left
    SERVER_ERROR = "server_error"  # 502/503/504: answered, may have reached Bitrix24
    LOST = "lost"  # connection broke or read timed out after the request was written


def _seconds(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    check_number(attr.name, value, allow_zero=True)


def _count(_inst: object, attr: attrs.Attribute[int], value: int) -> None:
    check_count(attr.name, value, minimum=0)


@attrs.frozen
class RetryPolicy:
    """How failed calls are retried.

    ``max_attempts`` counts every attempt of a call that fails with a retryable server error,
    timeout or connection failure (GETs; POSTs only when nothing was sent). Waits use
    exponential backoff with full jitter: ``uniform(0, min(backoff_cap, backoff_base * 2**n))``.
    429 answers have their own budget, ``rate_limit_attempts``, and wait exactly the
    ``Retry-After`` the gateway sends (plus a little jitter) when ``honor_retry_after`` is set;
    a ``Retry-After`` above ``max_retry_after`` raises :class:`errors.RateLimitedError` at once.

    Example: ``MailClient(retry=RetryPolicy(max_attempts=6, backoff_cap=10))``.
    """

    max_attempts: int = attrs.field(default=4, validator=_count)
    backoff_base: float = attrs.field(default=0.5, validator=_seconds)
    backoff_cap: float = attrs.field(default=20.0, validator=_seconds)
    jitter: bool = True
    rate_limit_attempts: int = attrs.field(default=20, validator=_count)
    honor_retry_after: bool = True
    max_retry_after: float = attrs.field(default=120.0, validator=_seconds)
    #: Retry-After assumed for a 429 that carries none (the gateway's documented value).
    default_retry_after: float = attrs.field(default=2.0, validator=_seconds)

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that never retries (every failure raises at once)."""
        return cls(max_attempts=1, rate_limit_attempts=0)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based) of a server/network error."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** (attempt - 1)))
        return random.uniform(0.0, ceiling) if self.jitter else ceiling

    def rate_limit_wait(self, retry_after: float | None, attempt: int) -> float:
        """Seconds to wait after a 429 (before jitter): Retry-After, or backoff without one."""
        if self.honor_retry_after:
            return retry_after if retry_after is not None else self.default_retry_after
        return self.backoff(attempt)


def should_retry(failure: Failure, *, idempotent: bool) -> bool:
    """Whether a failed attempt may be repeated without risking a duplicate side effect."""
    if failure in (Failure.RATE_LIMITED, Failure.NOT_SENT):
        return True
    return idempotent
