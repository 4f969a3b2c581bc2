"""The typed calls against a gateway whose every answer is generated.

For every example (one call of one public method, a client with small generated settings, a
script of hostile answers), :func:`~.harness.check` asserts the promises:

- the call ends within a bound derived from the client's settings (timeouts, retries,
  ``max_retry_after``, ``max_refused_time``), with room for a loaded machine;
- whatever it raises is an ``errors.MailError``;
- the API key and the session token are not reachable from the exception: not in its text,
  its chain, its traceback printed with locals, nor the live objects of its frames;
- a side effect reaches the server again only after an answer proving it was not applied
  (429, 504 QUEUE_TIMEOUT, or a connection closed before the request was read), and an error
  after an answer that may mean "applied" is an ``OutcomeUnknownError``;
- memory stays within a limit derived from ``max_response_bytes``;
- arguments the client refuses are refused before anything is sent, and those it accepts
  reach the wire as the ints they stand for.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bitrix_mail_async import errors

from .answers import ok_answer, scripts
from .calls import CALLS, Call, fallback_body, wire_id
from .harness import check, run, settings_strategy
from .profiles import profile
from .wirejson import realize


@profile(share=4.5)
@given(call=st.sampled_from(CALLS), data=st.data())
def test_typed_calls_keep_their_promises_against_hostile_answers(call: Call, data: Any) -> None:
    settings = data.draw(settings_strategy(), label="settings")
    script, repeat = data.draw(
        scripts(call.route, settings.max_response_bytes, settings.timeout), label="script"
    )
    args = data.draw(call.args, label="args")
    pages = len(script) + 2 if call.walk else 1
    outcome = run(
        settings,
        lambda mail: call.invoke(mail, dict(args)),
        script,
        fallback=ok_answer(fallback_body(call.route)),
        repeat_last=repeat,
        requests=pages,
        held=pages,
    )
    check(outcome, side_effect=call.side_effect)
    if not call.walk:
        # aiohttp repeats a GET (never a POST) once on a dropped connection, unseen by the
        # client: see harness.observed().
        most = settings.max_attempts + settings.rate_limit_attempts + 1
        arrivals = outcome.server.arrivals
        posts = sum(a.method == "POST" for a in arrivals)
        assert posts <= most and len(arrivals) <= 2 * most, (
            f"{len(arrivals)} requests for one call; the policy allows {most} attempts"
        )


@profile(share=3.0)
@given(call=st.sampled_from(CALLS), data=st.data())
def test_hostile_arguments_are_refused_before_sending_or_sent_as_given(
    call: Call, data: Any
) -> None:
    settings = data.draw(settings_strategy(bucket=False), label="settings")
    args = realize(data.draw(call.hostile, label="args"))
    outcome = run(
        settings,
        lambda mail: call.invoke(mail, dict(args)),
        [],
        fallback=ok_answer(fallback_body(call.route)),
        given=tuple(args.values()),
    )
    check(outcome, side_effect=call.side_effect)
    if isinstance(outcome.error, errors.InvalidArgumentError) or not outcome.server.arrivals:
        return
    arrivals = outcome.server.arrivals
    if call.side_effect:
        # reply/forward may first read the original and the senders (GETs) for their defaults.
        arrivals = [a for a in arrivals if a.method == "POST"]
        if not arrivals:
            return
    arrival = arrivals[0]
    assert arrival.path == "/v1" + call.path(args), (
        f"{call.name}{args!r:.200} was sent to {arrival.path!r}"
    )
    if arrival.body:
        sent = json.loads(arrival.body, parse_constant=_refuse)
        for name in ("messageId", "replyToMessageId", "forwardMessageId", "responsibleId"):
            if name in sent:
                assert isinstance(sent[name], int), f"{name} went out as {sent[name]!r}"
        if "message_id" in args and "messageId" in sent:
            assert str(sent["messageId"]) == wire_id(args["message_id"])


def _refuse(token: str) -> Any:
    raise AssertionError(f"the body carries {token}, which is not JSON")
