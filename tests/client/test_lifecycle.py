"""MailClient configuration, lifecycle, headers, and that the key never leaks."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bitrix_mail_async import MailClient, RetryPolicy, errors
from bitrix_mail_async.testing import MailEmulator

SECRET = "vibe_api_TOPSECRET0123456789"


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BITRIX_MAIL_API_KEY", raising=False)
    with pytest.raises(errors.ConfigurationError, match="BITRIX_MAIL_API_KEY"):
        MailClient()


def test_key_and_base_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BITRIX_MAIL_API_KEY", SECRET)
    monkeypatch.setenv("BITRIX_MAIL_BASE_URL", "http://127.0.0.1:9/v1/")
    client = MailClient()
    assert client.base_url == "http://127.0.0.1:9/v1"
    assert SECRET not in repr(client)
    assert "vibe_api_***" in repr(client)


def test_default_base_url_is_https(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BITRIX_MAIL_BASE_URL", raising=False)
    assert MailClient(SECRET).base_url == "https://vibecode.bitrix24.tech/v1"


@pytest.mark.parametrize(
    "url", ["http://example.com/v1", "http://10.0.0.5/v1", "ftp://x/v1", "not a url"]
)
def test_key_is_not_sent_over_plain_http_to_remote_hosts(url: str) -> None:
    with pytest.raises(errors.ConfigurationError) as info:
        MailClient(SECRET, base_url=url)
    assert SECRET not in str(info.value)


def test_plain_http_to_remote_host_needs_opt_in() -> None:
    client = MailClient(SECRET, base_url="http://gateway.internal/v1", allow_insecure_http=True)
    assert client.base_url == "http://gateway.internal/v1"


@pytest.mark.parametrize(
    "key", ["vibe_api_x\r\nX-Evil: 1", "vibe_api_ x", "vibe_api_ключ", "vibe\x00api"]
)
def test_header_injection_in_key_is_refused(key: str) -> None:
    with pytest.raises(errors.ConfigurationError) as info:
        MailClient(key, base_url="http://127.0.0.1:1/v1")
    assert key not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"timeout": -1}, "timeout"),
        ({"session": object()}, "session"),
        ({"session_token": "a\nb"}, "session_token"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(errors.ConfigurationError, match=fragment):
        MailClient(SECRET, base_url="http://127.0.0.1:1/v1", **kwargs)  # type: ignore[arg-type]


async def test_call_before_open_and_after_close(mail_emulator: MailEmulator) -> None:
    client = MailClient(mail_emulator.api_key, base_url=mail_emulator.base_url)
    with pytest.raises(errors.ConfigurationError, match="not open"):
        await client.mailboxes.get(1)
    await client.open()
    assert (await client.mailboxes.get(1)).id == 1
    await client.close()
    assert client.closed
    with pytest.raises(errors.ConfigurationError, match="closed"):
        await client.mailboxes.get(1)
    with pytest.raises(errors.ConfigurationError, match="closed"):
        await client.open()
    await client.close()  # closing twice is harmless


async def test_caller_owned_session_is_left_open(mail_emulator: MailEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with MailClient(
            mail_emulator.api_key, base_url=mail_emulator.base_url, session=session
        ) as mail:
            assert (await mail.mailboxes.get(2)).id == 2
        assert not session.closed


async def test_headers_sent(mail_emulator: MailEmulator) -> None:
    mail_emulator.add_key("vibe_app_appkey1", app=True, tokens=("tok123",))
    async with MailClient(
        "vibe_app_appkey1", base_url=mail_emulator.base_url, session_token="tok123"
    ) as mail:
        await mail.mailboxes.get(1)
        await mail.messages.create_chat(1001)
    get, post = mail_emulator.requests[-2], mail_emulator.requests[-1]
    assert get.status == 200 and post.status == 200
    assert get.headers["User-Agent"].startswith("bitrix-mail-async/")
    assert get.headers["X-Api-Key"] != "vibe_app_appkey1"  # the emulator log redacts it
    assert post.headers["Content-Type"].startswith("application/json")
    assert post.json == {"messageId": 1001}


async def test_key_never_leaks_into_logs_errors_or_tracebacks(
    mail_emulator: MailEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mail_emulator.add_key(SECRET)
    mail_emulator.state.denied_mailboxes.add(2)
    mail_emulator.faults.schedule("502", methods=["GET"])
    mail_emulator.faults.schedule("drop_after", methods=["POST"])
    failures: list[BaseException] = []
    async with MailClient(
        SECRET, base_url=mail_emulator.base_url, retry=RetryPolicy(max_attempts=1)
    ) as mail:
        for call in (
            lambda: mail.mailboxes.get(1),
            lambda: mail.mailboxes.get(2),
            lambda: mail.messages.get(999999),
            lambda: mail.messages.send(from_="a@x.io", to="b@x.io", subject="s", body="b"),
        ):
            try:
                await call()
            except errors.MailError as exc:
                failures.append(exc)
        text = repr(mail) + str(mail.stats) + repr(mail._pipeline.transport)
    assert [type(f) for f in failures] == [
        errors.UpstreamUnavailableError,
        errors.PermissionDeniedError,
        errors.NotFoundError,
        errors.OutcomeUnknownError,
    ]
    for exc in failures:
        text += str(exc) + repr(exc)
        text += "".join(traceback.format_exception(exc))
        text += "".join(
            traceback.TracebackException.from_exception(exc, capture_locals=True).format()
        )
    text += "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records, "debug logging should have produced lines"
    assert SECRET not in text
    assert SECRET[9:] not in text


async def test_stats_count_requests_and_waits(mail_emulator: MailEmulator) -> None:
    async with MailClient(mail_emulator.api_key, base_url=mail_emulator.base_url) as mail:
        for _ in range(3):
            await mail.mailboxes.get(1)
        stats = mail.stats
    assert (stats.requests, stats.responses, stats.retries) == (3, 3, 0)
    assert stats.current_rate == 2.0  # the default bucket: the ordinary plan's 2 requests/s
    assert stats.limiter_wait >= 0.0


async def test_session_token_from_environment(
    mail_emulator: MailEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    mail_emulator.add_key("vibe_app_envkey", app=True, tokens=("envtok",))
    monkeypatch.setenv("BITRIX_MAIL_SESSION_TOKEN", "envtok")
    async with MailClient("vibe_app_envkey", base_url=mail_emulator.base_url) as mail:
        assert (await mail.mailboxes.get(1)).id == 1
    monkeypatch.delenv("BITRIX_MAIL_SESSION_TOKEN")
    async with MailClient("vibe_app_envkey", base_url=mail_emulator.base_url) as mail:
        with pytest.raises(errors.AuthenticationError):
            await mail.mailboxes.get(1)


PASSWORD = "pr0xyPa55word"


@pytest.mark.parametrize(
    "url",
    [
        f"https://user:{PASSWORD}@gateway.example/v1",
        f"http://user:{PASSWORD}@127.0.0.1:9/v1",
        f"https://{PASSWORD}@gateway.example/v1",
    ],
)
def test_password_in_base_url_is_never_shown(url: str) -> None:
    client = MailClient(SECRET, base_url=url)
    text = repr(client) + repr(client._pipeline.transport)
    assert PASSWORD not in text
    assert "***@" in repr(client)


@pytest.mark.parametrize(
    ("url", "env"),
    [
        (f"ftp://user:{PASSWORD}@gateway.example/v1", False),
        (f"https://user:{PASSWORD}@/v1", False),
        (f"http://user:{PASSWORD}@gateway.example/v1", False),  # plain http refused
        (f"https://user:{PASSWORD}@gateway.example/v1?x=1", True),
        (f"mailto://user:{PASSWORD}@gateway.example", True),
    ],
)
def test_password_in_a_refused_base_url_is_not_echoed(
    url: str, env: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if env:
        monkeypatch.setenv("BITRIX_MAIL_BASE_URL", url)
    with pytest.raises(errors.ConfigurationError) as info:
        MailClient(SECRET, base_url=None if env else url)
    assert PASSWORD not in str(info.value) + repr(info.value)
    assert "".join(traceback.format_exception(info.value)).count(PASSWORD) == 0


def test_redact_url_hides_credentials_only() -> None:
    from bitrix_mail_async._config import redact_url

    assert redact_url("https://u:p@h:8443/v1?q=a@b") == "https://***@h:8443/v1?q=a@b"
    assert redact_url("got 'http://u:p@ss@h'") == "got 'http://***@h'"
    assert redact_url("https://gateway.example/v1") == "https://gateway.example/v1"
    assert redact_url("a@b, no url") == "a@b, no url"


class FakeProxy:
    """A raw asyncio HTTP proxy that answers every request itself, recording what it saw."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        line, *rest = head.decode("latin-1").split("\r\n")
        headers = {}
        for field in rest:
            name, sep, value = field.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        self.requests.append((line, headers))
        body = b'{"success": true, "data": {"item": {"id": 7, "name": "Via proxy"}}}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()


