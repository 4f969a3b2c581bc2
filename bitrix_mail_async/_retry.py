"""Retry rules: which failures are retried, how long to wait, and why POSTs are special.

The gateway has no idempotency key (contract section 1): a repeated POST sends the message
twice. So a call with a side effect is repeated only when the gateway provably did not act on
it: a 429 (rejected before any work), a 504 QUEUE_TIMEOUT (never left the gateway's queue), or
a connection that failed before the request was written. Any failure after that point (a 5xx,
a lost connection, a 2xx whose body cannot be read) raises instead, marked "outcome unknown".

This module owns every decision on the kinds of failure (:mod:`._failures`): the policy
(:class:`RetryPolicy`), and the loop that repeats attempts (:class:`RetryLoop`): the separate
budget for 429s, the shared cooldown a 429 starts, ``max_retry_after``, backoff, and the
outcome-unknown error a side effect gets when it cannot be repeated safely.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from bitrix_mail_async import errors
from bitrix_mail_async._config import check_count, check_number
from bitrix_mail_async._failures import AttemptFailed, Failure, classify, should_retry
from bitrix_mail_async._ratelimit import cooldown_jitter
from bitrix_mail_async._stats import ClientStats

if TYPE_CHECKING:
    from bitrix_mail_async._envelope import Call
    from bitrix_mail_async._hooks import HookDispatcher
    from bitrix_mail_async._ratelimit import Permit
    from bitrix_mail_async._transport import Request

__all__ = ["RefusalDeadline", "RetryLoop", "RetryPolicy"]

log = logging.getLogger("bitrix_mail_async.transport")
R = TypeVar("R")


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
    ``max_refused_time`` bounds the time one call spends being refused (429s and queue
    timeouts, counted from its first refusal, limiter and window waits included): a wait that
    would end past it is not started (nor a limiter or window wait continued past it); the
    last refusal is raised instead, however much of ``rate_limit_attempts`` is left. Only an
    attempt already on the wire when the bound passes may end after it.

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
    max_refused_time: float = attrs.field(default=300.0, validator=_seconds)

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that never retries (every failure raises at once)."""
        return cls(max_attempts=1, rate_limit_attempts=0)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based) of a server/network error."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** (attempt - 1)))
        return random.uniform(0.0, ceiling) if self.jitter else ceiling

    def rate_limit_wait(
        self, retry_after: float | None, attempt: int, default: float | None = None
    ) -> float:
        """Seconds to wait after a refusal (before jitter): Retry-After, else ``default``.

        ``default`` falls back to ``default_retry_after``; without ``honor_retry_after``
        the wait is the backoff of ``attempt``.
        """
        if not self.honor_retry_after:
            return self.backoff(attempt)
        if retry_after is not None:
            return retry_after
        return self.default_retry_after if default is None else default


#: Wait after a QUEUE_TIMEOUT that names none: the gateway documents ``retryAfter: 10``.
QUEUE_RETRY_AFTER = 10.0


class RefusalDeadline(Exception):
    """An attempt's admission could not finish before its call's ``max_refused_time`` ended."""


Sleeper = Callable[[Coroutine[Any, Any, None]], Awaitable[None]]
#: One attempt: ``attempt(request, n, deadline)`` with n = 1, 2, 3... and the loop time by
#: which its admission (limiter, window) must be done, None when unbounded; it raises
#: :class:`RefusalDeadline` when the admission would take longer.
Attempt = Callable[["Request", int, float | None], Awaitable[R]]


