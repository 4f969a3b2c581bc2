"""Many worker processes, one key, one Redis: the README's recipe against every gateway limit.

Job: ``--calls`` message gets (``GET /mail/messages/{id}``) shared by N worker processes (4 and
8 by default), each with its own ``MailClient`` and ``RedisRateLimit.documented(url,
time_scale=...)`` on one redis-server, ``--tasks`` tasks per worker. The emulator (a child
process) runs with every limit of the gateway on (``LimitSettings.documented(time_scale)``:
the key's sliding window, the portal's ~10/s with the REST bucket under it, the portal queue
with a service time per call (``--service-time``, as ``gateway_limits.py``) and the circuit
breaker). Time scaling divides every rate by the scale and multiplies every duration by it, on
both sides, so the job takes ``scale`` times its real-gateway time. What does not scale is
the machine: a cold process's first calls and its event loop's wake-ups take the same
milliseconds at any scale, and the peak spaces calls 1 / (10 / scale) s apart, so a small
scale weighs them that much more (0.1: 10 ms between calls at the peak). The default, 0.25,
keeps the run near a minute and a half; ``--scale 0.1`` is the harsher test.

The workers start cold, as the README's recipe does: fresh processes, a flushed Redis, the
emulator's limits reset, all released at once by a barrier.

Printed per worker count: wall time (from the moment every worker is ready to the last call's
end) against the ideal (the lower bound set by the binding limit, from the emulator's
settings, as in ``gateway_limits.py``), the 429s the emulator answered as a share of the calls,
and calls that raised. Targets: <= 1.03x the ideal, <= 0.5 % 429s, none raised.

``--no-peak`` runs the same job without the peak (``peak_per_second=None``): what a worker did
before ``RedisRateLimit`` had one, spending its burst at once.

    python benchmarks/redis_workers.py [--processes 4,8] [--calls 250] [--scale 0.25]
        [--tasks 8] [--service-time 0.4] [--no-peak] [--redis-url URL] [--json FILE]

Without ``--redis-url`` a throwaway redis-server (persistence off) is started on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import sys
import time
from multiprocessing.synchronize import Barrier
from typing import Any

import redis.asyncio as aioredis
from _common import EmulatorProcess, write_json
from gateway_limits import describe, ideal_time, limit_settings
from redis_limiter import _redis_server

from bitrix_mail_async import Hooks, MailClient, errors
from bitrix_mail_async.redis import RedisLimiter, RedisRateLimit

FIRST_ID = 1001
TARGET_RATIO = 1.03
TARGET_429_SHARE = 0.005


def _config(redis_url: str, scale: float, peak: bool) -> RedisRateLimit:
    documented = RedisRateLimit.documented(redis_url, time_scale=scale)
    if peak:
        return documented
    settings = documented.settings
    return RedisRateLimit(
        redis_url, per_second=settings.per_second, burst=settings.burst, peak_per_second=None
    )


def _worker(job: dict[str, Any], index: int, barrier: Barrier, results: Any) -> None:
    results.put(asyncio.run(_worker_main(job, index, barrier)))


async def _worker_main(job: dict[str, Any], index: int, barrier: Barrier) -> dict[str, Any]:
    """One worker: its share of the calls, ``tasks`` at a time; its counts and times."""
    config = _config(job["redis_url"], job["scale"], job["peak"])
    ids = list(range(FIRST_ID + index, FIRST_ID + job["calls"], job["processes"]))
    raised: dict[str, int] = {}
    refused: list[float] = []  # when each 429 came
    hooks = Hooks(on_rate_limited=lambda _event: refused.append(time.time()))
    async with MailClient(
        job["key"], base_url=job["base_url"], rate_limit=config, hooks=hooks
    ) as mail:
        limiter = mail._pipeline.limiter
        assert isinstance(limiter, RedisLimiter)
        await limiter.cooldown_remaining()  # connected before the clock starts
        barrier.wait(60)  # every worker ready: the clock starts for all at once
        started = time.time()

        async def calls() -> None:
            while ids:
                message_id = ids.pop()
                try:
                    await mail.messages.get(message_id)
                except errors.MailError as exc:
                    name = type(exc).__name__
                    raised[name] = raised.get(name, 0) + 1

        await asyncio.gather(*(calls() for _ in range(job["tasks"])))
        ended = time.time()
        return {
            "started": started,
            "ended": ended,
            "raised": raised,
            "429_at": refused,
            "fallback": limiter.in_fallback,
        }


async def _flush(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await client.flushall()
    finally:
        await client.aclose()


def run(emu: EmulatorProcess, job: dict[str, Any], settings: Any) -> dict[str, Any]:
    """The job with ``job["processes"]`` workers on fresh limits and a flushed Redis."""
    asyncio.run(_flush(job["redis_url"]))
    emu.reset()
    emu.apply_limits(settings)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(job["processes"])
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(job, i, barrier, results))
        for i in range(job["processes"])
    ]
    for proc in procs:
        proc.start()
    try:
        workers = [results.get(timeout=job["deadline"]) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    server = emu.limit_stats()
    raised: dict[str, int] = {}
    for worker in workers:
        for name, count in worker["raised"].items():
            raised[name] = raised.get(name, 0) + count
    started = min(w["started"] for w in workers)
    return {
        "elapsed": max(w["ended"] for w in workers) - started,
        "429_at": sorted(round(t - started, 2) for w in workers for t in w["429_at"]),
        "requests": server["requests"],
        "429": server["rate_limited"],
        "429_portal": server["portal_limited"],
        "429_window": server["window_limited"],
        "504": server["by_status"].get(504, 0),
        "raised": raised,
        "fallback": any(w["fallback"] for w in workers),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="4,8", help="worker counts, comma-separated")
    parser.add_argument("--calls", type=int, default=250, help="message gets, all workers")
    parser.add_argument("--scale", type=float, default=0.25, help="emulator and client scale")
    parser.add_argument("--tasks", type=int, default=8, help="tasks per worker")
    parser.add_argument("--service-time", type=float, default=0.4, help="unscaled, seconds")
    parser.add_argument("--no-peak", action="store_true", help="workers without the peak")
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    args.counts = [int(x) for x in args.processes.split(",")]
    if args.calls < 1 or args.scale <= 0 or args.tasks < 1 or min(args.counts) < 1:
        parser.error("need calls, scale, tasks and process counts > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the job for each worker count and print the figures against the targets."""
    args = parse_args(argv)
    settings = limit_settings(args.scale, args.service_time)
    ideal, binding, bounds = ideal_time(settings, args.calls)
    client = "no peak" if args.no_peak else "RedisRateLimit.documented(url, time_scale=...)"
    print(describe(settings, args.scale))
    print(
        f"job: {args.calls} messages.get over N workers ({args.tasks} tasks each), {client}; "
        f"ideal {ideal:.2f} s, binding limit: {binding}",
        flush=True,
    )
    out: dict[str, Any] = {"scale": args.scale, "calls": args.calls, "ideal": ideal}
    out.update(binding=binding, bounds=bounds, peak=not args.no_peak, runs={})
    met = True
    with contextlib.ExitStack() as stack:
        url = args.redis_url or stack.enter_context(_redis_server())
        emu = stack.enter_context(EmulatorProcess(messages=args.calls + 100, limits=settings))
        for processes in args.counts:
            job = {
                "base_url": emu.base_url,
                "key": emu.api_key,
                "redis_url": url,
                "scale": args.scale,
                "peak": not args.no_peak,
                "calls": args.calls,
                "processes": processes,
                "tasks": args.tasks,
                "deadline": 5 * ideal + 60,
            }
            res = run(emu, job, settings)
            res["ratio"] = res["elapsed"] / ideal
            res["share_429"] = res["429"] / args.calls
            ok = bool(
                res["ratio"] <= TARGET_RATIO
                and res["share_429"] <= TARGET_429_SHARE
                and not res["raised"]
            )
            met = met and ok
            out["runs"][processes] = res
            raised = ", ".join(f"{n} {name}" for name, n in sorted(res["raised"].items()))
            print(
                f"  {processes} workers: {res['elapsed']:.2f} s = {res['ratio']:.3f}x ideal; "
                f"429s {res['429']} ({res['share_429']:.2%}: portal {res['429_portal']}, window "
                f"{res['429_window']}; first seen at {res['429_at'][:8]} s); 504s {res['504']}; "
                f"raised: {raised or 'none'}"
                f"{'; a worker fell back (Redis unreachable)' if res['fallback'] else ''}; "
                f"targets {'met' if ok else 'NOT met'}",
                flush=True,
            )
    out["met"] = met
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
