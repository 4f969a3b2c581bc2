"""``bitrix-mail emulator``: serve the gateway emulator over HTTP until stopped.

Owns the command's options (the switches ``MailEmulator`` has: the gateway's limits, time
scale, latency, fault rates, the seeded portal), what it prints once listening (the base URL,
the key and the admin API's URL; one JSON line with ``--json``, for scripts), and how it ends:
Ctrl-C exits 130 like every other command; SIGTERM (``kill``, ``docker stop``, a service
manager) is the normal way to stop a server and exits 0; an address that cannot be listened on
is exit 1. The emulator itself is :mod:`bitrix_mail_async.testing`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from typing import TYPE_CHECKING, Final

from bitrix_mail_async._ratelimit import PLANS
from bitrix_mail_async.cli.arguments import (
    non_negative_float,
    port,
    positive_float,
    positive_int,
    seeded_messages_argument,
)
from bitrix_mail_async.cli.failures import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
    print_error,
)
from bitrix_mail_async.cli.parsing import Command

if TYPE_CHECKING:
    from bitrix_mail_async.testing import MailEmulator

__all__ = ["COMMAND", "run_emulator"]

_FAULT_RATES: Final = (
    ("fault_rate", "--fault-rate"),
    ("drop_rate", "--drop-rate"),
    ("lost_answer_rate", "--lost-answer-rate"),
)


def _probability(text: str) -> float:
    """Argument type: a share of requests, 0 to 1."""
    value = non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {text!r}")
    return value


def _check(args: argparse.Namespace) -> None:
    """Refuse combinations that would be silently ignored (exit 2)."""
    if (args.burst is not None or args.retry_after is not None) and args.rate is None:
        raise UsageError("--burst and --retry-after go with --rate (the emulator's per-key limit)")
    if args.limits == "off" and (args.time_scale is not None or args.plan is not None):
        raise UsageError("--time-scale and --plan go with --limits documented")
    if args.latency_jitter is not None and args.latency is None:
        raise UsageError("--latency-jitter goes with --latency")
    total = sum(getattr(args, name) or 0.0 for name, _ in _FAULT_RATES)
    if total > 1:
        names = ", ".join(option for _, option in _FAULT_RATES)
        raise UsageError(f"{names} add up to {total:g}: together at most 1")


def _build(args: argparse.Namespace) -> MailEmulator:
    # Imported here, not at the top: only the demo and this command need aiohttp.web.
    from bitrix_mail_async.testing import DEFAULT_API_KEY, LimitSettings, MailEmulator

    limits = None
    if args.limits == "documented":
        limits = LimitSettings.documented(args.time_scale or 1.0, args.plan or "standard")
    emulator = MailEmulator(
        api_key=args.api_key or DEFAULT_API_KEY,
        messages=args.messages,
        seed=args.seed,
        host=args.host,
        port=args.port,
        rate=args.rate,
        burst=args.burst,
        retry_after=args.retry_after,
        limits=limits,
    )
    faults = emulator.faults
    faults.error_rate = args.fault_rate or 0.0
    faults.drop_before_rate = args.drop_rate or 0.0
    faults.drop_after_rate = args.lost_answer_rate or 0.0
    faults.latency = args.latency or 0.0
    faults.latency_jitter = args.latency_jitter or 0.0
    return emulator


def _announce(emulator: MailEmulator, args: argparse.Namespace) -> None:
    if args.json:
        line = {
            "base_url": emulator.base_url,
            "api_key": emulator.api_key,
            "admin_url": emulator.admin_url,
            "limits": args.limits,
            "time_scale": args.time_scale or 1.0,
        }
        print(json.dumps(line), flush=True)
        return
    print(f"Bitrix24 mail gateway emulator at {emulator.base_url}", flush=True)
    print(f"API key: {emulator.api_key}", flush=True)
    print(f"Admin API (no key): {emulator.admin_url}/", flush=True)
    if args.limits == "documented":
        plan, scale = args.plan or "standard", args.time_scale or 1.0
        print(f"Gateway limits: documented, {plan} plan, time scale {scale:g}", flush=True)


async def _serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM (returns) or Ctrl-C (raises KeyboardInterrupt)."""
    emulator = _build(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Not on Windows, where SIGTERM cannot be caught by the loop: there it ends the process.
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        async with emulator:
            _announce(emulator, args)
            await stop.wait()
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGTERM)


def run_emulator(args: argparse.Namespace) -> int:
    """The ``emulator`` handler: serve until stopped."""
    _check(args)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        # Ctrl-C is how this command is meant to stop; 130 all the same, as everywhere.
        print("emulator stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        print_error(f"cannot listen on {args.host}:{args.port}: {exc}")
        return EXIT_ERROR
    print("emulator stopped (SIGTERM)", file=sys.stderr)
    return EXIT_OK


def _emulator_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", type=port, default=8080, help="port; 0 picks a free one (default: 8080)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    parser.add_argument(
        "--limits",
        choices=("off", "documented"),
        default="off",
        help="the gateway's limits: off, or every documented one on (window 300/60 s, portal "
        "10/s over the REST bucket, queue of 2, circuit breaker) (default: off)",
    )
    parser.add_argument(
        "--plan",
        choices=tuple(PLANS),
        help="REST bucket of --limits documented: standard 2/s burst 50, enterprise 5/s "
        "burst 250 (default: standard)",
    )
    parser.add_argument(
        "--time-scale",
        type=positive_float,
        metavar="X",
        help="with --limits documented: durations times X, rates divided by X (0.1: ten "
        "times faster; default: 1)",
    )
    parser.add_argument(
        "--rate", type=positive_float, help="per-key limit in requests/s (default: none)"
    )
    parser.add_argument("--burst", type=positive_int, help="per-key burst for --rate")
    parser.add_argument(
        "--retry-after",
        type=positive_float,
        metavar="SECONDS",
        help="Retry-After of its 429 answers, for --rate (default: the time to the next token)",
    )
    parser.add_argument(
        "--latency", type=non_negative_float, metavar="SECONDS", help="added to every request"
    )
    parser.add_argument(
        "--latency-jitter",
        type=non_negative_float,
        metavar="SECONDS",
        help="a random extra of up to this much, with --latency",
    )
    parser.add_argument(
        "--fault-rate",
        type=_probability,
        metavar="P",
        help="share of requests answered 502/503/504 instead, not executed (0-1)",
    )
    parser.add_argument(
        "--drop-rate",
        type=_probability,
        metavar="P",
        help="share of connections dropped before the request is executed (0-1)",
    )
    parser.add_argument(
        "--lost-answer-rate",
        type=_probability,
        metavar="P",
        help="share of requests executed whose answer is lost (connection dropped; 0-1)",
    )
    seeded_messages_argument(parser)
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the portal data and of the faults"
    )
    parser.add_argument("--api-key", help="key the emulator accepts (default: a fixed test key)")


COMMAND: Final = Command(
    "emulator",
    run_emulator,
    help="serve the gateway emulator until stopped",
    description="Serve the gateway emulator; prints its base URL, API key and admin API URL "
    "(--json: one JSON line). The admin API under /_emulator/ delivers mail, lists side "
    "effects and requests, and resets. Ctrl-C stops it (exit code 130), SIGTERM too (exit 0).",
    example="bitrix-mail emulator --port 8080 --limits documented --time-scale 0.1 "
    "--fault-rate 0.05 --lost-answer-rate 0.01",
    arguments=_emulator_arguments,
    gateway=False,
)
