"""One exception boundary (issue 21 items 1, 2, 9, 11, 12): whatever goes wrong, the caller
gets a typed ``MailError``, a request that never left says so, and the key is reachable from no
frame of the exception, its cause, its context or their tracebacks.
"""

from __future__ import annotations

import asyncio
import logging
import math
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from bitrix_mail_async import Hooks, MailClient, RetryPolicy, errors
from bitrix_mail_async._hooks import ResponseEvent
from bitrix_mail_async._jsonlib import std_dumps

from .conftest import FAST_RETRY, ScriptedServer

SECRET = "boundary_secret_7d1e"
KEY = f"vibe_api_{SECRET}"
TOKEN_SECRET = "token_secret_91ab"
SENDER = "Sales <sales@example.com>"


def everything_reachable(exc: BaseException) -> str:
    """The texts a caller can reach: str/repr, the chain and every frame's locals in it."""
    text = str(exc) + repr(exc) + repr(exc.args)
    text += "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
    return text


def assert_no_secret(exc: BaseException) -> None:
    text = everything_reachable(exc)
    assert SECRET not in text
    assert TOKEN_SECRET not in text


@pytest.mark.parametrize(
    "base_url",
    [
        "https://vibecode..bitrix24.tech/v1",
        "http://[::1/v1",
        "http://℀.example/v1",
        "https://[::ffff:999.1.1.1]/v1",
        "https://999.1.1.1/v1",
        "https://-bad-.example/v1",
        "https://" + "a" * 64 + ".example/v1",
        "http://127.0.0.1:65536/v1",
        "http://127.0.0.1:-1/v1",
        "http://127.0.0.1:0/v1",
        "http://127.0.0.1:/v1",
        "https://vibecode.bitrix24.tech /v1",
    ],
)
def test_a_malformed_base_url_is_a_configuration_error_without_the_key(base_url: str) -> None:
    with pytest.raises(errors.ConfigurationError) as caught:
        MailClient(KEY, base_url=base_url, session_token=f"tok_{TOKEN_SECRET}")
    assert_no_secret(caught.value)
    assert caught.value.__context__ is None
    assert caught.value.__cause__ is None


@pytest.mark.parametrize(
    "base_url",
    [
        "https://vibecode.bitrix24.tech/v1",
        "https://vibecode.bitrix24.tech./v1",
        "http://[::1]:8080/v1",
        "http://localhost:1/v1",
        "https://bücher.example/v1",
        "https://a_b.example.com:65535/v1",
    ],
)
def test_well_formed_base_urls_still_pass(base_url: str) -> None:
    assert MailClient(KEY, base_url=base_url).base_url == base_url.rstrip("/")


async def test_a_closed_caller_session_is_refused_at_construction_and_at_call() -> None:
    closed = aiohttp.ClientSession()
    await closed.close()
    with pytest.raises(errors.ConfigurationError, match="closed") as caught:
        MailClient(KEY, base_url="http://127.0.0.1:9/v1", session=closed)
    assert_no_secret(caught.value)


async def test_a_session_closed_after_hand_over_sends_nothing_and_says_so(
    scripted: ScriptedServer,
) -> None:
    session = aiohttp.ClientSession()
    mail = MailClient(KEY, base_url=scripted.base_url, session=session, retry=FAST_RETRY)
    await session.close()
    async with mail:
        with pytest.raises(errors.ConfigurationError, match="nothing was sent") as caught:
            await mail.messages.send(from_=SENDER, to="a@example.com", subject="s", body="b")
        assert mail.stats.outcome_unknown == 0
    assert scripted.hits == []
    assert_no_secret(caught.value)


async def test_a_session_with_auth_and_a_session_token_is_refused_up_front() -> None:
    # aiohttp.BasicAuth and auth= are deprecated in aiohttp 3.14 but still accepted.
    with pytest.warns(DeprecationWarning, match="(?i)auth"):
        session = aiohttp.ClientSession(auth=aiohttp.BasicAuth("user", "pass"))
    try:
        with pytest.raises(errors.ConfigurationError, match="auth=") as caught:
            MailClient(
                KEY,
                base_url="http://127.0.0.1:9/v1",
                session=session,
                session_token=f"tok_{TOKEN_SECRET}",
            )
        assert_no_secret(caught.value)
    finally:
        await session.close()


