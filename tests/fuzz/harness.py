"""One example: a client with small, generated settings, one call, a hostile server; then the
promises checked on what happened.

Each example runs in its own ``asyncio.run``: a fresh loop means a fresh limiter state for the
key (the registry keeps one per loop), so a 429 cooldown or a learned rate never carries over
from one example to the next and a derandomized run replays exactly. Starting a loopback
server costs well under a millisecond, so the server is started per example too.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from bitrix_mail_async import (
    Hooks,
    MailClient,
    RateLimit,
    RequestEvent,
    ResponseEvent,
    RetryPolicy,
    StatsSnapshot,
    _jsonlib,
    errors,
)
from bitrix_mail_async._transport import CLOSE_GRACE
from bitrix_mail_async._window import PROBE_HOLD

from .hostile import Answer, HostileServer, Step, digest
from .leaks import caller_ids, printed_leaks, reachable_leaks

__all__ = [
    "KEY",
    "SECRETS",
    "TOKEN",
    "Outcome",
    "Settings",
    "check",
    "run",
    "settings_strategy",
    "violations",
]

# Distinctive, random per run: found anywhere, it can only have come from the client.
KEY = "vibe_app_" + secrets.token_hex(12)
TOKEN = "sess_" + secrets.token_hex(12)
SECRETS = (KEY.removeprefix("vibe_app_"), TOKEN)

#: Largest sane X-RateLimit-Reset the answers carry (answers.py); bigger ones are garbage.
SANE_RESET = 0.5
#: A loaded 2-core machine (5 sessions share it) may stall any step: the bound is a bound on
#: the client's own waits, with this much room on top, never a speed figure.
SLACK_FACTOR = 2.0
SLACK_SECONDS = 3.0
#: What one example may allocate beyond its answers: the client, aiohttp's session and the
#: server. Measured at about 1.5 MiB for a plain call; 8 MiB leaves room.
BASE_MEMORY = 8 * 1024 * 1024
#: A decoded JSON answer takes several times its text in Python objects (a list of small
#: dicts about 10x); twice that, per answer held at once.
MEMORY_PER_BYTE = 24


@dataclass(frozen=True)
class Settings:
    """The client's settings of one example, kept small so that every bound is short."""

    timeout: float
    max_attempts: int
    rate_limit_attempts: int
    max_retry_after: float
    max_refused_time: float
    max_response_bytes: int
    bucket: bool
    backend: str
    hooks: bool = False

    def retry(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base=0.01,
            backoff_cap=0.05,
            rate_limit_attempts=self.rate_limit_attempts,
            max_retry_after=self.max_retry_after,
            default_retry_after=0.05,
            max_refused_time=self.max_refused_time,
        )

    def client(self, base_url: str, **kwargs: Any) -> MailClient:
        return MailClient(
            KEY,
            base_url=base_url,
            session_token=TOKEN,
            rate_limit=RateLimit(per_second=200, burst=10) if self.bucket else None,
            max_concurrency=4,
            retry=self.retry(),
            timeout=self.timeout,
            max_response_bytes=self.max_response_bytes,
            max_request_bytes=64 * 1024,
            **kwargs,
        )

    def bound(self, requests: int = 1) -> float:
        """Longest a call of ``requests`` logical requests may take, from these settings.

        Per attempt: the timeout, the wait for the window (a sane Reset, or a probe hold),
        the bucket, and the wait before the next one (backoff or an honoured Retry-After
        with its jitter). Attempts: ``max_attempts`` failures plus the refusals, which end at
        ``rate_limit_attempts`` or once ``max_refused_time`` has passed.
        """
        bucket = 1 / (200 * 0.8 ** (self.rate_limit_attempts + 1)) if self.bucket else 0.0
        jitter = min(0.1 * self.max_retry_after, 0.25)
        wait = max(0.05, self.max_retry_after + jitter)
        attempt = self.timeout + max(SANE_RESET, PROBE_HOLD) + bucket + wait
        refusals = min(
            (self.rate_limit_attempts + 1) * attempt, self.max_refused_time + 2 * attempt
        )
        one = self.max_attempts * attempt + refusals
        return requests * one * SLACK_FACTOR + SLACK_SECONDS

    def memory_limit(self, held: int = 1) -> int:
        return BASE_MEMORY + held * MEMORY_PER_BYTE * self.max_response_bytes


def settings_strategy(*, bucket: bool | None = None) -> st.SearchStrategy[Settings]:
    return st.builds(
        Settings,
        timeout=st.sampled_from([0.25, 0.4]),
        max_attempts=st.integers(1, 3),
        rate_limit_attempts=st.sampled_from([0, 1, 3, 20]),
        max_retry_after=st.sampled_from([0.05, 0.3, 1.5]),
        max_refused_time=st.sampled_from([0.1, 0.5]),
        max_response_bytes=st.sampled_from([1024, 8192, 65536]),
        bucket=st.booleans() if bucket is None else st.just(bucket),
        backend=st.sampled_from(["default", "stdlib"]),
        hooks=st.booleans(),
    )


