"""One limiter state per API key per process, shared by every client of that key.

The gateway limits the key, not the client object: a bot that makes a ``MailClient`` per
handler, or a service with one client per task group, must not give each its own bucket, or
four clients of one key spend four times the key's limit. :data:`REGISTRY` hands every client
of a key (and gateway URL) the same :class:`KeyState`: the limiter (bucket, 429 cooldown,
learned rate) and the window budget (a :class:`~bitrix_mail_async._window.WindowBudget`, or
the limiter's own when it is a :class:`~bitrix_mail_async._window.WindowSource`).

- The state is keyed by a SHA-256 of the gateway URL and the key, so the registry never holds
  the key itself, and by the event loop, because asyncio primitives belong to one loop.
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
from collections.abc import Callable

import attrs

from bitrix_mail_async._ratelimit import Limiter, RateLimitConfig
from bitrix_mail_async._window import Window, WindowBudget, WindowSource

__all__ = ["REGISTRY", "KeyRegistry", "KeyState", "key_id"]

log = logging.getLogger("bitrix_mail_async.ratelimit")


def key_id(api_key: str, base_url: str) -> str:
    """The registry's name for a key at a gateway (a digest: the key itself is not kept)."""
    return hashlib.sha256(f"{base_url}\n{api_key}".encode()).hexdigest()


@attrs.define(eq=False)
class KeyState:
    """What every client of one key shares: the limiter and the window budget."""

    limiter: Limiter
    config: RateLimitConfig
    # Weak: the registry is keyed weakly by the loop, and an ended loop must be collectable.
    loop: weakref.ref[asyncio.AbstractEventLoop]
    window: Window
    users: int = 0


class KeyRegistry:
    """The live :class:`KeyState` of each key, per event loop."""

    def __init__(self) -> None:
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, KeyState]]
        self._states = weakref.WeakKeyDictionary()

    def claim(self, name: str, config: RateLimitConfig, create: Callable[[], Limiter]) -> KeyState:
        """The state of key ``name`` in the running loop, created with ``create`` if none."""
        loop = asyncio.get_running_loop()
        states = self._states.setdefault(loop, {})
        state = states.get(name)
        if state is None:
            limiter = create()
            # A limiter that shares its state beyond this process shares the window too.
            window = limiter.create_window() if isinstance(limiter, WindowSource) else None
            state = KeyState(limiter, config, weakref.ref(loop), window or WindowBudget())
            states[name] = state
        elif state.config != config:
            log.warning(
                "another open client of this API key set rate_limit=%r; all clients of a key "
                "share one limiter, so that one applies until every client of the key closes",
                state.config,
            )
        state.users += 1
        return state

    async def release(self, name: str, state: KeyState) -> None:
        """One client of the key closed; the last one frees the state and closes its limiter."""
        state.users -= 1
        if state.users > 0:
            return
        loop = state.loop()
        states = None if loop is None else self._states.get(loop)
        if states is not None and states.get(name) is state:
            del states[name]
        await state.limiter.aclose()

    def users(self, name: str) -> int:
        """Open clients of key ``name`` in the running loop (0 when none)."""
        states = self._states.get(asyncio.get_running_loop(), {})
        state = states.get(name)
        return 0 if state is None else state.users


REGISTRY = KeyRegistry()
