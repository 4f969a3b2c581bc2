"""Hypothesis strategies for what a hostile gateway answers: statuses, headers, bodies, faults.

Every strategy here is built for one route (its valid payload shape, contract section 3) and
one client's ``max_response_bytes`` (so that bodies near, at and over the cap are drawn, and
gzip/deflate bombs that inflate past it).
"""

from __future__ import annotations

import copy
import functools
import zlib
from typing import Any

from hypothesis import strategies as st

from .hostile import Answer, Drop, Encoding, RetryAfter, Step
from .wirejson import Raw, deep, to_wire

__all__ = ["answers", "ok_answer", "routes", "scripts", "steps", "stuck_page", "valid_data"]

CODES = (
    "INVALID_PARAMS",
    "INVALID_API_KEY",
    "TOKEN_EXPIRED",
    "SCOPE_DENIED",
    "ENTITY_NOT_FOUND",
    "NOT_FOUND",
    "BITRIX_ERROR",
    "RATE_LIMITED",
    "ERROR_LOOP_DETECTED",
    "INTERNAL_ERROR",
    "BITRIX_UNAVAILABLE",
    "QUEUE_TIMEOUT",
    "SOMETHING_NEW",
)
# Numbers no float can hold, a NaN token, a 5,000-digit int (over CPython's str->int limit).
HUGE_NUMBERS = (
    Raw("1" + "0" * 400),
    Raw("-" + "9" * 401),
    Raw("1e400"),
    Raw("-1e400"),
    Raw("NaN"),
    Raw("Infinity"),
    Raw("7" * 5000),
    Raw("1E-400"),
)
text = st.text(max_size=12) | st.sampled_from(
    ["\x1b[2J\x1b]0;x\x07", "a\r\nX-Injected: 1", "\ud800", "Ж" * 40, "\u202e\u2028", ""]
)
ids = st.integers(1, 10**6) | st.sampled_from([0, -1, 2**63, 2**64 + 1, *HUGE_NUMBERS[:2]])
wrong: st.SearchStrategy[Any] = st.sampled_from([None, "", "x", [], {}, True, 1.5, *HUGE_NUMBERS])
ISO = "2026-05-25T10:00:00+03:00"


def _mailbox(i: int, t: str) -> dict[str, Any]:
    return {"id": i, "name": t, "email": "box@example.com", "senderName": t}


def _message(i: int, t: str, date: str = ISO) -> dict[str, Any]:
    return {
        "id": i,
        "mailboxId": 1,
        "subject": t,
        "from": "a@x.io",
        "to": "b@x.io, c@x.io",
        "cc": None,
        "date": date,
        "isSeen": False,
        "hasAttachments": False,
        "bindings": [],
        "body": t,
    }


def _items(make: Any, size: int = 4) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.builds(make, ids, text), max_size=size)


_ROUTE_DATA: dict[str, st.SearchStrategy[Any]] = {
    "mailbox": st.builds(
        lambda m, wrap: {"item": m} if wrap else m, st.builds(_mailbox, ids, text), st.booleans()
    ),
    "mailboxes": _items(_mailbox).flatmap(lambda xs: st.sampled_from([xs, {"items": xs}])),
    "senders": st.builds(
        lambda xs: {
            "items": [{"email": "s@x.io", "name": t, "sender": f"{t} <s@x.io>"} for t in xs]
        },
        st.lists(text, max_size=3),
    ),
    "message": st.builds(lambda m: {"item": m}, st.builds(_message, ids, text)),
    "messages": st.builds(lambda xs: {"items": xs}, _items(_message)),
    "thread": _items(lambda i, t: _message(i, t, "2026-05-25 10:00:00")).flatmap(
        lambda xs: st.sampled_from([xs, {"items": xs}])
    ),
    "send": st.builds(
        lambda to: {"success": True, "to": to}, st.lists(st.just("b@x.io"), max_size=2)
    ),
    "move": st.builds(lambda n: {"success": True, "movedCount": n, "action": "move"}, ids),
    "task": st.builds(lambda n: {"success": True, "taskId": n, "messageId": 1}, ids),
    "event": st.builds(lambda n: {"success": True, "eventId": n, "messageId": 1}, ids),
    "chat": st.builds(
        lambda n, e: {"success": True, "chatId": n, "existing": e}, ids, st.booleans()
    ),
    "feed": st.builds(lambda n: {"success": True, "postId": n, "messageId": 1}, ids),
    "crm": st.sampled_from([True, {"success": True, "activityId": 5, "messageId": 1}]),
    "people": st.builds(
        lambda xs: {"items": [{"id": i, "email": "p@x.io", "name": t} for i, t in xs]},
        st.lists(st.tuples(ids, text), max_size=3),
    ),
    "me": st.builds(
        lambda s: {
            "scopes": ["mail"],
            "rateLimit": {"requestsPerSecond": s},
            "portal": "p.bitrix24.ru",
            "expiresAt": ISO,
        },
        st.sampled_from([10, 2.5, None, "x", *HUGE_NUMBERS[:3]]),
    ),
    "raw": st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | text,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
        ),
        max_leaves=8,
    ),
}
routes = tuple(_ROUTE_DATA)