@contextlib.contextmanager
def json_backend(name: str) -> Iterator[None]:
    """Run with the stdlib's json (the default install) or the installed backend (orjson)."""
    saved = _jsonlib._loads, _jsonlib._dumps
    if name == "stdlib":
        _jsonlib._loads, _jsonlib._dumps = _jsonlib.std_loads, _jsonlib.std_dumps
    try:
        yield
    finally:
        _jsonlib._loads, _jsonlib._dumps = saved


@dataclass
class Outcome:
    """What one example did: the value or the exception, the time, what the server saw."""

    value: Any = None
    error: BaseException | None = None
    elapsed: float = 0.0
    bound: float = 0.0
    expired: bool = False
    close_error: BaseException | None = None
    server: HostileServer = field(default_factory=HostileServer)
    peak: int = 0
    memory_limit: int = 0
    exempt: frozenset[int] = frozenset()  # the caller's arguments (leaks.caller_ids)
    stats: StatsSnapshot | None = None
    events: Events | None = None  # what the hooks heard, when the client had hooks


@dataclass
class Events:
    """The attempts the client's hooks reported."""

    requests: list[RequestEvent] = field(default_factory=list)
    responses: list[ResponseEvent] = field(default_factory=list)

    def hooks(self) -> Hooks:
        return Hooks(on_request=self.requests.append, on_response=self.responses.append)


Action = Callable[[MailClient], Awaitable[Any]]


async def _exercise(
    settings: Settings, server: HostileServer, action: Action, bound: float, **client: Any
) -> Outcome:
    outcome = Outcome(server=server, bound=bound)
    if settings.hooks:
        outcome.events = Events()
        client.setdefault("hooks", outcome.events.hooks())
    async with server:
        mail = settings.client(server.base_url, **client)
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def call() -> Any:
            await mail.open()
            return await action(mail)

        task = asyncio.create_task(call())
        # A client that loops (say on pages that never end) is stopped at once, not at the bound.
        server.on_flood = task.cancel
        limit = asyncio.timeout(bound)
        try:
            async with limit:
                outcome.value = await task
        except asyncio.CancelledError:
            if not server.flooded:
                raise
        except Exception as exc:  # a BaseException (a cancel, an exit) fails the test at once
            outcome.error = exc
        outcome.expired = limit.expired()
        outcome.elapsed = loop.time() - start
        outcome.stats = mail.stats.snapshot()
        try:
            async with asyncio.timeout(CLOSE_GRACE + SLACK_SECONDS):
                await mail.close()
        except Exception as exc:
            outcome.close_error = exc
    return outcome


def run(
    settings: Settings,
    action: Action,
    script: Sequence[Step],
    *,
    fallback: Step | None = None,
    repeat_last: bool = False,
    requests: int = 1,
    held: int = 1,
    given: tuple[Any, ...] = (),
    max_requests: float | None = None,
    **client: Any,
) -> Outcome:
    """Run one call of ``action`` against a server answering ``script``; see :func:`check`.

    ``requests`` is how many logical requests the call makes (pages of a walk, ids of
    ``get_many``); the time bound and the most requests the server may see follow from it
    (``max_requests``: every attempt the retry policy allows, per logical request).
    """
    # Every attempt the policy allows, twice over: aiohttp repeats a GET once on a dropped
    # connection (see observed()).
    attempts = 2 * (settings.max_attempts + settings.rate_limit_attempts + 1)
    server = HostileServer(
        script,
        fallback or Answer(),
        repeat_last,
        key_digest=digest(KEY),
        token_digest=digest(TOKEN),
        max_arrivals=int(max_requests if max_requests is not None else requests * attempts),
    )
    bound = settings.bound(requests)
    with json_backend(settings.backend):
        tracemalloc.start()
        try:
            outcome = asyncio.run(_exercise(settings, server, action, bound, **client))
            outcome.peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    outcome.memory_limit = settings.memory_limit(held)
    outcome.exempt = caller_ids(*given)
    return outcome


def check(outcome: Outcome, *, side_effect: bool, stream: bool = False) -> None:
    """Assert every promise on one example (the module docstring of test_calls lists them).

    ``stream``: the call is a stream that cancels requests of its own (``get_many`` after an
    error, ``watch`` when the test stops it), so not every attempt ends with on_response.
    """
    found = violations(outcome, side_effect=side_effect, stream=stream)
    assert not found, "\n".join(f"[{tag}] {text}" for tag, text in found)


