"""The road every call takes, as a chain of small named steps.

``request`` prepares a :class:`~bitrix_mail_async._transport.Request` and hands it to the
:class:`~bitrix_mail_async._retry.RetryLoop`; each attempt is a concurrency slot, ``_admit``
(a limiter permit, then room in the gateway's window) → ``Transport.exchange`` (one bounded HTTP
exchange) → ``_hear`` (the window, the limiter and the counters learn the outcome) →
``_envelope.read`` (data or a typed error). The limiter and the window budget belong to the
API key, not to this client: they come from :data:`~bitrix_mail_async._keys.REGISTRY` when the
client opens (or makes its first call) and go back when it closes. The registry keeps them per
event loop, and the transport binds the client to one loop before anything is claimed, so a
client never touches another loop's state.
Resources only call :meth:`Pipeline.request`; they never see aiohttp, JSON or retries.

Each attempt is observed here: one DEBUG line on ``bitrix_mail_async.transport`` (route
template, status, elapsed ms, attempt; the same as ``extra=`` fields) and, when the client has
hooks, ``on_request`` just before sending and ``on_response`` once the outcome is known
(:mod:`bitrix_mail_async._hooks`).

This step sits outside ``_transport`` (which only knows HTTP) and ``_retry`` (which only knows
when to repeat) so that each of the three stays small and owns one decision.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from bitrix_mail_async import _envelope, _raw, errors
from bitrix_mail_async._concurrency import AdaptiveConcurrency
from bitrix_mail_async._config import check_timeout
from bitrix_mail_async._credentials import Credentials
from bitrix_mail_async._deadline import NOT_RUN, Wire, within_deadline
from bitrix_mail_async._envelope import Answer, Decoder, Reply
from bitrix_mail_async._failures import AttemptFailed, Failure, classify
from bitrix_mail_async._hooks import HookDispatcher, Hooks, route_template
from bitrix_mail_async._jsonlib import dumps
from bitrix_mail_async._keys import REGISTRY, KeyState, Scopes, portal_name
from bitrix_mail_async._portal_queue import NoTimeLeft
from bitrix_mail_async._ratelimit import Limiter, Permit, RateLimitConfig
from bitrix_mail_async._retry import RefusalDeadline, RetryLoop, RetryPolicy, unreadable
from bitrix_mail_async._stats import ClientStats
from bitrix_mail_async._transport import Request, Transport
from bitrix_mail_async._window import Window

__all__ = ["Pipeline"]

log = logging.getLogger("bitrix_mail_async.transport")


#: Error classes of the gateway's refusals: the call was not run (contract section 2).
_REFUSALS: Final = (
    errors.AuthenticationError,
    errors.PermissionDeniedError,
    errors.InvalidParamsError,
    errors.NotFoundError,
    errors.BitrixError,
    errors.RateLimitedError,
)


#: The RFC 4122 variant's first hex digit for each random one (its top two bits made 10).
_VARIANT: Final = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def new_request_id() -> str:
    """A random UUID (version 4) as text: ``str(uuid.uuid4())`` in a third of its time."""
    h = os.urandom(16).hex()
    # Digit 12 becomes the version (4) and digit 16 carries the variant.
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


class Pipeline:
    """Limiter, concurrency limit, retry loop and transport of one client, in that order."""

    #: The pipeline a view was derived from (see :meth:`derive`); None for a client's own.
    _root: Pipeline | None = None

    def __init__(
        self,
        *,
        transport: Transport,
        scopes: Scopes,
        credentials: Credentials,
        rate_limit: RateLimitConfig,
        create_limiter: Callable[[Scopes], Limiter],
        max_concurrency: int,
        retry: RetryPolicy,
        timeout: float,
        hooks: Hooks | None = None,
        base_url: str = "",
        deadline: float | None = None,
    ) -> None:
        self.transport = transport
        self._deadline = deadline
        self.stats = ClientStats()
        self.concurrency = AdaptiveConcurrency(max_concurrency)
        self._timeout = timeout
        self._scopes = scopes
        self._credentials = credentials
        # with_options(extra_headers=, extra_query=, extra_body=): added to every request.
        self._extra_headers: Mapping[str, str] | None = None
        self._extra_query: Mapping[str, str] | None = None
        self._extra_body: Mapping[str, Any] | None = None
        self._base_url = base_url
        #: A tenant (``for_session``) shares its parent's transport and owns only its claim.
        self._parent: Pipeline | None = None
        self._tenants: set[Pipeline] = set()
        #: True while a tenant's portal is to be learned from /v1/me (see _learn_portal).
        self._portal_unknown = False
        self._portal_task: asyncio.Task[None] | None = None
        self._rate_limit = rate_limit
        self._create_limiter = create_limiter
        self._shared: KeyState | None = None
        # None without hooks: then no event is ever built (base_url names the server in them).
        self._hooks = HookDispatcher.create(hooks, base_url)
        self._hooks_given = hooks
        self._retry = RetryLoop(
            retry,
            report_rate_limited=self._report_rate_limited,
            stats=self.stats,
            wait=transport.wait,
            is_closed=lambda: transport.closed,
            hooks=self._hooks,
        )

    def claim(self) -> KeyState:
        """The key's shared limiter state, taken from the registry on first use."""
        if self._root is not None:
            return self._root.claim()  # a view never holds a claim of its own
        if self._shared is None:
            self.transport.require_open()
            self._shared = REGISTRY.claim(self._scopes, self._rate_limit, self._create_limiter)
        return self._shared

    def count_error(self) -> None:
        """Count a call that ended in an error found after its attempts (a pager's walk)."""
        self.stats.errors += 1

    @property
    def session_scope(self) -> str:
        """The digest naming the session this pipeline sends as (per-session caches key on it)."""
        return self._scopes.session

    @property
    def limiter(self) -> Limiter:
        """The limiter shared by every client of this key."""
        return self.claim().limiter

    @property
    def window(self) -> Window:
        """The window budget shared by every client of this key."""
        return self.claim().window

    @property
    def current_rate(self) -> float | None:
        """The shared limiter's rate now; None when unlimited or before the first call."""
        shared = (self._root or self)._shared
        return None if shared is None else shared.limiter.current_rate

    def derive(
        self,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        max_concurrency: int | None = None,
        deadline: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> Pipeline:
        """A view for ``MailClient.with_options``: other per-call defaults, everything else shared.

        The view sends through the same transport, key state (limiter, window), counters and
        everything else of this pipeline; ``max_concurrency`` gives it a concurrency limit of
        its own. It claims and releases nothing, so closing it is a no-op. Extras (checked by
        the client) add to this pipeline's own, a later value winning.
        """
        view = copy.copy(self)
        view._root = self._root or self
        view._shared = None
        if timeout is not None:
            view._timeout = timeout
        if deadline is not None:
            view._deadline = deadline
        if retry is not None:
            # A copy keeps the loop's callbacks (the root's cooldown reports, the counters).
            view._retry = copy.copy(self._retry)
            view._retry.policy = retry
        if max_concurrency is not None:
            view.concurrency = AdaptiveConcurrency(max_concurrency)
        if extra_headers:
            view._extra_headers = {**(self._extra_headers or {}), **extra_headers}
        if extra_query:
            view._extra_query = {**(self._extra_query or {}), **extra_query}
        if extra_body:
            view._extra_body = {**(self._extra_body or {}), **extra_body}
        return view

    def tenant(self, credentials: Credentials, session: str, portal: str | None) -> Pipeline:
        """A pipeline for one installation of an app key (``MailClient.for_session``).

        It sends through this pipeline's transport (session, pool, lifecycle) with its own
        headers, counters, concurrency limit and retry loop, and claims the limiter of its
        own portal: one tenant's refusals, cooldowns and backoffs never hold another's calls.
        Without ``portal`` it is learned from ``GET /v1/me`` before the tenant's first call.
        """
        root = self._parent or self._root or self
        view = Pipeline(
            transport=root.transport,
            scopes=root._scopes.for_session(session, portal, root._base_url),
            credentials=credentials,
            rate_limit=root._rate_limit,
            create_limiter=root._create_limiter,
            max_concurrency=root.concurrency.maximum,
            retry=root._retry.policy,
            timeout=root._timeout,
            hooks=root._hooks_given,
            base_url=root._base_url,
            deadline=root._deadline,
        )
        view._parent = root
        view._portal_unknown = portal is None
        root._tenants.add(view)
        return view

    async def close(self) -> None:
        """End the calls in progress and close the transport, then give the key's state back.

        A tenant gives back only its own claim; its parent's close gives back every tenant's.
        """
        transport = self.transport
        if self._parent is not None:
            self._parent._tenants.discard(self)
            await self._release(transport.orphaned)
            return
        if transport.closed or self._root is not None:  # a view owns neither
            return
        # The registry keeps a state per loop; one whose loop has ended goes with that loop,
        # and its limiter cannot be closed from here.
        orphaned = transport.orphaned
        await transport.close()
        await self._release(orphaned)
        tenants, self._tenants = self._tenants, set()
        for tenant in tenants:
            await tenant._release(orphaned)

    async def _release(self, orphaned: bool) -> None:
        shared, self._shared = self._shared, None
        if shared is not None and not orphaned:
            await REGISTRY.release(shared)

    async def _report_rate_limited(self, permit: Permit | None, wait: float) -> None:
        if self._shared is not None:  # None once closed: nothing left to cool down
            await self._shared.limiter.report_rate_limited(permit, wait)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        timeout: float | None = None,
        idempotent: bool | None = None,
        untyped: bool = False,
        decoder: Decoder | None = None,
    ) -> Awaitable[Reply]:
        """Send one logical call with limiter, retries and error mapping; await its Reply.

        ``idempotent`` defaults to True for GET only; read-only POSTs (recipient searches)
        pass True so that they are retried like GETs. ``untyped`` callers get ``data`` as
        plain JSON, so its depth is checked (a model's decoder checks what it keeps untyped).
        Bad arguments raise here, before anything is awaited. A plain function: a call with
        no portal to learn and no token to fetch is the retry loop's coroutine itself.
        """
        request = self._prepare(method, path, params, json, timeout, idempotent, untyped, decoder)
        if self._portal_unknown or self._credentials.refreshable:
            return self._request_as_session(request)
        return self._send(request)

    async def _request_as_session(self, request: Request) -> Reply:
        """:meth:`request` for a tenant: its portal learned first, its token fetched and renewed."""
        if self._portal_unknown:
            await self._learn_portal()
        credentials = self._credentials
        if not credentials.ready:
            await self.transport.wait(credentials.refresh(0))
        seen = credentials.version
        try:
            return await self._send(request)
        except errors.AuthenticationError as exc:
            # The session token expired (an app key's installation): one fresh token, asked
            # once for every call that saw the stale one, and the call repeated once. The
            # gateway refused the call before running it, so a send is not duplicated.
            if exc.code != "TOKEN_EXPIRED" or not credentials.refreshable:
                raise
            self.stats.errors -= 1  # counted as it ended, but the call goes on
        await self.transport.wait(credentials.refresh(seen))
        return await self._send(request)

    def _send(self, request: Request) -> Awaitable[Reply]:
        """The call's attempts under the retry rules, within its deadline when it has one.

        A plain function: without a deadline the retry loop's coroutine is the call's own.
        """
        if self._deadline is None:
            return self._retry.run(request, self._attempt)
        return self._within_deadline(request._replace(deadline=self._deadline))

    async def _learn_portal(self) -> None:
        """Learn a tenant's portal from ``GET /v1/me`` once; concurrent first calls share it."""
        task = self._portal_task
        if task is None:
            task = self._portal_task = asyncio.ensure_future(self._ask_portal())
        await asyncio.shield(task)

    async def _ask_portal(self) -> None:
        """Ask ``/v1/me`` which portal this session belongs to and move to that portal's state.

        Until then (and for good, when the answer names none) the session counts as a portal
        of its own. The question goes through the session's own limits, like any call.
        """
        portal: str | None = None
        try:
            credentials = self._credentials
            if not credentials.ready:
                await credentials.refresh(0)
            request = self._prepare("GET", "/me", None, None, None, None, untyped=True)
            reply = await self._send(request)
            portal = portal_name(reply.data)
        except errors.MailError as exc:
            log.info(
                "could not learn a session's portal from /v1/me (%s): its limits stay its own",
                type(exc).__name__,
            )
        finally:
            self._portal_unknown = False  # asked once, whatever the answer
        if portal is not None:
            self._scopes = self._scopes.for_portal(portal, self._base_url)
            # Claimed again, under the portal's scope, by the next attempt.
            await self._release(self.transport.orphaned)

    async def _within_deadline(self, request: Request) -> Reply:
        """Run the call's attempts bounded by ``request.deadline`` (see :mod:`._deadline`)."""
        return await within_deadline(
            request,
            lambda wire, expires: self._retry.run(
                request,
                lambda request, attempt, deadline: self._attempt(request, attempt, deadline, wire),
                expires,
            ),
            self.stats,
        )

    def _prepare(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json: Any,
        timeout: float | None,
        idempotent: bool | None,
        untyped: bool = False,
        decoder: Decoder | None = None,
    ) -> Request:
        self.transport.require_open()
        if self._extra_query:
            params = {**(params or {}), **self._extra_query}
        if self._extra_body and method == "POST":
            json = {**(json or {}), **self._extra_body}
        request = Request(
            credentials=self._credentials,
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
            untyped=untyped,
            decoder=decoder,
            request_id=new_request_id(),
            extra_headers=self._extra_headers,
        )
        # Refused here, before a limiter slot or a cooldown is spent on a call never sent.
        self.transport.check_request(request)
        return request

    async def _attempt(
        self, request: Request, attempt: int, deadline: float | None, wire: Wire | None = None
    ) -> Reply:
        """One attempt: a concurrency slot, admission, one exchange; then hear and observe it.

        Admission must be done by ``deadline`` (loop time; None: no bound), else
        :class:`RefusalDeadline`: the call's ``max_refused_time`` ends first. ``wire`` (calls
        with a deadline of their own) learns whether the request may have reached the gateway
        without a known outcome.
        """
        shared = self._shared or self.claim()
        generation = self.concurrency.try_acquire()
        if generation is None:
            generation = await self.concurrency.acquire()
        queue = shared.queue
        # A side effect with a deadline: queued at the gateway it would be on the wire, its
        # outcome unknown at the deadline; waiting here for a place it is not.
        expires = None if wire is None or request.idempotent else wire.expires
        placed = False
        try:
            if expires is not None:
                await queue.reserve()
                placed = True
            # The flat road: a permit and room in the window at once, no coroutine for either.
            try_acquire = shared.try_acquire
            permit = None if try_acquire is None else try_acquire()
            if permit is not None and shared.window.try_admit():
                waited = 0.0
            elif deadline is None:
                permit, waited = await self._admit(shared, permit)
            else:
                permit, waited = await self._admit_by(shared, permit, deadline)
            if expires is None:
                queue.enter()
                placed = True
            elif asyncio.get_running_loop().time() + queue.typical > expires:
                shared.window.settle(None)  # admitted, never sent
                raise NoTimeLeft
            self.stats.requests += 1
            if wire is not None:
                wire.maybe_sent = True  # cleared below only by an answer proving otherwise
            outcome, elapsed = await self._exchange(shared, request, attempt, waited)
            placed = False
            queue.leave(elapsed if isinstance(outcome, Answer) and outcome.status != 429 else None)
        finally:
            if placed:
                queue.leave()
            self.concurrency.release()
        reply, failed = self._judge(shared, request, permit, outcome, generation, wire)
        if self._hooks is not None or log.isEnabledFor(logging.DEBUG):
            # Else no coroutine at all: the common case costs nothing.
            status = None if isinstance(outcome, AttemptFailed) else outcome.status
            pending = self._observe(request, attempt, status, elapsed, failed)
            if pending is not None:
                await pending
        if failed is not None:
            raise failed
        assert reply is not None
        _raw.note(reply, request.request_id)  # for mail.with_raw_response, under it
        return reply

    def _judge(
        self,
        shared: KeyState,
        request: Request,
        permit: Permit,
        outcome: Answer | AttemptFailed,
        generation: int,
        wire: Wire | None,
    ) -> tuple[Reply | None, AttemptFailed | errors.DecodeError | None]:
        """How the attempt ended: its reply, or the failure the retry rules are to judge."""
        if wire is not None:
            wire.heard(outcome)
        if isinstance(outcome, AttemptFailed):
            return None, outcome
        try:
            return self._hear(shared.limiter, request, permit, outcome, generation), None
        except (AttemptFailed, errors.DecodeError) as exc:
            if wire is not None and isinstance(exc, AttemptFailed) and exc.failure in NOT_RUN:
                wire.maybe_sent = False
            return None, exc
        except errors.APIError as exc:
            # A 2xx saying success: false: an answer like any error answer, observed and
            # counted as one, never repeated. Only a refusal of the 4xx kind (bad key, scope,
            # parameters, unknown id) proves a side effect was not applied.
            refused = exc.status < 500 and isinstance(exc, _REFUSALS)
            return None, AttemptFailed(exc, None if refused else Failure.UNREADABLE)
        except Exception as exc:
            # The boundary: an answer that breaks a reader in a way no rule knows.
            return None, unreadable(request, outcome.status, exc)

    async def _admit(self, shared: KeyState, permit: Permit | None) -> tuple[Permit, float]:
        """Wait for the limiter's permit (unless given), then for room in the window.

        close() interrupts either wait. Returns the permit and the seconds waited for both.
        """
        waited = 0.0
        if permit is None:
            permit = await self.transport.wait(shared.limiter.acquire())
            self.stats.limiter_wait += permit.waited
            waited = permit.waited
        window = shared.window
        if not window.try_admit():
            window_wait = await self.transport.wait(window.admit())
            self.stats.window_wait += window_wait
            waited += window_wait
        return permit, waited

    async def _admit_by(
        self, shared: KeyState, permit: Permit | None, deadline: float
    ) -> tuple[Permit, float]:
        """:meth:`_admit`, given up at ``deadline`` with :class:`RefusalDeadline`."""
        bound = asyncio.timeout_at(deadline)
        try:
            async with bound:
                return await self._admit(shared, permit)
        except TimeoutError:
            if not bound.expired():
                raise
        raise RefusalDeadline

    async def _exchange(
        self, shared: KeyState, request: Request, attempt: int, waited: float
    ) -> tuple[Answer | AttemptFailed, float]:
        """Send one attempt (on_request hooks first); the answer, or how it failed, and its time.

        The window hears the answer's headers, or that none came: its admission is settled
        whatever happens, a cancel during a hook included.
        """
        loop = asyncio.get_running_loop()
        window = shared.window
        try:
            if self._hooks is not None:
                pending = self._hooks.request(request, attempt, waited)
                if pending is not None:
                    await pending
            sent = loop.time()
            answer = await self.transport.exchange(request)
        except AttemptFailed as exc:
            window.settle(None)
            return exc, loop.time() - sent
        except BaseException:
            window.settle(None)
            raise
        reading = window.settle(answer.headers)
        if reading is not None:
            self.stats.window = reading
        return answer, loop.time() - sent

    def _observe(
        self,
        request: Request,
        attempt: int,
        status: int | None,
        elapsed: float,
        failed: AttemptFailed | errors.DecodeError | None,
    ) -> Awaitable[None] | None:
        """The attempt's DEBUG line (never the key, the query or the body) and on_response.

        An awaitable only when an async on_response hook is to be awaited.
        """
        error = failed.error if isinstance(failed, AttemptFailed) else failed
        if log.isEnabledFor(logging.DEBUG):
            route = route_template(request.path)
            name = None if error is None else type(error).__name__
            outcome = " ".join(str(part) for part in (status, name) if part is not None)
            ms = round(elapsed * 1000, 1)
            log.debug(
                "%s %s -> %s in %.1f ms (attempt %d, path %s, request %s)",
                request.method,
                route,
                outcome,
                ms,
                attempt,
                request.path,
                request.request_id,
                extra={
                    "request_id": request.request_id,
                    "method": request.method,
                    "route": route,
                    "path": request.path,
                    "status": status,
                    "error": name,
                    "elapsed_ms": ms,
                    "attempt": attempt,
                },
            )
        if self._hooks is not None:
            return self._hooks.response(request, attempt, status, elapsed, error)
        return None

    def _hear(
        self,
        limiter: Limiter,
        request: Request,
        permit: Permit,
        answer: Answer,
        generation: int,
    ) -> Reply:
        """Let the limiter, the concurrency limit and the counters learn the outcome; read."""
        status = answer.status
        self.stats.responses += 1
        call = request.call
        if status == 429:
            self.stats.rate_limited += 1
            err = _envelope.error_for(call, answer)
            raise AttemptFailed(err, classify(status, err.code), err.retry_after, permit)
        limiter.report_success(permit)
        if 200 <= status < 300:
            self.concurrency.succeeded()
            # A DecodeError here is an unreadable 2xx: outcome unknown for a side effect.
            return _envelope.read(call, answer, untyped=request.untyped, decoder=request.decoder)
        err = _envelope.error_for(call, answer)
        failure = classify(status, err.code)
        if failure is Failure.QUEUED and self.concurrency.overloaded(generation):
            log.info("portal queue timeout: at most %d calls in flight now", self.concurrency.limit)
        raise AttemptFailed(err, failure, err.retry_after)
