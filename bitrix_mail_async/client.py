"""MailClient: configuration, lifecycle (open/close, ``async with``), the resources, and the
escape hatches: ``request()`` for routes the library does not wrap, ``with_raw_response`` and
``with_options`` views.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import aiohttp

from bitrix_mail_async import _args, _call_args, errors
from bitrix_mail_async._config import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    check_byte_limit,
    check_count,
    check_number,
    check_timeout,
    log_from_environment,
    redact_key,
    redact_url,
    resolve_api_key,
    resolve_base_url,
    resolve_session_token,
)
from bitrix_mail_async._credentials import Credentials, TokenSource
from bitrix_mail_async._hooks import Hooks, check_hooks
from bitrix_mail_async._keys import Scopes
from bitrix_mail_async._pipeline import Pipeline
from bitrix_mail_async._ratelimit import RateLimit, RateLimitConfig, Unlimited
from bitrix_mail_async._raw import RawClient
from bitrix_mail_async._retry import RetryPolicy
from bitrix_mail_async._stats import ClientStats
from bitrix_mail_async._transport import Transport
from bitrix_mail_async.models import KeyInfo
from bitrix_mail_async.resources._base import Resource
from bitrix_mail_async.resources.account import Account
from bitrix_mail_async.resources.mailboxes import Mailboxes
from bitrix_mail_async.resources.messages import Messages
from bitrix_mail_async.resources.recipients import Recipients

__all__ = ["DEFAULT_BASE_URL", "MailClient"]


class _Default:
    """Marker for "argument not given" where None has a meaning of its own."""

    def __repr__(self) -> str:
        return "DEFAULT"


_DEFAULT: Final = _Default()


def _session_token(value: object) -> str | TokenSource | None:
    """A session token (given, or from the environment), or an async callable returning one."""
    if callable(value):
        return value  # the token it gives is checked when it comes
    if value is not None and not isinstance(value, str):
        raise errors.ConfigurationError(
            f"session_token must be a str or an async callable, got {type(value).__name__}"
        )
    return resolve_session_token(value)


def _check_credentials(url: str, session_token: object) -> None:
    """A base URL's user and password cannot go with a session token: both need one header."""
    if session_token is not None and "@" in urlsplit(url).netloc:
        # aiohttp sends a URL's credentials as the Authorization header the token needs.
        raise errors.ConfigurationError(
            "base_url carries a user or password, which would replace the session token's "
            "Authorization header; remove them from base_url"
        )


def _check_session(session: object, trust_env: object, session_token: object) -> None:
    """``session`` is an open aiohttp session or None; ``trust_env`` a bool for our own session."""
    if session is not None and not isinstance(session, aiohttp.ClientSession):
        raise errors.ConfigurationError("session must be an aiohttp.ClientSession")
    if session is not None and session.closed:
        raise errors.ConfigurationError("the aiohttp.ClientSession passed as session= is closed")
    if session is not None and session_token is not None and session.auth is not None:
        # aiohttp refuses an Authorization header beside the session's auth= on every call.
        raise errors.ConfigurationError(
            "the session passed as session= has auth=, which would replace the session "
            "token's Authorization header; pass a session without auth="
        )
    if not isinstance(trust_env, bool):
        raise errors.ConfigurationError(f"trust_env must be a bool, got {type(trust_env).__name__}")
    if trust_env and session is not None:
        raise errors.ConfigurationError(
            "trust_env=True applies to the client's own session; with session=..., create "
            "that aiohttp.ClientSession with trust_env=True instead"
        )


def _configuration_error(
    exc: Exception, api_key: object, session_token: object
) -> errors.MailError:
    """The typed error a refused configuration raises, detached from every frame below.

    A check's own ``MailError`` passes as it is; anything else (a ``ValueError`` from the
    standard library, say) becomes a ``ConfigurationError`` whose text has the secrets blanked.
    """
    if isinstance(exc, errors.MailError):
        return errors.detached(exc)
    text = errors.clean(f"{type(exc).__name__}: {exc}", 300)
    for secret in (api_key, session_token):
        if isinstance(secret, str) and secret:
            text = text.replace(secret, redact_key(secret))
    return errors.ConfigurationError(f"invalid configuration: {text}")


def _rate_limit_config(rate_limit: RateLimitConfig | _Default | None) -> RateLimitConfig:
    """The configuration behind ``rate_limit=``: the default bucket, none, or the caller's."""
    if isinstance(rate_limit, _Default):
        return RateLimit()
    return Unlimited() if rate_limit is None else rate_limit


