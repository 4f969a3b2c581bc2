"""Many tenants of one app key in one process: each keeps its own portal's rate.

An app in the gateway's catalog has one ``vibe_app_`` key and one session token per
installation, each installation on a portal of its own with its own buckets and queue (contract
section 1b). Here 10 and 100 installations of one key run at once from one process, each with
8 worker tasks fetching messages in a loop, against the emulator (a child process) with every
limit of the gateway on (``LimitSettings.documented(scale)``, plus a service time of 0.4 s per
call, scaled, so that the portal queue holds calls for a while).

- ``for_session``: one ``MailClient`` of the key and ``mail.for_session(token)`` per
  installation (half of them given their portal, half learning it from ``GET /v1/me``), so
  each tenant has the limiter of its own portal. Target: the total in steady state is >= 0.95
  of the sum of the portals' limits, with 0 429s.
- ``noisy``: the same, with the first tenant's portal at 1 request/s, scaled (its tenant
  learns it from 429s). Target: every other tenant keeps >= 0.95 of its portal's limit, 0 429s.
- ``one_limiter``: what a caller without ``for_session`` gets: a ``MailClient`` per
  installation, ``session_token=`` its token, sharing one aiohttp session. Every client of the
  key shares one limiter (bucket, cooldown, learned rate), so together they get one portal's
  rate.
- ``small_pool`` (at the smallest tenant count only): ``for_session`` with
  ``max_concurrency`` of 1 per tenant, so that the connection pool the tenants share is
  smaller than their calls in flight. aiohttp hands a freed connection to whichever call asks
  first, not to the one waiting longest, so some tenants get next to nothing.

Each portal's limit is the documented one (10/s, and the REST bucket at 2/s with a burst of
50: the 2/s binds in steady state), time-scaled. ``--total-rate`` fixes the sum of the limits
(default 200/s): the scale is ``2 * tenants / total_rate``, so 10 tenants run at scale 0.1
(20/s each) and 100 at scale 1 (2/s each), and the client's load is the same in both. The
client is configured with the documented figures scaled the same way, and
``max_concurrency`` is 4 per tenant (``--pool-per-tenant``): it is the size of the connection
pool the tenants share (and each tenant's own limit of calls in flight). The key's window (its
"request limit", per key, shared by every installation) is set to 3x what the tenants can use,
so that the portals' limits are the ones that bind; at the documented 300 per minute it would
cap the whole app at 5 requests/s.

Steady state: first the bursts (each client's 49 calls, each portal's 50) are spent, at
whatever rate this machine serves them; the warm-up ends when the calls completed over the
last 3 s (scaled) fall back to within 3 % of the limiters' rate, and ``--settle`` (10 s,
scaled) later the ``--measure`` interval starts (50 s scaled: about 100 calls of each
tenant). Each tenant's calls completed in it are compared with its portal's rate over it;
429s are counted over the same interval (the client's counters) and over the whole run (the
emulator's). The AIMD recovery after a 429 (+5 % per real second) is not scaled.

    python benchmarks/tenants.py [--tenants 10,100] [--total-rate 200] [--settle 10]
        [--measure 50] [--max-warmup 120] [--workers 8] [--pool-per-tenant 4]
        [--modes for_session,noisy,one_limiter,small_pool] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import aiohttp
from _common import EmulatorProcess, write_json

from bitrix_mail_async import MailClient, RateLimit
from bitrix_mail_async.testing import MailEmulator
from bitrix_mail_async.testing.limits import LimitSettings, PortalRate, WindowSettings

APP_KEY = "vibe_app_benchmark_tenants_7c2d"
FIRST_ID = 1001
MESSAGES = 60
TARGET_SHARE = 0.95
SERVICE_TIME = 0.4  # seconds before scaling, as in gateway_limits.py
NOISY_RATE = 1.0  # the noisy tenant's portal, requests/s before scaling
MODES = ("for_session", "noisy", "one_limiter", "small_pool")


def token(i: int) -> str:
    """The session token of installation ``i``."""
    return f"tok_{i:04d}"


def portal(i: int) -> str:
    """The portal of installation ``i``."""
    return f"p{i:04d}.bitrix24.test"


def install(emulator: MailEmulator, tenants: int) -> None:
    """(In the emulator's process.) The app key, installed on ``tenants`` portals."""
    emulator.add_key(APP_KEY, app=True, tokens=tuple(token(i) for i in range(tenants)))
    for i in range(tenants):
        emulator.add_session(APP_KEY, token(i), portal=portal(i))


def configure(emulator: MailEmulator, settings: LimitSettings, noisy: PortalRate | None) -> None:
    """(In the emulator's process.) Every limit afresh; the first portal at ``noisy``."""
    emulator.limits.apply(settings)
    emulator.stats.reset()
    if noisy is not None:
        emulator.limits.portal.configure(noisy, portal(0))


def limit_settings(tenants: int, scale: float) -> LimitSettings:
    """The documented limits at ``scale``, a service time, a window that does not bind."""
    settings = LimitSettings.documented(time_scale=scale)
    assert settings.queue is not None and settings.window is not None
    queue = dataclasses.replace(settings.queue, service_time=round(SERVICE_TIME * scale, 6))
    window = settings.window
    per_second = tenants * portal_rate(settings)
    limit = max(window.limit, int(3 * per_second * window.period))
    window = WindowSettings(limit=limit, period=window.period, step=window.step)
    return dataclasses.replace(settings, queue=queue, window=window)


def portal_rate(settings: LimitSettings, rate: PortalRate | None = None) -> float:
    """A portal's steady rate: the lower of its rate and its REST bucket's drain."""
    rate = rate or settings.portal
    assert rate is not None
    rest = rate.rest_per_second
    return rate.per_second if rest is None else min(rate.per_second, rest)


def client_limit(scale: float) -> RateLimit:
    """The client's default limit (the documented figures), scaled like the emulator."""
    default = RateLimit()
    assert default.burst is not None and default.peak_per_second is not None
    return RateLimit(
        per_second=default.per_second / scale,
        burst=default.burst,
        peak_per_second=default.peak_per_second / scale,
        peak_burst=default.peak_burst,
    )


@dataclasses.dataclass
class Tenant:
    """One installation's client and what it did."""

    index: int
    mail: MailClient
    done: list[float] = dataclasses.field(default_factory=list)
    failed: int = 0
    limited_at: list[int] = dataclasses.field(default_factory=list)


async def settle(group: list[Tenant], rate: float, span: float, cap: float) -> float:
    """Wait until ``group`` has spent its bursts (or ``cap``); the loop time then.

    While the bursts last, calls complete faster than the limiters' ``rate`` (requests/s,
    the group's sum); the bursts are spent once the calls completed over the last ``span``
    seconds come to at most 5 % above it. How soon depends on how fast this machine serves
    the bursts, so the warm-up is measured, not fixed.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    bursting = False
    while loop.time() - start < cap:
        await asyncio.sleep(span / 10)
        now = loop.time()
        if now - start < span:
            continue
        recent = sum(len(t.done) - bisect_left(t.done, now - span) for t in group)
        fast = recent > 1.03 * rate * span
        if bursting and not fast:
            break
        bursting = bursting or fast
    return loop.time()


async def drive(
    tenants: list[Tenant],
    workers: int,
    spent: Callable[[], Awaitable[float]],
    settle_time: float,
    measure: float,
) -> tuple[float, float, float]:
    """Run every tenant's workers; when they started and the interval measured (loop times).

    The interval starts ``settle_time`` after ``spent()`` says the bursts are spent.
    """
    loop = asyncio.get_running_loop()
    bounds: list[float] = []

    async def work(tenant: Tenant, worker_no: int) -> None:
        n = worker_no
        while True:
            try:
                await tenant.mail.messages.get(FIRST_ID + n % MESSAGES)
            except Exception:
                tenant.failed += 1
            else:
                tenant.done.append(loop.time())
            n += 7

    async def clock() -> None:
        begin = await spent() + settle_time
        await asyncio.sleep(max(0.0, begin - loop.time()))
        bounds.append(begin)
        for tenant in tenants:
            tenant.limited_at.append(tenant.mail.stats.rate_limited)
        await asyncio.sleep(measure)
        bounds.append(loop.time())
        for tenant in tenants:
            tenant.limited_at.append(tenant.mail.stats.rate_limited)

    start = loop.time()
    tasks = [asyncio.create_task(work(tenant, w)) for tenant in tenants for w in range(workers)]
    try:
        await clock()
    finally:
        # Calls still waiting would finish at the limiters' pace (minutes for one limiter).
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return start, bounds[0], bounds[1]


def noisy_rate(mode: str, scale: float) -> PortalRate | None:
    """The noisy tenant's portal: 1 request/s (scaled), no burst, the documented retryAfter."""
    if mode != "noisy":
        return None
    return PortalRate(
        per_second=NOISY_RATE / scale,
        burst=1,
        rest_per_second=None,
        retry_after=round(PortalRate.retry_after * scale, 6),
    )


async def run_clients(
    base_url: str, mode: str, n: int, scale: float, args: argparse.Namespace
) -> tuple[list[Tenant], float, float, float]:
    """Drive ``n`` tenants the way ``mode`` says; the tenants and the interval measured."""
    rate = client_limit(scale)
    per_second, span = rate.per_second, 3.0 * scale
    settle_time, measure = args.settle * scale, args.measure * scale
    cap = args.max_warmup * scale
    if mode == "one_limiter":
        async with aiohttp.ClientSession() as http:
            clients = [
                MailClient(
                    APP_KEY,
                    base_url=base_url,
                    session_token=token(i),
                    rate_limit=rate,
                    session=http,
                )
                for i in range(n)
            ]
            tenants = [Tenant(i, await c.open()) for i, c in enumerate(clients)]
            # One limiter for all: one burst, one rate.
            spent = partial(settle, tenants, per_second, span, cap)
            try:
                start, begin, end = await drive(tenants, args.workers, spent, settle_time, measure)
            finally:
                for c in clients:
                    await c.close()
        return tenants, start, begin, end
    async with MailClient(
        APP_KEY,
        base_url=base_url,
        rate_limit=rate,
        max_concurrency=n if mode == "small_pool" else args.pool_per_tenant * n,
    ) as mail:
        # Half are given their portal, half learn it from GET /v1/me.
        tenants = [
            Tenant(i, mail.for_session(token(i), portal=portal(i) if i % 2 == 0 else None))
            for i in range(n)
        ]
        group = tenants[1:] if mode == "noisy" else tenants
        spent = partial(settle, group, len(group) * per_second, span, cap)
        start, begin, end = await drive(tenants, args.workers, spent, settle_time, measure)
    return tenants, start, begin, end


async def run_mode(
    emu: EmulatorProcess, mode: str, n: int, scale: float, args: argparse.Namespace
) -> dict[str, Any]:
    """One mode at one tenant count: the figures of every tenant."""
    settings = limit_settings(n, scale)
    noisy = noisy_rate(mode, scale)
    emu.call(configure, settings, noisy)
    limits = [portal_rate(settings, noisy if i == 0 else None) for i in range(n)]
    cpu, started = time.process_time(), time.perf_counter()
    tenants, start, begin, end = await run_clients(emu.base_url, mode, n, scale, args)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - started
    server = emu.limit_stats()
    measure = end - begin
    rows = []
    for tenant, limit in zip(tenants, limits, strict=True):
        counted = sum(1 for t in tenant.done if begin <= t < end)
        rows.append(
            {
                "share": counted / (limit * measure),
                "calls": counted,
                "steady_429": tenant.limited_at[1] - tenant.limited_at[0],
                "all_429": tenant.mail.stats.rate_limited,
                "failed": tenant.failed,
            }
        )
    others = rows[1:] if mode == "noisy" else rows
    other_limits = limits[1:] if mode == "noisy" else limits
    calls = sum(len(t.done) for t in tenants)
    return {
        "mode": mode,
        "tenants": n,
        "scale": scale,
        "sum_limits": sum(limits),
        "warmup": round(begin - start, 2),
        "measured": round(measure, 2),
        "wall": round(wall, 1),
        "share": sum(r["calls"] for r in rows) / (sum(limits) * measure),
        "others_share": sum(r["calls"] for r in others) / (sum(other_limits) * measure),
        "others_min_share": min(r["share"] for r in others),
        "others_steady_429": sum(r["steady_429"] for r in others),
        "steady_429": sum(r["steady_429"] for r in rows),
        "server_429": server["rate_limited"],
        "server_requests": server["requests"],
        "failed": sum(r["failed"] for r in rows),
        "noisy": rows[0] if mode == "noisy" else None,
        "per_tenant_429": [r["all_429"] for r in rows],
        "per_tenant_share": [round(r["share"], 3) for r in rows],
        "cpu_per_call_us": round(cpu / max(1, calls) * 1e6, 1),
    }


def verdict(res: dict[str, Any]) -> bool | None:
    """Whether a mode met its target (None: the comparison mode has none)."""
    if res["mode"] == "for_session":
        return bool(res["share"] >= TARGET_SHARE and res["steady_429"] == 0)
    if res["mode"] == "noisy":
        return bool(res["others_min_share"] >= TARGET_SHARE and res["others_steady_429"] == 0)
    return None


def report(res: dict[str, Any]) -> None:
    """Print one mode's line."""
    n, mode = res["tenants"], res["mode"]
    head = f"{n:>3} tenants, {mode:<11}"
    ok = verdict(res)
    mark = "" if ok is None else (" -> OK" if ok else " -> NOT met")
    if mode == "noisy":
        noisy = res["noisy"]
        print(
            f"{head} the {n - 1} others: {res['others_share']:.3f} of their limits (lowest "
            f"tenant {res['others_min_share']:.3f}), 429s in steady state "
            f"{res['others_steady_429']}; the noisy tenant (portal at {NOISY_RATE:g}/s scaled): "
            f"{noisy['share']:.3f} of its limit, {noisy['steady_429']} 429s in steady state, "
            f"{noisy['all_429']} in all{mark}",
            flush=True,
        )
        return
    print(
        f"{head} {res['share']:.3f} of the sum of their limits ({res['sum_limits']:g}/s; "
        f"warm-up {res['warmup']:g} s), lowest tenant {res['others_min_share']:.3f}, "
        f"429s in steady state {res['steady_429']} (whole run: {res['server_429']}), "
        f"{res['failed']} failed, client CPU {res['cpu_per_call_us']:.0f} us/call{mark}",
        flush=True,
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    counts = [int(n) for n in args.tenants.split(",")]
    modes = args.modes.split(",")
    results: list[dict[str, Any]] = []
    with EmulatorProcess(setup=_Install(max(counts)), messages=MESSAGES) as emu:
        for n in counts:
            scale = round(2.0 * n / args.total_rate, 6)
            settings = limit_settings(n, scale)
            window = settings.window
            assert window is not None
            print(
                f"{n} tenants of one app key, each portal {portal_rate(settings):g}/s "
                f"(time scale {scale:g}), {args.workers} workers each, max_concurrency "
                f"{args.pool_per_tenant * n}; key window {window.limit} per {window.period:g} s; "
                f"steady state: {args.measure * scale:g} s, from {args.settle * scale:g} s after "
                f"the bursts are spent",
                flush=True,
            )
            for mode in modes:
                if mode == "small_pool" and n != min(counts):
                    continue  # one tenant count shows it; at 100 tenants it takes minutes
                res = await run_mode(emu, mode, n, scale, args)
                results.append(res)
                report(res)
    met = all(verdict(r) is not False for r in results)
    return {"results": results, "met": met, "target": TARGET_SHARE}


@dataclasses.dataclass(frozen=True)
class _Install:
    """A picklable ``setup`` for the emulator's process."""

    tenants: int

    def __call__(self, emulator: MailEmulator) -> None:
        install(emulator, self.tenants)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", default="10,100", help="comma-separated tenant counts")
    parser.add_argument("--total-rate", type=float, default=200.0, help="sum of the limits, /s")
    parser.add_argument(
        "--settle", type=float, default=10.0, help="after the bursts, seconds before scaling"
    )
    parser.add_argument("--measure", type=float, default=50.0, help="seconds before scaling")
    parser.add_argument(
        "--max-warmup", type=float, default=120.0, help="longest wait for the bursts, unscaled"
    )
    parser.add_argument(
        "--pool-per-tenant", type=int, default=4, help="max_concurrency = this x tenants"
    )
    parser.add_argument("--workers", type=int, default=8, help="worker tasks per tenant")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
