"""How much of the gateway's rate limit the client's limiter uses, and how many 429s it earns.

The emulator runs in a child process with a per-key token bucket of ``R``/s and burst ``B``
(defaults 20 and 20). Two runs of ``--calls`` concurrent ``mail.mailboxes.get(1)``:

1. client ``RateLimit(per_second=R, burst=B)`` (matched): target >= 97 % of R, zero 429s;
2. client ``RateLimit(per_second=2R, burst=2B)`` (twice the real limit): target 0 lost calls
   and >= 90 % of R (the adaptive limiter must learn the real rate from the 429s).

"Achieved/R" is measured against what the gateway can accept at most in the run's wall time
``T``: ``B + R*T`` calls, i.e. achieved = ``(calls - B) / T``. (``calls / T`` is also printed;
it flatters short runs because the first ``B`` calls are free.) 429 counts come from the
emulator (answers sent) and from the client's stats.

    python benchmarks/limiter_utilisation.py [--rate 20] [--burst 20] [--calls 400]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from _common import EmulatorProcess, write_json

from bitrix_mail_async import MailClient, RateLimit


async def one_run(
    base_url: str, key: str, per_second: float, burst: int, calls: int
) -> dict[str, Any]:
    async with MailClient(
        key, base_url=base_url, rate_limit=RateLimit(per_second=per_second, burst=burst)
    ) as mail:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(mail.mailboxes.get(1) for _ in range(calls)), return_exceptions=True
        )
        elapsed = time.perf_counter() - started
        failures = [r for r in results if isinstance(r, BaseException)]
        return {
            "elapsed": elapsed,
            "failures": len(failures),
            "failure_examples": sorted({repr(f)[:120] for f in failures})[:3],
            "client_429": mail.stats.rate_limited,
            "learned_rate": mail.stats.current_rate,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    rate, burst, calls = args.rate, args.burst, args.calls

    runs = {
        "matched": (rate, burst, 0.97),
        "client_2x": (2 * rate, 2 * burst, 0.90),
    }
    out: dict[str, Any] = {"rate": rate, "burst": burst, "calls": calls}
    ok = True
    with EmulatorProcess(messages=60, rate=rate, burst=burst) as emu:
        for name, (c_rate, c_burst, target) in runs.items():
            emu.reset()
            res = asyncio.run(one_run(emu.base_url, emu.api_key, c_rate, c_burst, calls))
            server = emu.stats()
            elapsed = res["elapsed"]
            succeeded = calls - res["failures"]
            achieved = max(0, succeeded - burst) / elapsed / rate
            plain = succeeded / elapsed / rate
            met = achieved >= target and res["failures"] == 0
            if name == "matched":
                met = met and server["rate_limited"] == 0
            ok = ok and met
            print(
                f"{name:<10} client RateLimit({c_rate:g}/s, burst {c_burst}) vs server "
                f"{rate:g}/s burst {burst}: {calls} calls in {elapsed:.2f} s, "
                f"{res['failures']} failed"
            )
            print(
                f"           achieved/R {achieved:.1%} (calls/T/R {plain:.1%}; target "
                f">= {target:.0%}), 429s: server {server['rate_limited']}, "
                f"client {res['client_429']}, learned rate {res['learned_rate']:.3g}/s "
                f"-> {'OK' if met else 'NOT MET'}"
            )
            out[name] = {
                **res,
                "achieved_over_r": round(achieved, 4),
                "calls_over_t_over_r": round(plain, 4),
                "server_429": server["rate_limited"],
                "server_requests": server["requests"],
                "target": target,
                "met": met,
            }
    write_json(args.json, out)
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
