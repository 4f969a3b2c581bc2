"""``MailClient(...)`` with generated base URLs, sessions and tokens, then one call.

Every base URL is labelled: ``ok`` (the client must work against the test server), ``bad``
(malformed: brackets, ports outside 1-65535, empty or invalid host labels, controls; the
constructor must refuse it with ``ConfigurationError``) or ``any`` (either refused, or the
call ends with a typed error). Nothing may reach the network: the client's own session only
ever gets loopback literals (and malformed URLs); other host names go through a caller's
session whose resolver sends every name to loopback.

On top of the promises of every call (test_calls), a side effect that reached no server at all
must not be reported as "outcome unknown": nothing could have been applied.
"""

from __future__ import annotations

import asyncio
import socket
import warnings
from dataclasses import replace
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given
from hypothesis import strategies as st

from bitrix_mail_async import MailClient, errors

from .answers import ok_answer
from .calls import fallback_body
from .harness import KEY, SECRETS, TOKEN, Outcome, Settings, check, settings_strategy
from .hostile import HostileServer, digest
from .leaks import printed_leaks, reachable_leaks
from .profiles import profile

# (template, label): {port} is the test server's, {closed} a port nothing listens on.
OWN_SESSION_URLS = [
    ("http://127.0.0.1:{port}/v1", "ok"),
    ("http://127.0.0.1:{port}/v1/", "ok"),
    ("HTTP://127.0.0.1:{port}/v1", "ok"),
    ("http://localhost:{port}/v1", "ok"),
    ("http://127.0.0.1:{port}", "ok"),
    ("http://127.0.0.1:{closed}/v1", "any"),
    ("http://[::1]:{closed}/v1", "any"),
    ("http://user:pw@127.0.0.1:{port}/v1", "any"),
    ("http://[::1/v1", "bad"),
    ("http://℀.example/v1", "bad"),
    ("https://[::ffff:999.1.1.1]/v1", "bad"),
    ("http://127.0.0.1:65536/v1", "bad"),
    ("http://127.0.0.1:-1/v1", "bad"),
    ("http://127.0.0.1:0/v1", "bad"),
    ("http://127.0.0.1:99999999999/v1", "bad"),
    ("http://127.0.0.1:abc/v1", "bad"),
    ("http://127.0.0.1:{port}:1/v1", "bad"),
    ("http://[127.0.0.1]:{port}/v1", "bad"),
    ("http:///v1", "bad"),
    ("ftp://127.0.0.1/v1", "bad"),
    ("", "any"),
    ("http://127.0.0.1:{port}/v1?x=1", "bad"),
    ("http://127.0.0.1:{port}/v1#frag", "bad"),
    ("http://127.0.0.1\x00:{port}/v1", "bad"),
    ("http://127.0.0.1:{port}/v1\r\nX-Evil: 1", "bad"),
    ("http://127.0.0.1:{port}/v\ud800", "bad"),
    ("http://evil.example/v1", "bad"),
    ("http://127.0.0.1:{port}/v1 ", "any"),
    (" http://127.0.0.1:{port}/v1", "any"),
]
# Through a caller's session whose resolver answers loopback for every name.
RESOLVED_URLS = [
    ("https://vibecode..bitrix24.tech/v1", "bad"),
    ("https://.bitrix24.tech/v1", "bad"),
    ("https://" + "a" * 64 + ".example/v1", "bad"),
    ("https://a.example./v1", "any"),
    ("https://xn--zz.example/v1", "any"),
    ("https://-bad-.example/v1", "any"),
    ("https://bücher.example/v1", "any"),
    ("https://vibecode.bitrix24.tech/v1", "any"),
    ("https://vibecode.bitrix24.tech:{closed}/v1", "any"),
    *OWN_SESSION_URLS,
]


class Loopback(AbstractResolver):
    """Every name resolves to 127.0.0.1; https's port 443 goes to a port nothing listens on."""

    def __init__(self, closed: int) -> None:
        self._closed = closed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        target = self._closed if port in (0, 80, 443) else port
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=target,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


SESSIONS = ("own", "resolver", "closed", "auth")


