"""The ``bitrix-mail`` command line: a demo, the emulator, and a few gateway commands.

Owns the entry point (:func:`main`) and the assembly of the parser (:func:`build_parser`) from
the commands each module declares: :mod:`.demo`, :mod:`.emulator`, :mod:`.commands` and
:mod:`.export`; :mod:`.output` prints, :mod:`.parsing` holds the parser's building blocks.

Built on argparse only. Every command returns an exit code instead of raising: 0 success,
1 an API, transport or file error, 2 a usage or configuration error, 130 interrupted.
The API key comes from the environment only (never from argv, where ``ps`` shows it) and is
never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Final

from bitrix_mail_async import __version__
from bitrix_mail_async.cli import commands, demo, emulator, export, output
from bitrix_mail_async.cli.parsing import EPILOG, Command, Group, Handler

__all__ = ["build_parser", "main"]

#: Every command, in the order ``bitrix-mail --help`` lists them.
_COMMANDS: Final[tuple[Command | Group, ...]] = (
    demo.COMMAND,
    emulator.COMMAND,
    *commands.COMMANDS,
    export.COMMAND,
)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``bitrix-mail`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="bitrix-mail",
        description="Bitrix24 Vibe API mail gateway from the command line.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in _COMMANDS:
        command.add_to(subcommands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``bitrix-mail`` command line; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else output.EXIT_USAGE
    handler: Handler = args.handler
    try:
        code = handler(args)
        # Flush here, not at interpreter exit, so a closed pipe is handled below.
        sys.stdout.flush()
        return code
    except output.UsageError as exc:
        output.print_error(str(exc))
        return output.EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return output.EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return output.EXIT_ERROR


def _quiet_stdout() -> None:
    # The reader went away (e.g. `| head`): stop Python from failing again on exit's flush.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
