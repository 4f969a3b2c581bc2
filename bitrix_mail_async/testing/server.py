"""Run the emulator on a real socket: in the current loop, in a background thread, or forever.

:class:`MailEmulator` is the emulator's front: its portal, keys, faults, request log, counters,
and (from :class:`~bitrix_mail_async.testing.controls.LimitControls`) the switches of the
gateway's limits, all off unless asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime
from types import TracebackType
from typing import Any

from aiohttp import web

from bitrix_mail_async.testing.admin import ADMIN_PREFIX
from bitrix_mail_async.testing.app import (
    DEFAULT_API_KEY,
    DEFAULT_PORTAL,
    GATEWAY,
    KeyInfo,
    KeyStatus,
    create_app,
)
from bitrix_mail_async.testing.controls import LimitControls
from bitrix_mail_async.testing.faults import Faults
from bitrix_mail_async.testing.limits import Clock, Limits, LimitSettings, TokenBucketLimiter
from bitrix_mail_async.testing.log import EmulatorStats, RequestLog
from bitrix_mail_async.testing.state import PortalState
from bitrix_mail_async.testing.wire import PREFIX

__all__ = ["MailEmulator", "run", "serve_forever"]

# In-flight handlers get this long at shutdown; tests must not hang on a slow fault.
_SHUTDOWN_TIMEOUT = 2.0


class MailEmulator(LimitControls):
    """The gateway emulator on a local port: ``async with`` it, or run it in a thread."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        messages: int = 60,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        rate: float | None = None,
        burst: int | None = None,
        retry_after: float | None = None,
        limits: LimitSettings | None = None,
        clock: Clock | None = None,
        wall_clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.api_key = api_key
        self.host = host
        self.port = port
        self.app = create_app(
            PortalState(messages=messages, seed=seed),
            keys=[KeyInfo(api_key)],
            faults=Faults(seed=seed),
            limits=limits,
            clock=clock,
        )
        self.gateway = self.app[GATEWAY]
        if wall_clock is not None:
            self.state.wall_clock = wall_clock
        self.app.on_response_prepare.append(self._date_header)
        if rate is not None:
            self.set_rate_limit(rate, burst, retry_after)
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    async def _date_header(self, request: web.Request, response: web.StreamResponse) -> None:
        # The gateway's "now" as clients see it: the portal's wall clock, not the machine's.
        when = self.state.wall_clock().astimezone(UTC)
        response.headers["Date"] = format_datetime(when, usegmt=True)

    # ----------------------------------------------------------------- shared parts
    @property
    def state(self) -> PortalState:
        """The seeded portal the emulator serves."""
        return self.gateway.state

    @property
    def faults(self) -> Faults:
        """Fault injection settings."""
        return self.gateway.faults

    @property
    def requests(self) -> RequestLog:
        """Every request received, in order."""
        return self.gateway.requests

    @property
    def stats(self) -> EmulatorStats:
        """Counters: requests, 429 answers, faults, answers by status."""
        return self.gateway.stats

    @property
    def limiter(self) -> TokenBucketLimiter:
        """The per-key token bucket."""
        return self.gateway.limiter

    @property
    def limits(self) -> Limits:
        """The limit mechanisms: window, portal bucket, queue, breaker, key bucket."""
        return self.gateway.limits

    @property
    def base_url(self) -> str:
        """The URL clients use, e.g. ``http://127.0.0.1:PORT/v1``."""
        if not self.port:
            raise RuntimeError("the emulator is not started")
        return f"http://{self.host}:{self.port}{PREFIX}"

    @property
    def started(self) -> bool:
        """True while the emulator listens."""
        return self._runner is not None

    def set_rate_limit(
        self, per_second: float | None, burst: int | None = None, retry_after: float | None = None
    ) -> None:
        """Limit each key to ``per_second`` with a bucket of ``burst`` (``None`` disables)."""
        self.gateway.limiter.configure(per_second, burst, retry_after)

    def add_key(
        self,
        key: str,
        *,
        scopes: tuple[str, ...] = ("mail",),
        status: KeyStatus = "active",
        app: bool = False,
        tokens: tuple[str, ...] = (),
        portal: str = DEFAULT_PORTAL,
        expires_at: datetime | None = None,
        read_only: bool = False,
    ) -> KeyInfo:
        """Accept another key of ``portal`` (an app key also needs a bearer token of ``tokens``).

        ``read_only=True``: its writes answer 403 ``WRITE_BLOCKED_READONLY_KEY``.
        """
        info = KeyInfo(
            key,
            scopes=scopes,
            status=status,
            app=app,
            tokens=tokens,
            portal=portal,
            expires_at=expires_at,
            access_mode="READONLY" if read_only else "FULL",
        )
        self.gateway.keys[key] = info
        return info

    def add_session(self, key: str, token: str, *, portal: str | None = None) -> None:
        """Install app key ``key`` once more: session ``token`` on ``portal`` (else the key's)."""
        info = self.gateway.keys[key]
        portals = dict(info.token_portals)
        if portal is not None:
            portals[token] = portal
        tokens = info.tokens if token in info.tokens else (*info.tokens, token)
        self.gateway.keys[key] = replace(info, tokens=tokens, token_portals=portals)

    def expire_token(self, key: str, token: str, *, expired: bool = True) -> None:
        """Make session ``token`` of app key ``key`` answer ``401 TOKEN_EXPIRED`` (or not)."""
        info = self.gateway.keys[key]
        tokens = info.expired_tokens | {token} if expired else info.expired_tokens - {token}
        self.gateway.keys[key] = replace(info, expired_tokens=frozenset(tokens))

    def remove_key(self, key: str) -> None:
        """Stop accepting a key."""
        self.gateway.keys.pop(key, None)

    def deliver(self, *, mailbox_id: int = 1, **fields: Any) -> dict[str, Any]:
        """A message arriving in a mailbox now (thread-safe): dated by the gateway's wall clock.

        Keywords as :meth:`PortalState.add_message` (``subject``, ``body``, ``from_``,
        ``folder``, ``is_seen``, ``date``, ...). Without ``date``, unlike
        ``state.add_message`` (which dates by the emulated portal's clock, in the seed's
        past), the message is dated by ``state.wall_clock``, the "now" the answers' ``Date``
        header carries: what a ``mail.messages.watch()`` started without ``since`` sees.
        With ``date`` (any aware datetime, past or future) the message arrives now carrying
        that date. Pass ``wall_clock=`` to the constructor (or set ``state.wall_clock``) to
        control "now". Returns the stored record (``record["id"]`` is the new message's id).
        """
        return self.state.deliver(mailbox_id=mailbox_id, **fields)

    def reset(self) -> None:
        """Clear faults, every limit, the request log and the counters (not the portal)."""
        self.faults.reset()
        self.limits.off()
        self.requests.clear()
        self.stats.reset()
        self.gateway.repeats.clear()

    def restart(self, *, portal: bool = True) -> None:
        """Start afresh, configuration kept (``POST /_emulator/reset`` does the same).

        Forgets the request log, the counters, what the limits counted and the scheduled
        faults; the limits' figures, fault rates, latency and keys stay. With ``portal`` the
        portal goes back to its seed (sent mail, created objects and delivered messages gone).
        """
        self.gateway.restart(portal=portal)

    @property
    def admin_url(self) -> str:
        """The admin API's URL, e.g. ``http://127.0.0.1:PORT/_emulator``."""
        if not self.port:
            raise RuntimeError("the emulator is not started")
        return f"http://{self.host}:{self.port}{ADMIN_PREFIX}"

    # ----------------------------------------------------------------- in the current loop
    async def start(self) -> MailEmulator:
        """Listen on ``host:port`` (port 0 picks a free one) in the running loop."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already started")
        # Access logging off: it costs a third of the throughput of a cheap GET.
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address: Any = runner.addresses[0]
        self.port = int(address[1])
        return self

    async def close(self) -> None:
        """Stop listening and close every connection."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> MailEmulator:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ----------------------------------------------------------------- in a thread
    def start_in_thread(self, timeout: float = 10.0) -> MailEmulator:
        """Start the emulator on its own event loop in a daemon thread; return once listening."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop_event = asyncio.Event()
            try:
                await self.start()
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            try:
                await self._stop_event.wait()
            finally:
                await self.close()

        thread = threading.Thread(
            target=asyncio.run, args=(main(),), name="bitrix-mail-emulator", daemon=True
        )
        self._thread = thread
        thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("the emulator did not start in time")
        if failure:
            thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop an emulator started with :meth:`start_in_thread` and wait for its thread."""
        thread, loop, event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)
        thread.join(timeout)
        self._thread = None
        self._loop = None
        self._stop_event = None

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[MailEmulator]:
        """Run the emulator in a background thread for the duration of a ``with`` block."""
        self.start_in_thread()
        try:
            yield self
        finally:
            self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self.port else "not started"
        return f"MailEmulator({where}, {len(self.state.messages)} messages)"


async def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8080,
    messages: int = 60,
    rate: float | None = None,
    burst: int | None = None,
    seed: int = 0,
    *,
    api_key: str = DEFAULT_API_KEY,
    retry_after: float | None = None,
    limits: LimitSettings | None = None,
) -> None:
    """Serve the emulator until cancelled, printing its base URL and API key."""
    emulator = MailEmulator(
        api_key=api_key,
        messages=messages,
        seed=seed,
        host=host,
        port=port,
        rate=rate,
        burst=burst,
        retry_after=retry_after,
        limits=limits,
    )
    async with emulator:
        print(f"Bitrix24 mail gateway emulator at {emulator.base_url}", flush=True)
        print(f"API key: {emulator.api_key}", flush=True)
        await asyncio.Event().wait()


def run(
    host: str = "127.0.0.1",
    port: int = 8080,
    messages: int = 60,
    rate: float | None = None,
    burst: int | None = None,
    seed: int = 0,
    *,
    limits: LimitSettings | None = None,
) -> None:
    """Serve the emulator in the foreground until Ctrl+C (the CLI's ``emulator`` command)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(host, port, messages, rate, burst, seed, limits=limits))
