"""The HTTP layer: the aiohttp session's lifecycle and one attempt of one request.

Nothing here retries, limits or reads envelopes: :meth:`Transport.exchange` writes one request
and returns the :class:`~bitrix_mail_async._envelope.Answer`, or raises
:class:`~bitrix_mail_async._failures.AttemptFailed` saying how the request failed (never sent,
or lost after it was written), which is all the retry rules need to know.

Lifecycle: a client belongs to the event loop that opened it (or made its first call), since
its session, limiter and locks do; any other loop gets a ``ConfigurationError`` instead of a
hang. ``close()`` ends every call in progress at once: calls parked in a wait
(:meth:`Transport.wait`) raise ``ConfigurationError``, calls on the wire
(:meth:`Transport.exchange`) fail as lost, which the retry rules turn into a
``TransportError``, or an ``OutcomeUnknownError`` for a side effect. aiohttp alone would leave
those calls waiting in its pool until their own timeout.

Secrets: the API key lives only in the request's credentials
(:class:`~bitrix_mail_async._credentials.Credentials`, whose repr is redacted); no local
variable of this module holds it, and aiohttp exceptions are replaced by ours raised outside
the ``except`` block, so their frames, which do see the headers, are not even the
``__context__`` of what the caller gets.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
from collections.abc import Coroutine, Mapping
from typing import Any, NamedTuple, TypeVar

import aiohttp

from bitrix_mail_async import errors
from bitrix_mail_async._config import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES,
    check_request,
    redact_url,
)
from bitrix_mail_async._credentials import USER_AGENT, Credentials
from bitrix_mail_async._envelope import Answer, Call, Decoder
from bitrix_mail_async._failures import AttemptFailed, Failure

__all__ = ["USER_AGENT", "ClientState", "Request", "Transport"]

T = TypeVar("T")
_CLOSED = "this MailClient is closed; create a new one"
_OTHER_LOOP = (
    "this MailClient belongs to another event loop (the one that opened it or made its first "
    "call){}; use one client per event loop"
)
#: How long close() lets interrupted calls unwind before it closes the session anyway.
CLOSE_GRACE = 1.0

log = logging.getLogger("bitrix_mail_async.transport")
# Bytes asked of the body stream at a time: small against max_response_bytes.
_CHUNK = 64 * 1024


class ClientState(enum.Enum):
    """Where a client is in its life: created, open (session usable), or closed for good."""

    NEW = "not opened"
    OPEN = "open"
    CLOSED = "closed"


class Request(NamedTuple):
    """One logical call, ready to send: what the retry loop repeats and errors report."""

    #: Whose headers go with it: the client's, or a tenant's (``for_session``).
    credentials: Credentials
    method: str
    path: str
    params: Mapping[str, str] | None
    json: Any
    body: bytes | None
    timeout: float
    idempotent: bool
    #: The caller takes ``data`` as plain JSON (``mail.request``), not decoded into a model.
    untyped: bool = False
    #: Seconds the whole call may take (``MailClient(deadline=...)``); None: no bound.
    deadline: float | None = None
    #: Turns the answer's ``data`` into the call's result inside the attempt, so that an answer
    #: that does not fit its model is one more failure the retry rules judge.
    decoder: Decoder | None = None
    #: Sent as ``X-Request-Id``, the same on every attempt of the call.
    request_id: str = ""
    #: ``with_options(extra_headers=...)``: never the key, token, content type or request id.
    extra_headers: Mapping[str, str] | None = None

    @property
    def call(self) -> Call:
        """The method and path, as named in errors."""
        return Call(self.method, self.path)


class Transport:
    """Owns the aiohttp session of one client and sends single attempts over it."""

    def __init__(
        self,
        *,
        credentials: Credentials,
        base_url: str,
        max_connections: int,
        timeout: float,
        session: aiohttp.ClientSession | None,
        trust_env: bool = False,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        #: The client's own headers (a tenant's calls carry theirs in their Request).
        self.credentials = credentials
        self._key_hint = repr(credentials)
        self._base_url = base_url
        self._max_connections = max(max_connections, 1)
        self._timeout = timeout
        self._trust_env = trust_env
        # One ClientTimeout for the common case instead of a new object per request.
        self._default_timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None
        self.state = ClientState.OPEN if session is not None else ClientState.NEW
        # The loop the client belongs to; set once, under a lock, since two threads' loops
        # may race for a fresh client.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bind_lock = threading.Lock()
        # Calls close() must end: parked in a wait (limiter, cooldown, backoff) or on the wire.
        self._waiting: set[asyncio.Task[Any]] = set()
        self._on_wire: set[asyncio.Task[Any]] = set()
        self._woken: set[asyncio.Task[Any]] = set()
        self._drained: asyncio.Event | None = None
        # Checked by _config.check_byte_limit in MailClient.
        self.max_request_bytes = max_request_bytes
        self.max_response_bytes = max_response_bytes

    def __repr__(self) -> str:
        url = redact_url(self._base_url)
        return f"<Transport {url} {self._key_hint} {self.state.value}>"

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self.state is ClientState.CLOSED

    @property
    def orphaned(self) -> bool:
        """True when the loop this client belongs to has ended: nothing of it can be awaited."""
        loop = self._loop
        return loop is not None and loop.is_closed()

    def _bind(self) -> None:
        """Tie the client to the running loop on first use; any other loop is refused."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise errors.ConfigurationError(
                "MailClient must be used from a coroutine running in an event loop"
            ) from None
        if self._loop is loop:
            return
        with self._bind_lock:
            if self._loop is None:
                self._loop = loop
                return
        ended = " (that loop has ended)" if self.orphaned else ""
        raise errors.ConfigurationError(_OTHER_LOOP.format(ended))

    async def open(self) -> None:
        """Create the owned aiohttp session (idempotent)."""
        if self.closed:
            raise errors.ConfigurationError(_CLOSED)
        self._bind()
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
                # Off by default: HTTP(S)_PROXY and ~/.netrc are read only when asked for.
                trust_env=self._trust_env,
            )
        self.state = ClientState.OPEN

    async def close(self) -> None:
        """End every call in progress, then close the owned session (a caller's stays open)."""
        if self.closed:
            return
        if self.orphaned:
            # Its loop is gone, and with it every call and connection: nothing to wait for.
            self.state = ClientState.CLOSED
            self._session = None
            return
        self._bind()
        self.state = ClientState.CLOSED
        try:
            await self._interrupt_calls()
        finally:
            # Even when close() itself is cancelled: a second close() would return at once.
            session, self._session = self._session, None
            if session is not None and self._owns_session:
                await session.close()

    async def _interrupt_calls(self) -> None:
        """Cancel the calls in a wait or on the wire, and let them unwind (bounded)."""
        current = asyncio.current_task()
        calls = [t for t in (*self._waiting, *self._on_wire) if t is not current]
        if not calls:
            return
        self._drained = asyncio.Event()
        for task in calls:
            self._woken.add(task)
            task.cancel()
        try:
            await asyncio.wait_for(self._drained.wait(), CLOSE_GRACE)
        except TimeoutError:
            # Only code below us that swallows a cancel gets here; close anyway.
            log.debug("close(): some calls did not end within %gs", CLOSE_GRACE)

    def _left(self, task: asyncio.Task[Any], where: set[asyncio.Task[Any]]) -> None:
        where.discard(task)
        if task in self._woken:
            # close()'s cancel was swallowed below us: take it back, the call ends by itself.
            self._woken.discard(task)
            task.uncancel()
        drained = self._drained
        if drained is not None and not self._waiting and not self._on_wire:
            drained.set()

    def _enter(self, where: set[asyncio.Task[Any]]) -> asyncio.Task[Any]:
        """Count the running call in ``where``, as one close() can end; refused once closed."""
        if self.closed:
            raise errors.ConfigurationError(_CLOSED)
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always inside a task under asyncio
            raise errors.ConfigurationError("MailClient calls must run inside an asyncio task")
        where.add(task)
        return task

    def _closing(self, task: asyncio.Task[Any]) -> bool:
        """Whether a cancel of ``task`` is close()'s alone (then taken back), not its caller's."""
        if task not in self._woken:
            return False
        self._woken.discard(task)
        # A cancel of the caller's own, arriving at the same time, still wins.
        return task.uncancel() == 0

    async def wait(self, waiter: Coroutine[Any, Any, T]) -> T:
        """Await a wait phase (limiter, backoff) that close() can interrupt."""
        try:
            task = self._enter(self._waiting)
        except errors.ConfigurationError:
            waiter.close()
            raise
        try:
            return await waiter
        except asyncio.CancelledError:
            if self._closing(task):
                raise _closed_while_waiting() from None
            raise
        finally:
            self._left(task, self._waiting)

    async def exchange(self, request: Request) -> Answer:
        """Send one attempt and read its body (bounded); how it failed raises AttemptFailed.

        close() can end it: it then fails as lost on the wire. The session's own
        ``raise_for_status`` is overridden: a caller's session made with
        ``raise_for_status=True`` would turn a 404 into a retried transport error and a 429
        on a send into "outcome unknown". The request's size was checked once, when the
        pipeline prepared it (:meth:`check_request`), not again on every attempt.
        """
        task = self._enter(self._on_wire)
        try:
            session = self._session or self.require_open()
            if session.closed:
                # A caller's session, closed by its owner after it was handed over.
                raise errors.ConfigurationError(
                    "the aiohttp.ClientSession passed as session= was closed; nothing was sent"
                )
            try:
                async with session.request(
                    request.method,
                    self._base_url + request.path,
                    params=request.params,
                    data=request.body,
                    headers=request.credentials.sent_headers(
                        request.request_id, request.body is not None, request.extra_headers
                    ),
                    timeout=self._timeout_for(request),
                    allow_redirects=False,
                    raise_for_status=False,
                ) as resp:
                    if self._whole(resp):
                        body = await resp.read()
                    else:
                        body = await self._read_body(request, resp)
                    return Answer(status=resp.status, headers=resp.headers, body=body)
            except AttemptFailed:
                raise  # ours (an answer over max_response_bytes), raised in _read_body
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                failed = self._failed(request, exc)
            except Exception as exc:
                # The boundary: whatever else aiohttp or the standard library raises becomes a
                # typed failure too, never a raw exception with aiohttp's frames behind it.
                failed = self._unexpected(request, exc)
            except asyncio.CancelledError as exc:
                if not self._closing(task):
                    # Cancelled inside aiohttp: its frames, which hold the headers, are cut off.
                    raise errors.detached(exc) from None
                failed = _closed_on_wire(request)
            # Raised outside the except block, so the aiohttp error is not even its
            # __context__: aiohttp's frames hold the request headers, the key among them.
            raise failed
        finally:
            self._left(task, self._on_wire)

    def require_open(self) -> aiohttp.ClientSession:
        """The session, or a ConfigurationError saying why the client cannot send."""
        if self.closed:
            raise errors.ConfigurationError(_CLOSED)
        self._bind()
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

    def check_request(self, request: Request) -> None:
        """Refuse a request this client will not send (too large, too many recipients)."""
        check_request(request.body, request.json, max_bytes=self.max_request_bytes)

    def _whole(self, resp: aiohttp.ClientResponse) -> bool:
        """Whether the body is exactly its declared size, within bounds: read in one go."""
        declared = resp.content_length  # compressed size when encoded
        return (
            declared is not None
            and declared <= self.max_response_bytes
            and "Content-Encoding" not in resp.headers
        )

    async def _read_body(self, request: Request, resp: aiohttp.ClientResponse) -> bytes:
        """A body that is not :meth:`_whole`, decompressed, up to ``max_response_bytes``.

        A 2xx over it is unreadable. aiohttp inflates compressed bodies as they stream, in
        bounded steps (aiohttp 3.13.3 and later), so counting the decoded chunks bounds memory
        for a gzip bomb too. A larger error answer is cut there: its status still says what
        happened, the cut gives the excerpt.
        """
        limit = self.max_response_bytes
        success = 200 <= resp.status < 300
        declared = resp.content_length  # compressed size when encoded, so at most the decoded
        if success and declared is not None and declared > limit:
            resp.close()
            raise _too_large(request, resp.status, limit)
        size = 0
        chunks: list[bytes] = []
        async for chunk in resp.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > limit:
                # Close, not release: the rest is never read, so the connection is not reused.
                resp.close()
                if success:
                    raise _too_large(request, resp.status, limit)
                chunks.append(chunk[: len(chunk) - (size - limit)])
                break
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _scrub(request: Request, text: str) -> str:
        """``text`` fit for an exception: bounded, controls escaped, no key or token in it."""
        text = errors.clean(text, 500)
        for secret in request.credentials.secrets():
            text = text.replace(secret, "***")
        return text

    def _unexpected(self, request: Request, exc: Exception) -> AttemptFailed:
        """An exception no rule knows: it may have come after the request went out."""
        err = errors.TransportError(
            self._scrub(
                request, f"the HTTP layer failed unexpectedly: {type(exc).__name__}: {exc}"
            ),
            method=request.method,
            path=request.path,
        )
        # Never repeated (it would fail the same way); a side effect gets "outcome unknown".
        return AttemptFailed(err, Failure.BROKEN)

    def _failed(self, request: Request, exc: BaseException) -> AttemptFailed:
        """Say how an attempt failed: before anything was sent, or after (outcome unknown)."""
        method, path, timeout = request.method, request.path, request.timeout
        if isinstance(exc, aiohttp.InvalidURL):
            # aiohttp refused the URL before opening a connection: provably not sent, and
            # sending it again would be refused the same way.
            err: errors.MailError = errors.TransportError(
                self._scrub(
                    request, f"the URL was refused before sending, nothing was sent: {exc}"
                ),
                method=method,
                path=path,
            )
            return AttemptFailed(err, None)
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            err = errors.TimeoutError(
                f"connect timed out after {timeout:g}s", method=method, path=path
            )
            return AttemptFailed(err, Failure.NOT_SENT)
        if isinstance(exc, aiohttp.ClientHttpProxyError):
            # The proxy refused the tunnel (CONNECT): the request never reached the gateway.
            # Its URL is not quoted, since a proxy URL may carry credentials.
            err = errors.TransportError(
                f"the proxy refused the connection (HTTP {exc.status})", method=method, path=path
            )
            return AttemptFailed(err, Failure.NOT_SENT)
        if isinstance(exc, aiohttp.ClientConnectorError):
            err = errors.TransportError(
                self._scrub(request, f"cannot connect: {exc.os_error!s}"), method=method, path=path
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
                self._scrub(request, f"connection failed: {type(exc).__name__}: {exc}"),
                method=method,
                path=path,
            )
        return AttemptFailed(err, Failure.LOST)


def _closed_on_wire(request: Request) -> AttemptFailed:
    err = errors.TransportError(
        "the client was closed during the call", method=request.method, path=request.path
    )
    return AttemptFailed(err, Failure.LOST)


def _closed_while_waiting() -> errors.ConfigurationError:
    return errors.ConfigurationError(
        "the MailClient was closed while this call was waiting to be sent"
    )


def _too_large(request: Request, status: int, limit: int) -> AttemptFailed:
    err = errors.DecodeError(
        f"the answer is larger than max_response_bytes ({limit} bytes); it was not read further",
        status=status,
        method=request.method,
        path=request.path,
    )
    return AttemptFailed(err, Failure.UNREADABLE)