class RetryLoop:
    """Repeats the attempts of one logical call by the rules of a :class:`RetryPolicy`."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        report_rate_limited: Callable[[Permit | None, float], Awaitable[None]],
        stats: ClientStats,
        wait: Sleeper,
        is_closed: Callable[[], bool],
        hooks: HookDispatcher | None = None,
    ) -> None:
        self.policy = policy
        self._report_rate_limited = report_rate_limited
        self._stats = stats
        self._wait = wait
        self._is_closed = is_closed
        self._hooks = hooks

    def run(
        self, request: Request, attempt: Attempt[R], expires: float | None = None
    ) -> Coroutine[Any, Any, R]:
        """Call ``attempt(request, n, deadline)`` (n: 1, 2, 3...) until it succeeds or must stop.

        Hooks hear of every refusal and retry; call scopes (OpenTelemetry's span) enclose the
        whole logical call, final error included. ``expires`` is the call's deadline on the
        loop's clock: a wait that would end past it is not started (DeadlineExceededError).
        A plain function: without a call scope the loop's own coroutine is the call's.
        """
        hooks = self._hooks
        if hooks is None or not hooks.scoped:
            return self._run(request, attempt, expires)
        return self._run_scoped(hooks, request, attempt, expires)

    async def _run_scoped(
        self, hooks: HookDispatcher, request: Request, attempt: Attempt[R], expires: float | None
    ) -> R:
        with hooks.call(request):
            return await self._run(request, attempt, expires)

    async def _run(self, request: Request, attempt: Attempt[R], expires: float | None) -> R:
        """The loop of :meth:`run`; raises the final error.

        The final error is raised outside any ``except`` block, so it has no ``__context__``:
        an aiohttp exception there would keep frames whose locals hold the request headers.
        """
        attempts = 0  # attempts that count against max_attempts
        tries = 0  # every attempt, refused ones included: what hooks and logs number
        refused = 0  # 429s and queue timeouts: the gateway did no work, own budget
        # From the first refusal on, the loop time by which the call must be done being refused.
        deadline: float | None = None
        last_refusal: AttemptFailed | None = None  # never raised: no traceback, no frame kept
        loop = asyncio.get_running_loop()
        hooks = self._hooks
        while True:
            attempts += 1
            tries += 1
            try:
                return await attempt(request, tries, deadline)
            except AttemptFailed as exc:
                # Its frames (the transport's, which saw the response and its request headers)
                # must not stay reachable from the error this call may end with.
                failed = exc.with_traceback(None)
                errors.detached(failed.error)
            except errors.DecodeError as exc:
                # A 2xx the envelope reader could not read: the call ran, its answer is lost.
                failed = AttemptFailed(errors.detached(exc), Failure.UNREADABLE)
            except RefusalDeadline:
                failed = None
            if failed is None:
                # The limiter or window would have held the call past max_refused_time.
                assert last_refusal is not None  # a deadline exists only after a refusal
                raise self._final_error(request, last_refusal)
            if hooks is not None and failed.failure is Failure.RATE_LIMITED:
                pending = hooks.rate_limited(request, tries, failed.retry_after)
                if pending is not None:
                    await pending
            if failed.failure in (Failure.RATE_LIMITED, Failure.QUEUED):
                if deadline is None:
                    deadline = loop.time() + self.policy.max_refused_time
                elif loop.time() >= deadline:
                    # A server that refuses forever (say 429 with Retry-After: 0) must not
                    # keep a call waiting at an ever lower learned rate.
                    raise self._final_error(request, failed)
                last_refusal = AttemptFailed(failed.error, failed.failure, failed.retry_after)
            if failed.failure is Failure.RATE_LIMITED:
                wait = await self._after_rate_limit(request, failed, refused, deadline)
                delay = 0.0  # the limiter's acquire() waits the cooldown out
            elif failed.failure is Failure.QUEUED:
                delay = wait = self._after_queue_timeout(request, failed, refused, deadline)
            else:
                delay = wait = self._backoff_or_raise(request, failed, attempts)
            if expires is not None and loop.time() + wait >= expires:
                raise self._past_deadline(request, failed, wait, expires - loop.time())
            if hooks is not None and failed.failure is not None:
                pending = hooks.retry(request, tries, failed.failure, wait, failed.error)
                if pending is not None:
                    await pending
            if failed.failure in (Failure.RATE_LIMITED, Failure.QUEUED):
                refused += 1
                attempts -= 1  # refusals do not spend the attempts of real failures
            del failed  # a cycle through this frame (its traceback): not kept across the wait
            if delay:
                await self._wait(asyncio.sleep(delay))

    async def _after_rate_limit(
        self, request: Request, failed: AttemptFailed, rate_limited: int, deadline: float | None
    ) -> float:
        """Share a 429's cooldown with the other calls and return it; raise if the call must end.

        It ends too when the cooldown would end past ``deadline`` (see ``max_refused_time``).
        """
        policy = self.policy
        wait = policy.rate_limit_wait(failed.retry_after, rate_limited + 1)
        if wait > policy.max_retry_after:
            # Not honoured, so not imposed on the other calls either.
            raise self._final_error(request, failed)
        cooldown = wait + cooldown_jitter(wait)
        # Shared even when this call gives up: the others would only earn 429s.
        await self._report_rate_limited(failed.permit, cooldown)
        log.debug("%s %s: rate limited, shared cooldown %.3fs", request.method, request.path, wait)
        if rate_limited >= policy.rate_limit_attempts or _past(cooldown, deadline):
            raise self._final_error(request, failed)
        self._stats.retries += 1
        return cooldown

    def _after_queue_timeout(
        self, request: Request, failed: AttemptFailed, refused: int, deadline: float | None
    ) -> float:
        """Seconds to wait before repeating a call the portal queue never ran, or raise."""
        policy = self.policy
        wait = policy.rate_limit_wait(failed.retry_after, refused + 1, QUEUE_RETRY_AFTER)
        if wait > policy.max_retry_after or refused >= policy.rate_limit_attempts:
            raise self._final_error(request, failed)
        wait += cooldown_jitter(wait)
        if _past(wait, deadline):
            raise self._final_error(request, failed)
        self._stats.retries += 1
        self._stats.retry_wait += wait
        log.debug(
            "%s %s: portal queue timeout, retrying in %.3fs", request.method, request.path, wait
        )
        return wait

    def _backoff_or_raise(self, request: Request, failed: AttemptFailed, attempts: int) -> float:
        """Seconds to wait before the next attempt; raises when the call may not be repeated."""
        policy = self.policy
        failure = failed.failure
        if (
            failure is None
            or self._is_closed()
            or not should_retry(failure, idempotent=request.idempotent)
            or attempts >= policy.max_attempts
            or (failed.retry_after or 0.0) > policy.max_retry_after
        ):
            raise self._final_error(request, failed)
        delay = policy.backoff(attempts)
        if failed.retry_after is not None and policy.honor_retry_after:
            delay = max(delay, failed.retry_after)
        self._stats.retries += 1
        self._stats.retry_wait += delay
        log.debug(
            "%s %s: attempt %d failed (%s), retrying in %.3fs",
            request.method,
            request.path,
            attempts,
            failure.value,
            delay,
        )
        return delay

    def _past_deadline(
        self, request: Request, failed: AttemptFailed, wait: float, left: float
    ) -> errors.MailError:
        """The error of a call whose next wait would end past its deadline: raised at once.

        Only failures that may be repeated get here, so nothing of this call was applied.
        """
        self._stats.errors += 1
        err = errors.DeadlineExceededError(
            f"the deadline would pass during the {wait:.3g}s wait before the next attempt "
            f"({max(left, 0.0):.3g}s left) after: {failed.error}",
            deadline=request.deadline or 0.0,
            method=request.method,
            path=request.path,
        )
        err.request_id = failed.error.request_id or request.request_id
        return err

    def _final_error(self, request: Request, failed: AttemptFailed) -> errors.MailError:
        """The error the caller sees, counted: as is, or marked outcome-unknown for a side effect.

        Every way a call ends in an error comes through here, refusals included. It names
        the call: the gateway's request id when the answer had one, else the one sent.
        """
        err = failed.error
        if err.request_id is None:
            err.request_id = request.request_id
        if request.idempotent or failed.failure not in _MAYBE_APPLIED:
            self._stats.errors += 1
            return err
        self._stats.outcome_unknown += 1
        return outcome_unknown(request.call, request.json, err)


def _past(wait: float, deadline: float | None) -> bool:
    """Whether a wait starting now would end past ``deadline`` (None: no deadline)."""
    return deadline is not None and asyncio.get_running_loop().time() + wait > deadline


#: Failures after which a side effect may have been applied.
_MAYBE_APPLIED = (Failure.SERVER_ERROR, Failure.LOST, Failure.UNREADABLE, Failure.BROKEN)
_NOTE = " (the gateway may have applied this call; it was not retried to avoid a duplicate)"


def _noted(message: str) -> str:
    # The note must survive the bound every exception text gets (errors.MAX_TEXT_CHARS).
    return errors.clean(message, errors.MAX_TEXT_CHARS - len(_NOTE)) + _NOTE


def outcome_unknown(call: Call, json: Any, err: errors.MailError) -> errors.OutcomeUnknownError:
    """Wrap the error of a side effect that may have been applied, with what was sent."""
    wrapped = _outcome_unknown(call, json, err)
    wrapped.request_id = err.request_id
    return wrapped


def _outcome_unknown(call: Call, json: Any, err: errors.MailError) -> errors.OutcomeUnknownError:
    method, path = call
    sent = {"method": method, "path": path, "json": json}
    if isinstance(err, errors.APIError):
        return errors.UpstreamOutcomeUnknownError(
            _noted(err.message),
            request=sent,
            code=err.code,
            status=err.status,
            hint=err.hint,
            retry_after=err.retry_after,
            method=method,
            path=path,
            body_excerpt=err.body_excerpt,
            raw_message=err.raw_message,
            raw_hint=err.raw_hint,
        )
    if isinstance(err, errors.DecodeError):
        return errors.OutcomeUnknownDecodeError(
            _noted(err.message),
            request=sent,
            status=err.status,
            method=method,
            path=path,
            body_excerpt=err.body_excerpt,
        )
    cls = (
        errors.TimeoutOutcomeUnknownError
        if isinstance(err, errors.TimeoutError | errors.DeadlineExceededError)
        else errors.OutcomeUnknownError
    )
    message = (
        err.message
        if isinstance(err, errors.TransportError | errors.DeadlineExceededError)
        else str(err)
    )
    return cls(_noted(message), method=method, path=path, request=sent)


def unreadable(request: Request, status: int, exc: Exception) -> AttemptFailed:
    """A typed failure for an answer whose reading raised something untyped.

    Judged by its status, as a readable answer would be: a 429 or a 5xx keeps what it proves
    (not executed, or maybe executed), a 2xx is an answer lost after the call ran.
    """
    err = errors.DecodeError(
        errors.clean(f"the answer could not be read: {type(exc).__name__}: {exc}", 300),
        status=status,
        method=request.method,
        path=request.path,
    )
    failure = Failure.UNREADABLE if 200 <= status < 300 else classify(status, None)
    return AttemptFailed(err, failure)
