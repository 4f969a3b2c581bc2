"""A bulk job against every limit of the gateway at once, with our client and with the peer.

Job: 1,000 tasks started at once (``asyncio.gather``), each fetching one message
(``GET /mail/messages/{id}``); every fifth task then sends one (``POST /mail/messages``) with a
subject of its own: 1,000 gets and 200 sends. The emulator (a child process) runs with every
mechanism of the gateway's limit system on (``LimitSettings.documented(time_scale)``): the
per-key sliding window, the portal bucket with Bitrix24's REST bucket under it, the portal queue
and the circuit breaker, plus a service time per call (``--service-time``, 0.4 s before scaling;
the contract gives no figure, it stands in for Bitrix24's own work) so the queue's two slots
hold calls for a while.

Time scaling: ``--scale`` multiplies every duration of the limits by the scale and divides
every rate by it (counts and bursts stay), so the job takes ``scale`` times its real-gateway
time. The client's defaults are the documented figures (``RateLimit()`` = 2 requests/s, burst
50, bursts spent at most at the portal's 10/s), so the fair "default settings" client is
``RateLimit(per_second=2 / scale, burst=50, peak_per_second=10 / scale)`` with every other
setting at its default. What does not scale: the client's
recovery of its rate after a 429 (+5 % per real second), so a small scale makes its 429s cost
more than on the real gateway; 0.1 keeps that small and the whole benchmark near 3 minutes.
The peer, vibecode-b24-bot, runs in its own virtualenv as a child process
(``_peer_limits_job.py``) with its defaults and the same plan, re-running the calls that raised
in further passes as ``peer_bulk.py`` does. Its back-offs (1, 2, 4, 8, 16 s, no Retry-After)
are fixed in its code and not time-scaled either.

Printed for each: wall time against the ideal (the lower bound set by the binding limit, from
the emulator's settings), 429s (all, and by limit), 504s, calls that raised (by type), lost
calls (never returned nor raised, or a send reported ok that was never applied) and duplicated
sends (a subject applied more than once, read from the emulator's state).
Targets (ours): >= 0.95 of the ideal (ideal / time), <= 1 % 429s, 0 QUEUE_TIMEOUT reaching the
caller, 0 lost, 0 duplicated.

    python benchmarks/gateway_limits.py [--scale 0.1] [--tasks 1000] [--sends 200]
        [--service-time 0.4] [--peer-passes 2] [--no-peer] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import DEFAULT_VENV, PEER, EmulatorProcess, ensure_peer, run_peer_script, write_json

from bitrix_mail_async import MailClient, RateLimit
from bitrix_mail_async.testing.limits import LimitSettings

FIRST_ID = 1001
SENDER = "Sales Team <sales@emulator.bitrix24.test>"
RECIPIENT = "colleague@example.com"
TARGET_EFFICIENCY = 0.95
TARGET_429_SHARE = 0.01

#: One task's calls: ``(message_id, subject or None)``: a get, then a send when there is a subject.
Plan = list[tuple[int, str | None]]
Op = tuple[str, Any]


def make_plan(tasks: int, sends: int, prefix: str) -> Plan:
    """Spread ``sends`` evenly over ``tasks``; every subject is unique."""
    plan: Plan = []
    for i in range(tasks):
        sends_here = (i + 1) * sends // tasks - i * sends // tasks
        plan.append((FIRST_ID + i, f"{prefix}-{i:05d}" if sends_here else None))
    return plan


def limit_settings(scale: float, service_time: float) -> LimitSettings:
    """The documented limits at ``scale``, with the queue holding each call ``service_time``."""
    settings = LimitSettings.documented(time_scale=scale)
    assert settings.queue is not None
    queue = dataclasses.replace(settings.queue, service_time=round(service_time * scale, 6))
    return dataclasses.replace(settings, queue=queue)


def ideal_time(settings: LimitSettings, calls: int) -> tuple[float, str, dict[str, float]]:
    """The least time ``calls`` calls can take under ``settings``: (seconds, binding, bounds)."""
    queue = settings.queue
    service = queue.service_time if queue is not None else 0.0
    bounds: dict[str, float] = {}
    if settings.window is not None:
        window = settings.window
        bounds["window"] = (calls - 1) // window.limit * window.period + service
    if settings.portal is not None:
        portal = settings.portal
        bounds["portal rate"] = max(0, calls - portal.burst) / portal.per_second + service
        if portal.rest_per_second is not None:
            rest = max(0, calls - portal.rest_burst) / portal.rest_per_second
            bounds["REST bucket"] = rest + service
    if queue is not None and service > 0:
        bounds["portal queue"] = math.ceil(calls / queue.concurrency) * service
    binding = max(bounds, key=lambda name: bounds[name])
    return bounds[binding], binding, bounds


def describe(settings: LimitSettings, scale: float) -> str:
    """One line naming every limit's figures at this scale."""
    w, p, q, b = settings.window, settings.portal, settings.queue, settings.breaker
    assert w is not None and p is not None and q is not None and b is not None
    return (
        f"limits at time scale {scale:g} (durations x{scale:g}, rates /{scale:g}): window "
        f"{w.limit} per {w.period:g} s; portal {p.per_second:g}/s burst {p.burst} + REST "
        f"{p.rest_per_second:g}/s burst {p.rest_burst} (retryAfter {p.retry_after:g} s); queue "
        f"{q.concurrency} at once, service {q.service_time:g} s, timeout {q.timeout:g} s "
        f"(retryAfter {q.retry_after:g} s); breaker {b.threshold} failures per {b.period:g} s"
    )


