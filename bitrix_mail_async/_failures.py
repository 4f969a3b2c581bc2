"""The failure vocabulary every layer shares: how an attempt failed, and what that means.

It sits below the transport (which reports failures), the retry rules (which decide on them)
and the hooks (which name them), so that none of those imports another to speak of one.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from bitrix_mail_async import errors

if TYPE_CHECKING:
    from bitrix_mail_async._ratelimit import Permit

__all__ = ["AttemptFailed", "Failure", "classify", "should_retry"]


class Failure(enum.Enum):
    """Kinds of failed attempts, as the retry rules see them."""

    RATE_LIMITED = "rate_limited"  # 429: the gateway rejected the call before acting
    NOT_SENT = "not_sent"  # connect failed or timed out: the request never left
    QUEUED = "queued"  # 504 QUEUE_TIMEOUT: waited in the portal queue, never executed
    SERVER_ERROR = "server_error"  # any 5xx but QUEUE_TIMEOUT: may have reached Bitrix24
    LOST = "lost"  # connection broke or read timed out after the request was written
    UNREADABLE = "unreadable"  # a 2xx that cannot be read (broken, oversized): the call ran
    BROKEN = "broken"  # an exception no rule knows: may have gone out, would fail again


def should_retry(failure: Failure, *, idempotent: bool) -> bool:
    """Whether a failed attempt may be repeated without risking a duplicate side effect."""
    if failure in (Failure.RATE_LIMITED, Failure.NOT_SENT, Failure.QUEUED):
        return True
    if failure in (Failure.UNREADABLE, Failure.BROKEN):
        return False  # the same answer (or the same exception) would come again
    return idempotent


def classify(status: int, code: str | None) -> Failure | None:
    """How the retry rules see an error answer; None means "raise it, never repeat"."""
    if status == 429:
        # The circuit breaker blocks this one request (section 1a.4): repeating it, or
        # slowing every other call down, would only make things worse.
        return None if code == "ERROR_LOOP_DETECTED" else Failure.RATE_LIMITED
    if status == 504 and code == "QUEUE_TIMEOUT":
        return Failure.QUEUED
    if status >= 500:
        # 500 INTERNAL_ERROR too: the gateway may have failed after Bitrix24 acted.
        return Failure.SERVER_ERROR
    if status < 200 or 300 <= status < 400:
        # Not an answer the gateway gives (a redirect, an interim code): nothing says the
        # call was refused unexecuted, so it is not repeated, and a side effect is unknown.
        return Failure.UNREADABLE
    return None


class AttemptFailed(Exception):
    """One attempt failed; carries the typed error and how the retry rules should see it."""

    def __init__(
        self,
        error: errors.MailError,
        failure: Failure | None,
        retry_after: float | None = None,
        permit: Permit | None = None,
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.failure = failure
        self.retry_after = retry_after
        self.permit = permit
