"""``bitrix-mail emulator``: serve the gateway emulator over HTTP until Ctrl-C.

Owns the command's options and how it ends: Ctrl-C is the normal stop (exit 0), an address
that cannot be listened on is exit 1. The emulator itself is :mod:`bitrix_mail_async.testing`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bitrix_mail_async.cli import output
from bitrix_mail_async.cli.parsing import (
    Command,
    port,
    positive_float,
    positive_int,
    seeded_messages_argument,
)

__all__ = ["COMMAND", "run_emulator"]


def run_emulator(args: argparse.Namespace) -> int:
    """The ``emulator`` handler: serve until interrupted."""
    # Imported here, not at the top: only the demo and this command need aiohttp.web.
    from bitrix_mail_async.testing import serve_forever

    try:
        asyncio.run(
            serve_forever(
                args.host,
                args.port,
                args.messages,
                args.rate,
                args.burst,
                args.seed,
                **({"api_key": args.api_key} if args.api_key else {}),
            )
        )
    except KeyboardInterrupt:
        # Ctrl-C is how this command is meant to stop.
        print("emulator stopped", file=sys.stderr)
        return output.EXIT_OK
    except OSError as exc:
        output.print_error(f"cannot listen on {args.host}:{args.port}: {exc}")
        return output.EXIT_ERROR
    return output.EXIT_OK


def _emulator_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", type=port, default=8080, help="port; 0 picks a free one (default: 8080)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    parser.add_argument(
        "--rate", type=positive_float, help="per-key limit in requests/s (default: none)"
    )
    parser.add_argument("--burst", type=positive_int, help="per-key burst for --rate")
    seeded_messages_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the portal data")
    parser.add_argument("--api-key", help="key the emulator accepts (default: a fixed test key)")


COMMAND = Command(
    "emulator",
    run_emulator,
    help="serve the gateway emulator until Ctrl-C",
    description="Serve the gateway emulator; prints its base URL and API key.",
    arguments=_emulator_arguments,
    json=False,
    connection=False,
)
