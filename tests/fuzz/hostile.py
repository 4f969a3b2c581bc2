"""A raw asyncio HTTP/1.1 server whose answers are whatever an example scripted.

Answers are written byte by byte, because the ones under test are those a polite framework
would not send: a lying ``Content-Length``, a gzip bomb, a status line that is not one, a body
cut in the middle, a reset before or after the headers. Each request the server reads in full
is an :class:`Arrival`, kept with the step that answered it; the server never keeps the API
key or the session token (their header values are replaced before anything is stored), so it
cannot be where a leak check finds them.

A script is a list of steps, one per request, in the order requests arrive; past its end the
server answers ``fallback`` (or repeats the last step when ``repeat_last`` is set, the way a
gateway stuck on one answer would).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import struct
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Literal
from urllib.parse import urlsplit

__all__ = [
    "Answer",
    "Arrival",
    "Drop",
    "HostileServer",
    "RetryAfter",
    "Step",
    "render_retry_after",
]

#: Codes of the contract whose call was refused or rejected before it ran (4xx families,
#: the rate limits and the portal queue): a side effect answered so did not happen.
NOT_RUN_CODES = frozenset(
    {
        "INVALID_PARAMS",
        "MISSING_API_KEY",
        "INVALID_API_KEY",
        "INVALID_APP_KEY",
        "KEY_INACTIVE",
        "KEY_EXPIRED",
        "TOKEN_MISSING",
        "TOKEN_EXPIRED",
        "TOKEN_REFRESH_FAILED",
        "SCOPE_DENIED",
        "BITRIX_ACCESS_DENIED",
        "IP_NOT_ALLOWED",
        "MANAGEMENT_KEY_NO_ENTITY_ACCESS",
        "NOT_FOUND",
        "ENTITY_NOT_FOUND",
        "BITRIX_ERROR",
        "RATE_LIMITED",
        "ERROR_LOOP_DETECTED",
        "QUEUE_TIMEOUT",
    }
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class RetryAfter:
    """A ``Retry-After`` value: delta-seconds, an HTTP-date ``seconds`` from now, or raw text."""

    form: Literal["delta", "raw", "imf", "rfc850", "asctime"]
    seconds: float = 0.0
    raw: str = ""


def render_retry_after(value: RetryAfter, now: float | None = None) -> str:
    """The header text of ``value``; dates are computed from the wall clock when answering."""
    if value.form == "raw":
        return value.raw
    if value.form == "delta":
        whole = value.seconds == int(value.seconds)
        return str(int(value.seconds)) if whole else repr(value.seconds)
    when = time.gmtime((time.time() if now is None else now) + value.seconds)
    day, month = _DAYS[when.tm_wday], _MONTHS[when.tm_mon - 1]
    clock = f"{when.tm_hour:02d}:{when.tm_min:02d}:{when.tm_sec:02d}"
    if value.form == "imf":
        return f"{day[:3]}, {when.tm_mday:02d} {month} {when.tm_year:04d} {clock} GMT"
    if value.form == "rfc850":
        return f"{day}, {when.tm_mday:02d}-{month}-{when.tm_year % 100:02d} {clock} GMT"
    # asctime: no zone named, GMT by RFC 9110; the day of month is space-padded.
    return f"{day[:3]} {month} {when.tm_mday:2d} {clock} {when.tm_year:04d}"


Framing = Literal["length", "chunked", "close", "short", "long", "badlength", "badchunk"]
Encoding = Literal["gzip", "deflate", "rawdeflate", "lie"]


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, with every way of getting it wrong an example may choose.

    ``code`` is the error code the body was meant to carry (None for a success or no
    envelope): with the status it says whether the server ran the call (:meth:`ran`).
    """

    status: int = 200
    body: bytes = b""
    wire_body: bytes | None = None  # the body already encoded (a precomputed bomb)
    headers: tuple[tuple[str, str], ...] = ()
    retry_after: RetryAfter | None = None
    status_line: bytes | None = None  # replaces "HTTP/1.1 <status> <reason>" when set
    encoding: Encoding | None = None
    framing: Framing = "length"
    cut: int | None = None  # close after this many bytes of the (encoded) body
    delay_head: float = 0.0
    delay_body: float = 0.0
    after: Literal["keep", "fin", "rst"] = "fin"
    informational: bool = False  # a "100 Continue" before the answer
    code: str | None = None
    success: bool | None = None  # the envelope's "success" when it has one

    @property
    def refusal(self) -> bool:
        """The gateway did nothing and said so in a way that allows repeating the call."""
        return self.status == 429 or (self.status == 504 and self.code == "QUEUE_TIMEOUT")

    @property
    def ran(self) -> bool:
        """Whether the server, by its own account, may have applied a call answered so.

        Not when it refused (429, 504 QUEUE_TIMEOUT), rejected it (4xx), or said so in an
        error envelope with a code of the "not run" families on a status below 500; any other
        answer (a 2xx, a redirect, a 1xx, any 5xx, an unknown code) may follow the call's
        effect.
        """
        if self.refusal or 400 <= self.status < 500:
            return False
        return not (self.status < 500 and self.success is False and self.code in NOT_RUN_CODES)


