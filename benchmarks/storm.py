"""429 storm at full size: 1,000 tasks started at once against a key limited to 10/s, burst 10.

Prints, for several client configurations, the wall time against the ideal 1,000 / 10 s = 100 s
and how many 429s the gateway answered. The emulator runs in a thread of this process (the
job is bound by the rate limit, not by CPU). Takes about 100 s per configuration.

    python benchmarks/storm.py              # all configurations (about 5 minutes)
    python benchmarks/storm.py --tasks 300  # a shorter storm
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from bitrix_mail_async import MailClient, RateLimit, RetryPolicy
from bitrix_mail_async.testing import MailEmulator

RATE = 10.0
BURST = 10


async def storm(
    emu: MailEmulator, label: str, rate_limit: RateLimit | None, tasks: int
) -> dict[str, Any]:
    """Run one storm and return its figures."""
    emu.reset()
    # Retry-After as the emulator computes it (whole seconds, like the real gateway).
    emu.set_rate_limit(RATE, burst=BURST)
    async with MailClient(
        emu.api_key,
        base_url=emu.base_url,
        rate_limit=rate_limit,
        max_concurrency=tasks,
        retry=RetryPolicy(rate_limit_attempts=1000),
    ) as mail:
        started = time.monotonic()
        results = await asyncio.gather(
            *(mail.mailboxes.get(1) for _ in range(tasks)), return_exceptions=True
        )
        elapsed = time.monotonic() - started
    ideal = tasks / RATE
    return {
        "label": label,
        "tasks": tasks,
        "elapsed": round(elapsed, 2),
        "ideal": ideal,
        "ratio": round(elapsed / ideal, 3),
        "rate_limited": emu.stats.rate_limited,
        "failures": sum(isinstance(r, BaseException) for r in results),
    }


async def main() -> None:
    """Run the storms and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    configs: list[tuple[str, RateLimit | None]] = [
        ("client at the gateway's limit (10/s, burst 10)", RateLimit(RATE, burst=BURST)),
        ("client at 3x the limit (30/s, burst 30), adaptive", RateLimit(3 * RATE, burst=3 * BURST)),
        ("no client bucket (shared 429 cooldown only)", None),
    ]
    print("| client | tasks | wall time | ideal | ratio | 429s | failures |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    async with MailEmulator() as emu:
        for label, limit in configs:
            row = await storm(emu, label, limit, args.tasks)
            rows.append(row)
            print(
                f"| {label} | {row['tasks']} | {row['elapsed']:.1f} s | {row['ideal']:.0f} s "
                f"| {row['ratio']:.3f} | {row['rate_limited']} | {row['failures']} |",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps({"rate": RATE, "burst": BURST, "rows": rows}))


if __name__ == "__main__":
    asyncio.run(main())
