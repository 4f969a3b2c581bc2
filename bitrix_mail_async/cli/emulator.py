"""``bitrix-mail emulator``: serve the gateway emulator over HTTP until Ctrl-C.

Owns the command's options, what it prints once listening (the base URL and the key; one
JSON line with ``--json``, for scripts), and how it ends: Ctrl-C exits 130 like every other
command, an address that cannot be listened on is exit 1. The emulator itself is
:mod:`bitrix_mail_async.testing`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Final

from bitrix_mail_async.cli.arguments import (
    port,
    positive_float,
    positive_int,
    seeded_messages_argument,
)
from bitrix_mail_async.cli.failures import EXIT_ERROR, EXIT_INTERRUPTED, UsageError, print_error
from bitrix_mail_async.cli.parsing import Command

__all__ = ["COMMAND", "run_emulator"]


async def _serve(args: argparse.Namespace) -> None:
    # Imported here, not at the top: only the demo and this command need aiohttp.web.
    from bitrix_mail_async.testing import DEFAULT_API_KEY, MailEmulator

    emulator = MailEmulator(
        api_key=args.api_key or DEFAULT_API_KEY,
        messages=args.messages,
        seed=args.seed,
        host=args.host,
        port=args.port,
        rate=args.rate,
        burst=args.burst,
        retry_after=args.retry_after,
    )
    async with emulator:
        if args.json:
            line = json.dumps({"base_url": emulator.base_url, "api_key": emulator.api_key})
            print(line, flush=True)
        else:
            print(f"Bitrix24 mail gateway emulator at {emulator.base_url}", flush=True)
            print(f"API key: {emulator.api_key}", flush=True)
        await asyncio.Event().wait()


def run_emulator(args: argparse.Namespace) -> int:
    """The ``emulator`` handler: serve until interrupted."""
    if (args.burst is not None or args.retry_after is not None) and args.rate is None:
        raise UsageError("--burst and --retry-after go with --rate (the emulator's per-key limit)")
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        # Ctrl-C is how this command is meant to stop; 130 all the same, as everywhere.
        print("emulator stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        print_error(f"cannot listen on {args.host}:{args.port}: {exc}")
        return EXIT_ERROR
    return EXIT_ERROR  # not reached: it serves until interrupted


def _emulator_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", type=port, default=8080, help="port; 0 picks a free one (default: 8080)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
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
    seeded_messages_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the portal data")
    parser.add_argument("--api-key", help="key the emulator accepts (default: a fixed test key)")


COMMAND: Final = Command(
    "emulator",
    run_emulator,
    help="serve the gateway emulator until Ctrl-C",
    description="Serve the gateway emulator; prints its base URL and API key (--json: one "
    "JSON line). Ctrl-C stops it (exit code 130).",
    example="bitrix-mail emulator --port 8080 --rate 2 --burst 5 --retry-after 1",
    arguments=_emulator_arguments,
    gateway=False,
)
