"""One limiter state per portal and one window per API key, per process, shared by clients.

The gateway limits the key, not the client object: a bot that makes a ``MailClient`` per
handler, or a service with one client per task group, must not give each its own bucket, or
four clients of one key spend four times the key's limit. :data:`REGISTRY` hands every client
of a key (and gateway URL) the same :class:`KeyState`: the limiter (bucket, 429 cooldown,
learned rate) and the window budget (a :class:`~bitrix_mail_async._window.WindowBudget`, or
the limiter's own when it is a :class:`~bitrix_mail_async._window.WindowSource`).

- The state is keyed by scope (:data:`LIMIT_SCOPES`): the limiter (bucket, cooldown, learned
  rate) by the portal, the window by the key. Names are SHA-256 digests of the gateway URL
  and the key (and session, or portal), so the registry never holds a secret, and states are
  kept per event loop, because asyncio primitives belong to one loop.
- It is created by the first client that needs it, with that client's ``rate_limit``: the first
  configuration wins while any client of the key is open. A later client with a different one
  gets a WARNING and uses the shared state as it is.
- It is freed (and its limiter closed) when the last client of the key closes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs

from bitrix_mail_async._portal_queue import PortalQueue
from bitrix_mail_async._ratelimit import Limiter, Permit, RateLimitConfig
from bitrix_mail_async._window import Window, WindowBudget, WindowSource

__all__ = [
    "LIMIT_SCOPES",
    "REGISTRY",
    "KeyRegistry",
    "KeyState",
    "Scopes",
    "key_id",
    "portal_name",
]

log = logging.getLogger("bitrix_mail_async.ratelimit")


#: Which state each of the gateway's limits belongs to (contract section 1b), the one place
#: this is decided. "key": every client of the API key at one gateway; "portal": every key and
#: session of one Bitrix24 portal. The Vibe window of an app key (``vibe_app_``) is assumed to
#: be the key's, shared by all its sessions, as for every key (section 1b, I): to key it per
#: session instead, make "window" a "session" scope here.
LIMIT_SCOPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "window": "key",  # X-RateLimit-*: 300 requests per sliding minute, per key
        "bucket": "portal",  # the portal's ~10/s rate and REST leaky bucket (2/s, burst 50)
        "cooldown": "portal",  # a 429 RATE_LIMITED comes from the portal's limits
        "learned rate": "portal",  # what 429s taught about the portal's rate
        "queue": "portal",  # the portal's queue: 2 calls run at once (_portal_queue)
    }
)


def key_id(api_key: str, base_url: str) -> str:
    """The registry's name for a key at a gateway (a digest: the key itself is not kept)."""
    return hashlib.sha256(f"{base_url}\n{api_key}".encode()).hexdigest()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@attrs.frozen
class Scopes:
    """The names of one client's scopes in the registry (digests: no secret is kept).

    ``portal`` is the portal's name when it is known (given, or learned from ``/v1/me``);
    else every session of an app key counts as a portal of its own, and a plain key's
    clients as one portal.
    """

    key: str
    session: str
    portal: str

    @classmethod
    def of(
        cls, api_key: str, base_url: str, session: str | None = None, portal: str | None = None
    ) -> Scopes:
        """The scopes of a key (and session, and portal when known) at a gateway."""
        key = key_id(api_key, base_url)
        if session is not None:
            return cls(key, key, key).for_session(session, portal, base_url)
        return cls(key, key, key).for_portal(portal, base_url)

    def for_session(self, session: str, portal: str | None, base_url: str) -> Scopes:
        """The scopes of one session (installation) of this key, on ``portal`` when known."""
        session_name = _digest(self.key, "session", session)
        return Scopes(self.key, session_name, session_name).for_portal(portal, base_url)

    def for_portal(self, portal: str | None, base_url: str) -> Scopes:
        """These scopes with the portal known (unchanged when ``portal`` is None)."""
        if portal is None:
            return self
        return attrs.evolve(self, portal=_digest(base_url, "portal", portal.strip().lower()))

    @property
    def shared_portal(self) -> str | None:
        """The portal scope when it is not simply the key's (a tenant, a known portal)."""
        return None if self.portal == self.key else self.portal

    def name(self, limit: str) -> str:
        """The registry name of the state that holds ``limit`` (a key of LIMIT_SCOPES)."""
        scope: str = getattr(self, LIMIT_SCOPES[limit])
        return scope


@attrs.define(eq=False)
class _Entry:
    """One shared object of a scope and the number of clients using it."""

    value: Any
    config: RateLimitConfig | None = None
    users: int = 0


