"""Run every benchmark (each in its own process) and rewrite ``benchmarks/RESULTS.md``.

    python benchmarks/run_all.py [--quick] [--only NAME[,NAME]] [--merge] [--no-write]

Takes about 20 minutes on two cores (the peer's bulk jobs alone are ~5 minutes, most of it
the peer waiting out its own 429 back-offs; the 100 tenants ~5). ``--quick`` uses shorter runs
(for a smoke test; the figures are then not the ones RESULTS.md should carry). ``--only`` runs
a subset; with ``--merge`` the benchmarks not run keep their summary rows, commands and
output from the RESULTS.md there is, so that one benchmark can be brought up to date alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"

# name -> (script, full arguments, quick arguments)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "client_overhead": (
        "client_overhead.py",
        [],
        ["--rounds", "5", "--n1", "100", "--n100", "500"],
    ),
    "limiter": ("limiter_utilisation.py", [], ["--rate", "40", "--burst", "40", "--calls", "200"]),
    "memory": ("memory_pager.py", [], ["--items", "20000", "--messages", "40000"]),
    "peer": ("peer_bulk.py", [], ["--count", "100", "--modes", "sequential"]),
    "emulator": ("emulator_throughput.py", [], ["--requests", "2000", "--rounds", "2"]),
    "decode": ("decode_bench.py", [], ["--rounds", "5"]),
    "storm": ("storm.py", ["--tasks", "300"], ["--tasks", "60"]),
    "redis": ("redis_limiter.py", [], ["--duration", "2", "--processes", "1,2"]),
    "gateway_limits": (
        "gateway_limits.py",
        [],
        ["--scale", "0.05", "--tasks", "300", "--sends", "60", "--peer-passes", "1"],
    ),
    "get_many": ("get_many.py", [], ["--ids", "400", "--memory-ids", "10000"]),
    "watch_cost": ("watch_cost.py", [], ["--hours", "1"]),
    "tenants": ("tenants.py", [], ["--tenants", "10", "--measure", "20"]),
    "deadline_handler": ("deadline_handler.py", [], ["--rounds", "1", "--watch", "3"]),
    "many_keys": ("many_keys.py", [], ["--keys", "200", "--calls", "4", "--rounds", "1"]),
    "redis_workers": ("redis_workers.py", [], ["--calls", "80", "--processes", "4"]),
}

#: The summary rows (their "#") each benchmark writes, so that --merge knows whose they are.
ROWS: dict[str, tuple[str, ...]] = {
    "client_overhead": ("1",),
    "limiter": ("2a", "2b"),
    "memory": ("3",),
    "peer": ("4",),
    "emulator": ("5",),
    "storm": ("6",),
    "redis": ("7",),
    "gateway_limits": ("8",),
    "get_many": ("9",),
    "tenants": ("10",),
    "deadline_handler": ("11",),
    "many_keys": ("12",),
    "watch_cost": ("13",),
    "redis_workers": ("7b",),
}


NOTES = [
    "## Notes",
    "",
    "- 1: what is left is decoding (about 3 us per message item on this machine, 150 us per",
    "  50-item page: 13 dict lookups with inline type checks plus 15 slot writes into the frozen",
    "  instance) and ~40-60 us/request of transport bookkeeping; orjson pays back part of it.",
    "  The generated decoders took the page from ~7 to ~3 us/item (MailClient / raw json 1.68x",
    "  -> ~1.4x). 1.15x is not reached with pure-Python models.",
    "- 4: with a 20/s gateway limit no client can beat 20/s: the peer used one call at a time",
    "  matches our wall time (1.01x) but takes 429s; used concurrently (asyncio.gather) it",
    "  fails most calls after its 5 back-offs, and needs 5-6x our time to finish by re-running",
    '  the failures. "2x faster" is met only against that concurrent use.',
    "- 6: the storm here is 300 tasks (30 s ideal) to keep this run short. The full-size one,",
    "  `python benchmarks/storm.py` (1,000 tasks at 10/s), gave on 2026-11-24: client at the",
    "  limit 99.1 s for 100 s ideal (0.991), 0 429s; client at 3x 102.9 s (1.029), 42 429s;",
    "  no client bucket 134.6 s (1.346), 45,696 429s, 0 failures in every case. Without a",
    "  bucket the shared cooldown alone cannot pace 1,000 waiting tasks: they all return when",
    "  it ends. Keep a `RateLimit` (the default) for bulk work.",
    "- 7: the Redis bucket costs one Redis round trip per call (about 0.25 ms on loopback),",
    "  negligible next to the gateway's 2-5 requests/s; with several processes it is what",
    "  keeps the key within its limit (see the in-process column's 429s).",
    "- 8: every limit of the gateway is on at once, at time scale 0.1 (durations x0.1, rates",
    "  x10), so the job takes 1/10 of its real-gateway time; the client is MailClient at its",
    "  defaults with the documented 2/s scaled the same way (RateLimit(per_second=20, burst=50)).",
    "  The ideal is the lower bound of the binding limit (the REST bucket: 1,150 calls after its",
    "  burst of 50 at 2/s, scaled); the queue holds each call 0.4 s (scaled), a figure the",
    "  contract does not give. What does not scale: the client's rate recovery after a 429",
    "  (+5 % per real second) and the peer's fixed back-offs (1, 2, 4, 8, 16 s, no",
    "  Retry-After), both 10x longer here relative to the gateway's figures than on the real",
    "  gateway. On 2026-11-25 our client gave 0.91 of the ideal at scale 0.05, 0.97 at 0.1 and",
    "  0.97 at 0.15, each with 22-23 429s, all at the start: the portal's burst of 10 against",
    "  the client's 32 calls in flight. The peer's calls that raised are run again in a second",
    "  pass, as in benchmark 4.",
    "- 10: each portal at the documented figures (REST bucket 2/s burst 50 binds), time scale",
    "  0.1 for 10 tenants and 1 for 100, so the sum is 200/s in both; the key's window is set",
    "  above what the tenants use (at the documented 300/min, shared by every installation, it",
    "  would hold the whole app to 5/s). The 429s of the whole run all come as the bursts end",
    "  (the client's bucket full, the portal's nearly, 8 workers' calls arriving together);",
    "  none in steady state. The noisy tenant gets 0.2-0.4 of its own portal's 1/s: its client",
    "  starts at the documented 2/s and each 429 costs a cooldown while the learned rate creeps",
    "  back (+5 % per real second). Without for_session every client of the key shares one",
    "  limiter, and its waits cost 2-4x the CPU per call (hundreds of tasks in one aiolimiter).",
    "  With a pool of 1 connection per tenant (max_concurrency=10 for 10 tenants) the tenants",
    "  get half their limits and some nothing: aiohttp's connector gives an idle connection to",
    "  the call that asks for one before waking the calls queued for one, so a queued call can",
    "  wait for as long as others keep asking; size max_concurrency (or your session's pool)",
    "  for every tenant's calls in flight together.",
    "- 11: the verdict is for the documented figures, where the gateway answers at once; round",
    "  1 sends what the portal's peak (10/s) lets through in 2 s, round 2 what the client's",
    "  bucket has left. A call cancelled by its deadline while waiting for the peak gives its",
    "  bucket slot back (before, round 1's late calls spent the bucket without sending, and",
    "  round 2 got 4 sends). With 0.4 s of work per call at the portal (its queue runs 2 at",
    "  once), a send with a deadline waits for one of those 2 places on the client's side and",
    "  is not started with less time left than the portal's calls lately took, so the deadline",
    "  finds none queued at the gateway: 0 outcome unknown (21 of 200 before).",
    "- 12: the bucket is arithmetic (GCRA) with one timer for its queue, so a waiting call",
    "  costs a future; the hand-paced baseline sleeps once per call. Before (aiolimiter's queue",
    "  for the main bucket: a Task and an asyncio.wait per waiting call) the waiting path cost",
    "  2.15x the CPU of hand pacing. Memory by tracemalloc: the first call of a client adds its",
    "  key's limiter, window and portal queue.",
    "",
]


def run_one(name: str, quick: bool) -> dict[str, Any]:
    script, full, short = BENCHMARKS[name]
    args = short if quick else full
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(HERE / script), *args]
        json_args = [] if name in ("decode", "redis") else ["--json", str(out)]
        print(f"\n=== {name}: python benchmarks/{script} {' '.join(args)}", flush=True)
        started = time.perf_counter()
        done = subprocess.run(
            [*cmd, *json_args], capture_output=True, text=True, cwd=HERE.parent, timeout=900
        )
        elapsed = time.perf_counter() - started
        print(done.stdout, end="", flush=True)
        if done.stderr.strip():
            print(done.stderr[-2000:], file=sys.stderr, flush=True)
        figures = json.loads(out.read_text()) if out.exists() else {}
    return {
        "command": " ".join(["python", f"benchmarks/{script}", *args]),
        "stdout": done.stdout.rstrip(),
        "returncode": done.returncode,
        "seconds": round(elapsed, 1),
        "figures": figures,
    }


def machine() -> str:
    try:
        cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        cores = str(os.cpu_count())
    try:
        import orjson

        extras = f"orjson {orjson.__version__}"
    except ImportError:
        extras = "no orjson"
    from importlib.metadata import version

    return (
        f"{platform.platform()}, {platform.processor() or platform.machine()}, nproc {cores}; "
        f"Python {platform.python_version()}, aiohttp {version('aiohttp')}, "
        f"attrs {version('attrs')}, cattrs {version('cattrs')}, {extras}"
    )


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**not met**")


def summary(res: dict[str, dict[str, Any]]) -> list[str]:
    rows = ["| # | benchmark | target | result | verdict |", "|---|---|---|---|---|"]
    f = res.get("client_overhead", {}).get("figures", {})
    if f:
        c1, c100 = f.get("c1_cpu_ratio"), f.get("c100_cpu_ratio")
        g1, g100 = f.get("get_c1_cpu_ratio"), f.get("get_c100_cpu_ratio")
        met = c1 is not None and c100 is not None and max(c1, c100) <= f["target"]
        if g1 is not None and g100 is not None:
            met = met and g1 <= 1.20 and g100 <= 1.30
        gets = "" if g1 is None else f"; a get: {g1}x at 1, {g100}x at 100"
        hooks = (
            f"; Hooks() {f.get('c100_cpu_ratio_empty_hooks')}x, four no-op hooks "
            f"{f.get('c100_cpu_ratio_noop_hooks')}x of MailClient at 100"
        )
        floor = ""
        if f.get("get_c100_cpu_ratio_ids_floor") is not None:
            # What aiohttp costs for the options every call sends, apart from our own logic.
            floor = (
                "; raw + ids (per-request headers with a request id, a timeout) / raw: a page "
                f"{f.get('c1_cpu_ratio_ids_floor')}x / {f.get('c100_cpu_ratio_ids_floor')}x, "
                f"a get {f.get('get_c1_cpu_ratio_ids_floor')}x / "
                f"{f.get('get_c100_cpu_ratio_ids_floor')}x; MailClient / raw + ids: a page "
                f"{f.get('c1_cpu_ratio_vs_ids')}x / {f.get('c100_cpu_ratio_vs_ids')}x, a get "
                f"{f.get('get_c1_cpu_ratio_vs_ids')}x / {f.get('get_c100_cpu_ratio_vs_ids')}x"
            )
        ops = f.get("get_c100_opcodes")
        if ops:
            floor += (
                f"; Python opcodes per get at 100 (machine-independent): MailClient "
                f"{ops['MailClient']} (its own code {ops['ours']}), raw + ids {ops['raw + ids']}, "
                f"raw json {ops['raw json']}"
            )
        rows.append(
            "| 1 | client CPU per request, MailClient / raw aiohttp+json.loads | a 50-item page "
            "<= 1.15x; a get <= 1.20x at 1, <= 1.30x at 100 | "
            f"a page: {c1}x at concurrency 1, {c100}x at 100 (vs raw+orjson: "
            f"{f.get('c1_cpu_ratio_vs_orjson')}x / {f.get('c100_cpu_ratio_vs_orjson')}x)"
            f"{gets}{hooks}{floor} | {verdict(met)} |"
        )
    f = res.get("limiter", {}).get("figures", {})
    if f:
        m, d = f["matched"], f["client_2x"]
        rows.append(
            f"| 2a | limiter, client = server limit ({f['rate']:g}/s, burst {f['burst']}), "
            f"{f['calls']} calls | >= 97 % of R, 0 429s | {m['achieved_over_r']:.1%} of R, "
            f"{m['server_429']} 429s, {m['failures']} failed | {verdict(m['met'])} |"
        )
        rows.append(
            f"| 2b | limiter, client at 2x the server limit | 0 lost, >= 90 % of R | "
            f"{d['achieved_over_r']:.1%} of R, {d['failures']} lost, {d['server_429']} 429s | "
            f"{verdict(d['met'])} |"
        )
    f = res.get("memory", {}).get("figures", {})
    if f:
        rows.append(
            f"| 3 | pager memory, {f['seen']:,} messages, page 200 | peak RSS growth < 30 MB | "
            f"RSS +{f['growth_mb']:.1f} MB, tracemalloc peak {f['tracemalloc']['peak_mb']:.2f} MB "
            f"(one page {f['one_page_mb']:.2f} MB) | {verdict(f['met'])} |"
        )
    f = res.get("peer", {}).get("figures", {})
    if f and "ours" in f:
        o = f["ours"]
        parts = [f"ours {o['elapsed']:.1f} s, {o['failures']} failed, {o['server_429']} 429s"]
        met = None
        for mode in ("gather", "sequential"):
            p = f.get(f"peer_{mode}")
            if p:
                first = p["passes"][0]
                parts.append(
                    f"peer {mode}: pass 1 {first['elapsed']:.1f} s with {first['failures']} "
                    f"failed, all done in {p['elapsed']:.1f} s ({p['ratio_vs_ours']}x ours), "
                    f"{p['server_429']} 429s"
                )
                ok = o["failures"] == 0 and p["ratio_vs_ours"] >= 2.0
                met = ok if met is None else (met and ok)
        rows.append(
            f"| 4 | bulk job: {f['count']} messages.get at {f['rate']:g}/s vs "
            f"vibecode-b24-bot {f.get('peer_version')} | ours >= 2x faster, 0 failures | "
            f"{'; '.join(parts)} | {verdict(met)} |"
        )
    f = res.get("emulator", {}).get("figures", {})
    if f:
        rows.append(
            f"| 5 | emulator throughput, GET /mail/mailboxes/1, concurrency {f['concurrency']} | "
            f">= 2,000 req/s | {f['best_rps']:,} req/s | {verdict(f['met'])} |"
        )
    f = res.get("storm", {}).get("figures", {})
    if f:
        parts = [
            f"{r['label']}: {r['ratio']:.3f}x ideal, {r['rate_limited']} 429s, "
            f"{r['failures']} failed"
            for r in f["rows"]
        ]
        matched = f["rows"][0]
        met = matched["ratio"] <= 1.15 and matched["failures"] == 0
        rows.append(
            f"| 6 | 429 storm: {matched['tasks']} tasks at once, gateway {f['rate']:g}/s burst "
            f"{f['burst']} | within 15 % of the ideal time, few 429s | {'; '.join(parts)} | "
            f"{verdict(met)} |"
        )
    f = res.get("gateway_limits", {}).get("figures", {})
    if f and "ours" in f:
        rows.append(gateway_limits_row(f))
    f = res.get("get_many", {}).get("figures", {})
    if f and "pace" in f:
        pace, mem = f["pace"], f["memory"]
        rows.append(
            f"| 9 | messages.get_many: {pace['ids']:,} ids at a {pace['rate']:g}/s limit; memory "
            f"over {mem['ids']:,} ids | <= 1.03x ideal, 0 429s, input order; flat memory | "
            f"{pace['ratio']:.3f}x ideal, {pace['server_429']} 429s, in order: "
            f"{pace['in_order']}; tracemalloc peak {mem['peak_mb']:.2f} MB (first tenth "
            f"{mem['peak_first_tenth_mb']:.2f} MB) | {verdict(f.get('met'))} |"
        )
    f = res.get("watch_cost", {}).get("figures", {})
    if f:
        rows.append(
            f"| 13 | messages.watch at its defaults, mailbox of {f['per_day']:,.0f} messages/day "
            f"({f['virtual_hours']} virtual h at x{f['scale']:g}) | share of a 2 req/s key; "
            f"each message once | {f['req_per_s']} req/s = {f['share_of_key']:.1%} "
            f"({f['regular_polls']} polls + {f['sweep_pages']} sweep pages; design "
            f"{f['expected']['share_of_key']:.1%}); missing {f['missing']}, once: "
            f"{f['yielded_once']} | n/a |"
        )
    if "redis" in res:
        rows.append(
            "| 7 | Redis limiter: cost per acquire, 1-8 processes on one key | see output | "
            f"see the redis section below (exit {res['redis']['returncode']}) | n/a |"
        )
    f = res.get("redis_workers", {}).get("figures", {})
    if f and "runs" in f:
        rows.append(redis_workers_row(f))
    f = res.get("tenants", {}).get("figures", {})
    if f and "results" in f:
        rows.append(tenants_row(f))
    f = res.get("deadline_handler", {}).get("figures", {})
    if f and "rounds" in f:
        rows.append(deadline_row(f))
    f = res.get("many_keys", {}).get("figures", {})
    if f and "waits" in f:
        rows.append(many_keys_row(f))
    return rows


def redis_workers_row(f: dict[str, Any]) -> str:
    """The summary row of ``redis_workers.py``'s figures."""
    runs = "; ".join(
        f"{n} workers: {r['ratio']:.3f}x ideal, {r['429']} 429s ({r['share_429']:.2%}), "
        f"{sum(r['raised'].values())} raised"
        for n, r in f["runs"].items()
    )
    return (
        f"| 7b | {f['calls']} message gets over N worker processes, one key, "
        f"RedisRateLimit.documented on one Redis, every gateway limit on (scale {f['scale']:g}) "
        f"| <= 1.03x ideal, <= 0.5 % 429s | {runs} | {verdict(f.get('met'))} |"
    )


