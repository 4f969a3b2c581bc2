"""Exception hierarchy and the one table that maps gateway error codes to classes.

Every exception the library raises derives from :class:`MailError`::

    MailError
    ├── ConfigurationError              before any request: bad settings, closed client
    ├── InvalidArgumentError            before any request: a bad argument (also ValueError)
    ├── APIError                        the gateway answered with an error envelope
    │   ├── AuthenticationError         401
    │   ├── PermissionDeniedError       403
    │   │   └── ReadOnlyKeyError        403 WRITE_BLOCKED_READONLY_KEY
    │   ├── InvalidParamsError          400
    │   ├── NotFoundError               404
    │   ├── BitrixError                 422
    │   ├── RateLimitedError            429, after the retry budget
    │   │   └── ErrorLoopDetectedError  429 ERROR_LOOP_DETECTED, raised at once
    │   └── UpstreamUnavailableError    5xx, after retries
    │       ├── QueueTimeoutError       504 QUEUE_TIMEOUT (not executed), after retries
    │       └── UpstreamOutcomeUnknownError  a side effect answered 5xx (also below)
    ├── DeadlineExceededError           the call's deadline passed (also the builtin TimeoutError)
    ├── TransportError                  connection failures
    │   ├── TimeoutError                (also the builtin TimeoutError)
    │   └── OutcomeUnknownError         a side effect that may have been applied
    │       ├── TimeoutOutcomeUnknownError
    │       └── OutcomeUnknownDecodeError   a side effect answered 2xx, unreadable (also below)
    └── DecodeError                     a 2xx answer that is not the envelope or the model

Exception texts never contain the API key: they are built only from the method, the path,
the gateway's code and message, and a short excerpt of a response body. Text that comes from
the server (messages, hints, codes, excerpts) is bounded to :data:`MAX_TEXT_CHARS` and its
control characters are escaped (:func:`clean`), so an answer cannot flood or forge log lines;
:class:`APIError` keeps the unescaped text, bounded too, in ``raw_message``/``raw_hint``.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from typing import Any, Final, TypeVar

__all__ = [
    "APIError",
    "AuthenticationError",
    "BitrixError",
    "ConfigurationError",
    "DeadlineExceededError",
    "DecodeError",
    "ErrorLoopDetectedError",
    "InvalidArgumentError",
    "InvalidParamsError",
    "MailError",
    "NotFoundError",
    "OutcomeUnknownDecodeError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "QueueTimeoutError",
    "RateLimitedError",
    "ReadOnlyKeyError",
    "TimeoutError",
    "TimeoutOutcomeUnknownError",
    "TransportError",
    "UpstreamOutcomeUnknownError",
    "UpstreamUnavailableError",
    "error_class_for",
]

#: How many characters of an unexpected body an exception text may quote.
BODY_EXCERPT_CHARS = 200
#: How many characters of one server text (message, hint, ...) an exception keeps for its text.
MAX_TEXT_CHARS: Final = 1000
#: How many characters of the unescaped server text ``raw_message``/``raw_hint`` keep.
MAX_RAW_TEXT_CHARS: Final = 10_000
# Gateway codes are short identifiers (QUEUE_TIMEOUT); anything longer is not one.
_CODE_CHARS: Final = 100
# What could end, hide or forge a log line, or drive the terminal that shows it: C0 controls
# (ESC, CR, LF, TAB...), DEL, C1 controls, the Unicode line/paragraph separators, the bidi
# controls (Trojan Source) and lone surrogates (which no UTF-8 log stream can even write).
_UNSAFE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)
_SHORT_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if code < 0x100:
        return _SHORT_ESCAPES.get(char, f"\\x{code:02x}")
    return f"\\u{code:04x}"


def clean(text: object, limit: int = MAX_TEXT_CHARS) -> str:
    """Return ``text`` as a str fit for one log line: controls escaped, at most ``limit`` chars.

    A cut text ends with "…". Escaping is idempotent (an escaped text has no controls left),
    so text cleaned twice reads the same.
    """
    value = text if isinstance(text, str) else str(text)
    cut = len(value) > limit
    escaped = _UNSAFE.sub(_escape, value[:limit])
    if cut or len(escaped) > limit:
        return escaped[: limit - 1] + "…"
    return escaped


E = TypeVar("E", bound=BaseException)


def detached(exc: E) -> E:
    """``exc`` without its traceback, cause and context: no frame below is reachable from it.

    For errors raised where a frame further down held a secret in its locals (the request
    headers inside aiohttp, the key in a constructor): a caller that formats the traceback
    with ``capture_locals=True`` must not find it.
    """
    exc.__traceback__ = None
    exc.__cause__ = None
    exc.__context__ = None
    exc.__suppress_context__ = False
    return exc


def clip(text: str | None, limit: int = MAX_RAW_TEXT_CHARS) -> str | None:
    """Bound ``text`` to ``limit`` characters (marked "…"), leaving its characters as they are."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def excerpt(body: str | bytes | None, limit: int = BODY_EXCERPT_CHARS) -> str:
    """Return a short, single-line excerpt of a response body for an error message."""
    if body is None:
        return ""
    if isinstance(body, bytes | bytearray):
        # Only the head can appear: never decode a whole (up to max_response_bytes) body.
        body = bytes(body[: limit * 4]).decode("utf-8", errors="replace")
    flat = " ".join(body[: limit * 4].split())
    flat = flat if len(flat) <= limit else flat[: limit - 3] + "..."
    return clean(flat, limit)


