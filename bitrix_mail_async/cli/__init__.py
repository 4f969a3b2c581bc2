"""The ``bitrix-mail`` command line: every gateway route, a raw ``api`` call, a demo, the emulator.

Owns the entry point (:func:`main`: parse, apply the global options, refuse arguments that
are not UTF-8, set up logging, run the handler, turn an interruption into 130 and anything
unexpected into one line and 1) and the assembly of the parser (:func:`build_parser`, with
the top-level help) from the records each module declares: :mod:`.commands` (whoami,
mailboxes, recipients), :mod:`.messages` and :mod:`.objects`, :mod:`.api`, :mod:`.export`,
:mod:`.demo`, :mod:`.emulator` and :mod:`.completion`. :mod:`.gateway` runs a command with a
client (or :mod:`.dryrun`'s stand-in), :mod:`.output` prints, :mod:`.terminal` keeps what is
printed harmless to a terminal, :mod:`.inputs` reads stdin and files, :mod:`.failures`
explains errors, :mod:`.parsing` holds the parser's building blocks.

Built on argparse only. Every command returns an exit code instead of raising, and
:func:`main` never raises: 0 success, 1 an API, transport or file error, 2 a usage or
configuration error, 130 interrupted. A traceback shows only with ``--debug``.
The API key comes from the environment only (never from argv, where ``ps`` shows it) and is
never printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from bitrix_mail_async import __version__
from bitrix_mail_async._config import (
    DEFAULT_BASE_URL,
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_SESSION_TOKEN,
)
from bitrix_mail_async.cli import api, commands, completion, demo, emulator, export, messages
from bitrix_mail_async.cli.failures import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    UsageError,
    print_error,
    unexpected,
)
from bitrix_mail_async.cli.options import CONNECTION, GLOBAL_OPTIONS, OUTPUT, add_global_options
from bitrix_mail_async.cli.parsing import CliParser, Command, Group, Handler
from bitrix_mail_async.cli.terminal import printable_lines, safe_stdout

__all__ = ["COMMANDS", "build_parser", "main"]

#: Every command, in the order ``bitrix-mail --help`` lists them.
COMMANDS: Final[tuple[Command | Group, ...]] = (
    commands.MAILBOXES,
    messages.GROUP,
    commands.RECIPIENTS,
    commands.WHOAMI,
    commands.SENDERS,
    api.COMMAND,
    export.COMMAND,
    demo.COMMAND,
    emulator.COMMAND,
    completion.COMMAND,
)

_EPILOG: Final = f"""\
environment:
  {ENV_API_KEY}        the gateway API key (vibe_api_...); every command but demo,
                             emulator and completion needs it
  {ENV_BASE_URL}       gateway URL when --base-url is not given
                             (default {DEFAULT_BASE_URL})
  {ENV_SESSION_TOKEN}  session token of a vibe_app_ key

exit codes:
  0    success
  1    API error, transport error (connection, timeout), file error, or anything
       unexpected (one line; --debug shows the traceback)
  2    usage or configuration error (bad arguments or URL, missing key, insecure URL,
       input or arguments not UTF-8, input over 10 MiB, stdin or stdout closed)
  130  interrupted (Ctrl-C)

examples:
  bitrix-mail demo
  bitrix-mail emulator --port 8080
  bitrix-mail whoami
  bitrix-mail messages list 1 --unseen --json
  bitrix-mail --dry-run messages send --from "Sales <sales@example.com>" --to bob@x.io \\
      --subject Hi --body -
  bitrix-mail api GET /mail/messages -p mailboxId=1 -p limit=5
  BITRIX_MAIL_BASE_URL=http://127.0.0.1:8080/v1 bitrix-mail export 1 --out sales.jsonl