def tenants_row(f: dict[str, Any]) -> str:
    """The summary row of ``tenants.py``'s figures."""
    parts = []
    for n in sorted({r["tenants"] for r in f["results"]}):
        modes = {r["mode"]: r for r in f["results"] if r["tenants"] == n}
        bits = []
        if "for_session" in modes:
            r = modes["for_session"]
            bits.append(
                f"{r['share']:.3f} of the sum, {r['steady_429']} 429s in steady state "
                f"({r['server_429']} in all, at the bursts' end)"
            )
        if "noisy" in modes:
            r = modes["noisy"]
            bits.append(
                f"beside a noisy tenant the others {r['others_share']:.3f} (lowest "
                f"{r['others_min_share']:.3f}), {r['others_steady_429']} 429s"
            )
        if "one_limiter" in modes:
            bits.append(f"without for_session (one limiter): {modes['one_limiter']['share']:.3f}")
        if "small_pool" in modes:
            r = modes["small_pool"]
            bits.append(
                f"pool of 1 per tenant: {r['share']:.3f} (lowest {r['others_min_share']:.3f})"
            )
        parts.append(f"{n} tenants: " + "; ".join(bits))
    return (
        "| 10 | tenants of one app key (`for_session`), each portal at its own limit, every "
        "limit on (time-scaled), 10 and 100 tenants; one noisy portal at 1/s | >= 0.95 of the "
        "sum of their limits, 0 429s in steady state; beside the noisy one, each other >= 0.95 "
        f"| {'. '.join(parts)} | {verdict(f.get('met'))} |"
    )