def error_name(exc: BaseException) -> str:
    """The exception's type, with the gateway's code when it carries one."""
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__}({code})" if code else type(exc).__name__


async def _ours_task(
    mail: MailClient, message_id: int, subject: str | None, out: dict[Op, str]
) -> None:
    try:
        msg = await mail.messages.get(message_id)
        out[("get", message_id)] = "ok" if msg.id == message_id else "wrong message"
    except Exception as exc:
        out[("get", message_id)] = error_name(exc)
    if subject is None:
        return
    try:
        await mail.messages.send(from_=SENDER, to=[RECIPIENT], subject=subject, body=".")
        out[("send", subject)] = "ok"
    except Exception as exc:
        out[("send", subject)] = error_name(exc)


async def run_ours(
    base_url: str, key: str, plan: Plan, scale: float, deadline: float
) -> dict[str, Any]:
    """The job with MailClient at its default settings, scaled; outcomes of every call."""
    default = RateLimit()
    assert default.burst is not None and default.peak_per_second is not None
    rate = RateLimit(
        per_second=default.per_second / scale,
        burst=default.burst,
        peak_per_second=default.peak_per_second / scale,
        peak_burst=default.peak_burst,
    )
    out: dict[Op, str] = {}
    async with MailClient(key, base_url=base_url, rate_limit=rate) as mail:
        started = time.perf_counter()
        tasks = [asyncio.create_task(_ours_task(mail, mid, subj, out)) for mid, subj in plan]
        _, pending = await asyncio.wait(tasks, timeout=deadline)
        elapsed = time.perf_counter() - started
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        client = {"rate_limited": mail.stats.rate_limited, "retries": mail.stats.retries}
    calls = sum(1 + (subj is not None) for _, subj in plan)
    return {
        "client": (
            f"defaults, RateLimit(per_second={rate.per_second:g}, burst={rate.burst}, "
            f"peak_per_second={rate.peak_per_second:g})"
        ),
        "elapsed": elapsed,
        "raised": dict(Counter(v for v in out.values() if v != "ok")),
        "lost": calls - len(out),
        "ok_sends": [op[1] for op, v in out.items() if op[0] == "send" and v == "ok"],
        "raised_sends": [op[1] for op, v in out.items() if op[0] == "send" and v != "ok"],
        "client_stats": client,
    }


def run_peer(
    python: Path, base_url: str, key: str, plan: Plan, passes: int, deadline: float
) -> dict[str, Any]:
    """The same plan with the peer's ``VibeCode`` at its defaults, in the peer's venv."""
    spec = {
        "base_url": base_url,
        "plan": plan,
        "sender": SENDER,
        "recipient": RECIPIENT,
        "passes": passes,
        "deadline": deadline,
    }
    env = {"BITRIX_MAIL_API_KEY": key}
    res = run_peer_script(python, "_peer_limits_job.py", [json.dumps(spec)], deadline + 60, env)
    first = res["passes"][0]
    # What the caller of one run of the job saw: the first pass's exceptions.
    res.update(raised=first["raised"], pass1_elapsed=first["elapsed"])
    return res


def tally(res: dict[str, Any], emu: EmulatorProcess, prefix: str, calls: int, ideal: float) -> None:
    """Add the server's counts, lost and duplicated sends and the ratios to a run's result."""
    server = emu.limit_stats()
    sent = emu.sent(prefix)
    by_status = {int(k): v for k, v in server["by_status"].items()}
    res["server"] = {
        "requests": server["requests"],
        "429": server["rate_limited"],
        "429_window": server["window_limited"],
        "429_portal": server["portal_limited"],
        "429_breaker": server["loop_detected"],
        "504": by_status.get(504, 0),
        "max_concurrent": max(server["max_concurrent"].values(), default=0),
    }
    res["share_429"] = server["rate_limited"] / calls
    res["unapplied_ok_sends"] = sum(1 for s in res.pop("ok_sends") if not sent.get(s))
    res["lost_total"] = res["lost"] + res["unapplied_ok_sends"]
    res["duplicated"] = sum(count - 1 for count in sent.values() if count > 1)
    res["applied_although_raised"] = sum(1 for s in res.pop("raised_sends") if sent.get(s))
    res["queue_timeouts_raised"] = sum(n for e, n in res["raised"].items() if "QUEUE_TIMEOUT" in e)
    res["ratio"] = res["elapsed"] / ideal
    res["efficiency"] = ideal / res["elapsed"]