def middleware_session(fail: str) -> aiohttp.ClientSession:
    """A caller's session whose middleware raises an exception no rule knows.

    ``fail`` is "before" (nothing sent) or "after" (the request went out and was answered).
    """

    async def middleware(
        request: aiohttp.ClientRequest,
        handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
    ) -> aiohttp.ClientResponse:
        headers = dict(request.headers)  # the key is in this frame's locals, as in aiohttp's
        if fail == "before":
            raise LookupError(f"refused {len(headers)} headers")
        response = await handler(request)
        raise LookupError(f"broke after status {response.status}")

    return aiohttp.ClientSession(middlewares=(middleware,))


async def test_an_untyped_exception_on_a_get_is_a_transport_error_never_repeated(
    scripted: ScriptedServer,
) -> None:
    session = middleware_session("after")
    try:
        async with MailClient(KEY, base_url=scripted.base_url, session=session) as mail:
            with pytest.raises(errors.TransportError, match="LookupError") as caught:
                await mail.messages.get(1)
    finally:
        await session.close()
    assert len(scripted.hits) == 1  # the same exception would come again
    assert_no_secret(caught.value)


@pytest.mark.parametrize("fail", ["before", "after"])
async def test_an_untyped_exception_on_a_send_is_outcome_unknown_with_what_was_sent(
    scripted: ScriptedServer, fail: str
) -> None:
    session = middleware_session(fail)
    try:
        async with MailClient(
            KEY,
            base_url=scripted.base_url,
            session=session,
            session_token=f"tok_{TOKEN_SECRET}",
        ) as mail:
            with pytest.raises(errors.OutcomeUnknownError) as caught:
                await mail.messages.send(from_=SENDER, to="a@example.com", subject="s", body="b")
            assert mail.stats.outcome_unknown == 1
    finally:
        await session.close()
    assert caught.value.request is not None
    assert caught.value.request["json"]["subject"] == "s"
    assert len(scripted.hits) == (1 if fail == "after" else 0)
    assert_no_secret(caught.value)


async def test_a_call_cancelled_on_the_wire_keeps_no_aiohttp_frame() -> None:
    arrived = asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the request is on the wire, unanswered
        arrived.set()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with MailClient(
            KEY, base_url=f"http://127.0.0.1:{port}/v1", session_token=f"tok_{TOKEN_SECRET}"
        ) as mail:
            task = asyncio.create_task(mail.mailboxes.get(1))
            await arrived.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError) as caught:
                await task
    finally:
        server.close()
        await server.wait_closed()
    assert_no_secret(caught.value)


