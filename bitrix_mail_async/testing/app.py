"""The emulator's aiohttp.web application: the Gateway it serves, the route table, the factory.

:class:`Gateway` holds what the routes and the middleware share (portal, keys, faults, limits,
request log, counters). Every route is one row of :data:`ROUTES`; its handler gets the gateway
and the request, after the shared steps of :mod:`~bitrix_mail_async.testing.middleware` ran.
A key belongs to a portal (:data:`DEFAULT_PORTAL` unless told otherwise): the portal's limits
are shared by all its keys.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Literal

from aiohttp import web

from bitrix_mail_async.testing.admin import admin_routes
from bitrix_mail_async.testing.faults import Faults
from bitrix_mail_async.testing.limits import Clock, Limits, LimitSettings, TokenBucketLimiter
from bitrix_mail_async.testing.log import EmulatorStats, RequestLog
from bitrix_mail_async.testing.middleware import gateway_middleware
from bitrix_mail_async.testing.routes import account, mailboxes, messages, objects, recipients
from bitrix_mail_async.testing.state import PortalState
from bitrix_mail_async.testing.wire import MAX_BODY_BYTES, PREFIX

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_PORTAL",
    "GATEWAY",
    "ROUTES",
    "Gateway",
    "KeyInfo",
    "KeyStatus",
    "RouteHandler",
    "create_app",
]

DEFAULT_API_KEY = "vibe_api_emulator_test_key"
#: The portal of every key not given another one: the host of the seeded portal's URLs.
DEFAULT_PORTAL = "emulator.bitrix24.test"

KeyStatus = Literal["active", "inactive", "expired", "no_tokens"]


@dataclass(frozen=True)
class KeyInfo:
    """An API key the emulator accepts: its scopes, state, portal and expiry."""

    key: str
    scopes: tuple[str, ...] = ("mail",)
    status: KeyStatus = "active"
    app: bool = False
    tokens: tuple[str, ...] = ()
    portal: str = DEFAULT_PORTAL
    #: Reported by ``GET /v1/me``; once past, the key answers ``401 KEY_EXPIRED``.
    expires_at: datetime | None = None
    #: An app key's installations on other portals: token -> portal (else ``portal``). Each
    #: portal has its own buckets and queue; the key's window is shared by all its sessions.
    token_portals: Mapping[str, str] = field(default_factory=dict)
    #: Session tokens that answer ``401 TOKEN_EXPIRED`` (see ``MailEmulator.expire_token``).
    expired_tokens: frozenset[str] = frozenset()
    #: ``"READONLY"``: every write (a POST but the recipient searches) answers 403
    #: ``WRITE_BLOCKED_READONLY_KEY``; ``/v1/me`` reports it as ``accessMode``.
    access_mode: str = "FULL"

    def portal_of(self, token: str) -> str:
        """The portal of the installation a session token belongs to."""
        return self.token_portals.get(token, self.portal)

    def __repr__(self) -> str:
        # The key itself never shows in a repr (tests print these on failure).
        return f"KeyInfo(status={self.status!r}, scopes={self.scopes!r}, portal={self.portal!r})"


@dataclass
class Gateway:
    """Everything the handlers share: the portal, keys, limiter, faults, log and counters."""

    state: PortalState
    keys: dict[str, KeyInfo]
    faults: Faults
    limits: Limits = field(default_factory=Limits)
    requests: RequestLog = field(default_factory=RequestLog)
    stats: EmulatorStats = field(default_factory=EmulatorStats)
    #: Identical error answers per (key, method, path, code): the third one carries the
    #: gateway's ``warning``. Bounded: cleared when it holds too many.
    repeats: dict[tuple[str, str, str, str], int] = field(default_factory=dict)

    def restart(self, *, portal: bool = True) -> None:
        """Start afresh with the same configuration: no requests, counts or scheduled faults.

        The limits keep their figures but forget what they counted; the fault rates and
        latency stay (the generator is reseeded); with ``portal`` the portal goes back to its
        seed (a new :class:`PortalState`: hold ``gw.state``, not an old reference).
        """
        self.requests.clear()
        self.stats.reset()
        self.repeats.clear()
        self.limits.forget()
        self.faults.restart()
        if portal:
            self.state = self.state.fresh()

    @property
    def limiter(self) -> TokenBucketLimiter:
        """The per-key token bucket of ``set_rate_limit``."""
        return self.limits.key_bucket


GATEWAY = web.AppKey("bitrix_mail_gateway", Gateway)

RouteHandler = Callable[[Gateway, web.Request], Awaitable[web.Response]]

#: The contract's routes: method, path under ``/v1``, handler.
ROUTES: tuple[tuple[str, str, RouteHandler], ...] = (
    ("GET", "/me", account.me),
    ("GET", "/mail/mailboxes", mailboxes.list_mailboxes),
    ("GET", "/mail/mailboxes/{id}", mailboxes.get_mailbox),
    ("GET", "/mail/mailboxes/{id}/senders", mailboxes.mailbox_senders),
    ("GET", "/mail/messages", messages.list_messages),
    ("POST", "/mail/messages", messages.send_message),
    # Registered before the {id} routes so "move" is never read as an id.
    ("POST", "/mail/messages/move", messages.move_messages),
    ("GET", "/mail/messages/{id}", messages.get_message),
    ("GET", "/mail/messages/{id}/thread", messages.message_thread),
    ("POST", "/mail/messages/{id}/reply", messages.reply_message),
    ("POST", "/mail/messages/{id}/forward", messages.forward_message),
    ("POST", "/mail/messages/{id}/task", objects.create_task),
    ("POST", "/mail/messages/{id}/calendar-event", objects.create_calendar_event),
    ("POST", "/mail/messages/{id}/chat", objects.create_chat),
    ("POST", "/mail/messages/{id}/feed-post", objects.create_feed_post),
    ("POST", "/mail/messages/{id}/crm-activity", objects.create_crm_activity),
    ("POST", "/mail/recipients/contacts", recipients.recipient_contacts),
    ("POST", "/mail/recipients/employees", recipients.recipient_employees),
)


def create_app(
    state: PortalState | None = None,
    *,
    keys: Iterable[KeyInfo | str] | None = None,
    faults: Faults | None = None,
    limits: LimitSettings | None = None,
    clock: Clock | None = None,
) -> web.Application:
    """Build the emulator's aiohttp application; its shared parts live in ``app[GATEWAY]``.

    ``limits`` switches on the gateway's limits (all off without it); ``clock`` is the
    monotonic clock the window, buckets and breaker read (``time.monotonic`` by default).
    """
    key_infos = [
        k if isinstance(k, KeyInfo) else KeyInfo(k)
        for k in (keys if keys is not None else [DEFAULT_API_KEY])
    ]
    gateway = Gateway(
        state=state if state is not None else PortalState(),
        keys={k.key: k for k in key_infos},
        faults=faults if faults is not None else Faults(),
        limits=Limits(clock) if clock is not None else Limits(),
    )
    if limits is not None:
        gateway.limits.apply(limits)
    app = web.Application(middlewares=[gateway_middleware(gateway)], client_max_size=MAX_BODY_BYTES)
    app[GATEWAY] = gateway
    app.add_routes(
        web.route(method, PREFIX + path, partial(handler, gateway))
        for method, path, handler in ROUTES
    )
    app.add_routes(admin_routes(gateway))
    return app
