"""Client CPU per request: ``MailClient`` (attrs models) vs raw aiohttp + ``json.loads`` (dicts).

A canned aiohttp.web server in a child process answers every ``GET /v1/mail/messages`` with
the same 50-item page envelope (items made by the emulator's own portal generator), so the
server's CPU is not counted and both clients get byte-identical answers. Contenders, run in
interleaved rounds (order reversed every round) inside one process:

* ``raw json``    aiohttp + ``json.loads``, returns the list of item dicts (or the one
  message's dict, for ``get``);
* ``raw orjson``  the same with ``orjson.loads`` (what our transport uses when installed);
* ``raw + ids``   ``raw json`` sending what any client that names its calls must: the headers
  per request (a fresh ``X-Request-Id`` among them), a timeout per call, no redirects. What
  ``MailClient`` costs beyond it is its own logic; what it costs beyond ``raw json``, aiohttp's
  work for those options too;
* ``MailClient``  ``pager.fetch_page(offset)``: limiter (``rate_limit=None``), retry loop,
  envelope checks, ``MessageSummary`` models; no hooks (``get``: ``messages.get(1001)``, one
  ``Message`` with its body);
* ``Hooks()``     the same client with ``hooks=Hooks()`` (empty: must cost nothing);
* ``noop hooks``  the same with a no-op sync hook on each of the four events (what building
  and dispatching the events costs).

CPU is ``time.process_time()`` of this (client) process; wall is ``perf_counter``. Target:
client CPU per request of ``MailClient`` <= 1.15x ``raw json``; ``Hooks()`` / ``MailClient``
about 1.00x (hooks cost nothing when unset).

Many short rounds rather than a few long ones: the medians of per-round ratios then hold on a
shared machine whose speed drifts within seconds.

    python benchmarks/client_overhead.py [--rounds 11] [--n1 200] [--n100 1000] [--kinds page,get]
    python benchmarks/client_overhead.py --profile   # cProfile of the MailClient loop

CPU time on a shared machine drifts by 10-40 % between rounds, so each report also counts the
Python opcodes executed per request (``sys.settrace``, before and after the timed rounds, the
lower count kept): a figure that does not depend on the machine's speed. ``ours`` is the part
run in ``bitrix_mail_async``'s own code (generated decoders included); the rest is aiohttp,
asyncio and the JSON parser.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

import aiohttp
from _common import AppProcess, write_json
from aiohttp import web

from bitrix_mail_async import Hooks, MailClient

PAGE_SIZE = 50
API_KEY = "vibe_api_bench_overhead_0123456789"
TARGET = 1.15

try:
    import orjson
except ImportError:  # pragma: no cover
    orjson = None


def _noop(event: object) -> None:
    """A hook that does nothing: what remains is the cost of the events themselves."""


NOOP_HOOKS = Hooks(on_request=_noop, on_response=_noop, on_retry=_noop, on_rate_limited=_noop)


def page_body() -> bytes:
    """The envelope of one 50-item page of mailbox 1, as the emulator renders it."""
    from bitrix_mail_async.testing.state import PortalState

    state = PortalState(messages=400)
    ids = state.page_ids(1, 0, PAGE_SIZE)
    items = [state.summary(state.messages[i]) for i in ids]
    envelope = {
        "success": True,
        "data": {"items": items},
        "meta": {"total": 10_000, "hasMore": True},
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def get_body() -> bytes:
    """The envelope of one message with its body (``GET /mail/messages/{id}``)."""
    from bitrix_mail_async.testing.state import PortalState

    state = PortalState(messages=400)
    msg = state.messages[state.page_ids(1, 0, 1)[0]]
    envelope = {"success": True, "data": {"item": state.full(msg)}}
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def make_app() -> web.Application:
    """The canned server: one fixed body for the message list and for a get, no checks."""
    body = page_body()
    one = get_body()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def get_handler(request: web.Request) -> web.Response:
        return web.Response(body=one, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/mail/messages", handler)
    app.router.add_get("/v1/mail/messages/{id}", get_handler)
    return app


Fetch = Callable[[int], Awaitable[int]]


async def run_batch(fetch: Fetch, total: int, concurrency: int, expect: int = PAGE_SIZE) -> None:
    """``total`` requests, ``concurrency`` in flight; each must yield ``expect`` items."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            n = await fetch(remaining * PAGE_SIZE)
            if n != expect:
                raise RuntimeError(f"expected {expect} items, got {n}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def measure(
    base_url: str, rounds: int, n_by_conc: dict[int, int], profile: bool, kinds: list[str]
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for kind in kinds:
        for conc, n in n_by_conc.items():
            await measure_one(base_url, rounds, conc, n, profile, results, kind)
    results["rounds"] = rounds
    results["target"] = TARGET
    return results


async def measure_one(
    base_url: str,
    rounds: int,
    conc: int,
    n: int,
    profile: bool,
    results: dict[str, Any],
    kind: str = "page",
) -> None:
    headers = {"X-Api-Key": API_KEY, "Accept": "application/json"}
    url = base_url + "/v1/mail/messages"
    connector = aiohttp.TCPConnector(limit=conc, limit_per_host=conc)

    def client(hooks: Hooks | None) -> MailClient:
        return MailClient(
            API_KEY, base_url=base_url + "/v1", rate_limit=None, max_concurrency=conc, hooks=hooks
        )

    async with (
        aiohttp.ClientSession(connector=connector, headers=headers) as http,
        client(None) as mail,
        client(Hooks()) as mail_empty_hooks,
        client(NOOP_HOOKS) as mail_noop_hooks,
    ):

        def raw_with(loads: Callable[[bytes], Any], ids: bool = False) -> Fetch:
            # ids: the headers, a fresh request id among them, and the timeout, per request.
            options: dict[str, Any] = {}
            timeout = aiohttp.ClientTimeout(total=30.0)

            def named() -> dict[str, Any]:
                if not ids:
                    return options
                sent = {**headers, "User-Agent": "bench/1", "X-Request-Id": str(uuid.uuid4())}
                return {"headers": sent, "timeout": timeout, "allow_redirects": False}

            if kind == "get":

                async def get(offset: int) -> int:
                    async with http.get(f"{url}/1001", **named()) as resp:
                        raw = await resp.read()
                    return len([loads(raw)["data"]["item"]])

                return get

            async def fetch(offset: int) -> int:
                params = {"mailboxId": "1", "limit": str(PAGE_SIZE), "offset": str(offset)}
                async with http.get(url, params=params, **named()) as resp:
                    raw = await resp.read()
                return len(loads(raw)["data"]["items"])

            return fetch

        def ours_with(client: MailClient) -> Fetch:
            if kind == "get":

                async def get(offset: int) -> int:
                    return len([await client.messages.get(1001)])

                return get

            pager = client.messages.list(1, page_size=PAGE_SIZE)

            async def fetch(offset: int) -> int:
                page = await pager.fetch_page(offset)
                return len(page.items)

            return fetch

        expect = 1 if kind == "get" else PAGE_SIZE

        ours = ours_with(mail)
        contenders: dict[str, Fetch] = {"raw json": raw_with(json.loads)}
        if orjson is not None:
            contenders["raw orjson"] = raw_with(orjson.loads)
        contenders["raw + ids"] = raw_with(json.loads, ids=True)
        contenders["MailClient"] = ours
        contenders["Hooks()"] = ours_with(mail_empty_hooks)
        contenders["noop hooks"] = ours_with(mail_noop_hooks)

        for fetch in contenders.values():  # warm-up: connections, caches
            await run_batch(fetch, min(n, 200), conc, expect)
        if profile:
            prof = cProfile.Profile()
            prof.enable()
            await run_batch(ours, n, conc, expect)
            prof.disable()
            print(f"--- cProfile of MailClient, concurrency {conc}, {n} requests")
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            return

        counted = min(n, 200)  # a count per request settles within a few requests
        ops = {
            name: await count_opcodes(contenders[name], counted, conc, expect) for name in OPCODED
        }
        cpu: dict[str, list[float]] = {name: [] for name in contenders}
        wall: dict[str, list[float]] = {name: [] for name in contenders}
        order = list(contenders)
        for round_no in range(rounds):
            for name in order if round_no % 2 == 0 else order[::-1]:
                c0, w0 = time.process_time(), time.perf_counter()
                await run_batch(contenders[name], n, conc, expect)
                cpu[name].append((time.process_time() - c0) / n * 1e6)
                wall[name].append((time.perf_counter() - w0) / n * 1e6)
        for name in OPCODED:  # and again after the rounds: the lower count of the two is kept
            ops[name] = min(ops[name], await count_opcodes(contenders[name], counted, conc, expect))
        report(conc, rounds, n, cpu, wall, results, kind)
        report_opcodes(conc, kind, ops, results)


#: The contenders whose opcodes are counted.
OPCODED = ("raw json", "raw + ids", "MailClient")


async def count_opcodes(fetch: Fetch, n: int, conc: int, expect: int) -> tuple[float, float]:
    """Python opcodes executed per request, in all code and in ``bitrix_mail_async``'s."""
    total = ours = 0

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal total, ours
        if event == "call":
            frame.f_trace_opcodes = True
        elif event == "opcode":
            total += 1
            # The package's files, and the code generated for its models (decoders, attrs).
            if "bitrix_mail_async" in frame.f_code.co_filename:
                ours += 1
        return trace

    sys.settrace(trace)
    try:
        await run_batch(fetch, n, conc, expect)
    finally:
        sys.settrace(None)
    return total / n, ours / n


def report_opcodes(
    conc: int, kind: str, ops: dict[str, tuple[float, float]], results: dict[str, Any]
) -> None:
    """Print the opcode counts of one concurrency and put them in ``results``."""
    prefix = "" if kind == "page" else f"{kind}_"
    raw, ids, mine = ops["raw json"][0], ops["raw + ids"][0], ops["MailClient"]
    print(
        f"  Python opcodes per request: raw json {raw:.0f}, raw + ids {ids:.0f}, "
        f"MailClient {mine[0]:.0f} (ours {mine[1]:.0f}): {mine[0] / raw:.2f}x raw json"
    )
    results[f"{prefix}c{conc}_opcodes"] = {
        "raw json": round(raw),
        "raw + ids": round(ids),
        "MailClient": round(mine[0]),
        "ours": round(mine[1]),
    }


def median_ratio(ours: list[float], theirs: list[float]) -> float:
    """The ratio per round (same round, side by side), then the median of those ratios."""
    return statistics.median(o / t for o, t in zip(ours, theirs, strict=True))


def report(
    conc: int,
    rounds: int,
    n: int,
    cpu: dict[str, list[float]],
    wall: dict[str, list[float]],
    results: dict[str, Any],
    kind: str = "page",
) -> None:
    """Print the figures of one concurrency and put them in ``results``."""
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    med_wall = {k: statistics.median(v) for k, v in wall.items()}
    ratio = median_ratio(cpu["MailClient"], cpu["raw json"])
    wall_ratio = median_ratio(wall["MailClient"], wall["raw json"])
    print(f"{kind}, concurrency {conc}: {rounds} interleaved rounds x {n} requests")
    prefix = "" if kind == "page" else f"{kind}_"
    for name in cpu:
        print(
            f"  {name:<12} client CPU {med_cpu[name]:7.1f} us/req   "
            f"wall {med_wall[name]:7.1f} us/req"
        )
    verdict = "OK" if ratio <= TARGET else "ABOVE TARGET"
    print(
        f"  MailClient / raw json: CPU {ratio:.2f}x (target <= {TARGET}x) {verdict}, "
        f"wall {wall_ratio:.2f}x"
    )
    empty = median_ratio(cpu["Hooks()"], cpu["MailClient"])
    noop = median_ratio(cpu["noop hooks"], cpu["MailClient"])
    print(f"  hooks, CPU vs MailClient without: Hooks() {empty:.2f}x, noop hooks {noop:.2f}x")
    results[f"{prefix}c{conc}_cpu_ratio_empty_hooks"] = round(empty, 3)
    results[f"{prefix}c{conc}_cpu_ratio_noop_hooks"] = round(noop, 3)
    floor = median_ratio(cpu["raw + ids"], cpu["raw json"])
    own = median_ratio(cpu["MailClient"], cpu["raw + ids"])
    print(f"  raw + ids / raw json: CPU {floor:.2f}x; MailClient / raw + ids: CPU {own:.2f}x")
    results[f"{prefix}c{conc}_cpu_ratio_ids_floor"] = round(floor, 3)
    results[f"{prefix}c{conc}_cpu_ratio_vs_ids"] = round(own, 3)
    if "raw orjson" in cpu:
        r2 = median_ratio(cpu["MailClient"], cpu["raw orjson"])
        print(f"  MailClient / raw orjson: CPU {r2:.2f}x")
        results[f"{prefix}c{conc}_cpu_ratio_vs_orjson"] = round(r2, 3)
    results[f"{prefix}c{conc}_requests"] = n
    results[f"{prefix}c{conc}_cpu_ratio"] = round(ratio, 3)
    results[f"{prefix}c{conc}_wall_ratio"] = round(wall_ratio, 3)
    results[f"{prefix}c{conc}_cpu_us"] = {k: round(v, 1) for k, v in med_cpu.items()}
    results[f"{prefix}c{conc}_wall_us"] = {k: round(v, 1) for k, v in med_wall.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--n1", type=int, default=200, help="requests per round, concurrency 1")
    parser.add_argument(
        "--n100", type=int, default=1000, help="requests per round, concurrency 100"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile MailClient instead")
    parser.add_argument(
        "--kinds", default="page,get", help="what to measure: page (a 50-item page), get"
    )
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)

    with AppProcess(make_app, "/v1/mail/messages") as server:
        results = asyncio.run(
            measure(
                server.base_url,
                args.rounds,
                {1: args.n1, 100: args.n100},
                args.profile,
                [k.strip() for k in args.kinds.split(",") if k.strip()],
            )
        )
    results["orjson"] = orjson is not None
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
