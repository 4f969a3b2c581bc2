"""Tenants of an app key (issue 23 items 1, 2, 6): limit scopes, ``for_session``, token refresh.

An app key (``vibe_app_``) has one session token per installation; each installation is on a
portal with its own buckets, queue and cooldown, while the key's window is shared. The
emulator models exactly that (``add_session``, ``expire_token``); the clients and the emulator
share one virtual clock, so waits are exact and cost no real time.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable

import pytest

from bitrix_mail_async import MailClient, RateLimit, errors
from bitrix_mail_async._keys import LIMIT_SCOPES, REGISTRY
from bitrix_mail_async.testing import MailEmulator

from .virtual_time import with_virtual_emulator

APP_KEY = "vibe_app_tenants_secret_5e1f"
SENDER = "Sales <sales@example.com>"


def app_key(emulator: MailEmulator, *sessions: tuple[str, str]) -> None:
    """An app key installed on the given (token, portal) pairs."""
    emulator.add_key(APP_KEY, app=True, tokens=tuple(token for token, _ in sessions))
    for token, portal in sessions:
        emulator.add_session(APP_KEY, token, portal=portal)


def root(emulator: MailEmulator, **kwargs: object) -> MailClient:
    kwargs.setdefault("rate_limit", RateLimit(per_second=50, burst=5))
    return MailClient(APP_KEY, base_url=emulator.base_url, **kwargs)  # type: ignore[arg-type]


def test_the_window_is_the_keys_and_everything_else_the_portals() -> None:
    assert LIMIT_SCOPES["window"] == "key"
    assert {LIMIT_SCOPES[name] for name in ("bucket", "cooldown", "learned rate")} == {"portal"}


def test_sessions_share_the_window_and_each_portal_has_its_own_limiter() -> None:
    async def scenario(emulator: MailEmulator) -> None:
        app_key(emulator, ("tok_a", "a.bitrix24.test"), ("tok_b", "b.bitrix24.test"))
        emulator.add_session(APP_KEY, "tok_a2", portal="a.bitrix24.test")
        async with root(emulator) as mail:
            a = mail.for_session("tok_a")
            a2 = mail.for_session("tok_a2")  # another user of portal a: learned from /v1/me
            b = mail.for_session("tok_b", portal="b.bitrix24.test")
            for tenant in (a, a2, b):
                await tenant.messages.get(1001)
            pa, pa2, pb = a._pipeline, a2._pipeline, b._pipeline
            assert pa.limiter is pa2.limiter
            assert pa.limiter is not pb.limiter
            assert pa.window is pb.window is pa2.window
            # /v1/me was asked once per session without a portal, and not for b.
            assert [r.path for r in emulator.requests.snapshot()].count("/me") == 2
            portal = pa._scopes.portal
            assert REGISTRY.users(portal) == 2
            await a2.close()  # a tenant gives back its own claim only
            assert REGISTRY.users(portal) == 1
            await a.messages.get(1001)
        assert REGISTRY.users(portal) == 0  # closing the client releases every tenant

    with_virtual_emulator(scenario)


def test_a_429_on_one_portal_pauses_only_that_portal() -> None:
    async def scenario(emulator: MailEmulator) -> tuple[list[float], list[float]]:
        loop = asyncio.get_running_loop()
        app_key(emulator, ("tok_a", "a.bitrix24.test"), ("tok_b", "b.bitrix24.test"))
        # Portal a is noisy: 1/s and a 10 s Retry-After; portal b has no limit.
        emulator.set_portal_limit(
            1, 1, rest_per_second=None, retry_after=10, portal="a.bitrix24.test"
        )
        async with root(emulator, rate_limit=RateLimit(per_second=100, burst=10)) as mail:
            a = mail.for_session("tok_a", portal="a.bitrix24.test")
            b = mail.for_session("tok_b", portal="b.bitrix24.test")
            start = loop.time()
            a_ends: list[float] = []
            b_ends: list[float] = []

            async def call(tenant: MailClient, ends: list[float]) -> None:
                await tenant.messages.get(1001)
                ends.append(loop.time() - start)

            noisy = [asyncio.create_task(call(a, a_ends)) for _ in range(3)]
            await asyncio.sleep(0.01)  # a's refusals come first
            await asyncio.gather(*(call(b, b_ends) for _ in range(20)))
            await asyncio.gather(*noisy)
            assert a.stats.rate_limited >= 1
            assert b.stats.rate_limited == 0
        return a_ends, b_ends

    a_ends, b_ends = with_virtual_emulator(scenario)
    assert max(b_ends) < 1.0  # b never waited for a's 10 s cooldown
    assert max(a_ends) >= 10.0


def test_an_expired_token_is_refreshed_once_for_fifty_calls_and_nothing_is_sent_twice() -> None:
    async def scenario(emulator: MailEmulator) -> tuple[int, int]:
        app_key(emulator, ("tok_1", "a.bitrix24.test"), ("tok_2", "a.bitrix24.test"))
        asked: list[str] = []

        async def token() -> str:
            await asyncio.sleep(0.2)  # a token service's round trip
            asked.append("x")
            return "tok_1" if len(asked) == 1 else "tok_2"

        async with root(emulator, rate_limit=None) as mail:
            tenant = mail.for_session(token, portal="a.bitrix24.test")
            await tenant.messages.get(1001)
            assert len(asked) == 1
            emulator.expire_token(APP_KEY, "tok_1")
            sends = [
                tenant.messages.send(from_=SENDER, to="a@example.com", subject=f"s{i}", body="b")
                for i in range(25)
            ]
            gets = [tenant.messages.get(1001) for _ in range(25)]
            await asyncio.gather(*sends, *gets)
            assert tenant.stats.errors == 0
        return len(asked), len(emulator.state.sent)

    asked, sent = with_virtual_emulator(scenario)
    assert asked == 2  # the first token, then one refresh for all fifty calls
    assert sent == 25


def test_a_token_that_stays_expired_raises_after_one_refresh() -> None:
    async def scenario(emulator: MailEmulator) -> int:
        app_key(emulator, ("tok_1", "a.bitrix24.test"))
        emulator.expire_token(APP_KEY, "tok_1")
        calls: list[int] = []

        async def token() -> str:
            calls.append(1)
            return "tok_1"

        async with root(emulator) as mail:
            with pytest.raises(errors.AuthenticationError) as caught:
                await mail.for_session(token, portal="p").messages.get(1001)
            assert caught.value.code == "TOKEN_EXPIRED"
        return len(calls)

    assert with_virtual_emulator(scenario) == 2


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(lambda: _raises(RuntimeError("tok_secret_in_text")), id="raises"),
        pytest.param(lambda: _returns("bad token\r\nX: y"), id="header-breaking"),
    ],
)
def test_a_failing_token_callable_is_a_configuration_error_without_its_text(
    source: Callable[[], Awaitable[str]],
) -> None:
    async def scenario(emulator: MailEmulator) -> None:
        app_key(emulator, ("tok_1", "a.bitrix24.test"))
        async with root(emulator) as mail:
            with pytest.raises(errors.ConfigurationError, match="session_token callable") as e:
                await mail.for_session(source, portal="p").messages.get(1001)
        text = "".join(traceback.TracebackException.from_exception(e.value).format())
        assert "tok_secret_in_text" not in text
        assert emulator.requests.snapshot() == []

    with_virtual_emulator(scenario)


async def _raises(exc: Exception) -> str:
    raise exc


async def _returns(value: str) -> str:
    return value


def test_for_session_refuses_a_missing_or_bad_token_or_portal() -> None:
    mail = MailClient(APP_KEY, base_url="http://127.0.0.1:9/v1")
    texts = []
    for token in (None, "", "two words", 5):
        with pytest.raises(errors.ConfigurationError) as caught:
            mail.for_session(token)  # type: ignore[arg-type]
        exc = caught.value
        texts.append(
            "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
        )
    assert all(APP_KEY not in text for text in texts)
    with pytest.raises(errors.InvalidArgumentError):
        mail.for_session("tok", portal="a\nb")
