"""The same bulk job with our client and with the peer, vibecode-b24-bot's ``VibeCode``.

Job: fetch ``--count`` (500) full messages by id (``GET /mail/messages/{id}``) from the
emulator (child process) limited to ``--rate`` (20)/s, burst ``--rate``. Ours:
``MailClient(rate_limit=RateLimit(per_second=R, burst=R))`` and ``asyncio.gather`` of every
``mail.messages.get(id)``. The peer runs in its own virtualenv (created here on first use,
``pip install vibecode-b24-bot``; never a dependency of this project) as a child process
(``_peer_job.py``), pointed at the emulator with ``VibeCode(api_key, base_url=...)``; it has
no mail methods, so ``get_entity("mail/messages", id)`` makes the same request. Modes:

* ``gather``: all ids concurrently, then again for the ids that failed, until all are done;
  pass 1 alone is "one run of the job";
* ``sequential``: one id after the other.

Printed: wall time, failures, the emulator's 429 count per run, and ours vs the peer.
Target: ours >= 2x faster with 0 failures.

    python benchmarks/peer_bulk.py [--count 500] [--rate 20] [--venv DIR] [--modes gather]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    DEFAULT_VENV,
    PEER,
    EmulatorProcess,
    ensure_peer,
    run_peer_script,
    write_json,
)

from bitrix_mail_async import MailClient, RateLimit

FIRST_ID = 1001


async def ours(base_url: str, key: str, count: int, rate: float) -> dict[str, Any]:
    ids = range(FIRST_ID, FIRST_ID + count)
    async with MailClient(
        key, base_url=base_url, rate_limit=RateLimit(per_second=rate, burst=int(rate))
    ) as mail:
        started = time.perf_counter()
        got = await asyncio.gather(*(mail.messages.get(i) for i in ids), return_exceptions=True)
        elapsed = time.perf_counter() - started
        failures = [g for g in got if isinstance(g, BaseException)]
        wrong = sum(
            1
            for i, g in zip(ids, got, strict=True)
            if not isinstance(g, BaseException) and g.id != i
        )
        return {
            "elapsed": elapsed,
            "failures": len(failures) + wrong,
            "examples": sorted({repr(f)[:100] for f in failures})[:3],
            "client_429": mail.stats.rate_limited,
        }


def peer(
    python: Path, base_url: str, key: str, count: int, mode: str, timeout: float
) -> dict[str, Any]:
    args = [base_url, key, str(FIRST_ID), str(count), mode]
    return run_peer_script(python, "_peer_job.py", args, timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--modes", default="gather,sequential")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"count": args.count, "rate": args.rate}

    python, version = ensure_peer(args.venv)
    out["peer_version"] = version
    if python is None:
        print(f"peer not available: {version}")
    with EmulatorProcess(messages=args.count + 100, rate=args.rate, burst=int(args.rate)) as emu:
        emu.reset()
        mine = asyncio.run(ours(emu.base_url, emu.api_key, args.count, args.rate))
        mine["server_429"] = emu.stats()["rate_limited"]
        out["ours"] = mine
        print(
            f"ours: {args.count} x messages.get at {args.rate:g}/s: {mine['elapsed']:.1f} s, "
            f"{mine['failures']} failures, 429s: server {mine['server_429']}, "
            f"client {mine['client_429']}"
        )
        if python is not None:
            for mode in args.modes.split(","):
                emu.reset()
                time.sleep(0.5)
                res = peer(python, emu.base_url, emu.api_key, args.count, mode, timeout=900)
                res["server_429"] = emu.stats()["rate_limited"]
                first = res["passes"][0]
                res["ratio_vs_ours"] = round(res["elapsed"] / mine["elapsed"], 2)
                res["first_pass_ratio_vs_ours"] = round(first["elapsed"] / mine["elapsed"], 2)
                out[f"peer_{mode}"] = res
                print(
                    f"peer {PEER} {version}, {mode}: first pass {first['elapsed']:.1f} s with "
                    f"{first['failures']} of {first['ids']} failed "
                    f"({'; '.join(first['examples'][:1]) or 'no errors'})"
                )
                print(
                    f"  until done: {res['elapsed']:.1f} s in {len(res['passes'])} pass(es), "
                    f"{res['not_done']} never fetched, 429s: server {res['server_429']}; "
                    f"peer/ours wall {res['ratio_vs_ours']:.2f}x "
                    f"(first pass {res['first_pass_ratio_vs_ours']:.2f}x)"
                )
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
