"""Configuration: environment names, defaults, key redaction, and every configuration check.

Each kind of check exists once here (a number, a count, a timeout, a header value, the base
URL, the size caps of requests and answers); the client, the retry policy, the limiters, the
transport and the command line call these instead of writing their own. Checks raise
:class:`~bitrix_mail_async.errors.ConfigurationError` by default; per-call arguments pass
``error=errors.InvalidArgumentError``, and the request check raises it.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

from bitrix_mail_async import errors
from bitrix_mail_async._addresses import split_recipients

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_REQUEST_BYTES",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "ENV_API_KEY",
    "ENV_BASE_URL",
    "ENV_LOG",
    "ENV_SESSION_TOKEN",
    "MAX_RECIPIENTS",
    "check_base_url",
    "check_byte_limit",
    "check_count",
    "check_header_value",
    "check_number",
    "check_request",
    "check_timeout",
    "log_from_environment",
    "redact_key",
    "redact_url",
    "resolve_api_key",
    "resolve_base_url",
    "resolve_session_token",
]

DEFAULT_BASE_URL: Final = "https://vibecode.bitrix24.tech/v1"
ENV_API_KEY: Final = "BITRIX_MAIL_API_KEY"
ENV_BASE_URL: Final = "BITRIX_MAIL_BASE_URL"
ENV_SESSION_TOKEN: Final = "BITRIX_MAIL_SESSION_TOKEN"
#: ``debug`` or ``info``: the library's logging goes to stderr without any code (OPENAI_LOG's way).
ENV_LOG: Final = "BITRIX_MAIL_LOG"
_LOG_LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO}
DEFAULT_MAX_CONCURRENCY: Final = 32
DEFAULT_TIMEOUT: Final = 30.0
#: Largest answer body read, counted after decompression (``MailClient(max_response_bytes=)``).
#: A page of 200 messages with bodies is a few MiB; past this, a body is a fault or an attack.
DEFAULT_MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024
#: Largest request body sent, counted in encoded UTF-8 bytes (``MailClient(max_request_bytes=)``).
#: The contract states none; mail servers commonly refuse messages over 10-25 MiB.
DEFAULT_MAX_REQUEST_BYTES: Final = 10 * 1024 * 1024
#: Most addresses one message may name in ``to``, ``cc`` and ``bcc`` together. The contract
#: states none; RFC 5321 only makes servers accept 100, and a runaway list (a whole address
#: book pasted by mistake) must fail here rather than at the gateway after it was sent.
MAX_RECIPIENTS: Final = 1000
_RECIPIENT_FIELDS: Final = ("to", "cc", "bcc")
# Below this an ordinary error envelope would no longer fit.
_MIN_BYTE_LIMIT: Final = 1024

_KEY_PREFIXES: Final = ("vibe_api_", "vibe_app_")

ErrorClass = type[errors.ConfigurationError] | type[errors.InvalidArgumentError]


def redact_key(key: str | None) -> str:
    """Show at most the kind prefix of a key (``vibe_api_***``), never any secret part."""
    if not key:
        return "<none>"
    for prefix in _KEY_PREFIXES:
        if key.startswith(prefix):
            return prefix + "***"
    return "***"


def check_number(
    name: str,
    value: object,
    *,
    allow_zero: bool = False,
    error: ErrorClass = errors.ConfigurationError,
) -> float:
    """Return ``value`` as a float if it is a finite real number > 0 (>= 0 with allow_zero)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        wanted = "a finite number >= 0" if allow_zero else "a positive finite number"
        raise error(f"{name} must be {wanted}, got {value!r}")
    return float(value)


