"""The request pipeline every endpoint goes through.

semaphore → limiter (cooldown, bucket) → aiohttp → envelope → typed error → retry rules.
Resources never touch aiohttp, JSON or retries; they call :meth:`Transport.request`.

Secrets: the API key lives only in ``Transport._headers``; no local variable of this module
holds it (tracebacks that capture locals show ``repr(self)``, which is redacted), and aiohttp
exceptions are re-raised as ours ``from None`` so their frames, which do see the headers,
never reach a printed traceback.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import time
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

import aiohttp
import attrs

from bitrix_mail_async import _retry, errors
from bitrix_mail_async._config import check_header_value, check_timeout, redact_key
from bitrix_mail_async._jsonlib import dumps as _dumps
from bitrix_mail_async._jsonlib import loads as _loads
from bitrix_mail_async._ratelimit import Limiter, Permit, cooldown_jitter
from bitrix_mail_async._retry import Failure, RetryPolicy
from bitrix_mail_async._version import __version__

__all__ = ["ClientStats", "Transport"]

log = logging.getLogger("bitrix_mail_async.transport")

T = TypeVar("T")
USER_AGENT = f"bitrix-mail-async/{__version__}"
_CLOSED = "this MailClient is closed; create a new one"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None when unusable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _coerce_seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return max(0.0, float(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        return parse_retry_after(value)
    return None


@attrs.define
class ClientStats:
    """Counters of one client; ``current_rate`` is the limiter's learned rate (requests/s)."""

    requests: int = 0
    responses: int = 0
    retries: int = 0
    rate_limited: int = 0
    errors: int = 0
    outcome_unknown: int = 0
    limiter_wait: float = 0.0
    retry_wait: float = 0.0
    current_rate: float | None = None