@dataclass(frozen=True)
class Drop:
    """No answer: close (or reset) early, after the head, after the whole request, or hang."""

    stage: Literal["early", "head", "full", "hang"] = "full"
    rst: bool = False

    @property
    def refusal(self) -> bool:
        return False

    @property
    def ran(self) -> bool:
        return True


Step = Answer | Drop


@dataclass
class Arrival:
    """A request the server read in full; secret header values are replaced."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    step: Step | None = None

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query


_SECRET_HEADERS = ("x-api-key", "authorization")


@dataclass
class HostileServer:
    """Answers each request with the next step of ``script``; see the module docstring."""

    script: Sequence[Step] = ()
    fallback: Step = field(default_factory=Answer)
    repeat_last: bool = False
    # Digests of the header values the client must send; the server keeps no secret itself.
    key_digest: str = field(default="", repr=False)
    token_digest: str = field(default="", repr=False)
    max_arrivals: int = 1 << 30  # past it, on_flood() is called once (the harness stops the call)
    on_flood: Callable[[], object] | None = field(default=None, repr=False)
    flooded: bool = False
    arrivals: list[Arrival] = field(default_factory=list)
    partial: int = 0  # requests closed before they were read in full
    connections: int = 0
    key_seen: list[bool] = field(default_factory=list)  # per arrival: the right key was sent
    _taken: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> HostileServer:
        # A generous line limit: the request heads of huge query strings are read, not refused.
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=1 << 22)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # ends every read and hang of the handlers
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        for task in list(self._tasks):
            task.cancel()
        await self._server.wait_closed()

    def _next(self) -> Step:
        index = self._taken
        self._taken += 1
        if index < len(self.script):
            return self.script[index]
        if self.repeat_last and self.script:
            return self.script[-1]
        return self.fallback

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except ValueError:  # a head over the line limit, or one that is not HTTP
            pass
        except asyncio.CancelledError:
            pass  # the server is shutting down: the handler's end is no error
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            if not writer.is_closing():
                writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; True when the connection stays open for another."""
        first = await reader.read(1)
        if not first:
            return False
        step = self._next()
        if isinstance(step, Drop) and step.stage == "early":
            self.partial += 1
            _close(writer, step.rst)
            return False
        head = first + await reader.readuntil(b"\r\n\r\n")
        arrival = _parse_head(head, self.key_digest, self.token_digest)
        del head  # it holds the key: not kept beyond parsing
        length = int(arrival.headers.get("content-length", "0") or 0)
        if isinstance(step, Drop) and step.stage == "head" and length:
            self.partial += 1
            _close(writer, step.rst)
            return False
        arrival.body = await reader.readexactly(length)
        arrival.step = step
        self.key_seen.append(arrival.headers.pop("_key_ok", "") == "yes")
        self.arrivals.append(arrival)
        if len(self.arrivals) > self.max_arrivals and not self.flooded:
            self.flooded = True
            if self.on_flood is not None:
                self.on_flood()
        if isinstance(step, Drop):
            if step.stage == "hang":
                await reader.read()  # until the client gives up
            _close(writer, step.rst)
            return False
        return await _play(step, writer)


