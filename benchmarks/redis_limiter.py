"""What the shared Redis bucket costs, and what it buys.

1. Cost: µs per ``acquire()`` of the Redis limiter (one EVALSHA round trip to a local
   redis-server) next to the in-process bucket, both with a rate too high to ever wait.
2. Benefit: aggregate throughput of 1, 2, 4 and 8 worker processes, each with its own
   MailClient, against an emulator limiting the key to ``--rate`` requests/s, as a ratio of
   that rate, with the 429s the emulator answered. Shared Redis bucket first, then one
   in-process bucket per worker (the key's limit spent N times over) for contrast.

    python benchmarks/redis_limiter.py [--rate 50] [--burst 10] [--duration 4] [--redis-url URL]

Without ``--redis-url`` a throwaway redis-server (persistence off) is started on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier
from typing import Any

import redis.asyncio as aioredis

from bitrix_mail_async import MailClient, RateLimit, RetryPolicy, errors
from bitrix_mail_async._ratelimit import InProcessLimiter
from bitrix_mail_async.redis import RedisLimiter, RedisRateLimit
from bitrix_mail_async.testing import MailEmulator

CONCURRENCY = 8  # tasks per worker, enough to keep every worker asking for slots
UNLIMITED = 1e9


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: run .ci/install-redis.sh or pass --redis-url")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("redis-server did not start")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


async def _flush(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await client.flushall()
    finally:
        await client.aclose()


# --------------------------------------------------------------------- 1. per-acquire cost
async def _per_acquire(url: str, n: int) -> tuple[float, float]:
    local = InProcessLimiter(UNLIMITED, 10**9, adaptive=True)
    shared = RedisRateLimit(url, per_second=UNLIMITED, burst=10**9).create_limiter(
        api_key="vibe_api_bench"
    )
    assert isinstance(shared, RedisLimiter)
    try:
        for _ in range(100):  # connect, load the script, warm the paths
            await shared.acquire()
            await local.acquire()
        timings = []
        for limiter in (local, shared):
            started = time.perf_counter()
            for _ in range(n):
                await limiter.acquire()
            timings.append((time.perf_counter() - started) / n * 1e6)
        assert not shared.in_fallback
    finally:
        await shared.aclose()
    return timings[0], timings[1]


# --------------------------------------------------------------------- 2. many processes
def _worker(
    base_url: str,
    key: str,
    redis_url: str | None,
    rate: float,
    burst: int,
    duration: float,
    barrier: Barrier,
    results: Any,
) -> None:
    results.put(asyncio.run(_worker_main(base_url, key, redis_url, rate, burst, duration, barrier)))


async def _worker_main(
    base_url: str,
    key: str,
    redis_url: str | None,
    rate: float,
    burst: int,
    duration: float,
    barrier: Barrier,
) -> int:
    config = (
        RedisRateLimit(redis_url, per_second=rate, burst=burst)
        if redis_url is not None
        else RateLimit(per_second=rate, burst=burst)
    )
    ok = 0
    async with MailClient(
        key, base_url=base_url, rate_limit=config, retry=RetryPolicy(max_retry_after=5)
    ) as mail:
        limiter = mail._pipeline.limiter
        if isinstance(limiter, RedisLimiter):
            await limiter.cooldown_remaining()  # connected before the clock starts
        barrier.wait(60)  # every worker ready: the clock starts for all at once
        deadline = time.monotonic() + duration

        async def calls() -> None:
            nonlocal ok
            while True:
                with contextlib.suppress(errors.MailError):
                    await mail.mailboxes.get(1)
                    if time.monotonic() <= deadline:
                        ok += 1

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(duration):
                await asyncio.gather(*(calls() for _ in range(CONCURRENCY)))
    return ok


def _run_workers(
    emu: MailEmulator, redis_url: str | None, n: int, rate: float, burst: int, duration: float
) -> tuple[float, int]:
    if redis_url is not None:
        asyncio.run(_flush(redis_url))
    emu.set_rate_limit(rate, burst, 0.2)  # also empties the emulator's buckets
    emu.stats.reset()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(emu.base_url, emu.api_key, redis_url, rate, burst, duration, barrier, results),
        )
        for _ in range(n)
    ]
    for proc in procs:
        proc.start()
    try:
        total = sum(results.get(timeout=120) for _ in procs)
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    return total / duration / rate, emu.stats.rate_limited


def main() -> None:
    """Print the per-acquire cost and the multi-process throughput ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="the emulator's limit, req/s")
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per measurement")
    parser.add_argument("--acquires", type=int, default=5000)
    parser.add_argument("--processes", default="1,2,4,8")
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--no-contrast", action="store_true", help="skip in-process buckets")
    opts = parser.parse_args()
    counts = [int(x) for x in opts.processes.split(",")]

    with contextlib.ExitStack() as stack:
        url = opts.redis_url or stack.enter_context(_redis_server())
        local_us, redis_us = asyncio.run(_per_acquire(url, opts.acquires))
        print(f"per acquire ({opts.acquires} sequential, never waiting):")
        print(f"  in-process bucket  {local_us:8.1f} µs")
        print(f"  Redis bucket       {redis_us:8.1f} µs   ({redis_us / local_us:.0f}x)")

        emu = stack.enter_context(MailEmulator().in_thread())
        print(
            f"\naggregate throughput / R  (emulator R={opts.rate:g}/s burst {opts.burst}, "
            f"{opts.duration:g}s each, {CONCURRENCY} tasks per process)"
        )
        modes: list[tuple[str, str | None]] = [("shared Redis bucket", url)]
        if not opts.no_contrast:
            modes.append(("in-process buckets", None))
        for label, mode_url in modes:
            for n in counts:
                ratio, limited = _run_workers(
                    emu, mode_url, n, opts.rate, opts.burst, opts.duration
                )
                print(f"  {label:20s} {n} process(es): {ratio:5.2f} x R   429s: {limited}")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