def valid_data(route: str) -> st.SearchStrategy[Any]:
    """The payload (``data``) a correct gateway sends on ``route``."""
    return _ROUTE_DATA[route]


@st.composite
def _mangled(draw: st.DrawFn, route: str) -> Any:
    """A valid payload with one field made wrong: another type, a huge number, deep nesting."""
    # A copy: sampled_from hands out the same object every time, and it is changed below.
    data = copy.deepcopy(draw(valid_data(route)))
    target = data
    if isinstance(target, dict) and isinstance(target.get("item"), dict):
        target = target["item"]
    elif isinstance(target, dict) and isinstance(target.get("items"), list) and target["items"]:
        target = target["items"][0]
    elif isinstance(target, list) and target:
        target = target[0]
    if not isinstance(target, dict):
        return draw(wrong)
    key = draw(st.sampled_from([*sorted(target), "extra"]))
    target[key] = draw(wrong | st.builds(deep, st.sampled_from([99, 101, 150, 900, 5000])))
    return data


def _error_body(code: Any, message: Any, retry_after: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "hint": message}
    if retry_after is not _ABSENT:
        error["retryAfter"] = retry_after
    return {"success": False, "error": error}


_ABSENT = object()
retry_after_values = st.sampled_from(
    [_ABSENT, 0, 0.05, 1, -1, "2", "soon", None, [], True, 10]
) | st.sampled_from(HUGE_NUMBERS)


@st.composite
def bodies(draw: st.DrawFn, route: str, status: int) -> tuple[bytes, str | None, bool | None]:
    """(body, intended error code, intended ``success``) for an answer with ``status``."""
    kind = draw(
        st.sampled_from(
            [
                "ok",
                "ok",
                "ok",
                "mangled",
                "mangled",
                "error",
                "error",
                "not_envelope",
                "broken",
                "deep",
                "empty",
            ]
        )
    )
    if kind == "ok" and draw(st.booleans()) and status >= 300:
        kind = "error"  # an error status mostly carries an error envelope
    if kind in ("ok", "mangled"):
        data = draw(valid_data(route) if kind == "ok" else _mangled(route))
        envelope: dict[str, Any] = {"success": True, "data": data}
        if draw(st.booleans()):
            envelope["meta"] = draw(
                st.sampled_from(
                    [
                        {"hasMore": True},
                        {"hasMore": False, "total": 3},
                        {"total": Raw("1e400")},
                        None,
                        "x",
                    ]
                )
            )
        return to_wire(envelope), None, True
    if kind == "error":
        code = draw(st.sampled_from(CODES) | st.sampled_from([None, 5, ["x"], "\x1b[31m"]))
        body = _error_body(code, draw(text), draw(retry_after_values))
        return to_wire(body), code if isinstance(code, str) else None, False
    if kind == "not_envelope":
        shape: Any = draw(
            st.sampled_from(
                [
                    [],
                    "ok",
                    1,
                    None,
                    {},
                    {"success": "true", "data": {}},
                    {"success": True},
                    {"data": {}},
                    {"success": 1, "data": {}},
                ]
            )
        )
        return to_wire(shape), None, None
    if kind == "broken":
        whole = to_wire({"success": True, "data": draw(valid_data(route))})
        cut = draw(st.integers(0, max(0, len(whole) - 1)))
        tail = draw(st.sampled_from([b"", b"\xff\xfe", b"<html>502 Bad Gateway</html>", b"\x00"]))
        lead = draw(st.sampled_from([b"", b"\xef\xbb\xbf", b"  \n"]))
        return lead + whole[:cut] + tail, None, None
    if kind == "deep":
        depth = draw(st.sampled_from([99, 100, 101, 1000, 100_000]))
        return (
            to_wire({"success": True, "data": {"items": deep(depth), "item": deep(depth)}}),
            None,
            True,
        )
    return b"", None, None


