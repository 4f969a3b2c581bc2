"""Issue 21, waits that must stay bounded: the window budget after ``Remaining: 0`` answers,
``max_refused_time`` as a true bound with a floor under the learned rate, and error bodies
whose numbers the stdlib parser makes huge. Server and client share one virtual clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from bitrix_mail_async import MailClient

from .virtual_time import in_virtual_time

KEY = "vibe_api_hardening_limits_key_01"
OK = {"success": True, "data": {"item": {"id": 1, "email": "a@b.c"}}}
SLOW_DOWN = {"success": False, "error": {"code": "RATE_LIMITED", "message": "slow down"}}

Handler = Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """A loopback server answering every request with ``handler``; yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


# ------------------------------------------------------------------ item 6: a probe's answer
@pytest.mark.parametrize("reset", ["0", "0.05"])
def test_a_probes_answer_wakes_the_calls_waiting_for_the_window(reset: str) -> None:
    # Every answer says the window is spent and frees up in `reset` seconds. Each answer is a
    # new reading: the calls waiting must follow its Reset, not sleep out PROBE_HOLD (1 s)
    # each, which made 20 calls take 11 s.
    async def scenario() -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        hits = 0
        headers = {
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset,
        }

        async def spent(request: web.Request) -> web.Response:
            nonlocal hits
            hits += 1
            return web.json_response(OK, headers=headers)

        async with (
            serving(spent) as url,
            MailClient(KEY, base_url=url, rate_limit=None) as mail,
        ):
            started = loop.time()
            await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(20)))
            return loop.time() - started, hits

    elapsed, hits = in_virtual_time(scenario)
    assert hits == 20
    # 8 calls start cold, then one at a time, each after the previous answer's Reset.
    assert elapsed <= 12 * float(reset) + 0.1, elapsed