'bitrix-mail COMMAND --help' shows a command's options and an example.
"""

# Arguments naming a file: undecodable bytes in a file name still name that file.
_PATH_ARGUMENTS: Final = frozenset({"out"})

_NAME_WIDTH: Final = 12
_HELP_WIDTH: Final = 78


def _listing(entries: tuple[Command | Group, ...]) -> str:
    lines = []
    indent = " " * (_NAME_WIDTH + 4)
    for entry in entries:
        if isinstance(entry, Command) and entry.hidden:
            continue
        text = entry.help
        if isinstance(entry, Group):
            text += f" ({entry.usage.replace('|', ', ')})"
        elif entry.usage:
            text = f"{entry.usage}: {text}"
        wrapped = textwrap.wrap(text, _HELP_WIDTH - len(indent))
        lines.append(f"  {entry.name.ljust(_NAME_WIDTH)}  {wrapped[0]}")
        lines += [indent + line for line in wrapped[1:]]
    return "\n".join(lines)


def _description() -> str:
    gateway = tuple(c for c in COMMANDS if isinstance(c, Group) or c.gateway)
    local = tuple(c for c in COMMANDS if isinstance(c, Command) and not c.gateway)
    return (
        "The Bitrix24 Vibe API mail gateway from the command line.\n\n"
        f"gateway commands (need {ENV_API_KEY}):\n{_listing(gateway)}\n\n"
        f"local commands:\n{_listing(local)}"
    )


def build_parser() -> CliParser:
    """Build the ``bitrix-mail`` argument parser."""
    parser = CliParser(
        prog="bitrix-mail",
        usage="bitrix-mail [OPTIONS] COMMAND [ACTION] [ARGS]",
        description=_description(),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_global_options(parser, (OUTPUT, CONNECTION), visible=True)
    subcommands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, help=argparse.SUPPRESS, prog="bitrix-mail"
    )
    for command in COMMANDS:
        command.add_to(subcommands, parser)
    return parser


def _apply_global_options(args: argparse.Namespace) -> None:
    """Fill in the global options not given; refuse one given to a command it does not fit."""
    accepted: frozenset[str] = args.accepted
    for option in GLOBAL_OPTIONS:
        if option.dest not in vars(args):
            setattr(args, option.dest, option.default)
        elif option.dest not in accepted:
            raise UsageError(f"{option.flags[-1]} does not apply to '{args.command_path}'")


class _Printable(logging.Formatter):
    """Log lines with control characters escaped: they may quote what the gateway sent."""

    def format(self, record: logging.LogRecord) -> str:
        """The record's line, as logging formats it, made safe for a terminal."""
        return printable_lines(super().format(record))


@contextmanager
def _logging(args: argparse.Namespace) -> Iterator[None]:
    """``-v``: INFO lines of the library on stderr, ``--debug``: DEBUG ones; undone after."""
    if not (args.verbose or args.debug):
        yield
        return
    logger = logging.getLogger("bitrix_mail_async")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Printable("bitrix-mail: %(levelname)s %(name)s: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if args.debug else logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    """Run the ``bitrix-mail`` command line; returns the exit code and never raises.

    The one boundary of the command line: whatever goes wrong ends as one line on stderr
    and an exit code (an exception nobody expected: 1, its traceback only with ``--debug``).
    """
    args: argparse.Namespace | None = None
    try:
        with safe_stdout():
            parser = build_parser()
            try:
                args = parser.parse_args(argv)
            except SystemExit as exc:
                return exc.code if isinstance(exc.code, int) else EXIT_USAGE
            return _run(parser, args)
    except KeyboardInterrupt:
        if sys.stderr is not None:
            print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_ERROR
    except Exception as exc:
        if args is not None and args.debug and sys.stderr is not None:
            traceback.print_exc()
        print_error(unexpected(exc))
        return EXIT_ERROR


def _run(parser: CliParser, args: argparse.Namespace) -> int:
    """Apply the global options, refuse undecodable arguments, run the command's handler."""
    handler: Handler = args.handler
    try:
        if sys.stdout is None:
            # Closed (>&-): no result could be reported, and a send unreported invites another.
            raise UsageError("standard output is closed; redirect it instead (e.g. >/dev/null)")
        _apply_global_options(args)
        _refuse_undecodable(parser, args)
        with _logging(args):
            code = handler(args)
            if sys.stdout is not None:
                # Flush here, not at interpreter exit, so a closed pipe is handled in main().
                sys.stdout.flush()
        return code
    except UsageError as exc:
        print_error(str(exc))
        return EXIT_USAGE


def _undecodable(value: object) -> bool:
    """True for text holding what no UTF-8 encodes: bytes of argv that were not UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, list | tuple):
        return any(_undecodable(item) for item in value)
    return False


def _flags(parser: CliParser) -> set[str]:
    """Every option flag of ``parser`` and of its commands."""
    flags = set(parser.option_flags)
    for command in parser.commands.values():
        flags |= _flags(command)
    return flags


def _refuse_undecodable(parser: CliParser, args: argparse.Namespace) -> None:
    """Refuse an argument whose bytes were not UTF-8: it would reach the gateway altered.

    Python keeps such bytes as lone surrogates; the encoder drops or replaces them. A file
    name (``export --out``, ``api --data @FILE``) is exempt: the system opens it as it is.
    """
    for dest, value in vars(args).items():
        if dest in _PATH_ARGUMENTS or (dest == "data" and str(value).startswith("@")):
            continue
        if _undecodable(value):
            name = dest.rstrip("_").replace("_", "-")
            flag = f"--{name}"
            name = flag if flag in _flags(parser) else name.upper()
            raise UsageError(
                f"{name} holds bytes that are not UTF-8, and the gateway takes UTF-8 text: "
                "convert it first (e.g. with iconv)"
            )


def _quiet_stdout() -> None:
    # The reader went away (e.g. `| head`): stop Python from failing again on exit's flush.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