@profile(share=3.0)
@given(
    session=st.sampled_from(SESSIONS),
    data=st.data(),
    token=st.booleans(),
    post=st.booleans(),
)
def test_any_configuration_gives_a_working_client_or_a_typed_refusal(
    session: str, data: Any, token: bool, post: bool
) -> None:
    urls = OWN_SESSION_URLS if session == "own" else RESOLVED_URLS
    template, label = data.draw(st.sampled_from(urls), label="base_url")
    # The server answers at once: a long timeout keeps a loaded machine from failing an "ok"
    # URL by a timeout (a bound, not a speed figure, is what is checked here).
    settings = replace(data.draw(settings_strategy(bucket=False), label="settings"), timeout=5.0)
    outcome, refused = asyncio.run(exercise(settings, template, session, token, post))
    judge(outcome, refused, template=template, label=label, session=session, token=token, post=post)


def judge(
    outcome: Outcome,
    refused: bool,
    *,
    template: str,
    label: str,
    session: str,
    token: bool,
    post: bool,
) -> None:
    """Assert what a configuration labelled ``label`` must give (see the module docstring)."""
    err = outcome.error
    conflict = token and ("@" in template or session == "auth")  # two Authorization headers
    if refused:
        assert isinstance(err, errors.ConfigurationError), f"MailClient() raised {err!r:.300}"
        leaks = printed_leaks(err, SECRETS) + reachable_leaks(err, SECRETS)
        assert not leaks, f"the key is reachable from the refusal: {leaks[:4]}"
        assert label != "ok" or conflict or session == "closed", f"refused {template!r}: {err}"
        return
    assert label != "bad", f"MailClient accepted base_url {template!r}"
    assert err is None or not isinstance(err, errors.ConfigurationError) or session != "own", (
        f"the client was made, then refused its configuration at the call: {err!r:.200}"
    )
    check(outcome, side_effect=post)
    if label == "ok" and session in ("own", "resolver") and not conflict:
        assert err is None, f"{template!r} with a {session} session failed: {err!r:.300}"
    if post and outcome.server.connections == 0:
        assert not isinstance(err, errors.OutcomeUnknownError), (
            "a side effect that reached no server is reported as outcome unknown"
        )


async def exercise(
    settings: Settings, template: str, kind: str, token: bool, post: bool
) -> tuple[Outcome, bool]:
    """Make the client (True when refused) and, if made, make one call; what happened."""
    server = HostileServer(
        [],
        ok_answer(fallback_body("chat" if post else "mailbox")),
        key_digest=digest(KEY),
        token_digest=digest(TOKEN) if token else "",
    )
    outcome = Outcome(server=server, bound=settings.bound(), memory_limit=settings.memory_limit())
    async with server:
        closed = closed_port()
        url = template.replace("{port}", str(server.port)).replace("{closed}", str(closed))
        session = await _session(kind, closed)
        try:
            try:
                mail = _client(settings, url, token, session)
            except Exception as exc:
                outcome.error = exc
                return outcome, True
            await _call(outcome, mail, post)
        finally:
            if session is not None and not session.closed:
                await session.close()
    return outcome, False


def _client(
    settings: Settings, url: str, token: bool, session: aiohttp.ClientSession | None
) -> MailClient:
    return MailClient(
        KEY,
        base_url=url,
        session_token=TOKEN if token else None,
        session=session,
        rate_limit=None,
        retry=settings.retry(),
        timeout=settings.timeout,
    )


async def _session(kind: str, closed: int) -> aiohttp.ClientSession | None:
    if kind == "own":
        return None
    connector = aiohttp.TCPConnector(resolver=Loopback(closed))
    with warnings.catch_warnings():
        # auth= is deprecated in aiohttp 3.14, and still what callers' sessions carry.
        warnings.simplefilter("ignore", DeprecationWarning)
        auth = aiohttp.BasicAuth("user", "pw") if kind == "auth" else None
        session = aiohttp.ClientSession(connector=connector, auth=auth)
    if kind == "closed":
        await session.close()
    return session


async def _call(outcome: Outcome, mail: MailClient, post: bool) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    limit = asyncio.timeout(outcome.bound)
    try:
        async with limit, mail:
            outcome.value = await (mail.messages.create_chat(1) if post else mail.mailboxes.get(1))
    except Exception as exc:
        outcome.error = exc
    outcome.expired = limit.expired()
    outcome.elapsed = loop.time() - start
    outcome.stats = mail.stats.snapshot()
    try:
        await mail.close()
    except Exception as exc:
        outcome.close_error = exc