def violations(
    outcome: Outcome, *, side_effect: bool, stream: bool = False
) -> list[tuple[str, str]]:
    """Every broken promise of one example, as (invariant, what happened)."""
    found: list[tuple[str, str]] = []
    err = outcome.error
    arrivals = outcome.server.arrivals
    if outcome.expired:
        found.append(("bound", f"not ended within {outcome.bound:.1f}s ({len(arrivals)} requests)"))
    if outcome.server.flooded:
        found.append(
            ("bound", f"stopped after {len(arrivals)} requests, more than the policy allows")
        )
    if outcome.close_error is not None:
        found.append(("close", f"close() raised {outcome.close_error!r:.300}"))
    if err is not None and not outcome.expired and not outcome.server.flooded:
        if not isinstance(err, errors.MailError):
            found.append(
                ("typed", f"{type(err).__module__}.{type(err).__qualname__}: {err!s:.300}")
            )
        found += [
            ("printed", f"{type(err).__name__}: {p}")
            for p in printed_leaks(err, SECRETS, outcome.exempt)
        ]
        found += [
            ("reachable-secret", f"{type(err).__name__}: {p}")
            for p in reachable_leaks(err, SECRETS)
        ]
    if outcome.peak > outcome.memory_limit:
        found.append(
            (
                "memory",
                f"peak {outcome.peak / 2**20:.1f} MiB > {outcome.memory_limit / 2**20:.1f} MiB",
            )
        )
    if isinstance(err, errors.InvalidArgumentError | errors.ConfigurationError) and arrivals:
        found.append(("refused-after-send", f"{type(err).__name__} after a request went out"))
    if not all(outcome.server.key_seen):
        found.append(("credentials", "a request went out without the key and the token"))
    if not outcome.expired and not outcome.server.flooded:
        found += observed(outcome, stream=stream)
    if side_effect:
        found += at_most_once(outcome)
    return found


def observed(outcome: Outcome, *, stream: bool = False) -> list[tuple[str, str]]:
    """Every attempt that went out is counted and reported, and so is a call that failed."""
    found = []
    stats, err, events = outcome.stats, outcome.error, outcome.events
    assert stats is not None
    arrivals = outcome.server.arrivals
    posts = sum(a.method == "POST" for a in arrivals)
    # aiohttp itself repeats an idempotent request once when its connection drops (RFC 9112
    # section 9.3.1), unseen by the client: a GET may arrive twice per attempt, a POST never.
    if posts > stats.requests or len(arrivals) > 2 * stats.requests:
        found.append(
            ("observed", f"{len(arrivals)} requests arrived, stats.requests is {stats.requests}")
        )
    sent_first = isinstance(err, errors.InvalidArgumentError | errors.ConfigurationError)
    # README: "errors" counts calls that failed, "outcome_unknown" those of them that may
    # have been applied; either counter will do here.
    counted = stats.errors + stats.outcome_unknown
    if isinstance(err, errors.MailError) and not sent_first and counted < 1:
        found.append(("observed", f"{type(err).__name__} raised, stats.errors is 0"))
    if isinstance(err, errors.OutcomeUnknownError) and stats.outcome_unknown < 1:
        found.append(("observed", f"{type(err).__name__} raised, stats.outcome_unknown is 0"))
    if events is not None and not stream and len(events.responses) != len(events.requests):
        found.append(
            (
                "observed",
                f"{len(events.requests)} attempts began (on_request), "
                f"{len(events.responses)} ended (on_response); error {type(err).__name__}",
            )
        )
    return found


def at_most_once(outcome: Outcome) -> list[tuple[str, str]]:
    """A side effect reaches the server again only after a refusal, and an error after it may
    have run is an OutcomeUnknownError.

    Only POSTs count: reply/forward may first read the original message and the mailbox's
    senders (GETs, no side effect) to fill their defaults.
    """
    arrivals = [a for a in outcome.server.arrivals if a.method == "POST"]
    for earlier in arrivals[:-1]:
        if earlier.step is None or not earlier.step.refusal:
            return [("twice", f"arrived {len(arrivals)} times after {_describe(earlier.step)}")]
    err = outcome.error
    if err is None:
        if not any(_is_2xx(a.step) for a in arrivals):
            return [("phantom", "a side effect returned without a 2xx answer")]
        return []
    last = arrivals[-1].step if arrivals else None
    if last is not None and last.ran and not isinstance(err, errors.OutcomeUnknownError):
        return [("outcome-unknown", f"after {_describe(last)}: {type(err).__name__}: {err!s:.200}")]
    return []


def _is_2xx(step: Step | None) -> bool:
    return isinstance(step, Answer) and 200 <= step.status < 300


def _describe(step: Step | None) -> str:
    if isinstance(step, Answer):
        return f"HTTP {step.status} code={step.code} success={step.success}"
    return repr(step)
