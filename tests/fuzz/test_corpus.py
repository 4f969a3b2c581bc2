"""The fuzzer's corpus: hostile cases it found (or issue 21 names), replayed on every run.

Generated examples change whenever a strategy does; these do not. Each case goes through the
same harness and the same promises as the generated ones (harness.check), plus, where the
issue says what the client must do, the typed error it must raise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bitrix_mail_async import MailClient, errors

from .answers import ok_answer, stuck_page
from .calls import Sly, fallback_body
from .harness import Settings, check, run
from .hostile import Answer, Step
from .test_config import OWN_SESSION_URLS, RESOLVED_URLS, exercise, judge
from .test_streams import POLL
from .wirejson import to_wire

BASE = Settings(
    timeout=0.3,
    max_attempts=2,
    rate_limit_attempts=1,
    max_retry_after=0.3,
    max_refused_time=0.5,
    max_response_bytes=8192,
    bucket=False,
    backend="default",
    hooks=True,
)
STDLIB = replace(BASE, backend="stdlib")
ONCE = replace(BASE, max_attempts=1)  # a GET that fails is not repeated into a success
HUGE = b"1" + b"0" * 400  # a 401-digit int, past any float
NAN = float("nan")


@dataclass(frozen=True)
class Case:
    """One call against a fixed script; ``expect`` is the error the client must raise."""

    action: Callable[[MailClient], Awaitable[Any]]
    script: tuple[Step, ...] = ()
    route: str = "raw"
    side_effect: bool = False
    settings: Settings = BASE
    expect: type[BaseException] | None = None
    repeat_last: bool = False
    max_requests: int | None = None
    path: str | None = None  # the path that must arrive
    query: str | None = None  # the query that must arrive
    stream: bool = False  # see harness.check


def _send(mail: MailClient) -> Any:
    return mail.messages.send(from_="Sales <s@x.io>", to="b@x.io", subject="s", body="b")


def _error(status: int, code: str, retry_after: bytes | None = None) -> Answer:
    extra = b"" if retry_after is None else b',"retryAfter":' + retry_after
    body = b'{"success":false,"error":{"code":"%s","message":"m"%s}}' % (code.encode(), extra)
    return Answer(status=status, body=body, code=code, success=False)


async def _walk(stream: Any) -> int:
    return len([item async for item in stream])


async def _watch(mail: MailClient) -> None:
    since = datetime(2026, 5, 1, tzinfo=UTC)
    window = asyncio.timeout(0.3)
    try:
        async with window:
            async for _ in mail.messages.watch(1, poll_interval=POLL, since=since):
                pass
    except TimeoutError:
        if not window.expired():
            raise


CASES: dict[str, Case] = {
    # The connection breaks after the answer's headers: the key sits in the frames below.
    "lost-body-after-headers": Case(
        lambda m: m.me(),
        (Answer(body=fallback_body("me"), framing="long"),),
        "me",
        settings=ONCE,
        expect=errors.TransportError,
    ),
    "2xx-body-over-max-response-bytes": Case(
        lambda m: m.mailboxes.get(1),
        (ok_answer(to_wire({"success": True, "data": {"item": {"id": 1, "x": "x" * 9000}}})),),
        "mailbox",
        expect=errors.DecodeError,
    ),
    "model-field-of-a-wrong-type": Case(
        lambda m: m.messages.get(5),
        (ok_answer(b'{"success":true,"data":{"item":{"id":1,"cc":1.5}}}'),),
        "message",
        expect=errors.DecodeError,
    ),
    "side-effect-answered-303": Case(
        lambda m: m.messages.create_chat(1),
        (Answer(status=303),),
        "chat",
        side_effect=True,
        expect=errors.OutcomeUnknownError,
    ),
    "side-effect-answered-101": Case(
        lambda m: m.messages.create_task(1),
        (Answer(status=101, body=fallback_body("task")),),
        "task",
        side_effect=True,
        expect=errors.OutcomeUnknownError,
    ),
    "side-effect-answered-2xx-success-false-unavailable": Case(
        _send,
        (_error(200, "BITRIX_UNAVAILABLE"),),
        "send",
        side_effect=True,
        expect=errors.OutcomeUnknownError,
    ),
    "get-answered-2xx-success-false": Case(
        lambda m: m.mailboxes.get(1),
        (_error(200, "INVALID_PARAMS"),),
        "mailbox",
        expect=errors.InvalidParamsError,
    ),
    "side-effect-2xx-not-the-model": Case(
        lambda m: m.messages.create_task(1),
        (ok_answer(b'{"success":true,"data":{"success":true}}'),),
        "task",
        side_effect=True,
        expect=errors.OutcomeUnknownDecodeError,
    ),
    "retry-after-of-401-digits-on-404": Case(
        lambda m: m.messages.get(1),
        (_error(404, "ENTITY_NOT_FOUND", HUGE),),
        "message",
        settings=STDLIB,
        expect=errors.NotFoundError,
    ),
    "retry-after-of-401-digits-on-a-send's-500": Case(
        _send,
        (_error(500, "INTERNAL_ERROR", HUGE),),
        "send",
        side_effect=True,
        settings=STDLIB,
        expect=errors.OutcomeUnknownError,
    ),
    "mailbox-pages-that-never-end": Case(
        lambda m: m.mailboxes.list(),
        (stuck_page("people", 100, {"hasMore": True}),),
        "mailboxes",
        repeat_last=True,
        max_requests=6,
    ),
    "message-pages-that-ignore-offset": Case(
        lambda m: _walk(m.messages.list(1, page_size=2)),
        (stuck_page("messages", 2, None),),
        "messages",
        repeat_last=True,
        max_requests=6,
    ),
    "watch-on-pages-that-never-end": Case(
        _watch,
        (stuck_page("messages", 3, {"hasMore": True}),),
        "messages",
        repeat_last=True,
        max_requests=40,  # 0.3 s of polls every 0.03 s, each reading the page twice at most
        stream=True,
    ),
    "request-param-with-a-lone-surrogate": Case(
        lambda m: m.request("GET", "/me", params={"q": "ab\ud800cd"}),
        expect=errors.InvalidArgumentError,
    ),
    "request-param-name-with-a-lone-surrogate": Case(
        lambda m: m.request("GET", "/me", params={"a\ud800": "1"}),
        expect=errors.InvalidArgumentError,
    ),
    "request-param-of-5001-digits": Case(
        lambda m: m.request("GET", "/me", params={"a": 10**5000}),
        expect=errors.InvalidArgumentError,
    ),
    "request-json-nan": Case(
        lambda m: m.request("POST", "/x", json={"v": NAN}),
        side_effect=True,
        expect=errors.InvalidArgumentError,
    ),
    "request-json-infinity-stdlib": Case(
        lambda m: m.request("POST", "/x", json={"v": float("inf")}),
        side_effect=True,
        settings=STDLIB,
        expect=errors.InvalidArgumentError,
    ),
    "int-subclass-id": Case(
        lambda m: m.mailboxes.get(Sly(1)), route="mailbox", path="/v1/mail/mailboxes/1"
    ),
    "int-subclass-request-param": Case(
        lambda m: m.request("GET", "/me", params={"n": Sly(7)}), query="n=7"
    ),
    "id-of-5001-digits": Case(
        lambda m: m.mailboxes.get(10**5000), expect=errors.InvalidArgumentError
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_known_hostile_case(name: str) -> None:
    case = CASES[name]
    outcome = run(
        case.settings,
        case.action,
        case.script,
        fallback=ok_answer(fallback_body(case.route)),
        repeat_last=case.repeat_last,
        max_requests=case.max_requests,
    )
    check(outcome, side_effect=case.side_effect, stream=case.stream)
    if case.expect is not None:
        assert isinstance(outcome.error, case.expect), f"raised {outcome.error!r:.300}"
    arrivals = outcome.server.arrivals
    if case.path is not None:
        assert [a.path for a in arrivals] == [case.path], f"sent to {[a.path for a in arrivals]}"
    if case.query is not None:
        assert [a.query for a in arrivals] == [case.query], f"sent {[a.query for a in arrivals]}"


LABELS = dict(OWN_SESSION_URLS + RESOLVED_URLS)
CONFIGURATIONS = {
    "closed-caller-session": ("http://127.0.0.1:{port}/v1", "closed", True, False),
    "caller-session-auth-and-token": ("http://127.0.0.1:{port}/v1", "auth", True, False),
    "unclosed-ipv6-bracket": ("http://[::1/v1", "own", False, False),
    "nfkc-host": ("http://℀.example/v1", "own", False, False),
    "bad-ipv4-in-ipv6": ("https://[::ffff:999.1.1.1]/v1", "own", False, False),
    "ipv4-in-brackets": ("http://[127.0.0.1]:{port}/v1", "own", False, False),
    "lone-surrogate-in-base-url": ("http://127.0.0.1:{port}/v\ud800", "own", True, False),
    "crlf-in-base-url": ("http://127.0.0.1:{port}/v1\r\nX-Evil: 1", "own", False, False),
    "empty-host-label": ("https://vibecode..bitrix24.tech/v1", "resolver", False, True),
    "port-65536": ("http://127.0.0.1:65536/v1", "own", False, True),
    "port-minus-1": ("http://127.0.0.1:-1/v1", "own", False, True),
    "port-0": ("http://127.0.0.1:0/v1", "own", False, True),
    "port-not-a-number": ("http://127.0.0.1:abc/v1", "own", False, True),
}


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_known_configuration(name: str) -> None:
    template, session, token, post = CONFIGURATIONS[name]
    settings = replace(BASE, timeout=5.0, hooks=False)
    outcome, refused = asyncio.run(exercise(settings, template, session, token, post))
    label = LABELS[template]
    judge(outcome, refused, template=template, label=label, session=session, token=token, post=post)
