"""Watching a mailbox (``mail.messages.watch()``): polling state, checkpoints, the watch loop.

The gateway has no mail events (its only event stream is the bot API's), so a watcher polls
``GET /mail/messages`` with ``dateFrom``. The list's order is not documented, so:

- a poll asks for every message from ``high-water mark - overlap`` on and reads all its pages;
- the high-water mark is the newest date handled; ids handled within ``overlap`` of it are
  remembered so that a message seen again near the boundary is yielded once, and older ones
  are forgotten: memory is O(messages per ``overlap``) however long the watcher runs;
- new messages are yielded oldest first (date, then id), so the mark only moves forward.

A message counts as handled when the loop asks for the next one: only then do the state and
the checkpoint move past it, so a crash repeats at most the message being handled and never
skips one. Failures that pass (429s and 5xx after the client's own retries, timeouts, a
gateway outage, an answer that cannot be read) make the watcher back off and go on;
authentication, permission and not-found errors end it. It starts no task of its own, so a
``break`` or a cancellation leaves nothing running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import tempfile
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

from bitrix_mail_async import _args, errors
from bitrix_mail_async._config import check_number
from bitrix_mail_async.models import MessageSummary

__all__ = ["DEFAULT_OVERLAP", "Checkpoint", "FileCheckpoint", "WatchOptions", "watch_messages"]

log = logging.getLogger("bitrix_mail_async.watch")

#: Seconds a poll reaches back behind the newest date handled. Mail dates come from the
#: sender (the Date header), so a message can arrive dated a little in the past; one dated
#: further back than this behind the newest handled one is not seen.
DEFAULT_OVERLAP: Final = 600.0
_STATE_VERSION: Final = 1
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

#: Builds the pager of one poll: every message from ``date_from`` on (the resource's list).
ListFrom = Callable[[datetime], AsyncIterable[MessageSummary]]


@runtime_checkable
class Checkpoint(Protocol):
    """Where a watcher keeps its state: any object with these two coroutines."""

    async def load(self) -> dict[str, Any] | None:
        """The saved state, or None when nothing was saved yet."""

    async def save(self, state: dict[str, Any]) -> None:
        """Store ``state`` (plain JSON) so that a later :meth:`load` returns it."""


class FileCheckpoint:
    """A watcher's state in a JSON file, replaced atomically (write, fsync, rename) each save.

    A missing file means "nothing saved yet"; a file that is not a watcher's JSON raises
    :class:`errors.InvalidArgumentError` rather than silently starting afresh.
    Example: ``mail.messages.watch(1, checkpoint=FileCheckpoint("bot-state.json"))`` (a path
    given as ``checkpoint=`` is wrapped in one).
    """

    __slots__ = ("path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileCheckpoint({str(self.path)!r})"

    async def load(self) -> dict[str, Any] | None:
        """The saved state, or None when the file does not exist."""
        return await asyncio.to_thread(self._read)

    async def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` to a temporary file beside the target, then rename it over it.

        A save that has begun is finished even when the caller is cancelled meanwhile (a bot
        stopping right after it asked for the next message still moves past the last one):
        the cancellation then takes effect once the file is written.
        """
        text = json.dumps(state, separators=(",", ":"))
        write = asyncio.ensure_future(asyncio.to_thread(self._write, text))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            await asyncio.wait({write})
            if not write.cancelled() and write.exception() is not None:
                log.error("checkpoint %s not saved: %s", self.path, write.exception())
            raise

    def _read(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise errors.InvalidArgumentError(
                f"checkpoint {str(self.path)!r} is not a watcher's JSON state; "
                "delete it to start afresh"
            )
        return data

    def _write(self, text: str) -> None:
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        # The rename itself survives a power loss only once the directory is synced.
        with contextlib.suppress(OSError):
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


class WatchOptions:
    """A watch's checked arguments; :meth:`checked` raises before anything is sent."""

    __slots__ = (
        "checkpoint",
        "folder",
        "is_seen",
        "mailbox_id",
        "overlap",
        "poll_interval",
        "since",
    )

    def __init__(
        self,
        *,
        mailbox_id: int,
        folder: str | None,
        is_seen: bool | None,
        poll_interval: float,
        overlap: timedelta,
        checkpoint: Checkpoint | None,
        since: datetime | None,
    ) -> None:
        self.mailbox_id = mailbox_id
        self.folder = folder
        self.is_seen = is_seen
        self.poll_interval = poll_interval
        self.overlap = overlap
        self.checkpoint = checkpoint
        self.since = since

    @classmethod
    def checked(
        cls,
        mailbox_id: object,
        *,
        folder: object,
        is_seen: object,
        poll_interval: object,
        overlap: object,
        checkpoint: object,
        since: object,
    ) -> WatchOptions:
        """Check every argument of ``watch()``; InvalidArgumentError on the first bad one."""
        bad = errors.InvalidArgumentError
        if is_seen is not None:
            _args.flag("is_seen", is_seen)
        return cls(
            mailbox_id=_args.positive_id("mailbox_id", mailbox_id),
            folder=None if folder is None else _args.single_line("folder", folder),
            is_seen=is_seen is True if is_seen is not None else None,
            poll_interval=check_number("poll_interval", poll_interval, error=bad),
            overlap=timedelta(seconds=check_number("overlap", overlap, allow_zero=True, error=bad)),
            checkpoint=_checkpoint(checkpoint),
            since=None if since is None else _since(since),
        )

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match: the same mailbox and filters."""
        return {"mailbox_id": self.mailbox_id, "folder": self.folder, "is_seen": self.is_seen}


def _checkpoint(value: object) -> Checkpoint | None:
    if value is None or isinstance(value, Checkpoint):
        return value
    if isinstance(value, str | os.PathLike):
        return FileCheckpoint(value)
    raise errors.InvalidArgumentError(
        "checkpoint must be a file path or an object with async load() and save(state), "
        f"got {type(value).__name__}"
    )


def _since(value: object) -> datetime:
    text = _args.iso_datetime("since", value)
    parsed = datetime.fromisoformat(text)
    if parsed.utcoffset() is None:
        raise errors.InvalidArgumentError("since must carry a UTC offset")
    return parsed


def _date_of(msg: MessageSummary, default: datetime) -> datetime:
    # The contract gives list dates with an offset; a naive one is read as UTC, and a message
    # without a date sits at the current mark (it is remembered for one overlap from there).
    if msg.date is None:
        return default
    return msg.date if msg.date.utcoffset() is not None else msg.date.replace(tzinfo=UTC)


class WatchState:
    """Where a watcher stands: the newest date handled, and the ids handled near it."""

    __slots__ = ("floor", "high_water", "seen")

    def __init__(self, floor: datetime, high_water: datetime, seen: dict[int, datetime]) -> None:
        self.floor = floor  # nothing older is ever yielded (``since``, or start - overlap)
        self.high_water = high_water
        self.seen = seen

    def bound(self, overlap: timedelta) -> datetime:
        """The ``dateFrom`` of the next poll."""
        return max(self.floor, self.high_water - overlap)

    def handled(self, msg_id: int, date: datetime, overlap: timedelta) -> None:
        """Move past a message: remember its id, raise the mark, forget what fell behind."""
        self.seen[msg_id] = date
        if date > self.high_water:
            self.high_water = date
            bound = self.bound(overlap)
            for stale in [i for i, d in self.seen.items() if d < bound]:
                del self.seen[stale]

    def to_json(self, identity: dict[str, Any]) -> dict[str, Any]:
        """The state as plain JSON for a checkpoint."""
        return {
            "version": _STATE_VERSION,
            **identity,
            "floor": self.floor.isoformat(),
            "high_water": self.high_water.isoformat(),
            "seen": [[i, d.isoformat()] for i, d in self.seen.items()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], identity: dict[str, Any]) -> WatchState:
        """Read a checkpoint's state; InvalidArgumentError when it is not one of this watch."""
        if not isinstance(data, dict):
            raise errors.InvalidArgumentError(
                f"checkpoint.load() must return a dict or None, got {type(data).__name__}"
            )
        mismatch = {k: data.get(k) for k, v in identity.items() if data.get(k) != v}
        if mismatch:
            raise errors.InvalidArgumentError(
                f"the checkpoint belongs to another watch ({mismatch}, expected {identity})"
            )
        try:
            if data["version"] != _STATE_VERSION:
                raise ValueError(f"version {data['version']!r}")
            seen = {int(i): _aware(d) for i, d in data["seen"]}
            return cls(_aware(data["floor"]), _aware(data["high_water"]), seen)
        except (KeyError, TypeError, ValueError) as exc:
            raise errors.InvalidArgumentError(
                f"the checkpoint's state is unreadable: {exc}"
            ) from None


def _aware(text: object) -> datetime:
    if not isinstance(text, str):
        raise TypeError("a date must be an ISO 8601 string")
    value = datetime.fromisoformat(text)
    if value.utcoffset() is None:
        raise ValueError(f"date {text!r} has no offset")
    return value


def _backoff(failures: int, poll_interval: float, exc: errors.MailError) -> float:
    cap = max(poll_interval, min(poll_interval * _BACKOFF_INTERVALS, _BACKOFF_CAP))
    delay = min(cap, poll_interval * 2.0 ** (failures - 1))
    delay = random.uniform(delay / 2, delay)
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float) and retry_after > delay:
        delay = min(float(retry_after), _BACKOFF_CAP)
    return delay


