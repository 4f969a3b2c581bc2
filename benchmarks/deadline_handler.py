"""A web handler that must answer within 2 s, under 200 requests at once against a 2/s gateway.

The handler (an ``aiohttp.web`` app in this process) sends one message per request through
``mail.with_options(deadline=2)`` and answers 200 when it was sent, 503 on
``errors.DeadlineExceededError`` (nothing went out) and 502 on ``errors.OutcomeUnknownError``
(the send was on the wire at the deadline: it may have gone out). 200 requests arrive at once,
from a client in this process; the emulator (a child process) has every limit of the gateway on
at its documented figures, in real time (the REST bucket: 2/s, burst 50).

Rounds, back to back on one client (``--rounds``): the first with the client's burst (and the
portal's) whole, the next ones with them spent. Printed for each round: the answers by kind,
the slowest answer seen by the requester and by the handler, and what the emulator applied:
sends applied (each subject is unique), sends applied although the handler answered 503,
sends applied twice, sends answered 200 but never applied. Targets: every answer within
2.2 s, each either sent or DeadlineExceededError, nothing sent twice.

Scenarios: the documented figures (the gateway answers at once; the targets apply here), then
with the portal queue holding each call ``--service-time`` (0.4 s; the contract gives no
figure, it stands in for Bitrix24's work), with the client's default ``max_concurrency`` (64
here) and with 2, the portal's queue size: sends queued at the gateway are on the wire, so a
deadline reaching them makes their outcome unknown. Beside them, the same 200 requests without
a deadline (``timeout=`` bounds each attempt, nothing bounds the waits): how many are answered
within 2.2 s, watched for ``--watch`` seconds (10), after which the client is closed (calls
still waiting end with ``ConfigurationError``).

    python benchmarks/deadline_handler.py [--requests 200] [--deadline 2] [--rounds 2]
        [--service-time 0.4] [--watch 10] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from collections import Counter
from typing import Any

import aiohttp
from _common import EmulatorProcess, free_port, write_json
from aiohttp import web

from bitrix_mail_async import MailClient, errors
from bitrix_mail_async.testing.limits import LimitSettings

SENDER = "Sales Team <sales@emulator.bitrix24.test>"
RECIPIENT = "colleague@example.com"
SLACK = 0.2  # the target: every answer within deadline + SLACK
MAIL = web.AppKey("mail", MailClient)
#: What the handler did, per subject: the kind of its answer and its time in the mail call.
DONE = web.AppKey("done", dict)


def limit_settings(service_time: float) -> LimitSettings:
    """The documented limits in real time, the queue holding each call ``service_time``."""
    settings = LimitSettings.documented()
    assert settings.queue is not None
    queue = dataclasses.replace(settings.queue, service_time=service_time)
    return dataclasses.replace(settings, queue=queue)


async def notify(request: web.Request) -> web.Response:
    """The handler: send one message; 200, or 503/502 when the deadline came first."""
    mail: MailClient = request.app[MAIL]
    subject = request.query["subject"]
    started = time.perf_counter()
    try:
        await mail.messages.send(from_=SENDER, to=[RECIPIENT], subject=subject, body=".")
        status, kind = 200, "sent"
    except errors.DeadlineExceededError:
        status, kind = 503, "deadline"
    except errors.OutcomeUnknownError as exc:
        status, kind = 502, type(exc).__name__
    except errors.MailError as exc:
        status, kind = 500, type(exc).__name__
    request.app[DONE][subject] = (kind, time.perf_counter() - started)
    return web.Response(status=status, text=kind)


async def one(http: aiohttp.ClientSession, url: str, subject: str) -> tuple[str, float]:
    """One request to the handler: the kind of its answer and how long it took."""
    started = time.perf_counter()
    async with http.post(url, params={"subject": subject}) as resp:
        kind = await resp.text()
    return kind, time.perf_counter() - started


async def burst(url: str, prefix: str, count: int) -> list[tuple[str, float]]:
    """``count`` requests at once; their answers."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        return await asyncio.gather(*(one(http, url, f"{prefix}-{i:04d}") for i in range(count)))


def tally(
    emu: EmulatorProcess, prefix: str, answers: list[tuple[str, float]], done: dict[str, Any]
) -> dict[str, Any]:
    """A round's answers by kind, its slowest answer, and what the emulator applied."""
    sent = emu.sent(prefix)
    return {
        "answers": dict(Counter(kind for kind, _ in answers)),
        "slowest": max((t for _, t in answers), default=0.0),
        "handler_slowest": max((t for _, t in done.values()), default=0.0),
        "applied": len(sent),
        "duplicated": sum(n - 1 for n in sent.values() if n > 1),
        # The handler said "sent" for each of these, yet the emulator has no such send.
        "sent_not_applied": sum(1 for s, (k, _) in done.items() if k == "sent" and s not in sent),
        # The handler said "nothing went out" (503) for each of these, yet it went out.
        "applied_although_503": sum(
            1 for s, (k, _) in done.items() if k == "deadline" and s in sent
        ),
    }