@functools.cache
def bomb(size: int, encoding: str) -> bytes:
    """``size`` bytes of a JSON-looking answer (mostly zeros), compressed: a small bomb."""
    wbits = {"gzip": 31, "deflate": 15, "rawdeflate": -15}[encoding]
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    head = b'{"success": true, "data": {"item": {"id": 1, "pad": "'
    chunk = b"0" * 65536
    parts = [packer.compress(head)]
    parts += [packer.compress(chunk) for _ in range(size // len(chunk) + 1)]
    return b"".join(parts) + packer.flush()


STATUSES = st.sampled_from(
    [200] * 8 + [201, 204, 429, 429, 429, 504, 504, 500, 502, 503, 400, 401, 403, 404, 422]
) | st.sampled_from(
    [100, 101, 199, 206, 299, 301, 302, 303, 304, 307, 408, 409, 413, 451, 499, 599, 600, 999]
)
RETRY_AFTER = st.none() | st.one_of(
    st.builds(RetryAfter, st.just("delta"), st.sampled_from([0, 0.01, 0.05, 0.2, 1, 2, 30])),
    st.builds(
        RetryAfter,
        st.sampled_from(["imf", "rfc850", "asctime"]),
        st.sampled_from([-31_536_000, -5, 0, 1, 2, 3600]),
    ),
    st.builds(
        lambda raw: RetryAfter("raw", raw=raw),
        st.sampled_from(
            [
                "-1",
                "-0",
                "1e400",
                "nan",
                "inf",
                "-inf",
                "9" * 30,
                "0x10",
                "",
                " ",
                "2, 3",
                "soon",
                "+3",
                "\t1",
                "１",
                "1_0",
                "0.0000001",
                "Sun, 31 Feb 2026 00:00:00 GMT",
                "Sat, 01 Jan 9999 23:59:60 GMT",
                "Sun Nov  6 08:49:37 1994 GMT",
                "Sunday, 06-Nov-94 08:49:37 GMT",
                "Mon, 01 Jan 0001 00:00:00 GMT",
            ]
        ),
    ),
)
_SANE_WINDOW = st.builds(
    lambda r, reset: (
        ("X-RateLimit-Limit", "300"),
        ("X-RateLimit-Remaining", str(r)),
        ("X-RateLimit-Reset", reset),
    ),
    st.sampled_from([0, 0, 1, 7, 300]),
    st.sampled_from(["0", "0.05", "0.2", "0.5"]),
)
_GARBAGE = st.sampled_from(
    ["abc", "-1", "1e400", "nan", "", "9" * 50, "1.5", "301", "61", "3600", "-0.5", "inf"]
)
_BAD_WINDOW = st.builds(
    lambda limit, remaining, reset, drop: tuple(
        h
        for i, h in enumerate(
            (
                ("X-RateLimit-Limit", limit),
                ("X-RateLimit-Remaining", remaining),
                ("X-RateLimit-Reset", reset),
            )
        )
        if i != drop
    ),
    _GARBAGE | st.just("300"),
    _GARBAGE | st.just("0"),
    _GARBAGE | st.just("0.1"),
    st.sampled_from([-1, -1, 0, 1, 2]),
)
_EXTRA = st.sampled_from(
    [
        ("Content-Type", "text/html"),
        ("Content-Type", "application/json; charset=latin-1"),
        ("X-Request-Id", "\x1b[31mreq\x07" + "r" * 300),
        ("X-Request-Id", "Ж\udcff"),
        ("X-Long", "v" * 9000),
        ("Retry-After", "1"),
        ("Set-Cookie", "a=" + "b" * 100),
        ("Date", "not a date"),
    ]
)


# Templates of odd status lines; "{}" is the answer's status, the others cannot be read.
STATUS_LINES = [None] * 30 + [
    "HTTP/1.1 {}",
    "HTTP/1.0 {} OK",
    "HTTP/2 {} OK",
    "ICY {} OK",
    "HTTP/1.1 {}0 OK",
    "garbage",
    "HTTP/1.1 -1 X",
]


def _status_line(template: str | None, status: int) -> bytes | None:
    return None if template is None else template.format(status).encode()


@st.composite
def answers(draw: st.DrawFn, route: str, max_response_bytes: int, timeout: float) -> Answer:
    """One answer for ``route``: any status, headers, body, framing, encoding, timing."""
    status = draw(STATUSES)
    body, code, success = draw(bodies(route, status))
    headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
    headers += draw(st.sampled_from([(), (), ()]) | _SANE_WINDOW | _BAD_WINDOW)
    headers += draw(st.lists(_EXTRA, max_size=2))
    encodings: list[Encoding | None] = [None, None, None, None, None, None]
    encodings += ["gzip", "deflate", "rawdeflate", "lie"]
    encoding = draw(st.sampled_from(encodings))
    size = draw(st.sampled_from([0] * 8 + [1, 2]))  # in max_response_bytes: pad to about 1x, 2x
    if size:
        pad = max(0, size * max_response_bytes - 40 + draw(st.integers(-8, 8)))
        body = to_wire({"success": True, "data": {"item": {"id": 1, "pad": "x" * pad}}})
        code, success = None, True
    wire_body = None
    if encoding in ("gzip", "deflate", "rawdeflate") and draw(st.integers(0, 5)) == 0:
        # 32 MiB inflated: far past any memory limit of the harness if the cap did not hold.
        wire_body = bomb(draw(st.sampled_from([2 * max_response_bytes, 32 << 20])), encoding)
        code, success = None, True
    slow = draw(st.sampled_from([0.0] * 12 + [0.01, 0.05, timeout * 1.5]))
    return Answer(
        status=status,
        body=body,
        wire_body=wire_body,
        headers=tuple(headers),
        retry_after=draw(RETRY_AFTER)
        if status in (429, 503, 504) or draw(st.integers(0, 9)) == 0
        else None,
        status_line=_status_line(draw(st.sampled_from(STATUS_LINES)), status),
        encoding=encoding,
        framing=draw(
            st.sampled_from(
                ["length"] * 8 + ["chunked", "close", "short", "long", "badlength", "badchunk"]
            )
        ),
        cut=draw(st.none() | st.none() | st.none() | st.integers(0, 64))
        if draw(st.integers(0, 3)) == 0
        else None,
        delay_head=slow if draw(st.booleans()) else 0.0,
        delay_body=slow if draw(st.integers(0, 3)) == 0 else 0.0,
        after=draw(st.sampled_from(["fin", "fin", "keep", "keep", "rst"])),
        informational=draw(st.integers(0, 19)) == 0,
        code=code,
        success=success,
    )


def steps(route: str, max_response_bytes: int, timeout: float) -> st.SearchStrategy[Step]:
    """An answer, mostly; sometimes a connection closed, reset or left hanging instead."""
    drop = st.builds(
        Drop, st.sampled_from(["early", "head", "full", "full", "hang"]), st.booleans()
    )
    answer = answers(route, max_response_bytes, timeout)
    return st.integers(0, 7).flatmap(lambda d: drop if d == 0 else answer)


@st.composite
def scripts(
    draw: st.DrawFn, route: str, max_response_bytes: int, timeout: float
) -> tuple[list[Step], bool]:
    """(script, repeat_last): the answers to the first requests, and whether the last repeats."""
    script = draw(st.lists(steps(route, max_response_bytes, timeout), min_size=1, max_size=4))
    return script, draw(st.integers(0, 4)) == 0


def ok_answer(body: bytes) -> Answer:
    """A plain, correct answer carrying ``body``."""
    return Answer(
        status=200, body=body, headers=(("Content-Type", "application/json"),), success=True
    )


def stuck_page(route: str, size: int, meta: Any) -> Answer:
    """A full page, the same on every request: a gateway that ignores ``offset``."""
    items = [
        {"id": 100 + i, "mailboxId": 1, "subject": "s", "date": "2026-05-25T10:00:00+03:00"}
        if route == "messages"
        else {"id": 100 + i, "email": "p@x.io", "name": "P"}
        for i in range(size)
    ]
    envelope: dict[str, Any] = {"success": True, "data": {"items": items}}
    if meta is not None:
        envelope["meta"] = meta
    return ok_answer(to_wire(envelope))
