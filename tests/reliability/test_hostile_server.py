"""A hostile or broken server: the client stays bounded, typed, honest about sends, and quiet.

The servers here are raw asyncio servers on 127.0.0.1 that write HTTP by hand, because the
answers under test are ones a polite framework would not send: a gzip bomb, a body that never
ends, a lying Content-Length, a 5 MB error message full of terminal escapes.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import socket
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from traceback import TracebackException
from typing import Any

import aiohttp
import pytest

from bitrix_mail_async import MailClient, RetryPolicy, _jsonlib, errors

SECRET = "hostile_secret_4f2b9c"
KEY = f"vibe_api_{SECRET}"
SENDER = "Sales <sales@example.com>"
FAST = RetryPolicy(max_attempts=4, backoff_base=0.001, backoff_cap=0.01)
MiB = 1024 * 1024
# Anything that could end or forge a log line, or drive a terminal.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def envelope(data: Any) -> bytes:
    return json.dumps({"success": True, "data": data}).encode()


def failure(code: str, message: str, hint: str | None = None) -> bytes:
    error = {"code": code, "message": message, "hint": hint, "retryAfter": 0}
    return json.dumps({"success": False, "error": error}).encode()


OK = envelope({"item": {"id": 1, "name": "Box"}, "success": True, "to": ["a@x.io"]})


def reply(status: int, body: bytes, *headers: str, length: int | None = None) -> Handler:
    """One answer written by hand; ``length`` may lie about the body."""

    async def write(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = len(body) if length is None else length
        head = [f"HTTP/1.1 {status} X", "Content-Type: application/json", "Connection: close"]
        head += [f"Content-Length: {size}", *headers]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()

    return write


def endless(streamed: list[int], *, status: int = 200, most: int = 256 * MiB) -> Handler:
    """A chunked body that never ends (``most`` only spares the machine if the client reads)."""

    async def write(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
        )
        chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"[" * 64 * 1024)
        while streamed[0] < most:
            writer.write(chunk)
            streamed[0] += 64 * 1024
            await writer.drain()

    return write


async def hang(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
    await reader.read()  # never answers; returns when the client hangs up


async def drop(_reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
    """Read the request, then close without a word (the send may have been applied)."""


@functools.cache
def gzip_bomb() -> bytes:
    """256 MiB of zeros in about 256 KiB of gzip."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MiB)
    return b"".join([*(packer.compress(block) for _ in range(256)), packer.flush()])


