"""Hooks over loopback: the events of each attempt, retry and 429; hooks that fail, hang or
are cancelled; the per-attempt DEBUG line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import pytest

from bitrix_mail_async import (
    HookEvent,
    Hooks,
    MailClient,
    RateLimitedEvent,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    errors,
)
from bitrix_mail_async._hooks import (
    HOOK_TIMEOUT,
    CallEvent,
    HookDispatcher,
    route_template,
    with_call_scope,
)
from bitrix_mail_async.testing import MailEmulator
from bitrix_mail_async.testing.limits import LimitSettings, WindowSettings

from .conftest import FAST_RETRY, ScriptedServer
from .virtual_time import with_virtual_emulator

SENDER = "Sales Team <sales@emulator.bitrix24.test>"


def recording() -> tuple[list[HookEvent], Hooks]:
    """Hooks that append every event, in order, to the returned list."""
    seen: list[HookEvent] = []
    hooks = Hooks(
        on_request=seen.append,
        on_response=seen.append,
        on_retry=seen.append,
        on_rate_limited=seen.append,
    )
    return seen, hooks


def client(emulator: MailEmulator, hooks: Hooks | None, **kwargs: Any) -> MailClient:
    kwargs.setdefault("rate_limit", None)
    kwargs.setdefault("retry", FAST_RETRY)
    return MailClient(emulator.api_key, base_url=emulator.base_url, hooks=hooks, **kwargs)


def kinds(seen: list[HookEvent]) -> list[tuple[str, int]]:
    return [(type(event).__name__, event.attempt) for event in seen]


async def test_a_call_tells_its_request_and_response(mail_emulator: MailEmulator) -> None:
    seen, hooks = recording()
    async with client(mail_emulator, hooks) as mail:
        message = await mail.messages.get(1001)
    assert message.id == 1001
    request, response = seen
    assert isinstance(request, RequestEvent)
    assert (request.method, request.route, request.path, request.attempt) == (
        "GET",
        "/mail/messages/{id}",
        "/mail/messages/1001",
        1,
    )
    assert 0.0 <= request.waited < 1.0  # no bucket: only the bookkeeping's own time
    assert isinstance(response, ResponseEvent)
    assert (response.route, response.path, response.attempt) == (
        "/mail/messages/{id}",
        "/mail/messages/1001",
        1,
    )
    assert (response.status, response.error, response.code, response.retry_after) == (
        200,
        None,
        None,
        None,
    )
    assert response.elapsed >= 0.0
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        response.status = 500  # type: ignore[misc]


async def test_routes_are_templates_of_the_documented_routes(mail_emulator: MailEmulator) -> None:
    routes: list[str] = []
    hooks = Hooks(on_request=lambda event: routes.append(f"{event.method} {event.route}"))
    async with client(mail_emulator, hooks) as mail:
        await mail.mailboxes.list()
        await mail.mailboxes.senders(1)
        await mail.messages.list(1, page_size=5)
        await mail.messages.thread(1001)
        await mail.messages.reply(1001, from_=SENDER, to="a@x.io", subject="s", body="b")
        await mail.messages.create_calendar_event(
            1001, date_from="2026-01-01 10:00:00", date_to="2026-01-01 11:00:00"
        )
        await mail.recipients.contacts()
        await mail.me()
    assert routes == [
        "GET /mail/mailboxes",
        "GET /mail/mailboxes/{id}/senders",
        "GET /mail/messages",
        "GET /mail/messages/{id}/thread",
        "POST /mail/messages/{id}/reply",
        "POST /mail/messages/{id}/calendar-event",
        "POST /mail/recipients/contacts",
        "GET /me",
    ]


def test_route_template_replaces_numeric_segments_only() -> None:
    assert route_template("/mail/messages/7/reply") == "/mail/messages/{id}/reply"
    assert route_template("/a/12/b/3") == "/a/{id}/b/{id}"
    assert route_template("/mail/messages/12a/x2") == "/mail/messages/12a/x2"
    assert route_template("/mail/messages/move") == "/mail/messages/move"


async def test_a_server_error_then_success_tells_both_attempts_and_the_retry(
    mail_emulator: MailEmulator,
) -> None:
    mail_emulator.faults.schedule("502", methods=["GET"])
    seen, hooks = recording()
    async with client(mail_emulator, hooks) as mail:
        await mail.mailboxes.get(1)
    assert kinds(seen) == [
        ("RequestEvent", 1),
        ("ResponseEvent", 1),
        ("RetryEvent", 1),
        ("RequestEvent", 2),
        ("ResponseEvent", 2),
    ]
    failed, retry, ok = seen[1], seen[2], seen[4]
    assert isinstance(failed, ResponseEvent)
    assert (failed.status, failed.error, failed.code) == (
        502,
        "UpstreamUnavailableError",
        "BITRIX_UNAVAILABLE",
    )
    assert isinstance(retry, RetryEvent)
    assert (retry.reason, retry.error, retry.route) == (
        "server_error",
        "UpstreamUnavailableError",
        "/mail/mailboxes/{id}",
    )
    assert 0.0 <= retry.wait <= FAST_RETRY.backoff_cap
    assert isinstance(ok, ResponseEvent)
    assert (ok.status, ok.error) == (200, None)


async def test_a_429_tells_the_refusal_and_the_cooldown(mail_emulator: MailEmulator) -> None:
    mail_emulator.faults.schedule("429", methods=["GET"])
    seen, hooks = recording()
    async with client(mail_emulator, hooks) as mail:
        await mail.mailboxes.get(1)
        assert mail.stats.rate_limited == 1
    assert kinds(seen) == [
        ("RequestEvent", 1),
        ("ResponseEvent", 1),
        ("RateLimitedEvent", 1),
        ("RetryEvent", 1),
        ("RequestEvent", 2),
        ("ResponseEvent", 2),
    ]
    answer, refusal, retry = seen[1], seen[2], seen[3]
    retry_after = mail_emulator.faults.fault_retry_after
    assert isinstance(answer, ResponseEvent)
    assert (answer.status, answer.error, answer.code) == (429, "RateLimitedError", "RATE_LIMITED")
    assert answer.retry_after == pytest.approx(retry_after)
    assert isinstance(refusal, RateLimitedEvent)
    assert refusal.retry_after == pytest.approx(retry_after)
    assert isinstance(retry, RetryEvent)
    assert retry.reason == "rate_limited"
    # The shared cooldown: Retry-After plus at most 10 % jitter.
    assert retry_after <= retry.wait <= retry_after * 1.1 + 1e-9


async def test_the_circuit_breaker_is_not_reported_as_a_rate_limit(
    scripted: ScriptedServer, scripted_client: Any
) -> None:
    body = {"success": False, "error": {"code": "ERROR_LOOP_DETECTED", "message": "loop"}}
    scripted.push(429, body, {"Retry-After": "60"})
    seen, hooks = recording()
    async with scripted_client(hooks=hooks) as mail:
        with pytest.raises(errors.ErrorLoopDetectedError):
            await mail.mailboxes.get(1)
    assert kinds(seen) == [("RequestEvent", 1), ("ResponseEvent", 1)]
    answer = seen[1]
    assert isinstance(answer, ResponseEvent)
    assert (answer.status, answer.error, answer.code) == (
        429,
        "ErrorLoopDetectedError",
        "ERROR_LOOP_DETECTED",
    )


async def test_a_queue_timeout_is_retried_as_queued(
    scripted: ScriptedServer, scripted_client: Any
) -> None:
    body = {"success": False, "error": {"code": "QUEUE_TIMEOUT", "message": "q", "retryAfter": 0}}
    scripted.push(504, body)
    seen, hooks = recording()
    async with scripted_client(hooks=hooks) as mail:
        await mail.messages.send(from_=SENDER, to="a@x.io", subject="s", body="b")
    assert [type(e).__name__ for e in seen].count("RateLimitedEvent") == 0
    retry = next(e for e in seen if isinstance(e, RetryEvent))
    assert (retry.reason, retry.error, retry.method, retry.route) == (
        "queued",
        "QueueTimeoutError",
        "POST",
        "/mail/messages",
    )
    assert [e.attempt for e in seen if isinstance(e, ResponseEvent)] == [1, 2]


async def test_an_attempt_without_an_answer_has_no_status(mail_emulator: MailEmulator) -> None:
    # Twice: aiohttp itself resends an idempotent request once when a pooled connection drops.
    mail_emulator.faults.schedule("drop_before", "drop_before", methods=["GET"])
    seen, hooks = recording()
    async with client(mail_emulator, hooks) as mail:
        await mail.mailboxes.get(1)
    lost = seen[1]
    assert isinstance(lost, ResponseEvent)
    assert (lost.status, lost.error, lost.code) == (None, "TransportError", None)
    assert isinstance(seen[2], RetryEvent)
    assert seen[2].reason == "lost"
    assert [type(e).__name__ for e in seen[3:]] == ["RequestEvent", "ResponseEvent"]


async def test_an_unreadable_answer_tells_its_status_and_decode_error(
    mail_emulator: MailEmulator,
) -> None:
    mail_emulator.faults.schedule("malformed", methods=["GET"])
    seen, hooks = recording()
    async with client(mail_emulator, hooks) as mail:
        with pytest.raises(errors.DecodeError) as info:
            await mail.mailboxes.get(1)
    assert kinds(seen) == [("RequestEvent", 1), ("ResponseEvent", 1)]
    answer = seen[1]
    assert isinstance(answer, ResponseEvent)
    assert (answer.status, answer.error) == (200, "DecodeError")
    assert info.value.status == 200


async def test_async_hooks_are_awaited_in_order_before_the_call_returns(
    mail_emulator: MailEmulator,
) -> None:
    order: list[str] = []

    async def slow(event: ResponseEvent) -> None:
        await asyncio.sleep(0.01)
        order.append(f"async {event.status}")

    hooks = Hooks(on_response=[slow, lambda event: order.append(f"sync {event.status}")])
    async with client(mail_emulator, hooks) as mail:
        await mail.mailboxes.get(1)
        assert order == ["async 200", "sync 200"]


async def test_a_failing_hook_is_logged_once_and_never_breaks_the_call(
    mail_emulator: MailEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bitrix_mail_async.hooks")
    seen: list[ResponseEvent] = []

    def broken(event: RequestEvent) -> None:
        raise RuntimeError("hook bug")

    async def rogue(event: ResponseEvent) -> None:
        raise asyncio.CancelledError  # cancels nothing but itself

    hooks = Hooks(on_request=broken, on_response=[rogue, seen.append])
    async with client(mail_emulator, hooks) as mail:
        for _ in range(3):
            assert (await mail.mailboxes.get(1)).id == 1
    assert [e.status for e in seen] == [200, 200, 200]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert sorted(r.getMessage().split(";")[0] for r in warnings) == [
        "hook test_a_failing_hook_is_logged_once_and_never_breaks_the_call.<locals>.broken raised",
        "hook test_a_failing_hook_is_logged_once_and_never_breaks_the_call.<locals>.rogue "
        "was cancelled",
    ]
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 4  # the later failures


def test_a_hanging_async_hook_is_cut_at_its_bound(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bitrix_mail_async.hooks")

    async def stuck(event: RequestEvent) -> None:
        await asyncio.sleep(3600)

    async def scenario(emulator: MailEmulator) -> float:
        loop = asyncio.get_running_loop()
        async with client(emulator, Hooks(on_request=stuck)) as mail:
            started = loop.time()
            await mail.mailboxes.get(1)
            return loop.time() - started

    took = with_virtual_emulator(scenario)
    assert HOOK_TIMEOUT <= took < HOOK_TIMEOUT + 1.0  # virtual seconds
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "hook test_a_hanging_async_hook_is_cut_at_its_bound.<locals>.stuck took over 1s"
    ]


def test_a_call_cancelled_in_a_hook_is_cancelled_and_frees_its_window_slot() -> None:
    async def scenario(emulator: MailEmulator) -> float:
        # A window of 12 calls. A cancelled call still counted in flight would be taken off
        # every reading of the window, so the 9 calls below would not fit in its 11 left.
        emulator.limits.apply(LimitSettings(window=WindowSettings(limit=12)))
        blocking = True
        entered = asyncio.Event()

        async def gate(event: RequestEvent) -> None:
            if blocking:
                entered.set()
                await asyncio.Event().wait()

        async with client(emulator, Hooks(on_request=gate)) as mail:
            for _ in range(5):
                entered.clear()
                task = asyncio.create_task(mail.mailboxes.get(1))
                await entered.wait()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            blocking = False
            for _ in range(9):
                await mail.mailboxes.get(1)
            assert mail.stats.window is not None
            assert mail.stats.window.remaining == 3
            return mail.stats.window_wait

    assert with_virtual_emulator(scenario) == 0.0


async def test_call_scopes_that_fail_never_break_the_call(
    mail_emulator: MailEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bitrix_mail_async.hooks")
    ended: list[tuple[str, type[BaseException] | None]] = []

    def bad_entry(event: CallEvent) -> Any:
        raise RuntimeError("scope bug")

    @contextmanager
    def bad_exit(event: CallEvent) -> Iterator[None]:
        yield
        raise RuntimeError("scope bug")

    @contextmanager
    def good(event: CallEvent) -> Iterator[None]:
        try:
            yield
        except BaseException as exc:
            ended.append((event.url_template, type(exc)))
            raise
        ended.append((event.url_template, None))

    hooks = Hooks()
    for scope in (bad_entry, bad_exit, good):
        hooks = with_call_scope(hooks, scope)
    async with client(mail_emulator, hooks) as mail:
        assert (await mail.mailboxes.get(1)).id == 1
        with pytest.raises(errors.NotFoundError) as info:
            await mail.messages.get(999_999)
    assert info.value.__context__ is None
    assert ended == [
        ("/v1/mail/mailboxes/{id}", None),
        ("/v1/mail/messages/{id}", errors.NotFoundError),
    ]
    assert len(caplog.records) == 2  # one WARNING per failing scope, not per call


async def test_the_debug_line_of_each_attempt_is_structured_and_keyless(
    mail_emulator: MailEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mail_emulator.faults.schedule("502", methods=["GET"])
    seen, hooks = recording()
    async with client(mail_emulator, hooks) as mail:
        await mail.mailboxes.get(1)
    lines = [r for r in caplog.records if r.name == "bitrix_mail_async.transport"]
    attempts = [r for r in lines if hasattr(r, "route")]
    assert [(r.attempt, r.status, r.error) for r in attempts] == [  # type: ignore[attr-defined]
        (1, 502, "UpstreamUnavailableError"),
        (2, 200, None),
    ]
    for record in attempts:
        assert (record.method, record.route, record.path) == (  # type: ignore[attr-defined]
            "GET",
            "/mail/mailboxes/{id}",
            "/mail/mailboxes/1",
        )
        assert record.elapsed_ms >= 0.0  # type: ignore[attr-defined]
    first = attempts[0].getMessage()
    assert first.startswith("GET /mail/mailboxes/{id} -> 502 UpstreamUnavailableError in ")
    request_id = attempts[1].request_id  # type: ignore[attr-defined]
    assert attempts[0].request_id == request_id  # type: ignore[attr-defined]
    assert (
        attempts[1]
        .getMessage()
        .endswith(f" ms (attempt 2, path /mail/mailboxes/1, request {request_id})")
    )
    assert mail_emulator.api_key not in caplog.text
    assert not any(mail_emulator.api_key in repr(event) for event in seen)


def test_hooks_refuse_what_is_not_callable() -> None:
    for bad in (3, "print", [print, 3]):
        with pytest.raises(errors.ConfigurationError, match="on_retry must be a callable"):
            Hooks(on_retry=bad)  # type: ignore[arg-type]
    with pytest.raises(
        errors.ConfigurationError, match=r"hooks must be a bitrix_mail_async\.Hooks or None"
    ):
        MailClient("vibe_api_hooks_secret_1", hooks=print)  # type: ignore[arg-type]


def test_hooks_combine_in_order_and_empty_hooks_cost_nothing() -> None:
    def a(event: RetryEvent) -> None: ...

    def b(event: RetryEvent) -> None: ...

    assert (Hooks(on_retry=a) + Hooks(on_retry=[b])).on_retry == (a, b)
    assert Hooks().empty
    assert not Hooks(on_retry=a).empty
    with pytest.raises(TypeError):
        Hooks() + 3  # type: ignore[operator]
    # No dispatcher, so no event is ever built, without hooks or with empty ones.
    assert HookDispatcher.create(None, "https://gw.example/v1") is None
    assert HookDispatcher.create(Hooks(), "https://gw.example/v1") is None
