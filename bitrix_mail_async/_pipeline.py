"""The road every call takes, as a chain of small named steps.

``request`` prepares a :class:`~bitrix_mail_async._transport.Request` and hands it to the
:class:`~bitrix_mail_async._retry.RetryLoop`; each attempt is a concurrency slot, ``_admit``
(a limiter permit) → ``Transport.send`` (one bounded HTTP exchange) → ``_hear`` (the
limiter and the counters learn the outcome) → ``_envelope.read`` (data or a typed error).
Resources only call :meth:`Pipeline.request`; they never see aiohttp, JSON or retries.

This step sits outside ``_transport`` (which only knows HTTP) and ``_retry`` (which only knows
when to repeat) so that each of the three stays small and owns one decision.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bitrix_mail_async import _envelope, errors
from bitrix_mail_async._concurrency import AdaptiveConcurrency
from bitrix_mail_async._config import check_timeout
from bitrix_mail_async._envelope import Answer, Reply
from bitrix_mail_async._jsonlib import dumps
from bitrix_mail_async._ratelimit import Limiter, Permit
from bitrix_mail_async._retry import AttemptFailed, Failure, RetryLoop, RetryPolicy, classify
from bitrix_mail_async._stats import ClientStats
from bitrix_mail_async._transport import Request, Transport

__all__ = ["Pipeline"]

log = logging.getLogger("bitrix_mail_async.transport")


class Pipeline:
    """Limiter, concurrency limit, retry loop and transport of one client, in that order."""

    def __init__(
        self,
        *,
        transport: Transport,
        limiter: Limiter,
        max_concurrency: int,
        retry: RetryPolicy,
        timeout: float,
    ) -> None:
        self.transport = transport
        self.limiter = limiter
        self.stats = ClientStats(current_rate=limiter.current_rate)
        self.concurrency = AdaptiveConcurrency(max_concurrency)
        self._timeout = timeout
        self._retry = RetryLoop(
            retry,
            limiter=limiter,
            stats=self.stats,
            wait=transport.wait,
            is_closed=lambda: transport.closed,
        )

    async def close(self) -> None:
        """Close the transport, then the limiter (its remote connections, if any)."""
        if self.transport.closed:
            return
        await self.transport.close()
        await self.limiter.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        timeout: float | None = None,
        idempotent: bool | None = None,
    ) -> Reply:
        """Send one logical call with limiter, retries and error mapping; return its Reply.

        ``idempotent`` defaults to True for GET only; read-only POSTs (recipient searches)
        pass True so that they are retried like GETs.
        """
        request = self._prepare(method, path, params, json, timeout, idempotent)
        return await self._retry.run(request, lambda attempt: self._attempt(request, attempt))

    def _prepare(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json: Any,
        timeout: float | None,
        idempotent: bool | None,
    ) -> Request:
        self.transport.require_open()
        return Request(
            method=method,
            path=path,
            params=params,
            json=json,
            body=dumps(json) if json is not None else None,
            timeout=(
                self._timeout
                if timeout is None
                else check_timeout(timeout, error=errors.InvalidArgumentError)
            ),
            idempotent=method == "GET" if idempotent is None else idempotent,
        )

    async def _attempt(self, request: Request, attempt: int) -> Reply:
        generation = await self.concurrency.acquire()
        try:
            permit = await self._admit()
            self.stats.requests += 1
            answer = await self.transport.send(request)
        finally:
            self.concurrency.release()
        return self._hear(request, permit, answer, attempt, generation)

    async def _admit(self) -> Permit:
        """Wait for the limiter's permit (cooldown, bucket); close() interrupts the wait."""
        permit = await self.transport.wait(self.limiter.acquire())
        self.stats.limiter_wait += permit.waited
        return permit

    def _hear(
        self, request: Request, permit: Permit, answer: Answer, attempt: int, generation: int
    ) -> Reply:
        """Let the limiter, the concurrency limit and the counters learn the outcome; read."""
        status = answer.status
        self.stats.responses += 1
        log.debug("%s %s -> %d (attempt %d)", request.method, request.path, status, attempt)
        call = request.call
        if status == 429:
            self.stats.rate_limited += 1
            err = _envelope.error_for(call, answer)
            raise AttemptFailed(err, classify(status, err.code), err.retry_after, permit)
        self.limiter.report_success(permit)
        if 200 <= status < 300:
            self.concurrency.succeeded()
            return _envelope.read(call, answer)
        err = _envelope.error_for(call, answer)
        failure = classify(status, err.code)
        if failure is Failure.QUEUED and self.concurrency.overloaded(generation):
            log.info("portal queue timeout: at most %d calls in flight now", self.concurrency.limit)
        raise AttemptFailed(err, failure, err.retry_after)
