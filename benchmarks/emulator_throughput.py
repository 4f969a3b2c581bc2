"""Requests per second the emulator sustains on a cheap GET (GET /mail/mailboxes/1).

The emulator runs in a child process so the client's work does not share its CPU; a raw
aiohttp client keeps ``--concurrency`` requests in flight until ``--requests`` are done.
Target: at least 2,000 req/s on two cores.

    python benchmarks/emulator_throughput.py [--requests 5000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
from pathlib import Path

import aiohttp
from _common import free_port, wait_ready

PATH = "/mail/mailboxes/1"
TARGET = 2_000.0


def _serve(port: int, messages: int) -> None:
    from bitrix_mail_async.testing.server import run

    run(port=port, messages=messages)


async def _measure(url: str, key: str, total: int, concurrency: int) -> tuple[float, int]:
    remaining = total
    failures = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers={"X-Api-Key": key}) as http:

        async def worker() -> None:
            nonlocal remaining, failures
            while remaining > 0:
                remaining -= 1
                async with http.get(url) as resp:
                    await resp.read()
                    if resp.status != 200:
                        failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, failures


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print requests per second."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--messages", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3, help="report the best of N rounds")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)

    from bitrix_mail_async.testing.app import DEFAULT_API_KEY

    port = free_port()
    url = f"http://127.0.0.1:{port}/v1{PATH}"
    server = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(port, args.messages), daemon=True
    )
    server.start()
    try:
        asyncio.run(wait_ready(url, {"X-Api-Key": DEFAULT_API_KEY}, time.monotonic() + 30))
        rates = []
        for round_no in range(1, args.rounds + 1):
            elapsed, failures = asyncio.run(
                _measure(url, DEFAULT_API_KEY, args.requests, args.concurrency)
            )
            rate = args.requests / elapsed
            rates.append(rate)
            print(
                f"round {round_no}: {args.requests} x GET {PATH} at concurrency "
                f"{args.concurrency}: {elapsed:.2f} s, {rate:,.0f} req/s, {failures} non-200"
            )
            if failures:
                return 1
    finally:
        server.terminate()
        server.join(10)
    best = max(rates)
    verdict = "OK" if best >= TARGET else "BELOW TARGET"
    print(
        f"emulator throughput: {best:,.0f} req/s "
        f"(best of {len(rates)}; target {TARGET:,.0f}) {verdict}"
    )
    if args.json:
        result = {"best_rps": round(best), "rates": [round(r) for r in rates], "target": TARGET}
        result.update(requests=args.requests, concurrency=args.concurrency, met=best >= TARGET)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if best >= TARGET else 2


if __name__ == "__main__":
    sys.exit(main())