async def test_success_false_on_a_2xx_is_observed_and_counted(
    scripted: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.push(200, {"success": False, "error": {"code": "BITRIX_ERROR", "message": "no"}})
    seen: list[ResponseEvent] = []
    async with MailClient(
        KEY,
        base_url=scripted.base_url,
        retry=FAST_RETRY,
        hooks=Hooks(on_response=seen.append),
    ) as mail:
        with (
            caplog.at_level(logging.DEBUG, logger="bitrix_mail_async.transport"),
            pytest.raises(errors.APIError) as caught,
        ):
            await mail.messages.get(1)
        assert mail.stats.errors == 1
    assert caught.value.code == "BITRIX_ERROR"
    assert [(e.status, e.error) for e in seen] == [(200, "BitrixError")]
    assert any("BitrixError" in r.getMessage() for r in caplog.records)
    assert len(scripted.hits) == 1


async def test_an_answer_that_breaks_its_reader_is_a_typed_error(
    scripted: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The boundary behind every reader: no answer can make an attempt raise untyped.
    from bitrix_mail_async import _envelope

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise OverflowError("int too large to convert to float")

    monkeypatch.setattr(_envelope, "error_for", broken)
    scripted.push(500, {"success": False, "error": {"code": "INTERNAL_ERROR", "message": "x"}})
    async with MailClient(
        KEY, base_url=scripted.base_url, retry=RetryPolicy.never(), rate_limit=None
    ) as mail:
        with pytest.raises(errors.OutcomeUnknownError) as caught:
            await mail.messages.send(from_=SENDER, to="a@example.com", subject="s", body="b")
    assert "OverflowError" in str(caught.value)
    assert_no_secret(caught.value)


@pytest.mark.parametrize(
    ("params", "json"),
    [
        ({"q": "ab\ud800cd"}, None),
        ({"q\udfff": "x"}, None),
        ({"a": 10**5000}, None),
        ({"a": 10**150}, None),
        ({"a": math.nan}, None),
        (None, {"a": math.nan}),
        (None, {"a": [1, {"b": math.inf}]}),
        (None, {"a": -math.inf}),
    ],
)
async def test_request_refuses_what_would_be_altered_or_invalid_before_sending(
    scripted: ScriptedServer, params: Any, json: Any
) -> None:
    async with MailClient(KEY, base_url=scripted.base_url, rate_limit=None) as mail:
        method = "GET" if json is None else "POST"
        with pytest.raises(errors.InvalidArgumentError):
            await mail.request(method, "/mail/anything", params=params, json=json)
    assert scripted.hits == []


def test_the_stdlib_encoder_refuses_nan_too() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        std_dumps({"a": math.nan})


async def test_request_still_sends_ordinary_values(scripted: ScriptedServer) -> None:
    scripted.push(200, {"success": True, "data": {"ok": True}})
    async with MailClient(KEY, base_url=scripted.base_url, rate_limit=None) as mail:
        data = await mail.request("GET", "/x", params={"a": 10**20, "f": 0.5, "s": "é", "b": True})
    assert data == {"ok": True}
    query = scripted.hits[0].query
    assert (query["a"], query["f"], query["s"], query["b"]) == (str(10**20), "0.5", "é", "true")


class LyingInt(int):
    """An int that formats, prints and compares as another number."""

    def __format__(self, spec: str) -> str:
        return "1001"

    def __str__(self) -> str:
        return "1001"

    def __repr__(self) -> str:
        return "1001"

    def __le__(self, other: object) -> bool:
        return False


async def test_an_int_subclass_is_sent_as_the_number_it_holds(scripted: ScriptedServer) -> None:
    scripted.push(200, {"success": True, "data": {"item": {"id": 5, "subject": "x"}}})
    async with MailClient(KEY, base_url=scripted.base_url, rate_limit=None) as mail:
        await mail.messages.get(LyingInt(5))
        with pytest.raises(errors.InvalidArgumentError):
            await mail.messages.get(LyingInt(-3))
    assert [hit.path for hit in scripted.hits] == ["/v1/mail/messages/5"]


@pytest.mark.parametrize("method", ["get", "send"])
async def test_an_answer_that_does_not_fit_its_model_is_judged_inside_the_attempt(
    scripted: ScriptedServer, method: str
) -> None:
    # Decoded inside the attempt: the hooks, the DEBUG line and the counters see the failure,
    # and a send gets "outcome unknown" from the retry rules, not from a special case.
    data: Any = {"item": ["not", "an", "object"]} if method == "get" else ["not", "an", "object"]
    scripted.push(200, {"success": True, "data": data})
    seen: list[ResponseEvent] = []
    async with MailClient(
        KEY, base_url=scripted.base_url, retry=FAST_RETRY, hooks=Hooks(on_response=seen.append)
    ) as mail:
        if method == "get":
            with pytest.raises(errors.DecodeError) as caught:
                await mail.messages.get(1)
            assert not isinstance(caught.value, errors.OutcomeUnknownError)
            assert mail.stats.errors == 1
        else:
            with pytest.raises(errors.OutcomeUnknownDecodeError):
                await mail.messages.send(from_=SENDER, to="a@example.com", subject="s", body="b")
            assert mail.stats.outcome_unknown == 1
    assert [(e.status, e.error) for e in seen] == [(200, "DecodeError")]
    assert len(scripted.hits) == 1