def deadline_row(f: dict[str, Any]) -> str:
    """The summary row of ``deadline_handler.py``'s figures."""

    def kinds(r: dict[str, Any]) -> str:
        return ", ".join(f"{n} {k}" for k, n in sorted(r["answers"].items()))

    parts = [
        f"{r['label']}: {kinds(r)}, slowest {r['slowest']:.2f} s, {r['duplicated']} sent twice, "
        f"{r['applied_although_503']} applied although 503"
        for r in f["rounds"]
    ]
    queued = [r for r in f.get("queued", []) if r["label"] == "round 1"]
    if queued:
        parts.append(
            "with 0.4 s per call at the portal, round 1: "
            + "; ".join(f"max_concurrency={r['concurrency']}: {kinds(r)}" for r in queued)
        )
    base = f["without_deadline"]
    parts.append(
        f"without a deadline: {base['answered_in_time']} of {f['requests']} answered in time, "
        f"{base['still_waiting']} still waiting at 10 s"
    )
    return (
        f"| 11 | web handler with deadline={f['deadline']:g}: {f['requests']} requests at once, "
        "gateway at 2/s (every limit on, real time) | every answer <= 2.2 s, each sent or "
        f"DeadlineExceededError, nothing sent twice | {'; '.join(parts)} | "
        f"{verdict(f.get('met'))} |"
    )


