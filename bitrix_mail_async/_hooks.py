"""Hooks: what a client tells the caller about its calls, and how it tells it.

This module owns the event objects (:class:`RequestEvent`, :class:`ResponseEvent`,
:class:`RetryEvent`, :class:`RateLimitedEvent`), the public :class:`Hooks` configuration, the
route templates events carry (:func:`route_template`), and :class:`HookDispatcher`, the
per-client object the pipeline and the retry loop call at their emission points.

Dispatch rules, the same for every hook:

* A hook is any callable taking the event. Sync hooks run in line. A hook that returns an
  awaitable (an ``async def``) is awaited in line, bounded by :data:`HOOK_TIMEOUT`; a slower one
  is cancelled. The call waits for its hooks, so events arrive in order and a hook has run
  when the call returns.
* A hook that raises (or times out) is logged on ``bitrix_mail_async.hooks``: WARNING the first
  time for each hook of a client, DEBUG after that, so a broken hook cannot flood the log. The
  call goes on as if the hook had returned.
* Events carry the method, the route template, the path, the attempt number and outcome
  figures; never the API key, headers, query parameters or bodies.
* Without hooks the client holds no dispatcher at all: no event object is built.

Integrations that need a scope around each logical call (OpenTelemetry's span, see
:mod:`bitrix_mail_async.otel`) add a *call scope* with :func:`with_call_scope`: a context
manager entered, in the caller's task, before the first attempt and left after the last.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

import attrs

from bitrix_mail_async import errors

if TYPE_CHECKING:
    from bitrix_mail_async._failures import Failure
    from bitrix_mail_async._transport import Request

__all__ = [
    "HOOK_TIMEOUT",
    "CallEvent",
    "CallScope",
    "HookDispatcher",
    "HookEvent",
    "Hooks",
    "RateLimitedEvent",
    "RequestEvent",
    "ResponseEvent",
    "RetryEvent",
    "check_hooks",
    "route_template",
    "with_call_scope",
]

log = logging.getLogger("bitrix_mail_async.hooks")

#: Seconds an async hook may take per event before it is cancelled (and logged).
HOOK_TIMEOUT = 1.0

E = TypeVar("E")
#: A hook: called with the event; an awaitable it returns is awaited (bounded), any other
#: return value ignored (so ``list.append`` or a lambda calling a counter will do).
Hook = Callable[[E], object]
#: What ``Hooks(...)`` takes for each event: one hook, several (run in order), or None.
HookSpec = Hook[E] | Iterable[Hook[E]] | None

# The gateway's routes differ only by their numeric ids (contract: ":id" is a positive int).
_ID_SEGMENT = re.compile(r"(?<=/)\d+(?=/|$)")


@functools.lru_cache(maxsize=1024)
def route_template(path: str) -> str:
    """The route a path belongs to: numeric segments become ``{id}`` (``/mail/messages/{id}``).

    Cached: an attempt's events and its call's scope ask for the same path in turn.
    """
    return _ID_SEGMENT.sub("{id}", path)


@attrs.frozen
class HookEvent:
    """What every event says: the call's method, route template, path, and the attempt (1-based).

    ``route`` is low-cardinality (``/mail/messages/{id}/reply``), fit for metric labels;
    ``path`` is the path as sent (``/mail/messages/1001/reply``), without the query.
    """

    method: str
    route: str
    path: str
    attempt: int
    #: The ``X-Request-Id`` the call sends (the same on every attempt of the call).
    request_id: str | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class RequestEvent(HookEvent):
    """An attempt is about to be sent; ``waited``: seconds it waited for the limiter and window."""

    waited: float


@attrs.frozen
class ResponseEvent(HookEvent):
    """An attempt ended: with an HTTP answer (``status``) or without one (``status`` None).

    ``elapsed`` is seconds from sending to the end of reading the answer. ``error`` names the
    :mod:`~bitrix_mail_async.errors` class the attempt failed with (``"NotFoundError"``,
    ``"TimeoutError"``, ``"DecodeError"``...), None on success; ``code`` is the gateway's
    error code and ``retry_after`` its ``Retry-After`` in seconds, when the answer had them.
    """

    status: int | None
    elapsed: float
    error: str | None = None
    code: str | None = None
    retry_after: float | None = None


@attrs.frozen
class RetryEvent(HookEvent):
    """Attempt ``attempt`` failed and the call will be repeated after ``wait`` seconds.

    ``reason`` says why it may be repeated: ``"rate_limited"`` (429), ``"queued"`` (504
    QUEUE_TIMEOUT), ``"server_error"`` (other 5xx), ``"not_sent"`` (connection failed before
    sending) or ``"lost"`` (connection lost or timed out after sending; reads only).
    ``error`` names the error class of the failed attempt. For a 429 the wait is the shared
    cooldown (spent in the rate limiter).
    """

    reason: str
    wait: float
    error: str


@attrs.frozen
class RateLimitedEvent(HookEvent):
    """The gateway refused attempt ``attempt`` with 429 RATE_LIMITED.

    ``retry_after`` is the gateway's ``Retry-After`` in seconds (None when it sent none or an
    unusable one). The circuit breaker's 429 ERROR_LOOP_DETECTED is not a rate limit and is
    reported by ``on_response`` only.
    """

    retry_after: float | None


@attrs.frozen
class CallEvent:
    """A logical call starts (for call scopes): its route and where it goes.

    ``url_template`` is the route under the base URL's path (``/v1/mail/messages/{id}``).
    """

    method: str
    route: str
    path: str
    url_template: str
    server_address: str
    server_port: int


#: A scope around each logical call: entered before its first attempt, left after its last
#: (with the exception that ends the call, if any).
CallScope = Callable[[CallEvent], AbstractContextManager[object]]


def _hook_tuple(name: str, spec: HookSpec[E]) -> tuple[Hook[E], ...]:
    """One hook, an iterable of hooks or None, as a tuple; anything else is refused."""
    if spec is None:
        return ()
    if callable(spec):
        return (spec,)
    hooks = tuple(spec) if isinstance(spec, Iterable) else (spec,)
    if not all(callable(hook) for hook in hooks):
        raise errors.ConfigurationError(f"{name} must be a callable, a list of callables or None")
    return hooks


@attrs.frozen(init=False)
class Hooks:
    """Callables told about every attempt of every call: ``MailClient(hooks=Hooks(...))``.

    Each of ``on_request``, ``on_response``, ``on_retry`` and ``on_rate_limited`` takes a
    callable or a list of them (run in order), sync or async, receiving a frozen event
    (:class:`RequestEvent`, :class:`ResponseEvent`, :class:`RetryEvent`,
    :class:`RateLimitedEvent`). Async hooks are awaited in line, at most :data:`HOOK_TIMEOUT`
    seconds each; a hook that raises or times out is logged and never breaks the call.
    ``hooks_a + hooks_b`` runs both sets, ``hooks_a``'s first.

    Example: ``Hooks(on_retry=lambda e: print(e.route, e.reason, e.wait))``.
    """

    on_request: tuple[Hook[RequestEvent], ...]
    on_response: tuple[Hook[ResponseEvent], ...]
    on_retry: tuple[Hook[RetryEvent], ...]
    on_rate_limited: tuple[Hook[RateLimitedEvent], ...]
    _scopes: tuple[CallScope, ...] = attrs.field(repr=False)

    def __init__(
        self,
        *,
        on_request: HookSpec[RequestEvent] = None,
        on_response: HookSpec[ResponseEvent] = None,
        on_retry: HookSpec[RetryEvent] = None,
        on_rate_limited: HookSpec[RateLimitedEvent] = None,
    ) -> None:
        self.__attrs_init__(
            _hook_tuple("on_request", on_request),
            _hook_tuple("on_response", on_response),
            _hook_tuple("on_retry", on_retry),
            _hook_tuple("on_rate_limited", on_rate_limited),
            (),
        )

    def __add__(self, other: Hooks) -> Hooks:
        if not isinstance(other, Hooks):
            return NotImplemented
        combined = Hooks(
            on_request=self.on_request + other.on_request,
            on_response=self.on_response + other.on_response,
            on_retry=self.on_retry + other.on_retry,
            on_rate_limited=self.on_rate_limited + other.on_rate_limited,
        )
        return _scoped(combined, self._scopes + other._scopes)

    @property
    def empty(self) -> bool:
        """True when no hook and no call scope is set: the client then builds no events."""
        return not (
            self.on_request
            or self.on_response
            or self.on_retry
            or self.on_rate_limited
            or self._scopes
        )


def _scoped(hooks: Hooks, scopes: tuple[CallScope, ...]) -> Hooks:
    new = Hooks.__new__(Hooks)
    new.__attrs_init__(
        hooks.on_request, hooks.on_response, hooks.on_retry, hooks.on_rate_limited, scopes
    )
    return new


def with_call_scope(hooks: Hooks, scope: CallScope) -> Hooks:
    """``hooks`` plus ``scope`` entered around every logical call (for integrations)."""
    return _scoped(hooks, (*hooks._scopes, scope))


def check_hooks(hooks: object) -> None:
    """``hooks=`` of a client is a :class:`Hooks` or None."""
    if hooks is not None and not isinstance(hooks, Hooks):
        raise errors.ConfigurationError(
            f"hooks must be a bitrix_mail_async.Hooks or None, got {type(hooks).__name__}"
        )


def _error_name(error: BaseException | None) -> str | None:
    return None if error is None else type(error).__name__


def _hook_name(hook: object) -> str:
    name = getattr(hook, "__qualname__", None)
    return name if isinstance(name, str) else errors.clean(repr(hook), 200)


class HookDispatcher:
    """The hooks of one client: builds each event only when a hook wants it, runs them safely."""

    __slots__ = ("_base_path", "_hooks", "_host", "_port", "_warned", "scoped")

    def __init__(self, hooks: Hooks, base_url: str) -> None:
        self._hooks = hooks
        self.scoped = bool(hooks._scopes)
        url = urlsplit(base_url)
        self._host = url.hostname or ""
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._base_path = url.path.rstrip("/")
        self._warned: set[int] = set()  # id() of hooks that failed once (Hooks keeps them alive)

    @classmethod
    def create(cls, hooks: Hooks | None, base_url: str) -> HookDispatcher | None:
        """A dispatcher for ``hooks``; None when there is nothing to call (no cost at all)."""
        return None if hooks is None or hooks.empty else cls(hooks, base_url)

    def call(self, request: Request) -> AbstractContextManager[None]:
        """The call scopes around one logical call, entered together."""
        route = route_template(request.path)
        event = CallEvent(
            request.method,
            route,
            request.path,
            self._base_path + route,
            self._host,
            self._port,
        )
        return _Scopes(self, event)

    def request(self, request: Request, attempt: int, waited: float) -> Awaitable[None] | None:
        """An attempt is about to be sent.

        Like every event here: the hooks are called now, in order; an awaitable comes back
        only when one of them returned one, which must be awaited (the rest are called then).
        """
        if hooks := self._hooks.on_request:
            path = request.path
            event = RequestEvent(
                request.method,
                route_template(path),
                path,
                attempt,
                waited,
                request_id=request.request_id,
            )
            return self._run(hooks, event)
        return None

    def response(
        self,
        request: Request,
        attempt: int,
        status: int | None,
        elapsed: float,
        error: errors.MailError | None,
    ) -> Awaitable[None] | None:
        """An attempt ended, with ``status`` None when no HTTP answer came."""
        if hooks := self._hooks.on_response:
            path = request.path
            api = error if isinstance(error, errors.APIError) else None
            event = ResponseEvent(
                request.method,
                route_template(path),
                path,
                attempt,
                status,
                elapsed,
                _error_name(error),
                None if api is None else api.code,
                None if api is None else api.retry_after,
                request_id=request.request_id,
            )
            return self._run(hooks, event)
        return None

    def retry(
        self, request: Request, attempt: int, failure: Failure, wait: float, error: BaseException
    ) -> Awaitable[None] | None:
        """Attempt ``attempt`` failed with ``failure``; the next one comes after ``wait``."""
        if hooks := self._hooks.on_retry:
            path = request.path
            name = type(error).__name__
            event = RetryEvent(
                request.method,
                route_template(path),
                path,
                attempt,
                failure.value,
                wait,
                name,
                request_id=request.request_id,
            )
            return self._run(hooks, event)
        return None

    def rate_limited(
        self, request: Request, attempt: int, retry_after: float | None
    ) -> Awaitable[None] | None:
        """Attempt ``attempt`` got 429 RATE_LIMITED."""
        if hooks := self._hooks.on_rate_limited:
            path = request.path
            event = RateLimitedEvent(
                request.method,
                route_template(path),
                path,
                attempt,
                retry_after,
                request_id=request.request_id,
            )
            return self._run(hooks, event)
        return None

    def _run(self, hooks: tuple[Hook[E], ...], event: E) -> Awaitable[None] | None:
        """Call the hooks in order; from the first that returns an awaitable on, a coroutine.

        Sync hooks (a counter, a log line) thus cost no coroutine at all.
        """
        for index, hook in enumerate(hooks):
            result = self._call(hook, event)
            if result is not None:
                return self._finish(hooks[index + 1 :], event, hook, result)
        return None

    async def _finish(
        self, hooks: tuple[Hook[E], ...], event: E, hook: Hook[E], result: Awaitable[object]
    ) -> None:
        """Await ``hook``'s ``result``, then dispatch the hooks after it as :meth:`_run` does."""
        await self._wait(hook, result)
        pending = self._run(hooks, event)
        if pending is not None:
            await pending

    def _call(self, hook: Hook[E], event: E) -> Awaitable[object] | None:
        """Call one hook: what it returned when that is awaitable, else None (done or failed)."""
        try:
            result = hook(event)
        except asyncio.CancelledError:
            if _call_cancelled():
                raise  # the call itself is cancelled, not just the hook
            self.failed(hook, "was cancelled")
            return None
        except Exception:
            self.failed(hook, "raised")
            return None
        return result if result is not None and inspect.isawaitable(result) else None

    async def _wait(self, hook: object, result: Awaitable[object]) -> None:
        """Await what a hook returned, bounded by :data:`HOOK_TIMEOUT`; failures are logged."""
        bound: asyncio.Timeout | None = None
        try:
            async with asyncio.timeout(HOOK_TIMEOUT) as bound:
                await result
        except asyncio.CancelledError:
            if _call_cancelled():
                raise  # the call itself is cancelled, not just the hook
            self.failed(hook, "was cancelled")
        except TimeoutError:
            # Our bound expired, or the hook raised TimeoutError of its own accord.
            expired = bound is not None and bound.expired()
            self.failed(hook, f"took over {HOOK_TIMEOUT:g}s" if expired else "raised")
        except Exception:
            self.failed(hook, "raised")

    def failed(self, hook: object, what: str) -> None:
        """Log a failed hook or scope: WARNING the first time for this client, DEBUG later."""
        name = _hook_name(hook)
        if id(hook) in self._warned:
            log.debug("hook %s %s; the call went on", name, what, exc_info=True)
            return
        self._warned.add(id(hook))
        log.warning(
            "hook %s %s; the call went on (its later failures are logged at DEBUG)",
            name,
            what,
            exc_info=True,
        )


def _call_cancelled() -> bool:
    """Whether the running task itself is being cancelled (not just a hook's own wait)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _Scopes:
    """The call scopes of one call, entered in order and left in reverse, each isolated."""

    __slots__ = ("_dispatcher", "_entered", "_event")

    def __init__(self, dispatcher: HookDispatcher, event: CallEvent) -> None:
        self._dispatcher = dispatcher
        self._event = event
        self._entered: list[tuple[CallScope, AbstractContextManager[object]]] = []

    def __enter__(self) -> None:
        for scope in self._dispatcher._hooks._scopes:
            try:
                manager = scope(self._event)
                manager.__enter__()
            except Exception:
                self._dispatcher.failed(scope, "raised entering its call scope")
            else:
                self._entered.append((scope, manager))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Never swallows the call's own exception: a scope's return value is ignored.
        for scope, manager in reversed(self._entered):
            try:
                manager.__exit__(exc_type, exc, tb)
            except Exception as raised:
                if raised is not exc:
                    self._dispatcher.failed(scope, "raised leaving its call scope")
        self._entered.clear()