class MailClient:
    """Async client for the gateway's 17 mail endpoints; use as ``async with MailClient() as mail``.

    One client owns one aiohttp session and one concurrency limit shared by every call made
    through it, so thousands of concurrent tasks may share a client safely. The rate limiter
    and the gateway's window budget belong to the API key: every open client of one key in a
    process shares them, and the first client's ``rate_limit`` applies to all of them.

    A client belongs to the event loop that opened it (or made its first call): use one
    client per loop; another loop gets ``errors.ConfigurationError``. Proxy settings from the
    environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``) and ``~/.netrc`` are ignored
    unless ``trust_env=True``.

    ``timeout`` bounds one HTTP attempt; ``deadline`` (seconds, None for none) bounds a whole
    call: limiter waits, cooldowns, backoffs and every attempt. Past it the call raises
    ``errors.DeadlineExceededError`` (a ``TimeoutError``), or ``OutcomeUnknownError`` for a side
    effect that may have gone out; a wait that would end past it fails at once.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        session_token: str | TokenSource | None = None,
        rate_limit: RateLimitConfig | _Default | None = _DEFAULT,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        session: aiohttp.ClientSession | None = None,
        allow_insecure_http: bool = False,
        portal_timezone: str | None = None,
        trust_env: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        hooks: Hooks | None = None,
        deadline: float | None = None,
    ) -> None:
        log_from_environment()
        try:
            key = resolve_api_key(api_key)
            url = resolve_base_url(base_url, allow_insecure_http=allow_insecure_http)
            token = _session_token(session_token)
            _check_credentials(url, token)
            check_count("max_concurrency", max_concurrency, minimum=1)
            timeout = check_timeout(timeout)
            # The calendar's wire times are portal-local: aware times are converted to it.
            zone = _args.portal_timezone(portal_timezone)
            _check_session(session, trust_env, token)
            config = _rate_limit_config(rate_limit)
            max_request_bytes = check_byte_limit("max_request_bytes", max_request_bytes)
            max_response_bytes = check_byte_limit("max_response_bytes", max_response_bytes)
            check_hooks(hooks)
            if deadline is not None:
                deadline = check_number("deadline", deadline)
        except Exception as exc:
            refused: errors.MailError | None = _configuration_error(exc, api_key, session_token)
        else:
            refused = None
        if refused is not None:
            # A traceback keeps this frame's locals: clear the secrets before the error leaves.
            # It is raised outside the except block and detached from what caused it, so no
            # frame below this one (which may hold the key) is reachable from it.
            api_key = session_token = token = None
            key = ""
            raise refused
        self._key_hint = redact_key(key)
        self._base_url = url
        transport = Transport(
            credentials=Credentials(key, token),
            base_url=url,
            max_connections=max_concurrency,
            timeout=timeout,
            session=session,
            trust_env=trust_env,
            max_request_bytes=max_request_bytes,
            max_response_bytes=max_response_bytes,
        )
        self._pipeline = Pipeline(
            transport=transport,
            scopes=Scopes.of(key, url),
            credentials=transport.credentials,
            rate_limit=config,
            create_limiter=lambda scopes: config.create_limiter(
                api_key=key, scope=scopes.shared_portal
            ),
            max_concurrency=max_concurrency,
            retry=retry if retry is not None else RetryPolicy(),
            timeout=timeout,
            hooks=hooks,
            base_url=url,
            deadline=deadline,
        )
        self._attach_resources(zone)

    def _attach_resources(self, zone: ZoneInfo | None) -> None:
        self._account = Account(self._pipeline)
        self.mailboxes = Mailboxes(self._pipeline)
        """Mailboxes of the portal: ``list``, ``get``, ``senders``."""
        self.messages = Messages(self._pipeline, portal_timezone=zone)
        """Messages: list/get/thread, send/reply/forward/move, objects created from a message."""
        self.recipients = Recipients(self._pipeline)
        """Address book searches: CRM ``contacts`` and ``employees``."""

    def __repr__(self) -> str:
        if not hasattr(self, "_pipeline"):  # a traceback of a refused __init__ shows its self
            return "<MailClient (not configured)>"
        state = self._pipeline.transport.state.value
        url = redact_url(self._base_url)
        return f"<MailClient base_url={url!r} api_key={self._key_hint} {state}>"

    @property
    def base_url(self) -> str:
        """The gateway URL every path is appended to."""
        return self._base_url

    @property
    def stats(self) -> ClientStats:
        """Live counters: requests, retries, 429s, limiter wait, the learned rate."""
        stats = self._pipeline.stats
        stats.current_rate = self._pipeline.current_rate
        return stats

    @property
    def closed(self) -> bool:
        """True once the client was closed."""
        return self._pipeline.transport.closed

    async def me(self, *, timeout: float | None = None) -> KeyInfo:
        """What the gateway knows about this key (``GET /v1/me``): scopes, rate limit, expiry.

        Example: ``info = await mail.me(); print(info.rate_limit_per_second)``.
        """
        return await self._account.me(timeout=timeout)

    async def request(
        self,
        method: Literal["GET", "POST"],
        path: str,
        *,
        params: Mapping[str, str | int | float | bool | None] | None = None,
        json: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Call a gateway route the library does not wrap; returns the answer's ``data`` as JSON.

        ``path`` is relative to ``base_url`` (``"/me"``, ``"/mail/..."``); query values go in
        ``params`` (booleans as ``true``/``false``, None left out), a POST's body in ``json``
        (``{}`` when omitted). The call takes the same road as every other: limiter, window,
        retries and typed errors. A POST counts as a side effect: it is repeated only when
        the gateway surely did not run it, else it raises ``errors.OutcomeUnknownError``.
        Example: ``info = from_dict(await mail.request("GET", "/me"), KeyInfo)``.
        """
        verb = _call_args.custom_method(method)
        route = _call_args.custom_path(path, self._base_url)
        query = _call_args.custom_query(params)
        body = _call_args.custom_body(verb, json)
        reply = await self._pipeline.request(
            verb, route, params=query, json=body, timeout=timeout, untyped=True
        )
        return reply.data

    @property
    def with_raw_response(self) -> RawClient:
        """The same calls, each returning a ``RawResponse`` (status, headers, data, parsed).

        Example: ``raw = await mail.with_raw_response.messages.get(1001)``; ``raw.parsed`` is
        the ``Message``. Paging methods (``messages.list``) give their first page.
        """
        return RawClient(self)

    def with_options(
        self,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        max_concurrency: int | None = None,
        deadline: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int | float | bool | None] | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> MailClient:
        """A view of this client with other defaults for the calls made through it.

        The view shares the session, the key's limiter and window, the counters (``stats``)
        and the open/closed state; None keeps this client's value. ``max_concurrency`` is the
        view's own limit on calls in flight (the connection pool still bounds the total).
        A view owns nothing: ``close()`` and leaving ``async with`` on it do nothing, it
        works while this client is open. Example:
        ``await mail.with_options(timeout=5, retry=RetryPolicy.never()).messages.get(1)``.
        """
        if timeout is not None:
            timeout = check_timeout(timeout)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise errors.ConfigurationError(
                f"retry must be a RetryPolicy, got {type(retry).__name__}"
            )
        if max_concurrency is not None:
            check_count("max_concurrency", max_concurrency, minimum=1)
        if deadline is not None:
            deadline = check_number("deadline", deadline)
        pipeline = self._pipeline.derive(
            timeout=timeout,
            retry=retry,
            max_concurrency=max_concurrency,
            deadline=deadline,
            extra_headers=_call_args.extra_headers(extra_headers),
            extra_query=_call_args.custom_query(extra_query),
            extra_body=_call_args.extra_body(extra_body),
        )
        return self._view(pipeline)

    def for_session(
        self, session_token: str | TokenSource, *, portal: str | None = None
    ) -> MailClient:
        """A client for one installation of an app key (``vibe_app_``): its own session token.

        The view shares this client's aiohttp session and connection pool and the key's
        window; it has its own ``Authorization`` header, counters (``stats``), concurrency
        limit and retries, and the limiter (bucket, 429 cooldown, learned rate) of its portal,
        so one tenant's refusals and backoffs never hold another's calls. ``portal`` names the
        installation's portal; without it the view asks ``GET /v1/me`` once, before its first
        call, and until then (or when the answer names none) counts as a portal of its own.
        ``session_token`` may be an async callable returning the token, asked again once when
        the gateway answers 401 ``TOKEN_EXPIRED``. Closing the view (or leaving ``async with``)
        gives back its portal's state and nothing else; closing this client ends every view.
        Example: ``async with mail.for_session(token, portal="acme.bitrix24.ru") as tenant:``.
        """
        refused: errors.MailError | None = None
        token: str | TokenSource | None = None
        try:
            if session_token is None:  # never the environment's: that is the client's own
                raise errors.ConfigurationError("for_session() needs a session token")
            token = _session_token(session_token)
            if portal is not None:
                portal = _args.single_line("portal", portal)
        except errors.MailError as exc:
            refused = errors.detached(exc)
        if refused is not None or token is None:
            del session_token, token  # a traceback's locals must not show them
            raise refused or errors.ConfigurationError("for_session() needs a session token")
        credentials = self._pipeline.transport.credentials.with_token(token)
        session = token if isinstance(token, str) else f"callable {id(token)}"
        return self._view(self._pipeline.tenant(credentials, session, portal))

    def _view(self, pipeline: Pipeline) -> MailClient:
        """A copy of this client that sends through ``pipeline``, every resource included."""
        view = copy.copy(self)
        view._pipeline = pipeline
        # Every resource, whichever there are, sends through the view's pipeline.
        for name, value in vars(self).items():
            if isinstance(value, Resource):
                setattr(view, name, value.bound_to(pipeline))
        return view

    async def open(self) -> MailClient:
        """Open the HTTP session (done by ``async with``; a view opens its parent's); returns it."""
        await self._pipeline.transport.open()
        self._pipeline.claim()
        return self

    async def close(self) -> None:
        """End every call in progress, close our session (a caller's stays open), free the limiter.

        Calls on the wire raise ``errors.TransportError`` (``OutcomeUnknownError`` for a side
        effect, which may have been applied); calls still waiting raise ``ConfigurationError``.
        On a view from :meth:`with_options` it does nothing: the client it came from owns all;
        a view from :meth:`for_session` gives back its portal's limiter state only.
        """
        await self._pipeline.close()

    async def aclose(self) -> None:
        """The same as :meth:`close` (the asyncio name, as ``contextlib.aclosing`` expects)."""
        await self._pipeline.close()

    async def __aenter__(self) -> MailClient:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
