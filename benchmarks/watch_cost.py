"""What a watcher at its defaults costs: requests per second against a 2 req/s key.

A mailbox receives ``--per-day`` messages a day (3,000), evenly; it already holds that rate's
mail for the ``lookback`` (3 days) and a day more. ``mail.messages.watch(1)`` runs with its
defaults: ``overlap`` 600 s, ``lookback`` 3 days, ``poll_interval`` 30 s, ``sweep_interval``
900 s. Time is accelerated ``--scale`` times (240: a virtual hour in 15 real seconds): the
emulator's wall clock (its HTTP ``Date`` header and the date of each delivery) runs that much
faster, and the two intervals, which the watcher measures on the event loop, are divided by
it. Dates (``overlap``, ``lookback``) are the gateway's, so they are not scaled. After the
start (the first run's reading of the lookback window) and one sweep interval, the requests
the emulator receives over ``--hours`` virtual hours are counted, split into regular polls
and sweep pages, and set against the 2 req/s of an ordinary key. Every delivered message is
checked to have been yielded once. The emulator runs in a thread of this process (the figure
is a count of requests, not a CPU time); the client has no rate limit of its own here.

Also measured: the checkpoint at the end (bytes) and the cost of preparing one save
(its ``json.dumps``; building the state and the file write and fsync come on top).

    python benchmarks/watch_cost.py [--per-day 3000] [--hours 6] [--scale 240]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import write_json

from bitrix_mail_async import MailClient
from bitrix_mail_async.resources._watch_options import (
    DEFAULT_LOOKBACK,
    DEFAULT_OVERLAP,
    DEFAULT_SWEEP_INTERVAL,
)
from bitrix_mail_async.testing import MailEmulator

KEY_RATE = 2.0  # requests/s of an ordinary key (the contract's REST bucket)
POLL_INTERVAL = 30.0  # watch()'s default
PAGE = 200


class SizedCheckpoint:
    """Keeps the last state saved; records its size and the cost of preparing it."""

    def __init__(self) -> None:
        self.last: dict[str, Any] | None = None
        self.saves = 0
        self.bytes = 0
        self.dump_seconds = 0.0

    async def load(self) -> dict[str, Any] | None:
        return self.last

    async def save(self, state: dict[str, Any]) -> None:
        started = time.perf_counter()
        text = json.dumps(state, separators=(",", ":"))
        self.dump_seconds += time.perf_counter() - started
        self.saves += 1
        self.bytes = len(text)
        self.last = state


def list_requests(emu: MailEmulator) -> tuple[int, int]:
    """(regular polls, sweep pages) the emulator received so far."""
    regular = sweep = 0
    for request in list(emu.requests):
        if request.path == "/mail/messages":
            if "dateTo" in request.query:
                regular += 1
            else:
                sweep += 1
    return regular, sweep


def expected(per_day: float) -> dict[str, float]:
    """The request rate the design predicts at the defaults."""
    window = (DEFAULT_LOOKBACK + DEFAULT_SWEEP_INTERVAL) * per_day / 86_400
    pages = math.floor(window / PAGE) + 1  # a full last page needs one more request
    rate = 1 / POLL_INTERVAL + pages / DEFAULT_SWEEP_INTERVAL
    return {"sweep_pages": pages, "req_per_s": rate, "share_of_key": rate / KEY_RATE}


class Clock:
    """The emulator's wall clock, ``scale`` times faster than real time."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.origin = datetime.now(UTC).replace(microsecond=0)
        self.started = time.monotonic()

    def __call__(self) -> datetime:
        return self.origin + timedelta(seconds=(time.monotonic() - self.started) * self.scale)

    async def sleep(self, virtual_seconds: float) -> None:
        await asyncio.sleep(virtual_seconds / self.scale)


def preload(emulator: MailEmulator, clock: Clock, spacing: float) -> None:
    """The mailbox's last ``lookback`` and a day more, oldest first (ids rise with dates)."""
    history = int((DEFAULT_LOOKBACK + 86_400) / spacing)
    for k in range(history, 0, -1):
        emulator.state.add_message(
            subject="old", date=clock.origin - timedelta(seconds=k * spacing)
        )


