"""``bitrix-mail api METHOD PATH``: any gateway route, answered as raw JSON.

Owns reading the request from the command line (``--param NAME=VALUE`` for the query,
``--data`` for a POST's JSON body: inline, ``@file`` or ``-`` for stdin, at most 10 MiB, see
:mod:`.inputs`) and printing the answer's ``data``. The call goes through
:meth:`~bitrix_mail_async.MailClient.request`, so it gets the limiter, the retry rules and the
typed errors of every other command; a POST counts as a side effect and is not repeated once
it may have been applied.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import parse_qsl

from bitrix_mail_async import MailClient
from bitrix_mail_async.cli import output
from bitrix_mail_async.cli.failures import EXIT_OK, UsageError
from bitrix_mail_async.cli.gateway import on_gateway
from bitrix_mail_async.cli.inputs import read_file, text_or_stdin
from bitrix_mail_async.cli.parsing import Command

__all__ = ["COMMAND"]


def _param(text: str) -> tuple[str, str]:
    """Argument type: ``NAME=VALUE`` (the value may be empty, or hold '=')."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _data(value: str) -> Any:
    """The body ``--data`` names: JSON text, ``@file`` or ``-`` (stdin), read bounded as UTF-8."""
    if value.startswith("@"):
        path = Path(value[1:])
        where = f"--data @{path}"
        text = read_file(path, where)
    else:
        where = "stdin" if value == "-" else "--data"
        text = text_or_stdin(value, "--data")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        # RecursionError: nesting deeper than the parser's stack.
        raise UsageError(f"{where} is not JSON: {exc}") from None


async def api(mail: MailClient, args: argparse.Namespace) -> int:
    """``api METHOD PATH``: call a route and print the answer's ``data`` as JSON."""
    method: Literal["GET", "POST"] = "GET" if args.method == "GET" else "POST"
    if method == "GET" and args.data is not None:
        raise UsageError("a GET sends no body: pass its values with --param NAME=VALUE")
    body = None if args.data is None else _data(args.data)
    path, _, query = args.path.partition("?")
    path = path if path.startswith("/") else f"/{path}"
    # A query written into PATH counts as --param's, which come after it and win.
    params = dict(parse_qsl(query, keep_blank_values=True)) | dict(args.param or ())
    data = await mail.request(method, path, params=params or None, json=body)
    output.print_json(data)
    return EXIT_OK


def _api_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "method", type=str.upper, choices=("GET", "POST"), metavar="METHOD", help="GET or POST"
    )
    parser.add_argument(
        "path",
        metavar="PATH",
        help="the route below the base URL, e.g. /me or /mail/messages?mailboxId=1",
    )
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        type=_param,
        metavar="NAME=VALUE",
        help="a query parameter (repeatable)",
    )
    parser.add_argument(
        "-d",
        "--data",
        metavar="JSON",
        help="a POST's JSON body: the JSON itself, @FILE, or - for stdin",
    )


COMMAND: Final = Command(
    "api",
    on_gateway(api),
    help="call any gateway route and print its data as JSON",
    description="Call a gateway route through the client (rate limit, retries, typed errors) "
    "and print the answer's data as JSON, as the gateway sent it (no --json needed).",
    example="bitrix-mail api GET /mail/messages -p mailboxId=1 -p limit=5\n"
    'bitrix-mail api POST /mail/recipients/employees --data \'{"query": "ann"}\'\n'
    'echo \'{"query": "smith"}\' | bitrix-mail api POST /mail/recipients/contacts --data -',
    arguments=_api_arguments,
    usage="METHOD PATH",
)
