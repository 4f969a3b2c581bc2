"""How a failure reads at the terminal, and with which exit code ``bitrix-mail`` ends.

Owns the exit codes, :class:`UsageError`, and the explanation of every library error for the
person at the terminal: advice for the key problems, a warning before repeating a call whose
outcome is unknown, and hints when ``--base-url`` is not the gateway (no ``/v1``, or a server
that does not answer the gateway's JSON). The API key is never part of any of it.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

from bitrix_mail_async import errors
from bitrix_mail_async._config import (
    DEFAULT_BASE_URL,
    ENV_API_KEY,
    ENV_SESSION_TOKEN,
    redact_url,
)
from bitrix_mail_async.cli.terminal import printable

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "describe",
    "first_error",
    "is_interrupt",
    "print_error",
    "unexpected",
]

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

# What each authentication/permission code means for the person at the terminal.
_AUTH_ADVICE: Final = {
    "MISSING_API_KEY": f"the gateway received no key: set {ENV_API_KEY}",
    "INVALID_API_KEY": (
        f"the key is unknown: check {ENV_API_KEY} (and that --base-url points at the "
        "gateway the key belongs to)"
    ),
    "KEY_INACTIVE": (
        "the key is switched off: enable it again in the portal's Vibe API settings, "
        f"or create a new key and update {ENV_API_KEY}"
    ),
    "KEY_EXPIRED": f"the key has expired: create a new key and update {ENV_API_KEY}",
    "TOKEN_MISSING": (
        "the key has no Bitrix24 tokens configured: reconnect the key to the portal "
        "in the Vibe API settings"
    ),
    "SCOPE_DENIED": "the key lacks the mail scope: add the 'mail' scope to the key",
    "BITRIX_ACCESS_DENIED": (
        "Bitrix24 denies the key's user access to this mailbox or message: check the "
        "mailbox permissions on the portal"
    ),
}

# The gateway has no idempotency key: repeating a send that may have gone out sends it twice.
_OUTCOME_UNKNOWN: Final = (
    "; the request may have been applied (e.g. the message sent): "
    "check the Sent folder before repeating it"
)

# Every gateway route lives under this path of the base URL (contract section 1).
_API_PREFIX: Final = "/v1"
_NOT_FOUND: Final = 404
# An exception nobody expected is quoted this far.
_UNEXPECTED_MAX: Final = 300
# A value an error quotes (Python's repr: single or double quotes).
_QUOTED: Final = re.compile(r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")
# Shorter values are not secrets worth hiding (and would blank common words).
_SECRET_MIN: Final = 8


class UsageError(Exception):
    """A configuration problem found before any request: exit code 2."""


def print_error(message: str) -> None:
    """Print ``bitrix-mail: error: <message>`` on stderr, as one line, controls escaped."""
    if sys.stderr is None:
        return  # stderr closed (2>&-): print() would fall back to stdout
    # The message may quote the gateway (an error's text, a body excerpt): it drives nothing.
    print(f"bitrix-mail: error: {printable(message)}", file=sys.stderr)


def first_error(exc: BaseException) -> BaseException:
    """The first real failure inside (possibly nested) exception groups of a TaskGroup."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def is_interrupt(exc: BaseException) -> bool:
    """True for Ctrl-C, as it surfaces from ``asyncio.run`` or a cancelled task group."""
    return isinstance(first_error(exc), KeyboardInterrupt | asyncio.CancelledError)


def _missing_prefix(base_url: str | None) -> str | None:
    """The base URL with ``/v1`` added, when it lacks it; else None."""
    if not base_url:
        return None
    path = urlsplit(base_url).path.rstrip("/")
    if path.endswith(_API_PREFIX):
        return None
    return redact_url(base_url.rstrip("/") + _API_PREFIX)


def _not_the_gateway(exc: errors.APIError, base_url: str | None) -> str:
    """An HTTP error whose body is not the gateway's JSON: some other server answered."""
    where = redact_url(base_url) if base_url else "the server"
    text = (
        f"HTTP {exc.status} from {where}, and not the gateway's JSON error: "
        "is --base-url the gateway? "
    )
    suggestion = _missing_prefix(base_url)
    if suggestion:
        text += f"its routes are under /v1: try --base-url {suggestion}"
    else:
        text += f"(the public gateway is {DEFAULT_BASE_URL}; the emulator's URL ends in /v1)"
    if exc.body_excerpt and exc.status != _NOT_FOUND:
        # A 404 page says nothing more; another status's body may say who answered.
        text += f" [body: {exc.body_excerpt}]"
    return text