def many_keys_row(f: dict[str, Any]) -> str:
    """The summary row of ``many_keys.py``'s figures."""
    w, c, m = f["waits"], f["whole"], f["memory"]
    mem = "; ".join(f"{label} {v['kib']:.1f} KiB" for label, v in m.items())
    return (
        f"| 12 | {f['keys']:,} keys paced at {f['rate']:g}/s in one process: CPU of the waiting "
        "path vs hand pacing; memory per open client | <= 1.15x | waiting path "
        f"{w['ratio']['cpu']:.2f}x ({w['library']['cpu_us']:.0f} vs {w['hand']['cpu_us']:.0f} us "
        f"per wait); whole calls over HTTP {c['ratio']['cpu']:.2f}x ({c['library']['cpu_us']:.0f} "
        f"vs {c['hand']['cpu_us']:.0f} us per call); memory: {mem} | "
        f"{verdict(w['ratio']['cpu'] <= f['target'])} |"
    )


def gateway_limits_row(f: dict[str, Any]) -> str:
    """The summary row of ``gateway_limits.py``'s figures."""
    o = f["ours"]
    parts = [
        f"ours {o['elapsed']:.1f} s for {f['ideal']:.1f} s ideal ({f['binding']}): "
        f"{o['efficiency']:.3f} of ideal, {o['server']['429']} 429s ({o['share_429']:.1%}), "
        f"{o['server']['504']} 504s, {sum(o['raised'].values())} raised "
        f"({o['queue_timeouts_raised']} QUEUE_TIMEOUT), {o['lost_total']} lost, "
        f"{o['duplicated']} duplicated"
    ]
    p = f.get("peer")
    if p:
        parts.append(
            f"peer: pass 1 {p['pass1_elapsed']:.1f} s with {sum(p['raised'].values())} of "
            f"{f['calls']:,} calls raised, {p['not_done']} still not done after "
            f"{len(p['passes'])} pass(es), {p['server']['429']} 429s, {p['lost_total']} lost, "
            f"{p['duplicated']} duplicated"
        )
    return (
        f"| 8 | every gateway limit on (time scale {f['scale']:g}): {f['tasks']:,} tasks, "
        f"{f['tasks']:,} gets + {f['sends']} sends, vs vibecode-b24-bot {f.get('peer_version')} "
        f"| >= 0.95 of ideal, <= 1 % 429s, 0 QUEUE_TIMEOUT raised, 0 lost, 0 duplicated | "
        f"{'; '.join(parts)} | {verdict(f.get('met'))} |"
    )