async def measure(
    mail: MailClient, emulator: MailEmulator, clock: Clock, spacing: float, hours: float
) -> dict[str, Any]:
    """Run the watcher and the deliveries; count the requests over ``hours`` virtual hours."""
    delivered: list[int] = []
    yielded: list[int] = []
    checkpoint = SizedCheckpoint()
    watcher = mail.messages.watch(
        1,
        poll_interval=POLL_INTERVAL / clock.scale,
        sweep_interval=DEFAULT_SWEEP_INTERVAL / clock.scale,
        checkpoint=checkpoint,
    )

    async def consume() -> None:
        async for msg in watcher:
            yielded.append(msg.id)

    async def deliver() -> None:
        while True:
            await clock.sleep(spacing)
            delivered.append(emulator.deliver(subject="new")["id"])

    tasks = [asyncio.create_task(consume()), asyncio.create_task(deliver())]
    await clock.sleep(DEFAULT_SWEEP_INTERVAL * 1.5)  # the start, then a sweep interval
    first, measure_from = list_requests(emulator), clock()
    await clock.sleep(hours * 3600)
    last, measured = list_requests(emulator), (clock() - measure_from).total_seconds()
    tasks[1].cancel()
    await clock.sleep(3 * POLL_INTERVAL)  # the last deliveries come through
    watcher.stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    regular, sweep = last[0] - first[0], last[1] - first[1]
    rate = (regular + sweep) / measured
    return {
        "virtual_hours": round(measured / 3600, 2),
        "regular_polls": regular,
        "sweep_pages": sweep,
        "req_per_s": round(rate, 4),
        "share_of_key": round(rate / KEY_RATE, 4),
        "delivered": len(delivered),
        "yielded_once": len(yielded) == len(set(yielded)),
        "missing": len(set(delivered) - set(yielded)),
        "checkpoint_bytes": checkpoint.bytes,
        "save_prep_us": round(1e6 * checkpoint.dump_seconds / max(checkpoint.saves, 1), 1),
    }


async def run(per_day: float, hours: float, scale: float) -> dict[str, Any]:
    """The whole measurement; its figures."""
    clock = Clock(scale)
    spacing = 86_400 / per_day
    emulator = MailEmulator(messages=0, wall_clock=clock)
    preload(emulator, clock, spacing)
    with emulator.in_thread():
        key, url = emulator.api_key, emulator.base_url
        async with MailClient(key, base_url=url, rate_limit=None) as mail:
            figures = await measure(mail, emulator, clock, spacing, hours)
    return {
        "per_day": per_day,
        "scale": scale,
        **figures,
        "expected": {k: round(v, 4) for k, v in expected(per_day).items()},
        "overlap": DEFAULT_OVERLAP,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-day", type=float, default=3000.0)
    parser.add_argument("--hours", type=float, default=6.0, help="virtual hours measured")
    parser.add_argument("--scale", type=float, default=240.0, help="virtual s per real s")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.per_day, args.hours, args.scale))
    exp = result["expected"]
    print(
        f"mailbox of {result['per_day']:,.0f} messages/day, watch() at its defaults, "
        f"{result['virtual_hours']} virtual hours at x{result['scale']:g}"
    )
    print(
        f"  requests: {result['regular_polls']} regular polls + {result['sweep_pages']} sweep "
        f"pages = {result['req_per_s']:.4f} req/s = {result['share_of_key']:.1%} of a "
        f"{KEY_RATE:g} req/s key"
    )
    print(
        f"  expected by the design: {exp['req_per_s']:.4f} req/s ({exp['share_of_key']:.1%}), "
        f"{exp['sweep_pages']:.0f} pages a sweep"
    )
    print(
        f"  delivered {result['delivered']}, each yielded once: {result['yielded_once']}, "
        f"missing {result['missing']}"
    )
    print(
        f"  checkpoint {result['checkpoint_bytes']:,} bytes; preparing a save "
        f"{result['save_prep_us']} us"
    )
    write_json(args.json, result)
    return 0 if result["missing"] == 0 and result["yielded_once"] else 1


if __name__ == "__main__":
    sys.exit(main())