class MailError(Exception):
    """Base of every exception raised by bitrix_mail_async.

    ``request_id`` names the logical call that failed: the gateway's own request id when its
    answer carried one, else the ``X-Request-Id`` this client sent (None for errors raised
    before anything was prepared to send).
    """

    request_id: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Constructors are keyword-heavy: rebuild from the state so errors cross process pools.
        return (_restore, (type(self), self.args, self.__dict__.copy()))


def _restore(cls: type[MailError], args: tuple[Any, ...], state: dict[str, Any]) -> MailError:
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class ConfigurationError(MailError):
    """The client is misconfigured (missing key, closed client, insecure URL...)."""


class InvalidArgumentError(MailError, ValueError):
    """An argument was rejected locally; nothing was sent."""


class APIError(MailError):
    """The gateway answered ``success: false`` (or an HTTP error status).

    ``message``, ``hint``, ``code`` and ``user_message`` are the gateway's, with control
    characters escaped and at most :data:`MAX_TEXT_CHARS` characters (a cut ends with "…");
    ``raw_message`` and ``raw_hint`` keep the text unescaped, cut at :data:`MAX_RAW_TEXT_CHARS`.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int = 0,
        hint: str | None = None,
        retry_after: float | None = None,
        method: str | None = None,
        path: str | None = None,
        body_excerpt: str | None = None,
        validation: list[dict[str, Any]] | None = None,
        user_message: str | None = None,
        raw_message: str | None = None,
        raw_hint: str | None = None,
        warning: str | None = None,
    ) -> None:
        # Server text is bounded and escaped here, once, whoever builds the error; the
        # unescaped text stays reachable, bounded too, for callers that want it verbatim.
        self.raw_message = clip(message if raw_message is None else raw_message)
        self.raw_hint = clip(hint if raw_hint is None else raw_hint)
        self.message = clean(message)
        self.code = None if code is None else clean(code, _CODE_CHARS)
        self.status = status
        self.hint = None if hint is None else clean(hint)
        self.retry_after = retry_after
        self.method = method
        self.path = path
        self.body_excerpt = None if body_excerpt is None else clean(body_excerpt)
        self.validation = validation or []
        self.user_message = None if user_message is None else clean(user_message)
        #: The gateway's note on repeated identical errors ("client code most likely has a bug").
        self.warning = None if warning is None else clean(warning)
        # Not cooperative on purpose: the outcome-unknown hybrids below inherit from both
        # APIError and TransportError, whose constructors must not chain into each other.
        MailError.__init__(self, self._render())

    def _render(self) -> str:
        where = f"{self.method} {self.path}: " if self.method and self.path else ""
        code = self.code or "HTTP"
        text = f"{where}{code} (HTTP {self.status}): {self.message}"
        if self.hint:
            text += f" [hint: {self.hint}]"
        if self.retry_after is not None:
            text += f" [retry after {self.retry_after:g}s]"
        if self.body_excerpt:
            text += f" [body: {self.body_excerpt}]"
        return text


class AuthenticationError(APIError):
    """401: the key is missing, unknown, inactive, expired or has no Bitrix24 tokens."""


class PermissionDeniedError(APIError):
    """403: the key lacks the mail scope, or Bitrix24 denies access to the object."""


class ReadOnlyKeyError(PermissionDeniedError):
    """403 WRITE_BLOCKED_READONLY_KEY: a read-only key asked for a write; nothing was done."""


class InvalidParamsError(APIError):
    """400: the gateway or Bitrix24 rejected a parameter."""


class NotFoundError(APIError):
    """404: unknown action, message or mailbox."""


class BitrixError(APIError):
    """422: any other error reported by Bitrix24."""


class RateLimitedError(APIError):
    """429: still rate limited after the retry budget was spent."""


class ErrorLoopDetectedError(RateLimitedError):
    """429 ERROR_LOOP_DETECTED: the gateway blocks this one request, repeated with one error.

    Not a rate limit: the gateway's circuit breaker (contract section 1a.4) blocks only this
    request (same key, method, path and body) for ``retry_after`` seconds, and other calls go on.
    It points at a bug in the caller, so it is raised at once, never retried or shared.
    """


class UpstreamUnavailableError(APIError):
    """5xx: Bitrix24 or the gateway's queue is unavailable, after retries were spent."""


