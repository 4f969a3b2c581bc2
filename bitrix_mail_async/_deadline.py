"""Deadlines: a whole call (waits, backoffs, attempts) bounded by ``MailClient(deadline=...)``.

The retry loop refuses to start a wait of known length that would end past the deadline
(``RetryLoop.run(expires=)``); a side effect waits for a place in the portal's queue on this
side and is not sent with less time left than the portal's calls take
(:mod:`._portal_queue`); everything else still running at the deadline, a limiter wait
or an attempt on the wire, is cancelled there by :func:`within_deadline`. What the caller gets
then depends on whether the call may have reached the gateway: a side effect that may have is
outcome unknown (with what was sent), anything else :class:`errors.DeadlineExceededError`.
A :class:`Wire` follows each attempt to know which.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

from bitrix_mail_async import errors
from bitrix_mail_async._envelope import Answer, Reply
from bitrix_mail_async._failures import AttemptFailed, Failure
from bitrix_mail_async._portal_queue import NoTimeLeft
from bitrix_mail_async._retry import outcome_unknown
from bitrix_mail_async._stats import ClientStats
from bitrix_mail_async._transport import Request

__all__ = ["NOT_RUN", "Wire", "within_deadline"]


#: Attempt outcomes that prove the gateway did not run the call.
NOT_RUN: Final = (Failure.NOT_SENT, Failure.RATE_LIMITED, Failure.QUEUED)


class Wire:
    """Whether a call with a deadline may have reached the gateway with its outcome unknown."""

    __slots__ = ("expires", "maybe_sent")

    def __init__(self, expires: float) -> None:
        self.maybe_sent = False
        #: The call's deadline on the loop's clock.
        self.expires = expires

    def heard(self, outcome: Answer | AttemptFailed) -> None:
        """An attempt's exchange ended: a refusal or "never sent" proves nothing ran."""
        if isinstance(outcome, AttemptFailed):
            self.maybe_sent = outcome.failure not in NOT_RUN
        else:  # a 429 proves it now; a 504 QUEUE_TIMEOUT once its body is read (_attempt)
            self.maybe_sent = outcome.status != 429


async def within_deadline(
    request: Request,
    run: Callable[[Wire, float], Awaitable[Reply]],
    stats: ClientStats,
) -> Reply:
    """``run(wire, expires)`` (the retry loop) bounded by ``request.deadline`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = request.deadline or 0.0
    expires = loop.time() + deadline
    wire = Wire(expires)
    scope = asyncio.timeout_at(expires)
    try:
        async with scope:
            return await run(wire, expires)
    except TimeoutError:
        if not scope.expired():
            raise  # the call's own error (an attempt's timeout), not the deadline
    except NoTimeLeft:
        pass  # a side effect not sent: it would still have been on the wire at the deadline
    err = errors.DeadlineExceededError(
        f"the deadline of {deadline:g}s passed before the call completed",
        deadline=deadline,
        method=request.method,
        path=request.path,
    )
    err.request_id = request.request_id
    if wire.maybe_sent and not request.idempotent:
        stats.outcome_unknown += 1
        raise outcome_unknown(request.call, request.json, err)
    stats.errors += 1
    raise err
