"""Where a watcher stands (:class:`WatchState`) and where it keeps that (checkpoints).

The state is small and plain JSON: the mark (the newest date handled, never past the
gateway's "now"), how far back the next sweep reaches, the ids handled since then as
:class:`~bitrix_mail_async.resources._idranges.IdRanges`, and the ids of future-dated mail
already yielded (a bounded number of ranges). Version 1 checkpoints (one id and date per
message within ``overlap`` of the mark) are read and migrated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, NoReturn, Protocol, runtime_checkable

from bitrix_mail_async import errors
from bitrix_mail_async.resources._idranges import IdRanges

__all__ = ["EARLIEST", "LATEST", "MAX_FUTURE_RANGES", "Checkpoint", "FileCheckpoint", "WatchState"]

log = logging.getLogger("bitrix_mail_async.watch")

_VERSION: Final = 2
#: Ranges of future-dated ids a watcher remembers; past it, further future-dated mail is held
#: back (WARNING) until its date comes. A checkpoint then holds at most ~15 KB of them.
MAX_FUTURE_RANGES: Final = 1_000
#: Ranges of handled ids a checkpoint may hold (about 10 MB of JSON): beyond it, it is garbage.
_MAX_HANDLED_RANGES: Final = 1_000_000
#: A checkpoint file larger than this is not a watcher's state.
MAX_CHECKPOINT_BYTES: Final = 16 * 1024 * 1024
_MAX_QUOTED: Final = 80
#: The dates a watcher computes with (and the gateway "now" it believes): far from the ends
#: of datetime, so that taking a lookback or adding an overlap cannot overflow.
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9000, 1, 1, tzinfo=UTC)


@runtime_checkable
class Checkpoint(Protocol):
    """Where a watcher keeps its state: any object with these two coroutines."""

    async def load(self) -> dict[str, Any] | None:
        """The saved state, or None when nothing was saved yet."""

    async def save(self, state: dict[str, Any]) -> None:
        """Store ``state`` (plain JSON) so that a later :meth:`load` returns it."""


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _no_float(text: str) -> NoReturn:
    raise ValueError("a watcher's state holds no fractional numbers")


class FileCheckpoint:
    """A watcher's state in a JSON file, replaced atomically (write, fsync, rename) each save.

    A missing file means "nothing saved yet"; a file that is not a watcher's JSON (not UTF-8,
    not JSON, numbers out of range, nested too deep, over 16 MiB) raises
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

    def _refuse(self, why: str) -> NoReturn:
        raise errors.InvalidArgumentError(
            f"checkpoint {_quoted(str(self.path))} is not a watcher's JSON state ({why}); "
            "delete it to start afresh"
        )

    def _read(self) -> dict[str, Any] | None:
        try:
            with self.path.open("rb") as source:
                raw = source.read(MAX_CHECKPOINT_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:  # a directory, no permission: not something to start afresh on
            raise errors.InvalidArgumentError(
                f"checkpoint {_quoted(str(self.path))} cannot be read: {_quoted(str(exc))}"
            ) from exc
        if len(raw) > MAX_CHECKPOINT_BYTES:
            self._refuse(f"over {MAX_CHECKPOINT_BYTES} bytes")
        try:
            data = json.loads(
                raw.decode("utf-8"), parse_constant=_no_constant, parse_float=_no_float
            )
        except UnicodeDecodeError:
            self._refuse("not UTF-8")
        except RecursionError:
            self._refuse("nested too deep")
        except ValueError as exc:  # JSONDecodeError, too many digits, a float or NaN
            self._refuse(_quoted(str(exc)))
        if not isinstance(data, dict):
            self._refuse(f"a JSON {type(data).__name__}, not an object")
        return data

    def _write(self, text: str) -> None:
        try:
            self._replace(text)
        except OSError as exc:
            raise errors.InvalidArgumentError(
                f"checkpoint {_quoted(str(self.path))} cannot be written: {_quoted(str(exc))}"
            ) from exc

    def _replace(self, text: str) -> None:
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


def _quoted(value: object) -> str:
    """A bounded repr for error texts: a checkpoint may hold anything."""
    text = repr(value)
    return text if len(text) <= _MAX_QUOTED else text[: _MAX_QUOTED - 3] + "..."


def epoch(value: datetime) -> int:
    """Whole epoch seconds of an aware datetime, rounded up (so a range is kept, not lost)."""
    seconds = value.timestamp()
    whole = int(seconds)
    return whole + 1 if seconds > whole else whole


class WatchState:
    """Where a watcher stands; every date is aware.

    - ``floor``: nothing dated earlier is ever yielded (``since``, or what the first run took
      as already there);
    - ``mark``: the newest date handled, never past the gateway's "now";
    - ``sweep_from``: the ``dateFrom`` of the next sweep; ids handled from there on are kept;
    - ``handled``: the ids handled (dated up to "now" when handled);
    - ``future``: the ids of future-dated mail yielded, kept until "now" passes their date.
    """

    __slots__ = ("floor", "future", "handled", "mark", "sweep_from")

    def __init__(self, floor: datetime, mark: datetime, sweep_from: datetime) -> None:
        self.floor = floor
        self.mark = mark
        self.sweep_from = max(floor, sweep_from)
        self.handled = IdRanges()
        self.future = IdRanges()

    def regular_from(self, overlap: timedelta) -> datetime:
        """The ``dateFrom`` of a regular poll."""
        return max(self.sweep_from, self.mark - overlap)

    def is_new(self, msg_id: int, date: datetime) -> bool:
        """Whether a listed message is still to be yielded."""
        return date >= self.sweep_from and msg_id not in self.handled and msg_id not in self.future

    def has_room_for_future(self, msg_id: int) -> bool:
        """Whether one more future-dated id fits in what is remembered."""
        return len(self.future) < MAX_FUTURE_RANGES or not self.future.grows_with(msg_id)

    def handle(self, msg_id: int, date: datetime, now: datetime) -> None:
        """Move past a message; one dated after ``now`` (the gateway's) leaves the mark alone."""
        if date > now:
            self.future.add(msg_id, epoch(date))
            return
        self.handled.add(msg_id, epoch(date))
        self.mark = max(self.mark, date)

    def catch_up(self, now: datetime) -> None:
        """``now`` is the gateway's: future ids now past move to ``handled``; the mark <= now."""
        self.mark = min(self.mark, now)
        cut = now.timestamp()
        for lo, hi, newest in self.future.remove_where(lambda newest: newest <= cut):
            self.handled.add_range(lo, hi, newest)

    def swept(self, reach: datetime) -> None:
        """A sweep is done and its mail handled: later ones reach back to ``reach``."""
        self.sweep_from = max(self.sweep_from, reach)
        cut = self.sweep_from.timestamp()
        self.handled.remove_where(lambda newest: newest < cut)

    def to_json(self, identity: dict[str, Any]) -> dict[str, Any]:
        """The state as plain JSON for a checkpoint."""
        base = int(self.sweep_from.timestamp())
        return {
            "version": _VERSION,
            **identity,
            "floor": self.floor.isoformat(),
            "mark": self.mark.isoformat(),
            "sweep_from": self.sweep_from.isoformat(),
            "handled": self.handled.to_json(base),
            "future": self.future.to_json(base),
        }

    @classmethod
    def from_json(
        cls, data: object, identity: dict[str, Any], *, now: datetime, overlap: timedelta
    ) -> WatchState:
        """Read a checkpoint's state (version 1 is migrated); InvalidArgumentError if unusable.

        ``now`` (the machine's clock) caps a version 1 mark that a future-dated message pushed
        ahead; ``overlap`` is how far back version 1 remembered ids.
        """
        if not isinstance(data, dict):
            raise errors.InvalidArgumentError(
                f"checkpoint.load() must return a dict or None, got {type(data).__name__}"
            )
        mismatch = [k for k, v in identity.items() if data.get(k) != v]
        if mismatch:
            found = {k: _quoted(data.get(k)) for k in mismatch}
            raise errors.InvalidArgumentError(
                f"the checkpoint belongs to another watch ({found}, expected {identity})"
            )
        try:
            version = data["version"]
            if version == 1:
                return cls._from_version_1(data, now, overlap)
            if version != _VERSION:
                raise ValueError(f"version {_quoted(version)}")
            state = cls(_aware(data["floor"]), _aware(data["mark"]), _aware(data["sweep_from"]))
            base = int(state.sweep_from.timestamp())
            state.handled = IdRanges.from_json(data["handled"], base, limit=_MAX_HANDLED_RANGES)
            state.future = IdRanges.from_json(data["future"], base, limit=MAX_FUTURE_RANGES)
            return state
        except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise errors.InvalidArgumentError(
                f"the checkpoint's state is unreadable: {_quoted(str(exc))}"
            ) from None

    @classmethod
    def _from_version_1(cls, data: dict[str, Any], now: datetime, overlap: timedelta) -> WatchState:
        # Version 1 knew the ids handled within ``overlap`` of its mark, so the sweeps of the
        # migrated state reach no further back than that: older mail was handled before.
        floor, high_water = _aware(data["floor"]), _aware(data["high_water"])
        seen = data["seen"]
        if not isinstance(seen, list) or len(seen) > _MAX_HANDLED_RANGES:
            raise ValueError("seen must be a list of [id, date] pairs")
        if high_water > now:
            log.warning(
                "checkpoint of version 1: its mark %s is in the future (a future-dated "
                "message); mail that arrived since may have been missed; resuming at %s",
                high_water.isoformat(),
                now.isoformat(),
            )
        mark = min(high_water, now)
        state = cls(floor, mark, mark - overlap)
        for pair in seen:
            msg_id, date = pair
            if type(msg_id) is not int or msg_id < 1:
                raise ValueError(f"id {_quoted(msg_id)}")
            when = _aware(date)
            if when > now and not state.has_room_for_future(msg_id):
                continue  # held back: yielded once its date comes
            state.handle(msg_id, when, now)
        state.mark = mark
        return state


def _aware(text: object) -> datetime:
    if not isinstance(text, str):
        raise TypeError("a date must be an ISO 8601 string")
    value = datetime.fromisoformat(text)
    if value.utcoffset() is None:
        raise ValueError(f"date {_quoted(text)} has no offset")
    # Dates so far off that the lookback cannot be taken from them are not a state's.
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"date {_quoted(text)} is out of range")
    return value
