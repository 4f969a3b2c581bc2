"""``mail.request()`` with generated methods, paths, params and JSON bodies, against generated
answers.

Besides the promises every call keeps (see test_calls), what it is given either is refused
with ``InvalidArgumentError`` before anything is sent, or reaches the gateway exactly: the
query decodes (strict UTF-8) to the params given, the body is strict JSON equal to ``json``,
the path is the one asked for below ``base_url``.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote

from hypothesis import given
from hypothesis import strategies as st

from bitrix_mail_async import errors

from .answers import ok_answer, scripts
from .calls import Sly
from .harness import Outcome, check, run, settings_strategy
from .hostile import Arrival
from .profiles import profile
from .wirejson import HUGE, realize, to_wire


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], one_in: int = 8) -> Any:
    """``good``, and ``bad`` one time in ``one_in``: refused inputs end an example early."""
    return st.integers(1, one_in).flatmap(lambda i: bad if i == 1 else good)


METHODS = mostly(
    st.sampled_from(["GET", "POST"]), st.sampled_from(["get", "Post", "PUT", "", " GET", None, 1])
)
PATHS = mostly(
    st.sampled_from(
        ["/me", "/mail/messages", "/mail/mailboxes/1", "/mail/new-route", "/a~b/%41", "/a+b/c=d;e"]
    ),
    st.sampled_from(
        [
            "",
            "me",
            "//evil.example/x",
            "/../x",
            "/%2e%2e/x",
            "/a/./b",
            "/a b",
            "/Ж",
            "/a?b=1",
            "/a#f",
            "/%zz",
            "/v1/me",
            "/" + "a" * 3000,
            "\\x",
            "/a\r\nb",
            "/a\ud800",
            b"/me",
            None,
        ]
    ),
)
names = st.text("abcXYZ_-.", min_size=1, max_size=6)
clean_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=8) | st.sampled_from(
    ["a+b", "a&b=c", "%zz", "#x", "Ж", "", " ", "x y", "a=b", "\u2028", "\x00"]
)
clean = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | clean_text
)
# What JSON or a query cannot carry as it is, or what a caller should not pass at all.
hostile = st.sampled_from(
    [
        10**400,
        *HUGE,
        Sly(7),
        float("nan"),
        float("inf"),
        -float("inf"),
        "a\ud800b",
        "\udfff",
        b"x",
        [1],
        {"a": 1},
        {1, 2},
        object,
    ]
)
hostile_names = st.sampled_from(["", "a\ud800", "Ж", "a=b", "a&b", " ", "x\r\ny"])


@st.composite
def with_one_hostile(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> dict[str, Any]:
    """A mapping of ordinary entries, and (every other time) one hostile name or value."""
    mapping = draw(st.dictionaries(names, values, max_size=4))
    if draw(st.booleans()):
        if draw(st.booleans()):
            mapping[draw(hostile_names)] = draw(values)
        else:
            mapping[draw(names)] = draw(hostile)
    return mapping


json_values = st.recursive(
    clean,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(names, inner, max_size=3)
    ),
    max_leaves=8,
)


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


PARAMS = mostly(st.none() | with_one_hostile(clean), st.sampled_from([[("a", 1)], "a=1"]))
BODIES = mostly(
    with_one_hostile(json_values),
    st.builds(lambda d: {"deep": _nested(d)}, st.sampled_from([50, 101, 1500, 5000]))
    | st.builds(lambda n: {"big": "x" * n}, st.sampled_from([60_000, 70_000]))
    | st.sampled_from([[1, 2], "x"]),
    one_in=4,
)


@profile(share=3.5)
@given(method=METHODS, path=PATHS, params=PARAMS, body=BODIES, data=st.data())
def test_request_keeps_its_promises_and_sends_exactly_what_it_was_given(
    method: Any, path: Any, params: Any, body: Any, data: Any
) -> None:
    params, body = realize(params), realize(body)
    if method == "GET" and data.draw(st.integers(0, 7), label="GET with a body") != 0:
        body = None
    settings = data.draw(settings_strategy(), label="settings")
    script, repeat = data.draw(
        scripts("raw", settings.max_response_bytes, settings.timeout), label="script"
    )
    outcome = run(
        settings,
        lambda mail: mail.request(method, path, params=params, json=body),
        script,
        fallback=ok_answer(to_wire({"success": True, "data": {"ok": True}})),
        repeat_last=repeat,
        given=(params, body),
    )
    post = isinstance(method, str) and method.upper() == "POST"
    check(outcome, side_effect=post)
    _sent_as_given(outcome, path, params, body)


def _sent_as_given(outcome: Outcome, path: Any, params: Any, body: Any) -> None:
    if isinstance(outcome.error, errors.InvalidArgumentError) or not outcome.server.arrivals:
        return
    for arrival in outcome.server.arrivals:
        assert unquote(arrival.path) == unquote("/v1" + path), (
            f"{path!r} went out as {arrival.path!r}"
        )
        assert _query(arrival) == _expected_query(params), (
            f"params {params!r:.200} went out as {arrival.query!r:.200}"
        )
        if arrival.method == "POST":
            # A body a few hundred levels deep may go out (the stdlib encoder takes ~1,000):
            # reading it back and comparing recurses as deep.
            with _deeper_recursion():
                assert _body(arrival) == _normal({} if body is None else body), (
                    f"json {_short(body)} went out as {arrival.body[:200]!r}"
                )


@contextlib.contextmanager
def _deeper_recursion() -> Iterator[None]:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def _short(value: Any) -> str:
    try:
        return f"{value!r:.200}"
    except RecursionError:
        return "<too deep to print>"


def _query(arrival: Arrival) -> list[tuple[str, str]]:
    try:
        pairs = parse_qsl(arrival.query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as exc:
        raise AssertionError(f"the query is not UTF-8: {arrival.query!r:.200}") from exc
    return sorted(pairs)


def _expected_query(params: Any) -> list[tuple[str, str]]:
    pairs = []
    for name, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = int.__repr__(int(value))
        elif isinstance(value, float):
            text = float.__repr__(value)
        else:
            text = value
        pairs.append((name, text))
    return sorted(pairs)


def _body(arrival: Arrival) -> Any:
    def refuse(token: str) -> Any:
        raise AssertionError(f"the body carries {token}, which is not JSON")

    try:
        return json.loads(arrival.body.decode("utf-8"), parse_constant=refuse)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AssertionError(f"the body is not UTF-8 JSON: {arrival.body[:200]!r}") from exc


def _normal(value: Any) -> Any:
    """What ``value`` is as JSON; anything JSON cannot carry exactly must have been refused."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        assert math.isfinite(value), f"{value!r} went out; JSON has no such number"
        return value
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    raise AssertionError(f"{type(value).__name__} went out; JSON has no such value")
