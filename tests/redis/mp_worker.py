"""One worker process of the multi-process test: its own MailClient on a RedisRateLimit.

    python mp_worker.py BASE_URL REDIS_URL SYNC_DIR INDEX CALLS PER_SECOND BURST

The API key comes from BITRIX_MAIL_API_KEY. Writes ``ready-INDEX`` once connected, waits for
``go``, makes CALLS calls (8 at a time) and writes ``done-INDEX`` as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from bitrix_mail_async import MailClient, errors
from bitrix_mail_async.redis import RedisLimiter, RedisRateLimit

CONCURRENCY = 8


async def main(argv: list[str]) -> None:
    base_url, redis_url, sync, index, calls, per_second, burst = argv
    sync_dir = Path(sync)
    config = RedisRateLimit(redis_url, per_second=float(per_second), burst=int(burst))
    async with MailClient(base_url=base_url, rate_limit=config) as mail:
        limiter = mail._pipeline.limiter
        assert isinstance(limiter, RedisLimiter)
        await limiter.cooldown_remaining()  # connected before the clock starts
        (sync_dir / f"ready-{index}").touch()
        deadline = time.monotonic() + 60
        while not (sync_dir / "go").exists():
            if time.monotonic() > deadline:
                raise SystemExit("no go signal")
            await asyncio.sleep(0.002)
        remaining = int(calls)
        ok = failed = 0

        async def worker() -> None:
            nonlocal remaining, ok, failed
            while remaining > 0:
                remaining -= 1
                try:
                    await mail.mailboxes.get(1)
                    ok += 1
                except errors.MailError:
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        result = {"ok": ok, "failed": failed, "end": time.time(), "stats": repr(mail.stats)}
    (sync_dir / f"done-{index}").write_text(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