def _set_proxy(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    """Name a loopback proxy, with credentials, in every proxy variable aiohttp reads."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, f"http://proxyuser:{PASSWORD}@127.0.0.1:{port}")
    monkeypatch.setenv("NETRC", "/nonexistent/netrc")


@pytest.fixture
async def proxy(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeProxy]:
    """A FakeProxy on loopback, named (with credentials) by HTTP_PROXY and HTTPS_PROXY."""
    fake = FakeProxy()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _set_proxy(monkeypatch, port)
    yield fake
    server.close()
    await server.wait_closed()


async def test_proxy_environment_is_ignored_by_default(
    proxy: FakeProxy, mail_emulator: MailEmulator
) -> None:
    async with MailClient(mail_emulator.api_key, base_url=mail_emulator.base_url) as mail:
        assert (await mail.mailboxes.get(1)).id == 1
    assert proxy.requests == []


async def test_trust_env_sends_through_the_environment_proxy(
    proxy: FakeProxy, mail_emulator: MailEmulator
) -> None:
    async with MailClient(SECRET, base_url=mail_emulator.base_url, trust_env=True) as mail:
        box = await mail.mailboxes.get(1)
        shown = repr(mail)
    assert box.id == 7  # the proxy's answer, not the emulator's
    assert len(proxy.requests) == 1
    line, headers = proxy.requests[0]
    assert line == f"GET {mail_emulator.base_url}/mail/mailboxes/1 HTTP/1.1"
    credentials = base64.b64encode(f"proxyuser:{PASSWORD}".encode()).decode()
    assert headers["proxy-authorization"] == f"Basic {credentials}"
    assert headers["x-api-key"] == SECRET
    assert PASSWORD not in shown


async def test_proxy_credentials_are_never_printed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _set_proxy(monkeypatch, port=9)  # nothing listens on the discard port
    async with MailClient(
        SECRET,
        base_url="http://127.0.0.1:8/v1",
        trust_env=True,
        retry=RetryPolicy(max_attempts=1),
    ) as mail:
        with pytest.raises(errors.TransportError) as info:
            await mail.mailboxes.get(1)
        text = repr(mail) + repr(mail._pipeline.transport)
    exc = info.value
    text += str(exc) + repr(exc) + "".join(traceback.format_exception(exc))
    text += "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
    text += "\n".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in text
    assert SECRET not in text


@pytest.mark.parametrize("value", [1, "yes", None])
def test_trust_env_must_be_a_bool(value: object) -> None:
    with pytest.raises(errors.ConfigurationError, match="trust_env"):
        MailClient(SECRET, base_url="http://127.0.0.1:1/v1", trust_env=value)  # type: ignore[arg-type]


async def test_trust_env_with_a_callers_session_is_refused() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(errors.ConfigurationError, match="trust_env"):
            MailClient(SECRET, base_url="http://127.0.0.1:1/v1", session=session, trust_env=True)


def test_base_url_credentials_and_a_session_token_are_refused_together() -> None:
    with pytest.raises(errors.ConfigurationError, match="Authorization") as info:
        MailClient(
            "vibe_app_key1",
            base_url=f"https://user:{PASSWORD}@gateway.example/v1",
            session_token="tok123",
        )
    assert PASSWORD not in str(info.value)


async def test_a_proxy_refusing_the_tunnel_means_nothing_was_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An https gateway through a proxy: the proxy answers CONNECT with 407, so the request
    # never reached the gateway. A send is then safe to retry, and never "outcome unknown".
    connects: list[str] = []

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        connects.append(head.decode("latin-1").split("\r\n")[0])
        writer.write(
            b"HTTP/1.1 407 Proxy Authentication Required\r\n"
            b"Proxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    _set_proxy(monkeypatch, server.sockets[0].getsockname()[1])
    try:
        async with MailClient(
            SECRET,
            base_url="https://gateway.invalid/v1",
            trust_env=True,
            retry=RetryPolicy(max_attempts=2, backoff_base=0.01),
        ) as mail:
            with pytest.raises(errors.TransportError, match="proxy") as info:
                await mail.messages.send(from_="a@x.io", to="b@x.io", subject="s", body="b")
    finally:
        server.close()
        await server.wait_closed()
    assert not isinstance(info.value, errors.OutcomeUnknownError)
    assert connects == ["CONNECT gateway.invalid:443 HTTP/1.1"] * 2  # retried: nothing sent
    assert PASSWORD not in str(info.value)


async def test_aclose_is_close(mail_emulator: MailEmulator) -> None:
    mail = await MailClient(mail_emulator.api_key, base_url=mail_emulator.base_url).open()
    await mail.aclose()
    assert mail.closed


@pytest.mark.parametrize(("level", "expected"), [("debug", True), ("info", False), ("", False)])
def test_bitrix_mail_log_sends_the_librarys_lines_to_stderr(
    mail_emulator: MailEmulator, level: str, expected: bool
) -> None:
    code = (
        "import asyncio, sys\n"
        "from bitrix_mail_async import MailClient\n"
        "async def main():\n"
        f"    async with MailClient(sys.argv[1], base_url={mail_emulator.base_url!r}) as mail:\n"
        "        await mail.messages.get(1001)\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "BITRIX_MAIL_LOG": level}
    done = subprocess.run(
        [sys.executable, "-c", code, mail_emulator.api_key],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert ("GET /mail/messages/{id} -> 200" in done.stderr) is expected
    assert mail_emulator.api_key not in done.stderr
