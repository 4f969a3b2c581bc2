"""Running a gateway command: its client, its dry run, and the end of its failures.

Owns building a :class:`~bitrix_mail_async.MailClient` from the global options and the
environment (the key comes from ``$BITRIX_MAIL_API_KEY`` only, never from argv, where ``ps``
shows it), the ``-v`` lines (one per HTTP attempt and retry, from the client's hooks), the
switch to :mod:`.dryrun` for ``--dry-run``, and turning a failure into a message and an exit
code. Every gateway command is ``async def name(mail, args) -> int`` wrapped by
:func:`on_gateway`.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import attrs

from bitrix_mail_async import Hooks, MailClient, RateLimit, ResponseEvent, RetryEvent, errors
from bitrix_mail_async._config import (
    DEFAULT_BASE_URL,
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_SESSION_TOKEN,
    check_base_url,
    redact_url,
    resolve_base_url,
)
from bitrix_mail_async.cli import dryrun, failures, output
from bitrix_mail_async.cli.failures import UsageError
from bitrix_mail_async.cli.parsing import Handler

__all__ = [
    "LIST_PAGE_MAX",
    "Connection",
    "GatewayCommand",
    "api_key",
    "connection_from_args",
    "on_gateway",
    "run_gateway",
]

#: The largest page the gateway serves for the message list.
LIST_PAGE_MAX: Final = 200

# A malformed base URL, and what is wrong with it, are quoted this far.
_URL_SHOWN: Final = 200

#: A command that talks to the gateway through the client it is given.
GatewayCommand = Callable[[MailClient, argparse.Namespace], Awaitable[int]]

log = logging.getLogger("bitrix_mail_async.cli")


def api_key() -> str:
    """The key from the environment, stripped (empty when unset)."""
    return os.environ.get(ENV_API_KEY, "").strip()


@attrs.frozen(repr=False)
class Connection:
    """Where and how a command talks to the gateway, checked before anything is sent."""

    key: str
    url: str
    options: dict[str, Any]

    def __repr__(self) -> str:
        return f"<Connection {self.url}>"  # never the key


def connection_from_args(args: argparse.Namespace) -> Connection:
    """The key, URL and client options from the global options; what the user can fix first."""
    key = api_key()
    if not key:
        raise UsageError(
            f"no API key: set the {ENV_API_KEY} environment variable "
            "(or try 'bitrix-mail demo', which needs none)"
        )
    url = _checked_url(args.base_url)
    if not args.insecure_http:
        try:
            check_base_url(url, allow_insecure_http=False)
        except errors.ConfigurationError:
            host = urlsplit(url).hostname
            raise UsageError(
                f"refusing to send the API key over plain http to {host}: "
                "use https, or pass --insecure-http"
            ) from None
    options: dict[str, Any] = {"timeout": args.timeout}
    zone = getattr(args, "portal_timezone", None)
    if zone is not None:
        options["portal_timezone"] = zone
    return Connection(key, url, options)


def _url_problem(url: str) -> str | None:
    """What would make ``url`` fail at the first request, found now; None when nothing."""
    parts = urlsplit(url)
    port = parts.port  # ValueError past 65535 or when not a number
    if port == 0:
        return "port 0 cannot be connected to"
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # A name: the resolver encodes it so; an empty label ("a..b") or one over 63 fails.
        host.encode("idna")
    return None


def _checked_url(given: str | None) -> str:
    """The base URL to use, checked; any problem with it is a UsageError (exit code 2).

    Beyond the client's own check: whatever exception a malformed URL raises (a bracket
    left open, a port out of range, an empty host label, a character NFKC turns into a
    separator) ends as one line naming the URL, never a traceback or a failed request.
    """
    try:
        url = resolve_base_url(given, allow_insecure_http=True)
        problem = _url_problem(url)
    except Exception as exc:  # ConfigurationError, ValueError, UnicodeError, whatever comes
        problem = str(exc) or type(exc).__name__
    else:
        if problem is None:
            return url
    where = given or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
    source = "--base-url" if given else ENV_BASE_URL
    # The parsers' texts may quote the authority, user and password included.
    authority = where.partition("://")[2].split("/", 1)[0]
    user, at, _ = authority.rpartition("@")
    if at and user:
        problem = problem.replace(user, "***")
    shown = redact_url(where)[:_URL_SHOWN]
    raise UsageError(f"{source} {shown!r} is not a usable URL: {problem[:_URL_SHOWN]}")


def _log_response(event: ResponseEvent) -> None:
    status = event.status if event.status is not None else "no answer"
    outcome = f"{status} {event.error}" if event.error else str(status)
    log.info(
        "%s %s -> %s in %.0f ms (attempt %d)",
        event.method,
        event.path,
        outcome,
        event.elapsed * 1000,
        event.attempt,
    )


def _log_retry(event: RetryEvent) -> None:
    what = f"{event.error} ({event.reason})"
    log.info("%s %s: %s, retrying in %.1f s", event.method, event.path, what, event.wait)


def _client(args: argparse.Namespace, connection: Connection) -> MailClient:
    rate: float = args.client_rate
    limit = None if rate == 0 else RateLimit(per_second=rate, burst=args.client_burst)
    verbose = args.verbose or args.debug
    return MailClient(
        connection.key,
        base_url=connection.url,
        rate_limit=limit,
        allow_insecure_http=args.insecure_http,
        hooks=Hooks(on_response=_log_response, on_retry=_log_retry) if verbose else None,
        **connection.options,
    )


async def _session(
    args: argparse.Namespace, connection: Connection, command: GatewayCommand
) -> int:
    if args.dry_run:
        return await dryrun.dry_run(
            lambda mail: command(mail, args),
            key=connection.key,
            base_url=connection.url,
            session_token=bool(os.environ.get(ENV_SESSION_TOKEN)),
            options=connection.options,
            as_json=args.json,
        )
    async with _client(args, connection) as mail:
        return await command(mail, args)


def run_gateway(
    args: argparse.Namespace,
    command: GatewayCommand,
    *,
    wire_alone: bool = False,
    options: Mapping[str, str] | None = None,
) -> int:
    """Run ``command`` with a client built from ``args``; a failure becomes a message and code.

    ``wire_alone``: the names flags mean something without ``--json`` (export's lines).
    ``options``: the option the user typed for each library argument the library's own
    refusals name (``{"date_from": "--start"}``).
    """
    output.check_json_options(args, alone=wire_alone)
    try:
        connection = connection_from_args(args)
    except errors.ConfigurationError as exc:
        raise UsageError(str(exc)) from None
    try:
        return asyncio.run(_session(args, connection, command))
    except (errors.MailError, UsageError, OSError, BaseExceptionGroup) as exc:
        if failures.is_interrupt(exc):
            raise KeyboardInterrupt from None
        first = failures.first_error(exc)
        if isinstance(first, BrokenPipeError):
            raise first from None
        if not isinstance(first, Exception):
            raise
        message, code = failures.describe(first, base_url=connection.url, options=options)
        failures.print_error(message)
        return code


def on_gateway(command: GatewayCommand, **options: str) -> Handler:
    """Turn a coroutine command into a parser handler that runs it with a client.

    ``options`` maps the library's argument names to the options that feed them
    (``date_from="--start"``), so that a refusal names what the user typed.
    """
    return lambda args: run_gateway(args, command, options=options)