async def run_round(
    emu: EmulatorProcess, app: web.Application, url: str, label: str, args: argparse.Namespace
) -> dict[str, Any]:
    """One round of ``--requests`` at once through the handler with its deadline."""
    app[DONE].clear()
    answers = await burst(url, label, args.requests)
    res = tally(emu, label, answers, app[DONE])
    res["met"] = bool(
        len(answers) == args.requests
        and res["slowest"] <= args.deadline + SLACK
        and set(res["answers"]) <= {"sent", "deadline"}
        and res["duplicated"] == 0
        and res["applied_although_503"] == 0
        and res["sent_not_applied"] == 0
    )
    return res


def report(label: str, res: dict[str, Any], deadline: float) -> None:
    """Print one round."""
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(res["answers"].items()))
    print(
        f"{label}: {kinds}; slowest answer {res['slowest']:.3f} s (handler "
        f"{res['handler_slowest']:.3f} s; target <= {deadline + SLACK:g} s); emulator applied "
        f"{res['applied']} sends, {res['applied_although_503']} of them answered 503, "
        f"{res['duplicated']} twice; answered sent but not applied: {res['sent_not_applied']} "
        f"-> {'OK' if res['met'] else 'NOT met'}",
        flush=True,
    )


async def serve(mail: MailClient) -> tuple[web.AppRunner, web.Application, str]:
    """The handler's app on a loopback port."""
    app = web.Application()
    app[MAIL] = mail
    app[DONE] = {}
    app.router.add_post("/notify", notify)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    # A backlog above the burst: else connections past 128 wait out a SYN retry (1 s).
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    return runner, app, f"http://127.0.0.1:{port}/notify"


async def without_deadline(emu: EmulatorProcess, args: argparse.Namespace) -> dict[str, Any]:
    """The same requests with no deadline, watched for ``--watch`` s, then the client closed."""
    mail = await MailClient(emu.api_key, base_url=emu.base_url, max_concurrency=64).open()
    runner, app, url = await serve(mail)
    try:
        answers = asyncio.ensure_future(burst(url, "nodeadline", args.requests))
        await asyncio.sleep(args.watch)
        in_time = sum(1 for _, t in app[DONE].values() if t <= args.deadline + SLACK)
        waiting = args.requests - len(app[DONE])
        await mail.close()  # ends the calls still waiting: the handlers answer 500
        await answers
    finally:
        await runner.cleanup()
    sent = emu.sent("nodeadline")
    return {
        "answered_in_time": in_time,
        "still_waiting": waiting,
        "applied": len(sent),
        "duplicated": sum(n - 1 for n in sent.values() if n > 1),
    }


async def scenario(
    service_time: float, concurrency: int, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """``--rounds`` rounds back to back on one client, the queue at ``service_time``.

    Each scenario has an emulator of its own: one still working off the calls an earlier
    scenario left in its queues would hold this one's.
    """
    print(f"queue service time {service_time:g} s, max_concurrency={concurrency}:", flush=True)
    with EmulatorProcess(limits=limit_settings(service_time)) as emu:
        return await rounds_on(emu, service_time, concurrency, args)


async def rounds_on(
    emu: EmulatorProcess, service_time: float, concurrency: int, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """The rounds of one scenario against ``emu``."""
    rounds = []
    async with MailClient(emu.api_key, base_url=emu.base_url, max_concurrency=concurrency) as mail:
        runner, app, url = await serve(mail.with_options(deadline=args.deadline))
        try:
            for r in range(args.rounds):
                label = f"round {r + 1}"
                prefix = f"s{service_time:g}-c{concurrency}-r{r + 1}"
                res = await run_round(emu, app, url, prefix, args)
                res.update(label=label, service_time=service_time, concurrency=concurrency)
                rounds.append(res)
                report(f"  {label}", res, args.deadline)
        finally:
            await runner.cleanup()
    return rounds


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    print(
        f"{args.requests} requests at once to a handler sending one message each through "
        f"mail.with_options(deadline={args.deadline:g}); client defaults "
        "(RateLimit(per_second=2, burst=50)); every limit of the gateway at its documented "
        "figure, real time (REST bucket 2/s burst 50, portal 10/s, queue 2 at once)",
        flush=True,
    )
    rounds = await scenario(0.0, 64, args)
    queued: list[dict[str, Any]] = []
    if args.service_time:
        for concurrency in (64, 2):
            queued += await scenario(args.service_time, concurrency, args)
    with EmulatorProcess(limits=limit_settings(0.0)) as emu:
        base = await without_deadline(emu, args)
        print(
            f"without a deadline (queue service time 0): {base['answered_in_time']} of "
            f"{args.requests} answered within {args.deadline + SLACK:g} s, "
            f"{base['still_waiting']} still waiting after {args.watch:g} s (then the client "
            f"was closed); emulator applied {base['applied']} sends, {base['duplicated']} twice",
            flush=True,
        )
    return {
        "requests": args.requests,
        "deadline": args.deadline,
        "rounds": rounds,
        "queued": queued,
        "without_deadline": base,
        "met": all(r["met"] for r in rounds),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--deadline", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--service-time", type=float, default=0.4, help="the second scenario's (0: none)"
    )
    parser.add_argument("--watch", type=float, default=10.0)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    write_json(args.json, asyncio.run(main_async(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