def carried_over(text: str) -> dict[str, Any]:
    """What an earlier RESULTS.md says of each benchmark: summary rows, command, output."""
    rows: dict[str, list[str]] = {}
    owner = {row: name for name, ids in ROWS.items() for row in ids}
    summary_part = text.split("## Summary", 1)[-1].split("## ", 1)[0]
    for line in summary_part.splitlines():
        cells = line.split("|")
        if len(cells) > 2 and cells[1].strip() in owner:
            rows.setdefault(owner[cells[1].strip()], []).append(line)
    sections: dict[str, list[str]] = {}
    output = text.split("## Output of each benchmark", 1)[-1]
    for block in output.split("\n### ")[1:]:
        name = block.split(" ", 1)[0]
        sections[name] = ["### " + block.rstrip("\n"), ""]
    commands = {}
    for name, (script, _, _) in BENCHMARKS.items():
        for line in text.splitlines():
            if line.startswith(f"python benchmarks/{script}"):
                commands[name] = line
    date = next(
        (line[len("- Date: ") :] for line in text.splitlines() if line.startswith("- Date: ")), "?"
    )
    return {"rows": rows, "sections": sections, "commands": commands, "date": date}


def write_results(
    res: dict[str, dict[str, Any]], total: float, quick: bool, merge: bool = False
) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    old = carried_over(RESULTS.read_text()) if merge and RESULTS.exists() else None
    names = [name for name in BENCHMARKS if name in res or (old and name in old["sections"])]
    rows: list[str] = []
    commands: list[str] = []
    sections: list[str] = []
    for name in names:
        if name in res:
            r = res[name]
            rows += summary({name: r})[2:]
            commands.append(r["command"])
            sections += [
                f"### {name} ({r['seconds']:.0f} s, exit {r['returncode']})",
                "",
                f"`{r['command']}`",
                "",
                "```",
                r["stdout"],
                "```",
                "",
            ]
        elif old is not None:
            rows += old["rows"].get(name, [])
            commands += [old["commands"][name]] if name in old["commands"] else []
            sections += old["sections"].get(name, [])
    date = f"{now}{' (QUICK run: short figures)' if quick else ''}"
    run_time = f"{total:.0f} s"
    if old is not None:
        date += f" for {', '.join(res)}; the others from the run of {old['date']}"
        run_time += f" ({', '.join(res)})"
    lines = [
        "# Benchmark results",
        "",
        "Written by `python benchmarks/run_all.py` — do not edit by hand.",
        "",
        f"- Date: {date}",
        f"- Machine: {machine()}",
        f"- Total time of the run: {run_time}",
        "",
        "Every server (the emulator or a canned aiohttp.web app) runs in a child process; the",
        "client's figures are taken in its own process. Ratios are measured side by side,",
        "interleaved, in one run: the machine is shared and noisy, so absolute numbers move",
        "between runs while the ratios stay put.",
        "",
        "## Summary",
        "",
        "| # | benchmark | target | result | verdict |",
        "|---|---|---|---|---|",
        *rows,
        "",
        *NOTES,
        "## Reproduce",
        "",
        "```",
        "pip install -e '.[test,speedups]'",
        "python benchmarks/run_all.py            # everything, rewrites this file",
        *commands,
        "```",
        "",
        "## Output of each benchmark",
        "",
        *sections,
    ]
    RESULTS.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    parser.add_argument("--only", help="comma-separated subset of " + ",".join(BENCHMARKS))
    parser.add_argument(
        "--merge", action="store_true", help="keep what RESULTS.md says of the others"
    )
    parser.add_argument("--no-write", action="store_true", help="do not rewrite RESULTS.md")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    started = time.perf_counter()
    res = {name: run_one(name, args.quick) for name in names}
    total = time.perf_counter() - started
    print(f"\nall benchmarks: {total:.0f} s")
    if not args.no_write:
        write_results(res, total, args.quick, merge=args.merge)
        print(f"wrote {RESULTS}")
    return 0 if all(r["returncode"] == 0 for r in res.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