class _Watcher:
    """One watch: its state, its checkpoint and the pacing of its polls."""

    def __init__(
        self, list_from: ListFrom, options: WatchOptions, is_closed: Callable[[], bool]
    ) -> None:
        self._list_from = list_from
        self._options = options
        self._is_closed = is_closed
        self._identity = options.identity()
        self._next_poll = 0.0

    async def run(self) -> AsyncGenerator[MessageSummary, None]:
        """Yield each new message once, oldest first, forever (see the module docstring)."""
        state = await self._start()
        overlap = self._options.overlap
        while True:
            for date, msg in await self._poll_patiently(state):
                yield msg
                # The loop asked for the next message: the previous one is handled.
                state.handled(msg.id, date, overlap)
                await self._save(state)

    async def _start(self) -> WatchState:
        """Resume from the checkpoint, else start at ``since``, else at "now"."""
        options, checkpoint = self._options, self._options.checkpoint
        saved = None if checkpoint is None else await checkpoint.load()
        if saved is not None:
            return WatchState.from_json(saved, self._identity)
        if options.since is not None:
            state = WatchState(options.since, options.since, {})
        else:
            # "Now" is this machine's clock; what the mailbox holds from (now - overlap) on
            # is taken as already there, so that mail dated a little early is not lost.
            now = datetime.now(UTC).replace(microsecond=0)
            state = WatchState(now - options.overlap, now, {})
            for date, msg in await self._poll_patiently(state):
                state.handled(msg.id, date, options.overlap)
        await self._save(state)
        return state

    async def _save(self, state: WatchState) -> None:
        checkpoint = self._options.checkpoint
        if checkpoint is not None:
            await checkpoint.save(state.to_json(self._identity))

    async def _poll_patiently(self, state: WatchState) -> list[tuple[datetime, MessageSummary]]:
        """Poll at the next slot; on a failure that may pass, back off and poll again."""
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            delay = self._next_poll - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            started = loop.time()
            try:
                batch = await self._poll(state)
            except errors.MailError as exc:
                if isinstance(exc, _FATAL) or self._is_closed():
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
            self._next_poll = started + self._options.poll_interval
            return batch

    async def _poll(self, state: WatchState) -> list[tuple[datetime, MessageSummary]]:
        """Every message from the bound on that was not handled yet, oldest first."""
        bound = state.bound(self._options.overlap)
        fresh: dict[int, tuple[datetime, MessageSummary]] = {}
        # Whole seconds, rounded down: the query may only reach further back, never less.
        async for msg in self._list_from(bound.replace(microsecond=0)):
            if msg.id in state.seen or msg.id in fresh:
                continue
            date = _date_of(msg, state.high_water)
            # Older than asked for: judged by an earlier poll (or before the start) already.
            if date >= bound:
                fresh[msg.id] = (date, msg)
        return sorted(fresh.values(), key=lambda pair: (pair[0], pair[1].id))


def watch_messages(
    list_from: ListFrom, options: WatchOptions, *, is_closed: Callable[[], bool]
) -> AsyncGenerator[MessageSummary, None]:
    """The async iterator ``mail.messages.watch()`` returns (see the module docstring)."""
    return _Watcher(list_from, options, is_closed).run()