def figures(res: dict[str, Any], calls: int) -> str:
    """The counts of one run, on one line."""
    s = res["server"]
    raised = ", ".join(f"{n} {name}" for name, n in sorted(res["raised"].items())) or "none"
    return (
        f"429s {s['429']} ({res['share_429']:.1%} of {calls} calls: window {s['429_window']}, "
        f"portal {s['429_portal']}, breaker {s['429_breaker']}); 504s {s['504']}; raised: "
        f"{raised}; lost {res['lost_total']}; duplicated {res['duplicated']}"
    )


def report_ours(res: dict[str, Any], calls: int) -> bool:
    """Print our run and return whether every target is met."""
    met = bool(
        res["efficiency"] >= TARGET_EFFICIENCY
        and res["share_429"] <= TARGET_429_SHARE
        and res["queue_timeouts_raised"] == 0
        and res["lost_total"] == 0
        and res["duplicated"] == 0
    )
    print(
        f"ours ({res['client']}): {res['elapsed']:.2f} s = {res['ratio']:.3f}x ideal "
        f"({res['efficiency']:.3f} of ideal); {figures(res, calls)}; client saw "
        f"{res['client_stats']['rate_limited']} 429s, {res['client_stats']['retries']} retries; "
        f"targets {'met' if met else 'NOT met'}",
        flush=True,
    )
    return met


def report_peer(res: dict[str, Any], calls: int, version: str) -> None:
    """Print the peer's run: its first pass (one run of the job) and until done."""
    passes = res["passes"]
    if res["not_done"]:
        done = f"{res['not_done']} calls still not done"
        total = f"{res['elapsed']:.2f} s"
    else:
        done, total = "all done", f"{res['elapsed']:.2f} s = {res['ratio']:.3f}x ideal"
    print(
        f"peer {PEER} {version} (VibeCode defaults, gather): pass 1 {res['pass1_elapsed']:.2f} s "
        f"with {sum(res['raised'].values())} of {calls} calls raised; {figures(res, calls)} "
        f"(429s and 504s over all passes)"
    )
    each = "; ".join(
        f"{p['calls']} calls in {p['elapsed']:.1f} s, {sum(p['raised'].values())} raised"
        for p in passes
    )
    print(
        f"  {done} after {len(passes)} pass(es) ({each}): {total}; sends applied although "
        f"they raised: {res['applied_although_raised']}",
        flush=True,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1, help="emulator time scale")
    parser.add_argument("--tasks", type=int, default=1000, help="tasks, one get each")
    parser.add_argument("--sends", type=int, default=200, help="sends, spread over the tasks")
    parser.add_argument("--service-time", type=float, default=0.4, help="unscaled, seconds")
    parser.add_argument("--peer-passes", type=int, default=2)
    parser.add_argument("--peer-deadline", type=float, default=120.0, help="seconds, real")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    if not 0 < args.sends <= args.tasks or args.scale <= 0 or args.service_time < 0:
        parser.error("need 0 < sends <= tasks, scale > 0 and service time >= 0")
    return args


def fresh_run(
    emu: EmulatorProcess, settings: LimitSettings, args: argparse.Namespace, who: str
) -> Plan:
    """Zero the emulator's counters and limits; the plan of ``who``'s run (its own subjects)."""
    emu.reset()
    emu.apply_limits(settings)
    return make_plan(args.tasks, args.sends, f"gateway-limits-{who}")


def main(argv: list[str] | None = None) -> int:
    """Run the job with our client, then with the peer, and print both."""
    args = parse_args(argv)
    settings = limit_settings(args.scale, args.service_time)
    calls = args.tasks + args.sends
    ideal, binding, bounds = ideal_time(settings, calls)
    out: dict[str, Any] = {"scale": args.scale, "tasks": args.tasks, "sends": args.sends}
    out.update(calls=calls, service_time=args.service_time, ideal=ideal, binding=binding)
    out["bounds"] = bounds
    others = ", ".join(f"{n} {s:.2f} s" for n, s in bounds.items() if n != binding)
    print(describe(settings, args.scale))
    print(
        f"job: {args.tasks} tasks at once, {args.tasks} messages.get + {args.sends} "
        f"messages.send (unique subjects); ideal {ideal:.2f} s, binding limit: {binding} "
        f"(other bounds: {others})",
        flush=True,
    )
    python, version = (None, "not run (--no-peer)") if args.no_peer else ensure_peer(args.venv)
    out["peer_version"] = version
    with EmulatorProcess(messages=args.tasks + 100, limits=settings) as emu:
        plan = fresh_run(emu, settings, args, "ours")
        res = asyncio.run(run_ours(emu.base_url, emu.api_key, plan, args.scale, 3 * ideal + 30))
        tally(res, emu, "gateway-limits-ours", calls, ideal)
        out["ours"], out["met"] = res, report_ours(res, calls)
        if python is None:
            print(f"peer {PEER}: {version}")
        else:
            plan = fresh_run(emu, settings, args, "peer")
            passes, deadline = args.peer_passes, args.peer_deadline
            res = run_peer(python, emu.base_url, emu.api_key, plan, passes, deadline)
            tally(res, emu, "gateway-limits-peer", calls, ideal)
            out["peer"] = res
            report_peer(res, calls, version)
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