def _take(
    states: dict[tuple[str, str], _Entry], key: tuple[str, str], new: Callable[[], _Entry]
) -> _Entry:
    """The shared entry ``key``, created by ``new()`` if none, with one more user."""
    entry = states.get(key)
    if entry is None:
        entry = states[key] = new()
    entry.users += 1
    return entry


def _give_back(states: dict[tuple[str, str], _Entry], key: tuple[str, str], value: Any) -> bool:
    """One user less of entry ``key`` (when it still holds ``value``); True when it was freed."""
    entry = states.get(key)
    if entry is None or entry.value is not value:
        return False
    entry.users -= 1
    if entry.users > 0:
        return False
    del states[key]
    return True


@attrs.define(eq=False)
class KeyState:
    """What one client uses: the limiter of its portal and the window of its key."""

    limiter: Limiter
    config: RateLimitConfig
    # Weak: the registry is keyed weakly by the loop, and an ended loop must be collectable.
    loop: weakref.ref[asyncio.AbstractEventLoop]
    window: Window
    limiter_name: str = ""
    window_name: str = ""
    queue: PortalQueue = attrs.Factory(PortalQueue)
    queue_name: str = ""
    #: The limiter's ``try_acquire()``, when it has one (a caller's own limiter need not).
    try_acquire: Callable[[], Permit | None] | None = None


class KeyRegistry:
    """The live limiters (per portal scope) and windows (per key scope), per event loop."""

    def __init__(self) -> None:
        self._states: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, str], _Entry]
        ]
        self._states = weakref.WeakKeyDictionary()

    def claim(
        self, scopes: Scopes | str, config: RateLimitConfig, create: Callable[[Scopes], Limiter]
    ) -> KeyState:
        """The limiter and window of these scopes in the running loop, created if none.

        A plain name (a :func:`key_id`) stands for a key whose portal is unknown.
        """
        if isinstance(scopes, str):
            scopes = Scopes(key=scopes, session=scopes, portal=scopes)
        loop = asyncio.get_running_loop()
        states = self._states.setdefault(loop, {})
        limiter_name = scopes.name("bucket")
        entry = states.get(("limiter", limiter_name))
        if entry is not None and entry.config != config:
            log.warning(
                "another open client of this portal set rate_limit=%r; all clients of a portal "
                "share one limiter, so that one applies until every client of it closes",
                entry.config,
            )
        entry = _take(states, ("limiter", limiter_name), lambda: _Entry(create(scopes), config))
        limiter: Limiter = entry.value

        def new_window() -> _Entry:
            # A limiter that shares its state beyond this process shares the window too.
            window = limiter.create_window() if isinstance(limiter, WindowSource) else None
            return _Entry(window or WindowBudget())

        window_name = scopes.name("window")
        window = _take(states, ("window", window_name), new_window).value
        queue_name = scopes.name("queue")
        queue = _take(states, ("queue", queue_name), lambda: _Entry(PortalQueue())).value
        return KeyState(
            limiter,
            config,
            weakref.ref(loop),
            window,
            limiter_name,
            window_name,
            queue,
            queue_name,
            getattr(limiter, "try_acquire", None),
        )

    async def release(self, state: KeyState) -> None:
        """One client closed; the last one of a scope frees its state (and closes a limiter)."""
        loop = state.loop()
        states = None if loop is None else self._states.get(loop)
        if states is None:
            await state.limiter.aclose()  # pragma: no cover - the loop is gone, and its states
            return
        _give_back(states, ("window", state.window_name), state.window)
        _give_back(states, ("queue", state.queue_name), state.queue)
        if _give_back(states, ("limiter", state.limiter_name), state.limiter):
            await state.limiter.aclose()

    def users(self, name: str) -> int:
        """Open clients using the limiter of scope ``name`` in the running loop (0 when none)."""
        states = self._states.get(asyncio.get_running_loop(), {})
        entry = states.get(("limiter", name))
        return 0 if entry is None else entry.users


REGISTRY = KeyRegistry()


#: Longest portal name taken from /v1/me (a domain is at most 253 characters).
_MAX_PORTAL: Final = 255


def portal_name(data: object) -> str | None:
    """The portal ``/v1/me`` names: a string, or an object's domain/url/name/id (contract I)."""
    portal = data.get("portal") if isinstance(data, dict) else None
    if isinstance(portal, dict):
        portal = next(
            (
                portal[k]
                for k in ("domain", "url", "name", "id")
                if isinstance(portal.get(k), str | int)
            ),
            None,
        )
    if isinstance(portal, int) and not isinstance(portal, bool):
        portal = str(portal)
    if not isinstance(portal, str) or not portal.strip() or len(portal) > _MAX_PORTAL:
        return None
    return portal.strip().lower()
