"""The checked arguments of ``mail.messages.watch()`` and their defaults."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any, Final

from bitrix_mail_async import _args, errors
from bitrix_mail_async._config import check_number
from bitrix_mail_async.resources._watch_state import (
    EARLIEST,
    LATEST,
    Checkpoint,
    FileCheckpoint,
)

__all__ = [
    "DEFAULT_LOOKBACK",
    "DEFAULT_OVERLAP",
    "DEFAULT_SWEEP_INTERVAL",
    "EARLIEST",
    "LATEST",
    "WatchOptions",
]

#: Seconds a regular poll reaches back behind the mark (and ahead of the gateway's "now").
DEFAULT_OVERLAP: Final = 600.0
#: Seconds a sweep reaches back: mail dated up to 3 days before it arrives (a relay that
#: retries for days, mail written offline over a weekend, a forward that keeps the date).
DEFAULT_LOOKBACK: Final = 3 * 86_400.0
#: Seconds between sweeps: late mail is already late, so a quarter of an hour more costs
#: little, while the sweep's requests stay a few percent of a 2 req/s key (see the README).
DEFAULT_SWEEP_INTERVAL: Final = 900.0
_MAX_LOOKBACK: Final = 365 * 86_400.0
_MAX_INTERVAL: Final = 86_400.0


def _bounded(name: str, value: object, *, allow_zero: bool = False, maximum: float) -> float:
    number = check_number(name, value, allow_zero=allow_zero, error=errors.InvalidArgumentError)
    if number > maximum:
        raise errors.InvalidArgumentError(f"{name} must be at most {maximum:g} seconds")
    return number


class WatchOptions:
    """A watch's checked arguments; :meth:`checked` raises before anything is sent."""

    __slots__ = (
        "checkpoint",
        "folder",
        "is_seen",
        "lookback",
        "mailbox_id",
        "overlap",
        "poll_interval",
        "since",
        "sweep_interval",
    )

    def __init__(self, **values: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, values[name])

    mailbox_id: int
    folder: str | None
    is_seen: bool | None
    poll_interval: float
    overlap: timedelta
    lookback: timedelta
    sweep_interval: float
    checkpoint: Checkpoint | None
    since: datetime | None

    @classmethod
    def checked(cls, mailbox_id: object, **kw: object) -> WatchOptions:
        """Check every argument of ``watch()``; InvalidArgumentError on the first bad one.

        Keywords: folder, is_seen, poll_interval, overlap, lookback, sweep_interval,
        checkpoint, since. Intervals are at most a day, ``lookback`` at most 365 days and at
        least ``overlap``.
        """
        if kw["is_seen"] is not None:
            _args.flag("is_seen", kw["is_seen"])
        overlap = _bounded("overlap", kw["overlap"], allow_zero=True, maximum=_MAX_LOOKBACK)
        lookback = _bounded("lookback", kw["lookback"], allow_zero=True, maximum=_MAX_LOOKBACK)
        if lookback < overlap:
            raise errors.InvalidArgumentError(
                f"lookback ({lookback:g} s) must be at least overlap ({overlap:g} s)"
            )
        return cls(
            mailbox_id=_args.positive_id("mailbox_id", mailbox_id),
            folder=None if kw["folder"] is None else _args.single_line("folder", kw["folder"]),
            is_seen=None if kw["is_seen"] is None else kw["is_seen"] is True,
            poll_interval=_bounded("poll_interval", kw["poll_interval"], maximum=_MAX_INTERVAL),
            overlap=timedelta(seconds=overlap),
            lookback=timedelta(seconds=lookback),
            sweep_interval=_bounded("sweep_interval", kw["sweep_interval"], maximum=_MAX_INTERVAL),
            checkpoint=_checkpoint(kw["checkpoint"]),
            since=None if kw["since"] is None else _since(kw["since"]),
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
    if not EARLIEST <= parsed <= LATEST:
        raise errors.InvalidArgumentError("since must be between 1970 and 9000")
    return parsed
