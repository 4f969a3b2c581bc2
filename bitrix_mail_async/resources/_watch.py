"""Watching a mailbox (``mail.messages.watch()``): options, the gateway's clock, the watcher.

The gateway has no mail events, so a watcher polls ``GET /mail/messages`` by date. Mail dates
come from the sender, so a date can be anything: an hour old for a slow relay, days old for
mail written offline, 2099 for an attacker. The design therefore never trusts a date to say
when a message arrived:

- **The mark** is the newest date handled, capped at the gateway's "now" (each answer's HTTP
  ``Date`` header, else this machine's clock): a future-dated message cannot push it ahead.
- **A regular poll** (every ``poll_interval``) reads from ``mark - overlap`` to
  ``now + overlap``: one request when idle.
- **A sweep** (every ``sweep_interval``, and first thing in a run) reads everything dated from
  ``lookback`` before the previous sweep on, with no upper bound, so late and future-dated
  mail is found too. Ids handled since the previous sweep's reach are kept as id ranges
  (:mod:`._idranges`), so a sweep yields only what was not yielded yet.
- **Future-dated mail** is yielded once, like any other, and its id kept until the gateway's
  "now" passes its date; at most :data:`~._watch_state.MAX_FUTURE_RANGES` ranges of such ids
  are kept, and further future-dated mail waits (WARNING) until its date comes.

The guarantee: every message that arrives dated no more than ``lookback`` before its arrival
is yielded exactly once, across restarts with the same checkpoint; after a crash, at most the
message being handled is yielded again; mail dated more than ``lookback`` before it arrives is
never yielded (raise ``lookback`` to widen that).

A message counts as handled when the loop asks for the next one, or at ``commit()``. Failures
that pass (429s and 5xx after the client's own retries, timeouts, outages, an answer that
cannot be read) make the watcher back off and go on; authentication, permission and
not-found errors, and a 400 on the very first poll, end it. It starts no task of its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from collections.abc import AsyncIterable, Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from bitrix_mail_async import errors
from bitrix_mail_async._envelope import Reply
from bitrix_mail_async._httpdate import parse_http_date
from bitrix_mail_async.models import MessageSummary
from bitrix_mail_async.resources._watch_options import (
    DEFAULT_LOOKBACK,
    DEFAULT_OVERLAP,
    DEFAULT_SWEEP_INTERVAL,
    EARLIEST,
    LATEST,
    WatchOptions,
)
from bitrix_mail_async.resources._watch_state import (
    MAX_FUTURE_RANGES,
    Checkpoint,
    FileCheckpoint,
    WatchState,
    epoch,
)

__all__ = [
    "DEFAULT_LOOKBACK",
    "DEFAULT_OVERLAP",
    "DEFAULT_SWEEP_INTERVAL",
    "Checkpoint",
    "FileCheckpoint",
    "MessageWatcher",
    "WatchOptions",
]

log = logging.getLogger("bitrix_mail_async.watch")

_SECOND: Final = timedelta(seconds=1)
# Errors about the mailbox or the key: polling again cannot help.
_FATAL: Final = (
    errors.AuthenticationError,
    errors.PermissionDeniedError,
    errors.NotFoundError,
    errors.InvalidArgumentError,
    errors.ConfigurationError,
)
# The longest pause between polls after failures, in poll intervals (and at most 5 minutes).
_BACKOFF_INTERVALS: Final = 10.0
_BACKOFF_CAP: Final = 300.0

#: Builds the pager of one poll: messages dated from ``date_from`` (to ``date_to``), each
#: page's answer shown to the callback.
ListFrom = Callable[
    [datetime, datetime | None, Callable[[Reply], None]], AsyncIterable[MessageSummary]
]


def _date_of(msg: MessageSummary, default: datetime) -> datetime:
    # The contract gives list dates with an offset; a naive one is read as UTC, and a message
    # without a date counts as dated ``default``.
    if msg.date is None:
        return default
    return msg.date if msg.date.utcoffset() is not None else msg.date.replace(tzinfo=UTC)


def _whole_second(value: datetime, *, up: bool = False) -> datetime:
    # Queries carry whole seconds, rounded so that they only ever reach further.
    down = value.replace(microsecond=0)
    return down + _SECOND if up and down != value else down


def _backoff(failures: int, poll_interval: float, exc: errors.MailError) -> float:
    cap = max(poll_interval, min(poll_interval * _BACKOFF_INTERVALS, _BACKOFF_CAP))
    delay = min(cap, poll_interval * 2.0 ** (failures - 1))
    delay = random.uniform(delay / 2, delay)
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float) and retry_after > delay:
        delay = min(float(retry_after), _BACKOFF_CAP)
    return delay


class _GatewayClock:
    """The gateway's "now": each answer's HTTP ``Date`` header, else this machine's clock."""

    __slots__ = ("_offset", "first", "latest")

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self.first: datetime | None = None  # of the current poll's first answer
        self.latest: datetime | None = None  # of its latest answer

    def begin(self) -> None:
        """A poll starts."""
        self.first = self.latest = None

    def observe(self, reply: Reply) -> None:
        """Read one answer's ``Date`` (any RFC 9110 form)."""
        client = datetime.now(UTC)
        now = parse_http_date(reply.headers.get("Date"), now=client)
        if now is None or not EARLIEST <= now <= LATEST:
            now = client
        else:
            self._offset = now - client
        self.latest = now
        if self.first is None:
            self.first = now

    def estimate(self) -> datetime:
        """The gateway's "now" at this moment, from the last ``Date`` and this machine's clock."""
        return datetime.now(UTC) + self._offset