class _AttemptFailed(Exception):
    """One attempt failed; carries the typed error and how the retry rules should see it."""

    def __init__(
        self, error: errors.MailError, failure: Failure | None, retry_after: float | None = None
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.failure = failure
        self.retry_after = retry_after
        self.permit: Permit | None = None


class Transport:
    """Owns the aiohttp session, the limiter and the retry loop of one client."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        session_token: str | None,
        limiter: Limiter,
        max_concurrency: int,
        retry: RetryPolicy,
        timeout: float,
        session: aiohttp.ClientSession | None,
    ) -> None:
        check_header_value("api_key", api_key)
        headers = {"X-Api-Key": api_key, "User-Agent": USER_AGENT, "Accept": "application/json"}
        if session_token is not None:
            check_header_value("session_token", session_token)
            headers["Authorization"] = f"Bearer {session_token}"
        self._headers = headers
        self._post_headers = {**headers, "Content-Type": "application/json"}
        self._key_hint = redact_key(api_key)
        self._base_url = base_url
        self._limiter = limiter
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._max_concurrency = max_concurrency
        self._retry = retry
        self._timeout = timeout
        # One ClientTimeout for the common case instead of a new object per request.
        self._attempt_timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None
        self._opened = session is not None
        self._closed = False
        # Tasks parked in a wait (limiter, cooldown, backoff) that close() must wake up.
        self._waiting: set[asyncio.Task[Any]] = set()
        self._woken: set[asyncio.Task[Any]] = set()
        self.stats = ClientStats(current_rate=limiter.current_rate)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("open" if self._opened else "not opened")
        return f"<Transport {self._base_url} key={self._key_hint} {state}>"

    @property
    def limiter(self) -> Limiter:
        """The limiter all calls of this transport share."""
        return self._limiter

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    async def open(self) -> None:
        """Create the owned aiohttp session (idempotent)."""
        if self._closed:
            raise errors.ConfigurationError(_CLOSED)
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=max(self._max_concurrency, 1),
                limit_per_host=max(self._max_concurrency, 1),
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=min(self._timeout, 10.0)),
                raise_for_status=False,
            )
        self._opened = True

    async def close(self) -> None:
        """Close the owned session and the limiter; a caller-owned session stays open."""
        if self._closed:
            return
        self._closed = True
        for task in self._waiting:
            self._woken.add(task)
            task.cancel()
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()
        await self._limiter.aclose()

    async def _wait(self, waiter: Coroutine[Any, Any, T]) -> T:
        """Await a wait phase (limiter, backoff) that close() can interrupt."""
        task = asyncio.current_task()
        if self._closed:
            waiter.close()
            raise errors.ConfigurationError(_CLOSED)
        if task is None:  # pragma: no cover - always inside a task under asyncio
            return await waiter
        self._waiting.add(task)
        try:
            return await waiter
        except asyncio.CancelledError:
            # A cancel from close() becomes a clean error; any other cancel propagates.
            if task in self._woken:
                self._woken.discard(task)
                task.uncancel()
                raise errors.ConfigurationError(
                    "the MailClient was closed while this call was waiting to be sent"
                ) from None
            raise
        finally:
            self._waiting.discard(task)

    def _require_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise errors.ConfigurationError(_CLOSED)
        if not self._opened or self._session is None:
            raise errors.ConfigurationError(
                "MailClient is not open: use 'async with MailClient(...) as mail:' "
                "or 'await client.open()' first"
            )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        timeout: float | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Send one API call with limiter, retries and error mapping; return the ``data``.

        ``idempotent`` defaults to True for GET only; read-only POSTs (recipient searches)
        pass True so that they are retried like GETs.
        """
        data, _meta = await self.request_with_meta(
            method, path, params=params, json=json, timeout=timeout, idempotent=idempotent
        )
        return data

    async def request_with_meta(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        timeout: float | None = None,
        idempotent: bool | None = None,
    ) -> tuple[Any, Any]:
        """Like :meth:`request`, returning ``(data, meta)``; ``meta`` is None when absent."""
        self._require_session()
        if idempotent is None:
            idempotent = method == "GET"
        body = _dumps(json) if json is not None else None
        per_attempt = (
            self._timeout
            if timeout is None
            else check_timeout(timeout, error=errors.InvalidArgumentError)
        )
        policy = self._retry
        attempts = 0
        rate_limited = 0
        while True:
            attempts += 1
            try:
                return await self._attempt(method, path, params, body, per_attempt, attempts)
            except _AttemptFailed as failed:
                failure = failed.failure
                if failure is Failure.RATE_LIMITED:
                    wait = policy.rate_limit_wait(failed.retry_after, rate_limited + 1)
                    if wait > policy.max_retry_after:
                        # Not honoured, so not imposed on the other calls either.
                        raise failed.error from None
                    # Shared even when this call gives up: the others would only earn 429s.
                    await self._limiter.report_rate_limited(
                        failed.permit, wait + cooldown_jitter(wait)
                    )
                    log.debug("%s %s: rate limited, shared cooldown %.3fs", method, path, wait)
                    if rate_limited >= policy.rate_limit_attempts:
                        raise failed.error from None
                    rate_limited += 1
                    attempts -= 1  # 429s have their own budget
                    self.stats.retries += 1
                    continue  # acquire() waits the cooldown out
                if (
                    failure is None
                    or self._closed
                    or not _retry.should_retry(failure, idempotent=idempotent)
                ):
                    raise self._final_error(failed, idempotent, method, path, json) from None
                too_long = (failed.retry_after or 0.0) > policy.max_retry_after
                if attempts >= policy.max_attempts or too_long:
                    raise self._final_error(failed, idempotent, method, path, json) from None
                delay = policy.backoff(attempts)
                if failed.retry_after is not None and policy.honor_retry_after:
                    delay = max(delay, failed.retry_after)
                self.stats.retries += 1
                self.stats.retry_wait += delay
                log.debug(
                    "%s %s: attempt %d failed (%s), retrying in %.3fs",
                    method,
                    path,
                    attempts,
                    failure.value,
                    delay,
                )
                await self._wait(asyncio.sleep(delay))

    def _final_error(
        self,
        failed: _AttemptFailed,
        idempotent: bool,
        method: str,
        path: str,
        json: Any,
    ) -> errors.MailError:
        err = failed.error
        if idempotent or failed.failure not in (Failure.SERVER_ERROR, Failure.LOST):
            self.stats.errors += 1
            return err
        # A POST that may have been applied: say so, and hand back what was sent.
        self.stats.outcome_unknown += 1
        request = {"method": method, "path": path, "json": json}
        note = "the gateway may have applied this call; it was not retried to avoid a duplicate"
        if isinstance(err, errors.APIError):
            return errors.UpstreamOutcomeUnknownError(
                f"{err.message} ({note})",
                request=request,
                code=err.code,
                status=err.status,
                hint=err.hint,
                retry_after=err.retry_after,
                method=method,
                path=path,
                body_excerpt=err.body_excerpt,
            )
        cls = (
            errors.TimeoutOutcomeUnknownError
            if isinstance(err, errors.TimeoutError)
            else errors.OutcomeUnknownError
        )
        message = err.message if isinstance(err, errors.TransportError) else str(err)
        return cls(f"{message} ({note})", method=method, path=path, request=request)

    async def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: bytes | None,
        timeout: float,
        attempt: int,
    ) -> tuple[Any, Any]:
        async with self._semaphore:
            permit = await self._wait(self._limiter.acquire())
            self.stats.limiter_wait += permit.waited
            session = self._require_session()
            self.stats.requests += 1
            try:
                async with session.request(
                    method,
                    self._base_url + path,
                    params=params,
                    data=body,
                    headers=self._post_headers if body is not None else self._headers,
                    timeout=(
                        self._attempt_timeout
                        if timeout == self._timeout
                        else aiohttp.ClientTimeout(total=timeout)
                    ),
                    allow_redirects=False,
                ) as resp:
                    raw = await resp.read()
                    status = resp.status
                    retry_after_header = resp.headers.get("Retry-After")
            except aiohttp.ConnectionTimeoutError:
                raise _AttemptFailed(
                    errors.TimeoutError(
                        f"connect timed out after {timeout:g}s", method=method, path=path
                    ),
                    Failure.NOT_SENT,
                ) from None
            except aiohttp.ClientConnectorError as exc:
                raise _AttemptFailed(
                    errors.TransportError(
                        f"cannot connect: {exc.os_error!s}", method=method, path=path
                    ),
                    Failure.NOT_SENT,
                ) from None
            except TimeoutError:
                raise _AttemptFailed(
                    errors.TimeoutError(f"timed out after {timeout:g}s", method=method, path=path),
                    Failure.LOST,
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                if self._closed:
                    raise _AttemptFailed(
                        errors.TransportError(
                            "the client was closed during the call", method=method, path=path
                        ),
                        Failure.LOST,
                    ) from None
                raise _AttemptFailed(
                    errors.TransportError(
                        f"connection failed: {type(exc).__name__}: {exc}", method=method, path=path
                    ),
                    Failure.LOST,
                ) from None
        self.stats.responses += 1
        log.debug("%s %s -> %d (attempt %d)", method, path, status, attempt)
        if status == 429:
            self.stats.rate_limited += 1
            failed = self._error_from(method, path, status, raw, retry_after_header)
            failed.permit = permit
            raise failed
        self._limiter.report_success(permit)
        if 200 <= status < 300:
            return self._decode_success(method, path, status, raw)
        raise self._error_from(method, path, status, raw, retry_after_header)

    def _decode_success(self, method: str, path: str, status: int, raw: bytes) -> tuple[Any, Any]:
        try:
            envelope = _loads(raw)
        except ValueError:
            raise errors.DecodeError(
                "the answer is not valid JSON",
                status=status,
                method=method,
                path=path,
                body_excerpt=errors.excerpt(raw),
            ) from None
        if not isinstance(envelope, dict) or "success" not in envelope:
            raise errors.DecodeError(
                "the answer is not the gateway's envelope (no 'success' field)",
                status=status,
                method=method,
                path=path,
                body_excerpt=errors.excerpt(raw),
            )
        if envelope["success"] is True:
            if "data" not in envelope:
                raise errors.DecodeError(
                    "'success: true' without 'data'", status=status, method=method, path=path
                )
            return envelope["data"], envelope.get("meta")
        # success: false with a 2xx status: still a gateway error, typed by its code.
        raise self._error_from(method, path, status, raw, None, envelope=envelope).error

    def _error_from(
        self,
        method: str,
        path: str,
        status: int,
        raw: bytes,
        retry_after_header: str | None,
        *,
        envelope: Any = None,
    ) -> _AttemptFailed:
        if envelope is None:
            try:
                envelope = _loads(raw) if raw else None
            except ValueError:
                envelope = None
        error_obj = envelope.get("error") if isinstance(envelope, dict) else None
        code: str | None = None
        message = f"HTTP {status}"
        hint = user_message = None
        validation: list[dict[str, Any]] | None = None
        body_retry_after = None
        body_excerpt: str | None = None
        if isinstance(error_obj, dict):
            raw_code = error_obj.get("code")
            code = str(raw_code) if raw_code is not None else None
            message = str(error_obj.get("message") or message)
            hint = _opt_str(error_obj.get("hint"))
            user_message = _opt_str(error_obj.get("userMessage"))
            body_retry_after = _coerce_seconds(error_obj.get("retryAfter"))
            raw_validation = error_obj.get("validation")
            if isinstance(raw_validation, list):
                validation = [v for v in raw_validation if isinstance(v, dict)]
        else:
            message = f"HTTP {status} with an answer that is not the gateway's error envelope"
            body_excerpt = errors.excerpt(raw)
        retry_after = parse_retry_after(retry_after_header)
        if retry_after is None:
            retry_after = body_retry_after
        cls = errors.error_class_for(code, status)
        err = cls(
            message,
            code=code,
            status=status,
            hint=hint,
            retry_after=retry_after,
            method=method,
            path=path,
            body_excerpt=body_excerpt,
            validation=validation,
            user_message=user_message,
        )
        failure: Failure | None = None
        if status == 429:
            failure = Failure.RATE_LIMITED
        elif status in (502, 503, 504):
            failure = Failure.SERVER_ERROR
        return _AttemptFailed(err, failure, retry_after)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
