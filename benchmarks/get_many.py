"""messages.get_many at default settings: time against the ideal at a rate limit, and memory.

1. Pace: the emulator (in a child process) limits the key to ``--rate``/s with a burst of
   ``--burst`` (20 and 20); the client is ``MailClient(rate_limit=RateLimit(per_second=R,
   burst=B))`` with every other setting at its default (``max_concurrency`` 32, default
   retries), and fetches ``--ids`` messages (3,000) with ``async for msg in
   mail.messages.get_many(ids)``. The gateway accepts at most ``B + R*T`` calls in ``T``
   seconds, so the ideal time is ``(ids - B) / R``; target: within 1.03x of it, zero 429s,
   every message in input order.
2. Memory: with no rate limit, ``get_many(range(...))`` over ``--memory-ids`` ids (100,000),
   keeping none of the results. RSS growth is sampled along the way and the peak of Python
   allocations (tracemalloc) is taken over the first tenth and over the whole run: flat means
   the whole run peaks no higher than its first tenth did (target: ratio < 1.5).

    python benchmarks/get_many.py [--ids 3000] [--rate 20] [--burst 20] [--memory-ids 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
from typing import Any

from _common import EmulatorProcess, current_rss_mb, write_json

from bitrix_mail_async import MailClient, RateLimit

TARGET_RATIO = 1.03
FLAT_RATIO = 1.5
FIRST_ID = 1001


async def pace(base_url: str, key: str, ids: int, rate: float, burst: int) -> dict[str, Any]:
    """Fetch ``ids`` messages at the matched rate limit; time, order, client-side 429s."""
    wanted = list(range(FIRST_ID, FIRST_ID + ids))
    got: list[int] = []
    async with MailClient(
        key, base_url=base_url, rate_limit=RateLimit(per_second=rate, burst=burst)
    ) as mail:
        started = time.perf_counter()
        async for msg in mail.messages.get_many(wanted):
            got.append(msg.id)
        elapsed = time.perf_counter() - started
        client_429 = mail.stats.rate_limited
    ideal = (ids - burst) / rate
    return {
        "ids": ids,
        "rate": rate,
        "elapsed": round(elapsed, 2),
        "ideal": round(ideal, 2),
        "ratio": round(elapsed / ideal, 4),
        "client_429": client_429,
        "in_order": got == wanted,
    }


async def memory(base_url: str, key: str, ids: int) -> dict[str, Any]:
    """Fetch ``ids`` messages unlimited, keeping none; RSS samples and tracemalloc peaks."""
    tenth = ids // 10
    samples: dict[int, float] = {}
    async with MailClient(key, base_url=base_url, rate_limit=None) as mail:
        await mail.messages.get(FIRST_ID)  # warm-up: session, imports, decoder
        gc.collect()
        rss0 = current_rss_mb()
        tracemalloc.start()
        started = time.perf_counter()
        seen = 0
        first_peak = 0
        async for _msg in mail.messages.get_many(range(FIRST_ID, FIRST_ID + ids)):
            seen += 1
            if seen == tenth:
                first_peak = tracemalloc.get_traced_memory()[1]
            if seen % tenth == 0:
                samples[seen] = round(current_rss_mb() - rss0, 2)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {
        "ids": seen,
        "elapsed": round(elapsed, 1),
        "rss_growth_at": samples,
        "peak_first_tenth_mb": round(first_peak / 2**20, 3),
        "peak_mb": round(peak / 2**20, 3),
        "peak_ratio": round(peak / first_peak, 3) if first_peak else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--memory-ids", type=int, default=100_000)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)

    with EmulatorProcess(messages=args.ids, rate=args.rate, burst=args.burst) as emu:
        paced = asyncio.run(pace(emu.base_url, emu.api_key, args.ids, args.rate, args.burst))
        paced["server_429"] = emu.stats()["rate_limited"]
    pace_ok = paced["ratio"] <= TARGET_RATIO and paced["server_429"] == 0 and paced["in_order"]
    print(
        f"pace: {args.ids:,} ids at {args.rate:g}/s (burst {args.burst}), default settings: "
        f"{paced['elapsed']:.1f} s for {paced['ideal']:.1f} s ideal -> ratio "
        f"{paced['ratio']:.3f} (target <= {TARGET_RATIO}); 429s: {paced['server_429']} "
        f"answered, {paced['client_429']} seen; in input order: {paced['in_order']} -> "
        f"{'OK' if pace_ok else 'NOT MET'}",
        flush=True,
    )

    with EmulatorProcess(messages=args.memory_ids) as emu:
        mem = asyncio.run(memory(emu.base_url, emu.api_key, args.memory_ids))
    mem_ok = mem["ids"] == args.memory_ids and (mem["peak_ratio"] or 0) < FLAT_RATIO
    growth = ", ".join(f"{n:,}: {mb:+.1f} MB" for n, mb in mem["rss_growth_at"].items())
    print(
        f"memory: {mem['ids']:,} ids in {mem['elapsed']:.0f} s "
        f"({mem['ids'] / mem['elapsed']:,.0f}/s under tracemalloc); tracemalloc peak "
        f"{mem['peak_mb']:.2f} MB over the run, {mem['peak_first_tenth_mb']:.2f} MB over its "
        f"first tenth (ratio {mem['peak_ratio']}, flat if < {FLAT_RATIO}) -> "
        f"{'OK' if mem_ok else 'NOT MET'}\n  RSS growth: {growth}",
        flush=True,
    )
    write_json(args.json, {"pace": paced, "memory": mem, "met": pace_ok and mem_ok})
    return 0 if pace_ok and mem_ok else 2


if __name__ == "__main__":
    sys.exit(main())