class RawServer:
    """Answers each request with the next scripted handler (default: a valid answer)."""

    def __init__(self) -> None:
        self.script: list[Handler] = []
        self.seen: list[tuple[str, str, bytes]] = []
        self.base_url = ""
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            fields = dict(line.lower().split(":", 1) for line in head[1:] if line)
            body = await reader.readexactly(int(fields.get("content-length", "0")))
            self.seen.append((method, target, body))
            await (self.script.pop(0) if self.script else reply(200, OK))(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()


@pytest.fixture
async def raw() -> AsyncIterator[RawServer]:
    server = RawServer()
    await server.start()
    yield server
    await server.stop()


def client(base_url: str, **kwargs: Any) -> MailClient:
    kwargs.setdefault("rate_limit", None)
    kwargs.setdefault("retry", RetryPolicy.never())
    return MailClient(KEY, base_url=base_url, **kwargs)


async def send(mail: MailClient) -> Any:
    return await mail.messages.send(from_=SENDER, to="a@x.io", subject="s", body="b")


# --- item 1: a side effect whose answer cannot be read is "outcome unknown" ---------------


@pytest.mark.parametrize(
    ("status", "body"),
    [(200, b""), (200, b'{"success": tr'), (200, b'{"success": true}'), (201, b"[]"), (204, b"")],
)
async def test_unreadable_2xx_to_a_send_is_outcome_unknown(
    raw: RawServer, status: int, body: bytes
) -> None:
    raw.script.append(reply(status, body))
    async with client(raw.base_url, retry=FAST) as mail:
        with pytest.raises(errors.OutcomeUnknownDecodeError) as info:
            await send(mail)
        assert mail.stats.outcome_unknown == 1
    err = info.value
    assert isinstance(err, errors.OutcomeUnknownError) and isinstance(err, errors.DecodeError)
    assert err.request["path"] == "/mail/messages" and err.request["json"]["to"] == ["a@x.io"]
    assert err.status == status
    assert len(raw.seen) == 1


@pytest.mark.parametrize("status", [500, 501, 503, 599])
async def test_any_5xx_to_a_send_is_outcome_unknown(raw: RawServer, status: int) -> None:
    raw.script.append(reply(status, failure("INTERNAL_ERROR", "boom")))
    async with client(raw.base_url, retry=FAST) as mail:
        with pytest.raises(errors.UpstreamOutcomeUnknownError) as info:
            await send(mail)
    assert (info.value.status, info.value.code) == (status, "INTERNAL_ERROR")
    assert info.value.request["method"] == "POST"
    assert len(raw.seen) == 1


async def test_500_to_a_get_is_retried(raw: RawServer) -> None:
    raw.script.append(reply(500, failure("INTERNAL_ERROR", "boom")))
    async with client(raw.base_url, retry=FAST) as mail:
        assert (await mail.mailboxes.get(1)).id == 1
    assert len(raw.seen) == 2


async def test_queue_timeout_to_a_send_is_still_retried(raw: RawServer) -> None:
    raw.script.append(reply(504, failure("QUEUE_TIMEOUT", "queued"), "Retry-After: 0"))
    async with client(raw.base_url, retry=FAST) as mail:
        assert (await send(mail)).success
    assert len(raw.seen) == 2  # not executed the first time: sent once in effect


# --- item 2: the caller's session may not raise for status ---------------------------------


async def test_a_session_raising_for_status_changes_nothing(raw: RawServer) -> None:
    raw.script += [reply(404, failure("ENTITY_NOT_FOUND", "no")), reply(429, failure("X", "s"))]
    async with (
        aiohttp.ClientSession(raise_for_status=True) as session,
        client(raw.base_url, session=session, retry=FAST) as mail,
    ):
        with pytest.raises(errors.NotFoundError):
            await mail.mailboxes.get(1)
        assert len(raw.seen) == 1  # a 404 is not retried
        assert (await send(mail)).success  # the 429 was retried: nothing had been done
    assert len(raw.seen) == 3


# --- item 3: bounded answers ---------------------------------------------------------------


async def test_gzip_bomb_is_not_inflated_past_the_cap(raw: RawServer) -> None:
    raw.script.append(reply(200, gzip_bomb(), "Content-Encoding: gzip"))
    async with client(raw.base_url) as mail:  # the default cap, 16 MiB
        tracemalloc.start()
        try:
            with pytest.raises(errors.DecodeError, match="max_response_bytes") as info:
                await mail.mailboxes.get(1)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert not isinstance(info.value, errors.OutcomeUnknownError)  # a GET
    assert peak < 48 * MiB, f"peak {peak / MiB:.0f} MiB while reading a 256 MiB bomb"
    assert len(raw.seen) == 1  # the same answer would come again: not retried


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_endless_body_stops_at_the_cap(raw: RawServer, method: str) -> None:
    streamed = [0]
    raw.script.append(endless(streamed))
    async with client(raw.base_url, retry=FAST, max_response_bytes=MiB) as mail:
        with pytest.raises(errors.DecodeError, match="max_response_bytes") as info:
            await (mail.mailboxes.get(1) if method == "GET" else send(mail))
    assert isinstance(info.value, errors.OutcomeUnknownError) is (method == "POST")
    assert streamed[0] < 64 * MiB  # the client hung up early (socket buffers hold the rest)
    assert len(raw.seen) == 1


async def test_declared_length_over_the_cap_is_refused_unread(raw: RawServer) -> None:
    raw.script.append(reply(200, b'{"success": true, "da', length=10**12))
    async with client(raw.base_url, retry=FAST) as mail:
        with pytest.raises(errors.OutcomeUnknownDecodeError, match="max_response_bytes"):
            await send(mail)
    assert len(raw.seen) == 1


async def test_short_lying_length_on_a_send_is_outcome_unknown(raw: RawServer) -> None:
    raw.script.append(reply(200, OK[:20], length=len(OK)))
    async with client(raw.base_url, retry=FAST) as mail:
        with pytest.raises(errors.OutcomeUnknownError):
            await send(mail)
    assert len(raw.seen) == 1


async def test_oversized_error_answer_keeps_its_status(raw: RawServer) -> None:
    page = b"<html>" + b"\x1b[31m gateway down " * (2 * MiB // 18)
    raw.script.append(reply(502, page))
    async with client(raw.base_url, max_response_bytes=MiB) as mail:
        with pytest.raises(errors.UpstreamUnavailableError) as info:
            await mail.mailboxes.get(1)
    assert info.value.status == 502
    assert info.value.body_excerpt and "gateway down" in info.value.body_excerpt
    assert not CONTROL.search(str(info.value))


async def test_answer_within_the_cap_is_read(raw: RawServer) -> None:
    raw.script.append(reply(200, envelope({"item": {"id": 7, "name": "x" * (MiB - 200)}})))
    async with client(raw.base_url, max_response_bytes=MiB) as mail:
        assert (await mail.mailboxes.get(7)).id == 7


@pytest.mark.parametrize("name", ["max_response_bytes", "max_request_bytes"])
@pytest.mark.parametrize("value", [0, 1023, True, 2.5e6, "16M"])
def test_size_caps_are_checked(name: str, value: object) -> None:
    with pytest.raises(errors.ConfigurationError, match=name):
        MailClient(KEY, **{name: value})


# --- item 4: deep nesting ------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["default", "stdlib"])
@pytest.mark.parametrize("depth", [150, 900, 100_000])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_deeply_nested_answer_is_a_decode_error(
    raw: RawServer, monkeypatch: pytest.MonkeyPatch, backend: str, depth: int, method: str
) -> None:
    if backend == "stdlib":
        monkeypatch.setattr(_jsonlib, "_loads", _jsonlib.std_loads)
    deep = "[" * depth + "]" * depth
    # A well-formed answer of each call but for one unknown key: kept in `extra`, if not deep.
    item = f'{{"id": 1, "chatId": 2, "deep": {deep}}}'
    data = f'{{"item": {item}}}' if method == "GET" else item
    raw.script.append(reply(200, f'{{"success": true, "data": {data}}}'.encode()))
    async with client(raw.base_url) as mail:
        with pytest.raises(errors.DecodeError, match="nested") as info:
            await (mail.mailboxes.get(1) if method == "GET" else mail.messages.create_chat(1))
    assert isinstance(info.value, errors.OutcomeUnknownError) is (method == "POST")


# --- item 5: server text in exceptions is bounded and escaped -------------------------------

EVIL = "\x1b[2J\x1b[31mFAKE\r\n2026-01-01 INFO login ok\u2028\x85\u202e" + "A" * 5_300_000


async def test_huge_hostile_message_and_hint_are_cut_and_escaped(raw: RawServer) -> None:
    raw.script.append(reply(400, failure("INVALID_PARAMS\n\x1b[0m", EVIL, hint=EVIL)))
    async with client(raw.base_url) as mail:
        with pytest.raises(errors.InvalidParamsError) as info:
            await mail.mailboxes.get(1)
    err = info.value
    text = str(err)
    assert len(text) < 3 * errors.MAX_TEXT_CHARS
    for shown in (text, repr(err), err.message, err.hint, err.code):
        assert shown is not None and not CONTROL.search(shown), shown[:80]
    assert err.message.startswith("\\x1b[2J\\x1b[31mFAKE\\r\\n2026") and err.message.endswith("…")
    assert len(err.message) == len(err.hint or "") == errors.MAX_TEXT_CHARS
    assert err.raw_message is not None and err.raw_message.startswith("\x1b[2J")
    assert len(err.raw_message) == errors.MAX_RAW_TEXT_CHARS


@pytest.mark.parametrize(
    "body",
    [
        b"\x1b]0;pwned\x07 not json \r\n FAKE LOG LINE",
        envelope({"\x1b[2J\nkey": 1}),  # a list route quotes an object's keys
    ],
)
async def test_decode_errors_quote_the_body_escaped(raw: RawServer, body: bytes) -> None:
    raw.script.append(reply(200, body))
    async with client(raw.base_url) as mail:
        with pytest.raises(errors.DecodeError) as info:
            await mail.mailboxes.list()
    assert not CONTROL.search(str(info.value))
    assert "\\x1b" in str(info.value)


# --- item 6: request size and recipients, checked before anything is sent -----------------


async def test_request_over_the_encoded_cap_is_refused(raw: RawServer) -> None:
    # 6 M characters, 12 MB as UTF-8: under any character limit, over 10 MiB of bytes.
    async with client(raw.base_url) as mail:
        with pytest.raises(errors.InvalidArgumentError, match="max_request_bytes"):
            await mail.messages.send(from_=SENDER, to="a@x.io", subject="s", body="ж" * 6_000_000)
    async with client(raw.base_url, max_request_bytes=4096) as mail:
        with pytest.raises(errors.InvalidArgumentError, match="max_request_bytes"):
            await mail.messages.send(from_=SENDER, to="a@x.io", subject="s", body="ж" * 2100)
        assert (await mail.messages.send(from_=SENDER, to="a@x.io", subject="s", body="ж")).success
    assert len(raw.seen) == 1


async def test_too_many_recipients_are_refused(raw: RawServer) -> None:
    many = [f"user{i}@example.com" for i in range(1_000_000)]
    async with client(raw.base_url, max_request_bytes=64 * MiB) as mail:
        with pytest.raises(errors.InvalidArgumentError, match="recipients"):
            await mail.messages.send(from_=SENDER, to=many, subject="s", body="b")
        with pytest.raises(errors.InvalidArgumentError, match="at most 1000"):
            await mail.messages.send(
                from_=SENDER,
                to=many[:500],
                cc=many[500:900],
                bcc=many[900:1001],
                subject="s",
                body="",
            )
        assert len(raw.seen) == 0
        assert (
            await mail.messages.send(from_=SENDER, to=many[:1000], subject="s", body="b")
        ).success
    assert len(raw.seen) == 1


# --- item 13: the key is unreachable from any exception ------------------------------------


def reachable_texts(exc: BaseException) -> Iterator[str]:
    """What a traceback printer with locals could show, following every chained exception."""
    te = TracebackException(type(exc), exc, exc.__traceback__, capture_locals=True)
    yield "".join(te.format())
    tes = [te]
    while tes:  # chained exceptions that format() hides (suppressed contexts) still hold locals
        one = tes.pop()
        yield from (repr(frame.locals) for frame in one.stack)
        tes += [t for t in (one.__cause__, one.__context__) if t is not None]
    seen: set[int] = set()
    todo = [exc]
    while todo:  # and the live objects: attributes, frames, exceptions kept in locals
        err = todo.pop()
        if id(err) in seen:
            continue
        seen.add(id(err))
        yield str(err)
        yield repr(vars(err))
        todo += [e for e in (err.__cause__, err.__context__) if e is not None]
        tb = err.__traceback__
        while tb is not None:
            for value in tb.tb_frame.f_locals.values():
                yield repr(value)
                if isinstance(value, BaseException):
                    todo.append(value)
            tb = tb.tb_next


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


CASES: dict[str, tuple[Handler | None, str, type[errors.MailError]]] = {
    "refused": (None, "GET", errors.TransportError),
    "timeout": (hang, "GET", errors.TimeoutError),
    "5xx": (reply(502, failure("BITRIX_UNAVAILABLE", "down")), "GET", errors.APIError),
    "429": (
        reply(429, failure("RATE_LIMITED", "slow"), "Retry-After: 999"),
        "GET",
        errors.APIError,
    ),
    "decode": (reply(200, b"{"), "GET", errors.DecodeError),
    "unknown_5xx": (reply(500, b"<html>"), "POST", errors.UpstreamOutcomeUnknownError),
    "unknown_drop": (drop, "POST", errors.OutcomeUnknownError),
    "unknown_timeout": (hang, "POST", errors.TimeoutOutcomeUnknownError),
    "unknown_decode": (reply(200, b""), "POST", errors.OutcomeUnknownDecodeError),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_the_key_is_unreachable_from_the_exception(raw: RawServer, case: str) -> None:
    handler, method, expected = CASES[case]
    url = f"http://127.0.0.1:{closed_port()}/v1" if handler is None else raw.base_url
    if handler is not None:
        raw.script.append(handler)
    async with client(url, timeout=0.5) as mail:
        with pytest.raises(expected) as info:
            await (mail.mailboxes.get(1) if method == "GET" else send(mail))
    texts = list(reachable_texts(info.value))
    assert len(texts) > 3
    leaks = [text[:200] for text in texts if SECRET in text]
    assert not leaks, leaks


@pytest.mark.parametrize(
    "bad",
    [
        {"timeout": -1},
        {"max_concurrency": 0},
        {"base_url": "ftp://example.com"},
        {"portal_timezone": "Mars/Olympus"},
        {"session_token": "tok\nen"},
        {"max_response_bytes": 1},
    ],
)
def test_a_refused_configuration_keeps_no_secret_in_its_traceback(bad: dict[str, Any]) -> None:
    token = "session_token_secret_0987654321"
    kwargs: dict[str, Any] = {"session_token": token, **bad}
    with pytest.raises(errors.ConfigurationError) as caught:
        MailClient(KEY, **kwargs)
    exc = caught.value
    assert exc.__traceback__ is not None
    # From the client on: this test's own frame holds the secrets it passed.
    exc.with_traceback(exc.__traceback__.tb_next)
    for text in reachable_texts(exc):
        assert KEY not in text
        if "session_token" not in bad:
            assert token not in text


@pytest.mark.parametrize("decoder", ["generated", "cattrs"])
def test_absurdly_deep_bindings_are_a_decode_error(decoder: str) -> None:
    # `bindings` keeps any JSON (its shape is undocumented), so it is where depth is checked.
    from bitrix_mail_async._convert import cattrs_decoder, generated_decoder, structure
    from bitrix_mail_async.models import Message

    deep: Any = []
    for _ in range(150):
        deep = [deep]
    wire = {"id": 1, "mailboxId": 1, "subject": "s", "bindings": [{"type": "task", "x": deep}]}
    hook = generated_decoder(Message) if decoder == "generated" else cattrs_decoder(Message)
    assert hook is not None
    with pytest.raises(ValueError, match="nested deeper than 100"):
        hook(wire, Message)
    with pytest.raises(errors.DecodeError, match="nested"):
        structure(wire, Message)
    shallow = {**wire, "bindings": [{"type": "task", "id": 5}]}
    assert hook(shallow, Message).bindings == ({"type": "task", "id": 5},)