def check_count(
    name: str,
    value: object,
    *,
    minimum: int = 1,
    maximum: int | None = None,
    error: ErrorClass = errors.ConfigurationError,
) -> int:
    """Return ``value`` if it is an int (not a bool) in ``minimum..maximum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum or (maximum is not None and value > maximum):
        wanted = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise error(f"{name} must be an int {wanted}, got {value!r}")
    return value


def check_byte_limit(name: str, value: object) -> int:
    """Return a size cap in bytes: an int of at least 1 KiB."""
    return check_count(name, value, minimum=_MIN_BYTE_LIMIT)


def _recipient_count(value: object) -> int:
    if isinstance(value, str):
        return len(split_recipients(value))
    if isinstance(value, list | tuple):
        return len(value)
    return 0


def check_request(body: bytes | None, json: object, *, max_bytes: int) -> None:
    """Refuse, before sending, a body over ``max_bytes`` encoded or naming too many recipients."""
    if body is not None and len(body) > max_bytes:
        raise errors.InvalidArgumentError(
            f"the request body is {len(body)} bytes as UTF-8 JSON; the client sends at most "
            f"{max_bytes} (MailClient(max_request_bytes=...))"
        )
    if isinstance(json, Mapping):
        count = sum(_recipient_count(json.get(field)) for field in _RECIPIENT_FIELDS)
        if count > MAX_RECIPIENTS:
            raise errors.InvalidArgumentError(
                f"to, cc and bcc name {count} recipients; one message may name at most "
                f"{MAX_RECIPIENTS}: split the list into several messages"
            )


def check_timeout(value: object, *, error: ErrorClass = errors.ConfigurationError) -> float:
    """Return a timeout in seconds, or raise: it must be a positive finite number."""
    try:
        return check_number("timeout", value, error=error)
    except error:
        # One message for every bad timeout, as the client has always said it.
        raise error("timeout must be a positive number of seconds") from None


def check_header_value(name: str, value: str) -> None:
    """Reject values that would break or inject HTTP headers (CR, LF, other controls)."""
    if not isinstance(value, str) or not value:
        raise errors.ConfigurationError(f"{name} must be a non-empty string")
    if not value.isascii() or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        # The message deliberately does not echo the value: it may be the key.
        raise errors.ConfigurationError(
            f"{name} contains whitespace, control or non-ASCII characters"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str, *, allow_insecure_http: bool) -> str:
    """Validate and normalise the base URL (no trailing slash); plain http only to loopback.

    Everything aiohttp would refuse only when sending (a host with an empty label, a label
    IDNA cannot encode, unbalanced brackets, a port outside 1-65535) is refused here: at send
    time it surfaced as a raw ``ValueError``/``UnicodeError`` from inside aiohttp, whose
    frames hold the request headers.
    """
    problem = _url_problem(base_url)
    if problem is not None:
        raise errors.ConfigurationError(
            f"base_url {problem}, got {errors.clean(redact_url(base_url), 200)!r}"
        )
    host = urlsplit(base_url).hostname or ""
    if base_url.startswith("http:") and not allow_insecure_http and not _is_loopback(host):
        raise errors.ConfigurationError(
            "refusing to send the API key over plain http to a non-loopback host; "
            "use https or pass allow_insecure_http=True"
        )
    return base_url.rstrip("/")


_HOST_LABEL: Final = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_MAX_HOST: Final = 253  # RFC 1035, without the root's trailing dot
_DOTTED_NUMBERS: Final = re.compile(r"[0-9.]+")


def _url_problem(base_url: object) -> str | None:
    """What makes ``base_url`` unusable, as the end of a sentence; None when it is fine."""
    if not isinstance(base_url, str):
        return "must be a str"
    if any(c.isspace() or not c.isprintable() for c in base_url):
        return "must not contain whitespace or control characters"
    # The ValueErrors' texts are not passed on: they may quote the netloc, password included.
    try:
        parts = urlsplit(base_url)
        host = parts.hostname
    except ValueError:
        return "is not a valid URL (unbalanced brackets, or characters a host cannot hold)"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if parts.scheme not in ("http", "https") or not host:
        return "must be an http(s) URL with a host"
    if parts.query or parts.fragment:
        return "must not carry a query or fragment"
    authority = parts.netloc.rpartition("@")[2]
    if authority.endswith(":") or port == 0:
        return "must name a port from 1 to 65535, or none"
    if authority.startswith("["):
        try:
            ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            return "has an invalid IPv6 address in brackets"
        return None
    return _host_problem(host)


def _host_problem(host: str) -> str | None:
    """What is wrong with a DNS name or IPv4 address; None when it is fine."""
    if _DOTTED_NUMBERS.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return "has an invalid IPv4 address"
        return None
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return "has a host name that IDNA cannot encode (an empty or over-long label?)"
    name = ascii_host[:-1] if ascii_host.endswith(".") else ascii_host
    if len(name) > _MAX_HOST or not all(_HOST_LABEL.fullmatch(label) for label in name.split(".")):
        return "has an invalid host name (empty labels, or characters a host cannot hold)"
    return None


def log_from_environment() -> None:
    """Send the library's log lines to stderr when ``$BITRIX_MAIL_LOG`` asks for it (once).

    Nothing happens when the variable is unset or unknown, or when the application already
    gave the ``bitrix_mail_async`` logger a handler of its own.
    """
    level = _LOG_LEVELS.get(os.environ.get(ENV_LOG, "").strip().lower())
    logger = logging.getLogger("bitrix_mail_async")
    if level is None or logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)


def resolve_api_key(api_key: str | None) -> str:
    """The key given, else ``$BITRIX_MAIL_API_KEY``; none at all is a ConfigurationError."""
    key = api_key if api_key is not None else os.environ.get(ENV_API_KEY)
    if not key:
        raise errors.ConfigurationError(
            f"no API key: pass api_key=... or set the {ENV_API_KEY} environment variable"
        )
    check_header_value("api_key", key)
    return key


def resolve_base_url(base_url: str | None, *, allow_insecure_http: bool) -> str:
    """The URL given, else ``$BITRIX_MAIL_BASE_URL``, else the public gateway; checked."""
    url = base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
    return check_base_url(url, allow_insecure_http=allow_insecure_http)


def resolve_session_token(session_token: str | None) -> str | None:
    """The token given, else ``$BITRIX_MAIL_SESSION_TOKEN`` (app keys only); checked."""
    if session_token is None:
        session_token = os.environ.get(ENV_SESSION_TOKEN) or None
        if session_token is None:
            return None
    check_header_value("session_token", session_token)
    return session_token


def redact_url(text: str) -> str:
    """Hide the user and password of every URL in ``text`` (``https://***@host/v1``)."""
    parts = text.split("://")
    for i in range(1, len(parts)):
        rest = parts[i]
        end = min((rest.find(c) for c in "/?#" if c in rest), default=len(rest))
        # The last "@" of the authority ends the credentials, as urlsplit reads them: a
        # password with an unescaped "@" is hidden whole.
        at = rest.rfind("@", 0, end)
        if at != -1:
            parts[i] = "***" + rest[at:]
    return "://".join(parts)