class QueueTimeoutError(UpstreamUnavailableError):
    """504 QUEUE_TIMEOUT: the call waited too long in the portal's queue and was not executed.

    The client retries it after ``retry_after`` (sends too: nothing was executed) and lowers
    its concurrency; this reaches the caller only once those retries are spent. Never an
    :class:`OutcomeUnknownError`.
    """


class DecodeError(MailError):
    """A 2xx answer was not the documented JSON envelope, or its payload did not fit the model."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        method: str | None = None,
        path: str | None = None,
        body_excerpt: str | None = None,
    ) -> None:
        # Messages may quote the server (keys of an unexpected object, a model's field).
        self.message = message = clean(message)
        self.status = status
        self.method = method
        self.path = path
        self.body_excerpt = body_excerpt = None if body_excerpt is None else clean(body_excerpt)
        where = f"{method} {path}: " if method and path else ""
        text = f"{where}{message}"
        if status:
            text += f" (HTTP {status})"
        if body_excerpt:
            text += f" [body: {body_excerpt}]"
        MailError.__init__(self, text)


class TransportError(MailError):
    """The request could not be completed: connection failure, reset, or timeout."""

    def __init__(self, message: str, *, method: str | None = None, path: str | None = None) -> None:
        # aiohttp's texts may quote what the server sent (a bad status line, a header).
        self.message = message = clean(message)
        self.method = method
        self.path = path
        where = f"{method} {path}: " if method and path else ""
        MailError.__init__(self, f"{where}{message}")


class TimeoutError(TransportError, builtins.TimeoutError):
    """The request timed out (per-call or client timeout) after retries were spent."""


class DeadlineExceededError(MailError, builtins.TimeoutError):
    """The call's deadline (``MailClient(deadline=...)``) passed, or would pass before it could
    be sent: waits for the limiter, cooldowns, backoffs and attempts all count against it.

    Nothing it raised for had a side effect that may have gone out: a send caught on the wire
    by its deadline raises :class:`TimeoutOutcomeUnknownError` instead. ``deadline`` is the
    call's deadline in seconds; ``method`` and ``path`` name the call.
    """

    def __init__(
        self, message: str, *, deadline: float, method: str | None = None, path: str | None = None
    ) -> None:
        self.message = message = clean(message)
        self.deadline = deadline
        self.method = method
        self.path = path
        where = f"{method} {path}: " if method and path else ""
        MailError.__init__(self, f"{where}{message}")


class OutcomeUnknownError(TransportError):
    """A non-idempotent call may or may not have been applied by the gateway.

    Raised instead of retrying a POST (send, reply, forward, move, create-*) whose request
    may have reached the gateway: resending could duplicate the side effect. ``request``
    describes what was sent (method, path and JSON body, never the key) so the caller can
    check, e.g. by listing the sent folder, before deciding to resend.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        path: str | None = None,
        request: Mapping[str, Any] | None = None,
    ) -> None:
        self.request: dict[str, Any] = dict(request or {})
        super().__init__(message, method=method, path=path)