class _Stopped(Exception):
    """``stop()`` was called: the iteration ends (never leaves the watcher)."""


class MessageWatcher:
    """What ``mail.messages.watch()`` returns: an async iterator with ``commit()`` and ``stop()``.

    ``async for msg in watcher`` yields each new message once, oldest first (see the module
    docstring for the guarantee). ``await watcher.commit()`` saves now that the last message
    yielded is handled; ``watcher.stop()`` (synchronous, safe from a signal handler) ends the
    iteration at the next ``__anext__``, after committing the message just handled, or at
    once while waiting for mail. ``await watcher.aclose()`` ends it without committing.
    Example: ``loop.add_signal_handler(signal.SIGTERM, watcher.stop)``.
    """

    def __init__(
        self, list_from: ListFrom, options: WatchOptions, is_closed: Callable[[], bool]
    ) -> None:
        self._list_from = list_from
        self._options = options
        self._is_closed = is_closed
        self._identity = options.identity()
        self._clock = _GatewayClock()
        self._state: WatchState | None = None
        self._batch: collections.deque[tuple[datetime, MessageSummary]] = collections.deque()
        self._now = datetime.now(UTC)  # the gateway's "now" when the batch was listed
        self._reach: datetime | None = None  # a finished sweep's reach, once its mail is handled
        self._pending: tuple[datetime, MessageSummary, datetime] | None = None
        self._next_poll = 0.0
        self._next_sweep = 0.0
        self._answered = False
        self._held = 0
        self._stopping = False
        self._finished = False
        self._busy = False
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"<MessageWatcher of mailbox {self._options.mailbox_id}>"

    def __aiter__(self) -> MessageWatcher:
        return self

    async def __anext__(self) -> MessageSummary:
        if self._finished:
            raise StopAsyncIteration
        if self._busy:
            raise errors.InvalidArgumentError(
                "this watcher is already waiting for a message: iterate it from one task"
            )
        self._busy = True
        self._loop = asyncio.get_running_loop()
        try:
            return await self._next()
        except _Stopped:
            self._finished = True
            raise StopAsyncIteration from None
        except asyncio.CancelledError:
            raise  # the state is consistent: iterating again goes on
        except BaseException:
            self._finished = True
            raise
        finally:
            self._busy = False

    async def commit(self) -> None:
        """The last message yielded is handled: move past it and save now (else a no-op)."""
        pending, self._pending = self._pending, None
        if pending is None or self._state is None:
            return
        date, msg, now = pending
        self._state.handle(msg.id, date, now)
        await self._save(self._state)

    def stop(self) -> None:
        """End the iteration at the next ``__anext__`` (after committing); signal-handler safe."""
        self._stopping = True
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to wake
                loop.call_soon_threadsafe(self._wake.set)

    async def aclose(self) -> None:
        """End the iteration now, without committing the message in hand."""
        self._finished = True
        self._pending = None
        self._batch.clear()

    async def _next(self) -> MessageSummary:
        await self.commit()
        while True:
            if self._stopping:
                raise _Stopped
            state = self._state or await self._start()
            msg = self._take(state)
            if msg is not None:
                return msg
            if self._reach is not None:  # a sweep's mail is all handled: later ones reach less
                state.swept(self._reach)
                self._reach = None
                await self._save(state)
            await self._fill(state)

    def _take(self, state: WatchState) -> MessageSummary | None:
        """The next message of the batch still to yield, or None when the batch is done."""
        while self._batch:
            date, msg = self._batch.popleft()
            if not state.is_new(msg.id, date):
                continue
            if date > self._now and not state.has_room_for_future(msg.id):
                self._held += 1
                continue
            self._pending = (date, msg, self._now)
            return msg
        if self._held:
            log.warning(
                "watch of mailbox %d: %d future-dated messages held back (over %d ranges of "
                "future-dated ids remembered); each is yielded once its date comes",
                self._options.mailbox_id,
                self._held,
                MAX_FUTURE_RANGES,
            )
            self._held = 0
        return None

    async def _start(self) -> WatchState:
        """Resume from the checkpoint, else start at ``since``, else at the gateway's "now"."""
        options, checkpoint = self._options, self._options.checkpoint
        saved = None if checkpoint is None else await checkpoint.load()
        if saved is not None:
            now = datetime.now(UTC)
            state = WatchState.from_json(saved, self._identity, now=now, overlap=options.overlap)
        elif options.since is not None:
            state = WatchState(options.since, options.since, options.since)
        else:
            state = await self._baseline()
        await self._save(state)
        self._state = state
        return state

    async def _baseline(self) -> WatchState:
        """A first run's start: what the mailbox holds from ``lookback`` before now is old."""
        lookback = self._options.lookback
        client = _whole_second(datetime.now(UTC))
        state = WatchState(client - lookback, client, client - lookback)
        now, batch, first = await self._poll_patiently(state, sweep=True)
        if now < client - _SECOND:
            # The gateway's clock is behind this machine's: reach back from its "now".
            start = _whole_second(now)
            state = WatchState(start - lookback, start, start - lookback)
            now, batch, first = await self._poll_patiently(state, sweep=True)
        for date, msg in batch:
            state.handled.add(msg.id, epoch(date))
        state.mark = now
        state.swept(first - lookback)
        return state

    async def _fill(self, state: WatchState) -> None:
        """Poll (a sweep when one is due) and take its new messages as the batch."""
        loop = asyncio.get_running_loop()
        sweep = loop.time() >= self._next_sweep
        now, batch, first = await self._poll_patiently(state, sweep=sweep)
        state.catch_up(now)
        self._now = now
        self._batch.extend(batch)
        if sweep:
            self._reach = first - self._options.lookback

    async def _save(self, state: WatchState) -> None:
        checkpoint = self._options.checkpoint
        if checkpoint is not None:
            await checkpoint.save(state.to_json(self._identity))

    async def _sleep_until(self, deadline: float) -> None:
        """Wait for the loop's clock to reach ``deadline``; ``stop()`` cuts the wait short."""
        delay = deadline - asyncio.get_running_loop().time()
        if delay > 0 and not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
        if self._stopping:
            raise _Stopped

    def _fatal(self, exc: errors.MailError) -> bool:
        # A 400 before any poll succeeded means the watch's own query is refused (a folder
        # the gateway rejects, say): polling again cannot help. Later ones may pass.
        first_refused = isinstance(exc, errors.InvalidParamsError) and not self._answered
        return isinstance(exc, _FATAL) or first_refused or self._is_closed()

    async def _poll_patiently(
        self, state: WatchState, *, sweep: bool
    ) -> tuple[datetime, list[tuple[datetime, MessageSummary]], datetime]:
        """Poll at the next slot; on a failure that may pass, back off and poll again."""
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            await self._sleep_until(self._next_poll)
            started = loop.time()
            try:
                result = await self._poll(state, sweep=sweep)
            except errors.MailError as exc:
                if self._fatal(exc):
                    raise
                failures += 1
                wait = _backoff(failures, self._options.poll_interval, exc)
                log.warning(
                    "watch of mailbox %d: poll failed (%s: %s); polling again in %.1f s",
                    self._options.mailbox_id,
                    type(exc).__name__,
                    exc,
                    wait,
                )
                self._next_poll = loop.time() + wait
                continue
            self._answered = True
            self._next_poll = started + self._options.poll_interval
            if sweep:
                self._next_sweep = started + self._options.sweep_interval
            return result

    async def _poll(
        self, state: WatchState, *, sweep: bool
    ) -> tuple[datetime, list[tuple[datetime, MessageSummary]], datetime]:
        """The gateway's "now", every listed message not yielded yet (oldest first), and the
        "now" of the poll's first answer."""
        overlap = self._options.overlap
        if sweep:
            date_from, date_to = state.sweep_from, None
        else:
            date_from = state.regular_from(overlap)
            # A second more: the Date header has whole seconds, a message's date may not.
            date_to = _whole_second(self._clock.estimate() + overlap + _SECOND, up=True)
        default = max(state.mark, state.sweep_from)
        fresh: dict[int, tuple[datetime, MessageSummary]] = {}
        self._clock.begin()
        async for msg in self._list_from(_whole_second(date_from), date_to, self._clock.observe):
            date = _date_of(msg, default)
            if msg.id not in fresh and state.is_new(msg.id, date):
                fresh[msg.id] = (date, msg)
        now = self._clock.latest or datetime.now(UTC)
        batch = sorted(fresh.values(), key=lambda pair: (pair[0], pair[1].id))
        return now, batch, self._clock.first or now
