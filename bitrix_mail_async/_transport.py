"""The HTTP layer: the aiohttp session's lifecycle and one attempt of one request.

Nothing here retries, limits or reads envelopes: :meth:`Transport.send` writes one request
and returns the :class:`~bitrix_mail_async._envelope.Answer`, or raises
:class:`~bitrix_mail_async._retry.AttemptFailed` saying how the request failed (never sent,
or lost after it was written), which is all the retry rules need to know.

Secrets: the API key lives only in ``Transport._headers``; no local variable of this module
holds it (tracebacks that capture locals show ``repr(self)``, which is redacted), and aiohttp
exceptions are re-raised as ours ``from None`` so their frames, which do see the headers,
never reach a printed traceback.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Coroutine, Mapping
from typing import Any, NamedTuple, TypeVar

import aiohttp

from bitrix_mail_async import errors
from bitrix_mail_async._config import redact_key
from bitrix_mail_async._envelope import Answer, Call
from bitrix_mail_async._retry import AttemptFailed, Failure
from bitrix_mail_async._version import __version__

__all__ = ["ClientState", "Request", "Transport"]

T = TypeVar("T")
USER_AGENT = f"bitrix-mail-async/{__version__}"
_CLOSED = "this MailClient is closed; create a new one"


class ClientState(enum.Enum):
    """Where a client is in its life: created, open (session usable), or closed for good."""

    NEW = "not opened"
    OPEN = "open"
    CLOSED = "closed"


class Request(NamedTuple):
    """One logical call, ready to send: what the retry loop repeats and errors report."""

    method: str
    path: str
    params: Mapping[str, str] | None
    json: Any
    body: bytes | None
    timeout: float
    idempotent: bool

    @property
    def call(self) -> Call:
        """The method and path, as named in errors."""
        return Call(self.method, self.path)


class Transport:
    """Owns the aiohttp session of one client and sends single attempts over it."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        session_token: str | None,
        max_connections: int,
        timeout: float,
        session: aiohttp.ClientSession | None,
    ) -> None:
        # The key and token were checked by _config.resolve_api_key/resolve_session_token.
        headers = {"X-Api-Key": api_key, "User-Agent": USER_AGENT, "Accept": "application/json"}
        if session_token is not None:
            headers["Authorization"] = f"Bearer {session_token}"
        self._headers = headers
        self._post_headers = {**headers, "Content-Type": "application/json"}
        self._key_hint = redact_key(api_key)
        self._base_url = base_url
        self._max_connections = max(max_connections, 1)
        self._timeout = timeout
        # One ClientTimeout for the common case instead of a new object per request.
        self._default_timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None
        self.state = ClientState.OPEN if session is not None else ClientState.NEW
        # Tasks parked in a wait (limiter, cooldown, backoff) that close() must wake up.
        self._waiting: set[asyncio.Task[Any]] = set()
        self._woken: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"<Transport {self._base_url} key={self._key_hint} {self.state.value}>"

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self.state is ClientState.CLOSED

    async def open(self) -> None:
        """Create the owned aiohttp session (idempotent)."""
        if self.closed:
            raise errors.ConfigurationError(_CLOSED)
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=self._max_connections,
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=min(self._timeout, 10.0)),
                raise_for_status=False,
            )
        self.state = ClientState.OPEN

    async def close(self) -> None:
        """Close the owned session and wake parked calls; a caller-owned session stays open."""
        if self.closed:
            return
        self.state = ClientState.CLOSED
        for task in self._waiting:
            self._woken.add(task)
            task.cancel()
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    async def wait(self, waiter: Coroutine[Any, Any, T]) -> T:
        """Await a wait phase (limiter, backoff) that close() can interrupt."""
        task = asyncio.current_task()
        if self.closed:
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

    def require_open(self) -> aiohttp.ClientSession:
        """The session, or a ConfigurationError saying why the client cannot send."""
        if self.closed:
            raise errors.ConfigurationError(_CLOSED)
        if self.state is ClientState.NEW or self._session is None:
            raise errors.ConfigurationError(
                "MailClient is not open: use 'async with MailClient(...) as mail:' "
                "or 'await client.open()' first"
            )
        return self._session

    def _timeout_for(self, request: Request) -> aiohttp.ClientTimeout:
        if request.timeout == self._timeout:
            return self._default_timeout
        return aiohttp.ClientTimeout(total=request.timeout)

    async def send(self, request: Request) -> Answer:
        """Send one attempt and read its whole body; connection failures raise AttemptFailed."""
        session = self.require_open()
        try:
            async with session.request(
                request.method,
                self._base_url + request.path,
                params=request.params,
                data=request.body,
                headers=self._post_headers if request.body is not None else self._headers,
                timeout=self._timeout_for(request),
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
                return Answer(status=resp.status, headers=resp.headers, body=body)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self._failed(request, exc) from None

    def _failed(self, request: Request, exc: BaseException) -> AttemptFailed:
        """Say how an attempt failed: before anything was sent, or after (outcome unknown)."""
        method, path, timeout = request.method, request.path, request.timeout
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            err: errors.MailError = errors.TimeoutError(
                f"connect timed out after {timeout:g}s", method=method, path=path
            )
            return AttemptFailed(err, Failure.NOT_SENT)
        if isinstance(exc, aiohttp.ClientConnectorError):
            err = errors.TransportError(
                f"cannot connect: {exc.os_error!s}", method=method, path=path
            )
            return AttemptFailed(err, Failure.NOT_SENT)
        if isinstance(exc, TimeoutError):
            err = errors.TimeoutError(f"timed out after {timeout:g}s", method=method, path=path)
        elif self.closed:
            err = errors.TransportError(
                "the client was closed during the call", method=method, path=path
            )
        else:
            err = errors.TransportError(
                f"connection failed: {type(exc).__name__}: {exc}", method=method, path=path
            )
        return AttemptFailed(err, Failure.LOST)