def digest(value: str) -> str:
    """What the server keeps of a secret header value: its SHA-256."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _parse_head(head: bytes, key_digest: str, token_digest: str) -> Arrival:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    key_ok = True
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if name == "x-api-key":
            key_ok = key_ok and digest(value) == key_digest
        elif name == "authorization" and token_digest:
            key_ok = key_ok and digest(value.removeprefix("Bearer ")) == token_digest
        headers[name] = "<secret>" if name in _SECRET_HEADERS else value
    headers["_key_ok"] = "yes" if key_ok and "x-api-key" in headers else "no"
    return Arrival(method, target, headers, b"")


def _close(writer: asyncio.StreamWriter, rst: bool) -> None:
    if rst:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER 0: close() sends a RST instead of a FIN (unless the peer closed first).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    else:
        writer.close()


def encode_body(body: bytes, encoding: Encoding | None) -> bytes:
    """The body as it goes on the wire under ``encoding`` ("lie": named gzip, sent plain)."""
    if encoding == "gzip":
        packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    elif encoding == "deflate":
        packer = zlib.compressobj(6, zlib.DEFLATED, 15)
    elif encoding == "rawdeflate":
        packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    else:
        return body
    return packer.compress(body) + packer.flush()


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "X"


# How each encoding names itself (a raw deflate stream is sent as "deflate", as some servers do).
_ENCODING_NAMES = {"gzip": "gzip", "deflate": "deflate", "rawdeflate": "deflate", "lie": "gzip"}


def _head(answer: Answer, payload: bytes) -> bytes:
    lines = [answer.status_line or f"HTTP/1.1 {answer.status} {_reason(answer.status)}".encode()]
    fields = list(answer.headers)
    if answer.retry_after is not None:
        fields.append(("Retry-After", render_retry_after(answer.retry_after)))
    if answer.encoding is not None:
        fields.append(("Content-Encoding", _ENCODING_NAMES[answer.encoding]))
    size = len(payload)
    framing = answer.framing
    if framing == "length":
        fields.append(("Content-Length", str(size)))
    elif framing == "short":
        fields.append(("Content-Length", str(max(0, size - 1 - size // 3))))
    elif framing == "long":
        fields.append(("Content-Length", str(size + 1 + size // 2)))
    elif framing == "badlength":
        fields += [("Content-Length", str(size)), ("Content-Length", str(size + 7))]
    elif framing in ("chunked", "badchunk"):
        fields.append(("Transfer-Encoding", "chunked"))
    if answer.after != "keep":
        fields.append(("Connection", "close"))
    for name, value in fields:
        lines.append(f"{name}: {value}".encode("utf-8", "surrogateescape"))
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    if answer.informational:
        head = b"HTTP/1.1 100 Continue\r\n\r\n" + head
    return head


def _framed(answer: Answer, payload: bytes) -> bytes:
    if answer.framing == "chunked":
        step = max(1, len(payload) // 3 or 1)
        parts = [payload[i : i + step] for i in range(0, len(payload), step)]
        return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    if answer.framing == "badchunk":
        return b"zz\r\n" + payload + b"\r\n0\r\n\r\n"
    return payload


async def _play(answer: Answer, writer: asyncio.StreamWriter) -> bool:
    """Write ``answer``; True when the connection is kept for the next request."""
    if answer.delay_head:
        await asyncio.sleep(answer.delay_head)
    payload = answer.wire_body
    if payload is None:
        payload = encode_body(answer.body, answer.encoding)
    writer.write(_head(answer, payload))
    wire = _framed(answer, payload)
    if answer.cut is not None:
        wire = wire[: answer.cut]
    if answer.delay_body and wire:
        half = len(wire) // 2
        writer.write(wire[:half])
        await writer.drain()
        await asyncio.sleep(answer.delay_body)
        wire = wire[half:]
    writer.write(wire)
    await writer.drain()
    keep = answer.after == "keep" and answer.cut is None and answer.framing != "close"
    if not keep:
        _close(writer, answer.after == "rst")
    return keep