def _advice(exc: errors.APIError) -> str | None:
    advice = _AUTH_ADVICE.get(exc.code or "")
    if advice is None and isinstance(exc, errors.AuthenticationError):
        advice = f"the gateway rejected the key: check {ENV_API_KEY}"
    if advice is None and isinstance(exc, errors.PermissionDeniedError):
        advice = "the key may not do this: check its scopes and the portal permissions"
    return advice


def _describe_api_error(exc: errors.APIError, base_url: str | None) -> str:
    if exc.code is None:
        return _not_the_gateway(exc, base_url)
    advice = _advice(exc)
    text = f"{exc.code} (HTTP {exc.status}): {advice or exc.message}"
    if advice is not None and exc.message:
        text += f" [gateway: {exc.message}]"
    if exc.hint:
        text += f" [hint: {exc.hint}]"
    if exc.user_message:
        text += f" [for the user: {exc.user_message}]"
    if exc.warning:
        text += f" [warning: {exc.warning}]"
    if exc.retry_after is not None:
        text += f" [retry after {exc.retry_after:g}s]"
    suggestion = _missing_prefix(base_url)
    if exc.code == "NOT_FOUND" and suggestion:
        # The gateway answers "Unknown action" to every route outside /v1.
        text += f"; --base-url has no /v1 at the end: try --base-url {suggestion}"
    if isinstance(exc, errors.OutcomeUnknownError):
        text += _OUTCOME_UNKNOWN
    return text


def _named(text: str, options: Mapping[str, str]) -> str:
    """``text`` with each library argument name replaced by the option the user typed."""
    if not options:
        return text
    # Whole words only, and never inside a quoted value: that is what the user typed.
    names = "|".join(re.escape(name) for name in sorted(options, key=len, reverse=True))
    word = re.compile(rf"(?<![\w-])({names})(?![\w-])")
    parts = _QUOTED.split(text)
    for i in range(0, len(parts), 2):
        parts[i] = word.sub(lambda m: options[m[1]], parts[i])
    return "".join(parts)


def describe(
    exc: BaseException,
    *,
    base_url: str | None = None,
    options: Mapping[str, str] | None = None,
) -> tuple[str, int]:
    """The human message and exit code for a library error (``base_url``: the one used).

    ``options`` maps library argument names to the command's options: a refusal of an
    argument then names the option the user typed (``--start``, not ``date_from``).
    """
    if isinstance(exc, errors.APIError):
        return _describe_api_error(exc, base_url), EXIT_ERROR
    if isinstance(exc, errors.OutcomeUnknownError):
        return f"{exc}{_OUTCOME_UNKNOWN}", EXIT_ERROR
    if isinstance(exc, errors.InvalidArgumentError):
        return _named(str(exc), options or {}), EXIT_USAGE
    if isinstance(exc, errors.ConfigurationError | UsageError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, errors.TransportError):
        return f"cannot reach the gateway: {exc}", EXIT_ERROR
    if isinstance(exc, errors.DecodeError):
        text = f"unexpected answer from the gateway: {exc}"
        if base_url:
            text += f" (is --base-url {redact_url(base_url)} the gateway?)"
        return text, EXIT_ERROR
    if isinstance(exc, OSError):
        return str(exc), EXIT_ERROR
    return f"{type(exc).__name__}: {exc}", EXIT_ERROR


def _scrub(text: str) -> str:
    """``text`` without the key or session token of the environment, should it quote them."""
    for name in (ENV_API_KEY, ENV_SESSION_TOKEN):
        secret = os.environ.get(name, "").strip()
        if len(secret) >= _SECRET_MIN:
            text = text.replace(secret, "***")
    return text


def unexpected(exc: BaseException) -> str:
    """The one line an exception nobody expected becomes: its type and bounded text, no secret."""
    try:
        text = str(exc)
    except Exception:  # a hostile __str__ must not bring the traceback back
        text = ""
    text = _scrub(text)
    if len(text) > _UNEXPECTED_MAX:
        text = text[:_UNEXPECTED_MAX] + "..."
    what = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return f"unexpected {what} (--debug shows where)"