class TimeoutOutcomeUnknownError(OutcomeUnknownError, TimeoutError):
    """A non-idempotent call timed out after its request was written: it may have been applied."""


class OutcomeUnknownDecodeError(OutcomeUnknownError, DecodeError):
    """A non-idempotent call was answered 2xx, but the answer could not be read.

    The gateway most likely applied it (a send went out) and then sent a broken, empty,
    oversized or envelope-less body. Catchable both as :class:`OutcomeUnknownError` (it
    carries ``request``; never resend blindly) and as :class:`DecodeError` (``status``,
    ``body_excerpt``).
    """

    def __init__(
        self,
        message: str,
        *,
        request: Mapping[str, Any] | None = None,
        status: int = 0,
        method: str | None = None,
        path: str | None = None,
        body_excerpt: str | None = None,
    ) -> None:
        DecodeError.__init__(
            self, message, status=status, method=method, path=path, body_excerpt=body_excerpt
        )
        self.request = dict(request or {})


class UpstreamOutcomeUnknownError(UpstreamUnavailableError, OutcomeUnknownError):
    """A non-idempotent call got a 5xx answer: Bitrix24 may have applied it before failing.

    Catchable both as :class:`UpstreamUnavailableError` (it carries the gateway's code and
    status) and as :class:`OutcomeUnknownError` (it carries the request).
    """

    def __init__(
        self,
        message: str,
        *,
        request: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        UpstreamUnavailableError.__init__(self, message, **kwargs)
        self.request = dict(request or {})


# The one table from gateway codes to classes (contract section 2). Unknown codes fall back
# to the HTTP status below, so a code the gateway adds later never crashes decoding.
_CODE_TO_CLASS: dict[str, type[APIError]] = {
    "INVALID_PARAMS": InvalidParamsError,
    "MISSING_API_KEY": AuthenticationError,
    "INVALID_API_KEY": AuthenticationError,
    "INVALID_APP_KEY": AuthenticationError,
    "KEY_INACTIVE": AuthenticationError,
    "KEY_EXPIRED": AuthenticationError,
    "TOKEN_MISSING": AuthenticationError,
    "TOKEN_EXPIRED": AuthenticationError,
    "TOKEN_REFRESH_FAILED": AuthenticationError,
    "SCOPE_DENIED": PermissionDeniedError,
    "BITRIX_ACCESS_DENIED": PermissionDeniedError,
    "IP_NOT_ALLOWED": PermissionDeniedError,
    "MANAGEMENT_KEY_NO_ENTITY_ACCESS": PermissionDeniedError,
    "MANAGEMENT_SCOPE_REQUIRED": PermissionDeniedError,
    "WRITE_BLOCKED_READONLY_KEY": ReadOnlyKeyError,
    "NOT_FOUND": NotFoundError,
    "ENTITY_NOT_FOUND": NotFoundError,
    "BITRIX_ERROR": BitrixError,
    "RATE_LIMITED": RateLimitedError,
    "ERROR_LOOP_DETECTED": ErrorLoopDetectedError,
    "INTERNAL_ERROR": UpstreamUnavailableError,
    "BITRIX_UNAVAILABLE": UpstreamUnavailableError,
    "QUEUE_TIMEOUT": QueueTimeoutError,
}

_STATUS_TO_CLASS: dict[int, type[APIError]] = {
    400: InvalidParamsError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: BitrixError,
    429: RateLimitedError,
}


def error_class_for(code: str | None, status: int) -> type[APIError]:
    """Return the exception class for a gateway error code, falling back to the HTTP status."""
    if code is not None and code in _CODE_TO_CLASS:
        return _CODE_TO_CLASS[code]
    if status in _STATUS_TO_CLASS:
        return _STATUS_TO_CLASS[status]
    if status >= 500:
        return UpstreamUnavailableError
    return APIError
