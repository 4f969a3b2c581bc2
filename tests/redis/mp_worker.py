"""One worker process of the multi-process test: its own MailClient on a RedisRateLimit.

    python mp_worker.py BASE_URL REDIS_URL SYNC_DIR INDEX CALLS PER_SECOND BURST [PEAK PEAK_BURST]

The API key comes from BITRIX_MAIL_API_KEY. Writes ``ready-INDEX`` once connected, waits for
``go``, makes CALLS calls (8 at a time) and writes ``done-INDEX`` as JSON: the counts, the end
time, what the calls waited for the gateway's window, the client's stats. The tests start a
group of them with :func:`run_workers`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bitrix_mail_async
from bitrix_mail_async import MailClient, errors
from bitrix_mail_async.redis import RedisLimiter, RedisRateLimit

CONCURRENCY = 8


async def main(argv: list[str]) -> None:
    base_url, redis_url, sync, index, calls, per_second, burst, *peak = argv
    sync_dir = Path(sync)
    # Without PEAK, RedisRateLimit's default peak (what the README's recipe gets).
    peak_kwargs = {"peak_per_second": float(peak[0]), "peak_burst": int(peak[1])} if peak else {}
    config = RedisRateLimit(
        redis_url, per_second=float(per_second), burst=int(burst), **peak_kwargs
    )
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
        result = {
            "ok": ok,
            "failed": failed,
            "rate_limited": mail.stats.rate_limited,
            "end": time.time(),
            "window_wait": mail.stats.window_wait,
            "stats": repr(mail.stats),
        }
    (sync_dir / f"done-{index}").write_text(json.dumps(result))


def run_workers(
    base_url: str, redis_url: str, api_key: str, sync_dir: Path, processes: int, *limits: object
) -> tuple[float, list[dict[str, Any]]]:
    """Run ``processes`` workers from one ``go``; (the time of ``go``, each one's result)."""
    # The workers import the library the tests import, wherever that checkout is.
    library = str(Path(bitrix_mail_async.__file__).parents[1])
    path = os.pathsep.join(filter(None, [library, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "BITRIX_MAIL_API_KEY": api_key, "PYTHONPATH": path}
    common = [base_url, redis_url, str(sync_dir)]
    procs = [
        subprocess.Popen([sys.executable, __file__, *common, str(i), *map(str, limits)], env=env)
        for i in range(processes)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(sync_dir.glob("ready-*"))) < processes:
            assert all(p.poll() is None for p in procs), "a worker died before it was ready"
            assert time.monotonic() < deadline, "workers not ready in time"
            time.sleep(0.01)
        started = time.time()
        (sync_dir / "go").touch()
        for proc in procs:
            assert proc.wait(60) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    results = [json.loads((sync_dir / f"done-{i}").read_text()) for i in range(processes)]
    return started, results


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
