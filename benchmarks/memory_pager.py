"""Memory of iterating 100,000 messages through the pager: O(page), not O(mailbox).

The emulator (in a child process) is seeded with ``--messages`` (170,000: mailbox 1 then holds
about 102,000). This process iterates ``async for msg in mail.messages.list(1, page_size=200)``
until ``--items`` messages were seen, keeping none of them, twice:

1. plain: RSS (``/proc/self/statm``) is sampled at checkpoints and the peak RSS growth is
   ``getrusage`` peak after the run minus RSS before it; target < 30 MB;
2. under ``tracemalloc``: the peak of Python allocations during the run, next to the size of
   one decoded page, to show that the peak is a couple of pages whatever the item count.

    python benchmarks/memory_pager.py [--items 100000] [--messages 170000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
from typing import Any

from _common import EmulatorProcess, current_rss_mb, peak_rss_mb, write_json

from bitrix_mail_async import MailClient

PAGE = 200
TARGET_MB = 30.0


async def iterate(
    base_url: str, key: str, items: int, checkpoints: tuple[int, ...]
) -> dict[str, Any]:
    samples: dict[int, float] = {}
    async with MailClient(key, base_url=base_url, rate_limit=None) as mail:
        await mail.messages.list(1, page_size=PAGE).first_page()  # warm-up: session, imports
        gc.collect()
        rss0 = current_rss_mb()
        peak0 = peak_rss_mb()
        started = time.perf_counter()
        seen = 0
        last_id = None
        max_rss = rss0
        async for msg in mail.messages.list(1, page_size=PAGE):
            seen += 1
            last_id = msg.id
            if seen % PAGE == 0:  # once per page
                max_rss = max(max_rss, current_rss_mb())
            if seen in checkpoints:
                samples[seen] = round(current_rss_mb() - rss0, 2)
            if seen >= items:
                break
        elapsed = time.perf_counter() - started
    return {
        "seen": seen,
        "last_id": last_id,
        "elapsed": elapsed,
        "rss_before_mb": round(rss0, 1),
        "peak_before_mb": round(peak0, 1),
        "peak_growth_mb": round(max(0.0, peak_rss_mb() - rss0), 2),
        "max_sampled_growth_mb": round(max_rss - rss0, 2),
        "rss_growth_at": samples,
    }


async def one_page_size(base_url: str, key: str) -> int:
    async with MailClient(key, base_url=base_url, rate_limit=None) as mail:
        pager = mail.messages.list(1, page_size=PAGE)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        page = await pager.fetch_page(0)
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert len(page.items) == PAGE
        return held


async def traced(base_url: str, key: str, items: int) -> dict[str, Any]:
    async with MailClient(key, base_url=base_url, rate_limit=None) as mail:
        await mail.messages.list(1, page_size=PAGE).first_page()
        gc.collect()
        tracemalloc.start()
        tracemalloc.reset_peak()
        seen = 0
        async for _msg in mail.messages.list(1, page_size=PAGE):
            seen += 1
            if seen >= items:
                break
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {"seen": seen, "peak_mb": round(peak / 2**20, 2), "end_mb": round(current / 2**20, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=170_000)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    checkpoints = tuple(sorted({1_000, 10_000, args.items // 2, args.items}))

    with EmulatorProcess(messages=args.messages) as emu:
        plain = asyncio.run(iterate(emu.base_url, emu.api_key, args.items, checkpoints))
        page_bytes = asyncio.run(one_page_size(emu.base_url, emu.api_key))
        trace = asyncio.run(traced(emu.base_url, emu.api_key, args.items))

    growth_mb = max(plain["peak_growth_mb"], plain["max_sampled_growth_mb"])
    ok = plain["seen"] >= args.items and growth_mb < TARGET_MB
    page_mb = page_bytes / 2**20
    print(
        f"iterated {plain['seen']:,} messages (page_size {PAGE}) in {plain['elapsed']:.1f} s, "
        f"{plain['seen'] / plain['elapsed']:,.0f} msg/s"
    )
    growth = ", ".join(f"{n:,}: {mb:+.1f} MB" for n, mb in plain["rss_growth_at"].items())
    print(f"  RSS growth at checkpoints: {growth}")
    print(
        f"  peak RSS growth: {growth_mb:.1f} MB (target < {TARGET_MB:g} MB) -> "
        f"{'OK' if ok else 'NOT MET'}; getrusage peak - RSS before "
        f"{plain['peak_growth_mb']:.1f} MB (peak before the run was "
        f"{plain['peak_before_mb'] - plain['rss_before_mb']:.1f} MB above RSS), "
        f"max RSS sampled once per page {plain['max_sampled_growth_mb']:+.1f} MB"
    )
    print(
        f"  tracemalloc peak over {trace['seen']:,} messages: {trace['peak_mb']:.2f} MB; "
        f"one decoded {PAGE}-item page holds {page_mb:.2f} MB "
        f"(peak = {trace['peak_mb'] / page_mb:.1f} pages)"
    )
    write_json(
        args.json,
        {
            **plain,
            "tracemalloc": trace,
            "growth_mb": growth_mb,
            "one_page_mb": round(page_mb, 3),
            "target_mb": TARGET_MB,
            "met": ok,
        },
    )
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
