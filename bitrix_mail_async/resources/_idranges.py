"""A set of integer ids kept as ranges, each range with the newest date among its ids.

A watcher remembers the ids it handled. Ids are the gateway's integers and mostly come in
runs (one mailbox's mail gets consecutive ids when little else arrives meanwhile), so a run of
ten thousand handled messages is one range: three integers in memory and in a checkpoint,
however long the run. Each range keeps the newest date of its ids (epoch seconds), so whole
ranges are forgotten once even their newest message is older than any later poll can return.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import Final

__all__ = ["IdRanges"]

_MINUTE: Final = 60


class IdRanges:
    """Disjoint, non-adjacent ranges ``lo..hi`` of ids, sorted, each with a newest date."""

    __slots__ = ("_his", "_los", "_newest")

    def __init__(self) -> None:
        self._los: list[int] = []
        self._his: list[int] = []
        self._newest: list[int] = []

    def __len__(self) -> int:
        """The number of ranges (what memory and a checkpoint's size grow with)."""
        return len(self._los)

    def __contains__(self, msg_id: object) -> bool:
        if not isinstance(msg_id, int):
            return False
        at = bisect.bisect_right(self._los, msg_id) - 1
        return at >= 0 and self._his[at] >= msg_id

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        """Every range as ``(lo, hi, newest)``, lowest first."""
        return zip(self._los, self._his, self._newest, strict=True)

    def id_count(self) -> int:
        """How many ids the ranges hold."""
        return sum(hi - lo + 1 for lo, hi in zip(self._los, self._his, strict=True))

    def grows_with(self, msg_id: int) -> bool:
        """Whether adding ``msg_id`` would make a new range (it neither is in nor touches one)."""
        at = bisect.bisect_right(self._los, msg_id) - 1
        if at >= 0 and self._his[at] >= msg_id - 1:
            return False
        return not (at + 1 < len(self._los) and self._los[at + 1] == msg_id + 1)

    def add(self, msg_id: int, newest: int) -> None:
        """Add one id dated ``newest`` (epoch seconds)."""
        self.add_range(msg_id, msg_id, newest)

    def add_range(self, lo: int, hi: int, newest: int) -> None:
        """Add the ids ``lo..hi``; ranges they overlap or touch merge (the newest date wins)."""
        los, his, dates = self._los, self._his, self._newest
        start = bisect.bisect_left(his, lo - 1)  # the first range that ends at or after lo - 1
        end = bisect.bisect_right(los, hi + 1)  # past the last range that starts by hi + 1
        if start < end:
            lo = min(lo, los[start])
            hi = max(hi, his[end - 1])
            newest = max(newest, *dates[start:end])
        los[start:end] = [lo]
        his[start:end] = [hi]
        dates[start:end] = [newest]

    def remove_where(self, predicate: Callable[[int], bool]) -> list[tuple[int, int, int]]:
        """Drop the ranges whose newest date satisfies ``predicate``; return them."""
        kept: list[tuple[int, int, int]] = []
        dropped: list[tuple[int, int, int]] = []
        for item in self:
            (dropped if predicate(item[2]) else kept).append(item)
        if dropped:
            self._los = [lo for lo, _, _ in kept]
            self._his = [hi for _, hi, _ in kept]
            self._newest = [newest for _, _, newest in kept]
        return dropped

    def to_json(self, base: int) -> list[int]:
        """A flat list: per range the gap from the previous range's end (the first range: its
        start), its length less one, and its newest date in minutes after ``base`` (rounded up).

        Small numbers keep a checkpoint small: a range costs about ten bytes.
        """
        flat: list[int] = []
        previous = 0
        for lo, hi, newest in self:
            flat += (lo - previous, hi - lo, -((base - newest) // _MINUTE))
            previous = hi
        return flat

    @classmethod
    def from_json(cls, flat: object, base: int, *, limit: int) -> IdRanges:
        """Read :meth:`to_json`'s list; ValueError when it is not one (or holds over ``limit``)."""
        if not isinstance(flat, list) or len(flat) % 3:
            raise ValueError("id ranges must be a flat list of integer triples")
        if len(flat) > 3 * limit:
            raise ValueError(f"more than {limit} id ranges")
        if not all(type(value) is int for value in flat):
            raise ValueError("id ranges must hold integers only")
        ranges = cls()
        previous = 0
        for at in range(0, len(flat), 3):
            gap, span, minutes = flat[at : at + 3]
            lo = previous + gap
            if gap < (1 if at == 0 else 2) or span < 0:
                raise ValueError("id ranges must be sorted, disjoint and positive")
            previous = lo + span
            ranges._los.append(lo)
            ranges._his.append(previous)
            ranges._newest.append(base + minutes * _MINUTE)
        return ranges
