"""Fixtures for client tests: a client bound to the emulator, and a scriptable error server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from bitrix_mail_async import MailClient, RetryPolicy
from bitrix_mail_async.testing import MailEmulator

# Short waits keep the suite fast; the rules under test are the same at any scale.
FAST_RETRY = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_cap=0.05)


@pytest.fixture
async def mail(mail_emulator: MailEmulator) -> AsyncIterator[MailClient]:
    """A client against the emulator: no client bucket, fast retries."""
    async with MailClient(
        mail_emulator.api_key,
        base_url=mail_emulator.base_url,
        rate_limit=None,
        retry=FAST_RETRY,
    ) as client:
        yield client


class ScriptedServer:
    """A tiny gateway stand-in answering each request from a script of (status, body, headers)."""

    def __init__(self) -> None:
        self.script: list[tuple[int, Any, dict[str, str]]] = []
        self.default: tuple[int, Any, dict[str, str]] = (
            200,
            {"success": True, "data": {"item": {"id": 1}}},
            {},
        )
        self.hits: list[web.Request] = []
        #: The body of each hit, read before answering (a request's body is gone after).
        self.bodies: list[bytes] = []
        self.base_url = ""

    def push(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Queue one answer; a str/bytes body is sent raw, anything else as JSON."""
        self.script.append((status, body, headers or {}))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request)
        self.bodies.append(await request.read())
        status, body, headers = self.script.pop(0) if self.script else self.default
        if isinstance(body, bytes | str):
            raw = body.encode() if isinstance(body, str) else body
            ctype = headers.pop("Content-Type", "text/html")
            return web.Response(status=status, body=raw, headers={**headers, "Content-Type": ctype})
        return web.Response(
            status=status, text=json.dumps(body), content_type="application/json", headers=headers
        )


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedServer]:
    """A ScriptedServer listening on a free loopback port."""
    server = ScriptedServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.base_url = f"http://127.0.0.1:{port}/v1"
    yield server
    await runner.cleanup()


@pytest.fixture
def scripted_client(scripted: ScriptedServer) -> Callable[..., MailClient]:
    """Build (not open) a client for the scripted server."""

    def make(**kwargs: Any) -> MailClient:
        kwargs.setdefault("rate_limit", None)
        kwargs.setdefault("retry", FAST_RETRY)
        return MailClient("vibe_api_scripted_secret_123", base_url=scripted.base_url, **kwargs)

    return make
