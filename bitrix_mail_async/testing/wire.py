"""The emulator's wire format: the gateway's envelopes and the parsing of request parameters.

Answers go out as ``{"success": true, "data": ..., "meta": ...}`` or as the error envelope of a
:class:`GatewayError`; every parameter check raises ``400 INVALID_PARAMS`` with the field it
names, the way the gateway does.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from aiohttp import web

from bitrix_mail_async.testing.limits.base import seconds_text
from bitrix_mail_async.testing.log import RecordedRequest, bounded_body
from bitrix_mail_async.testing.state import MSK

__all__ = [
    "JSON",
    "MAX_BODY_BYTES",
    "MAX_INT",
    "PREFIX",
    "GatewayError",
    "access_denied",
    "body",
    "body_limit",
    "body_offset",
    "flag",
    "invalid",
    "iso_date",
    "json_response",
    "limit",
    "not_found",
    "number",
    "offset",
    "ok",
    "path_id",
    "positive",
    "read_json",
    "string",
    "string_list",
]

#: Every route lives under this path, like the gateway's ``/v1``.
PREFIX = "/v1"
JSON = "application/json"

_POSITIVE_INT = re.compile(r"^[1-9][0-9]*$")
_NON_NEGATIVE_INT = re.compile(r"^(0|[1-9][0-9]*)$")
#: Ids, limits and offsets are 64-bit on the portal's side; a bigger number is no id at all.
#: Checked before ``int()``, which refuses strings of over 4,300 digits with a ValueError.
MAX_INT = 2**63 - 1
_MAX_DIGITS = len(str(MAX_INT))
#: The largest request body the emulator reads (``client_max_size``); more is 413.
MAX_BODY_BYTES = 4 * 1024 * 1024
_BODY_KEY: web.RequestKey[dict[str, Any]] = web.RequestKey("bitrix_mail_emulator.json")


class GatewayError(Exception):
    """An error answer in the gateway's envelope, raised by handlers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        hint: str | None = None,
        retry_after: float | None = None,
        validation: list[dict[str, str]] | None = None,
        warning: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.warning = warning
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint
        self.retry_after = retry_after
        self.validation = validation

    def response(self) -> web.Response:
        """Render the error envelope (with ``Retry-After`` when it carries one)."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            error["hint"] = self.hint
        if self.validation:
            error["validation"] = self.validation
        if self.warning:
            error["warning"] = self.warning
        headers = None
        if self.retry_after is not None:
            error["retryAfter"] = number(self.retry_after)
            headers = {"Retry-After": seconds_text(self.retry_after)}
        return json_response(self.status, {"success": False, "error": error}, headers=headers)


# --------------------------------------------------------------------- answers
def number(value: float) -> int | float:
    """Return a whole float as an int, so JSON says ``2``, not ``2.0``."""
    return int(value) if float(value).is_integer() else value


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    """Serialise ``payload`` compactly, as the gateway does."""
    return web.Response(
        status=status,
        body=json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode(),
        content_type=JSON,
        headers=headers,
    )


def ok(data: Any, meta: dict[str, Any] | None = None) -> web.Response:
    """Return the success envelope around ``data`` (and ``meta`` when given)."""
    payload: dict[str, Any] = {"success": True, "data": data}
    if meta is not None:
        payload["meta"] = meta
    return json_response(200, payload)


def invalid(message: str, field_name: str | None = None) -> GatewayError:
    """Return the ``400 INVALID_PARAMS`` error naming ``field_name``."""
    validation = [{"field": field_name, "message": message}] if field_name else None
    return GatewayError(400, "INVALID_PARAMS", message, validation=validation)


def not_found(what: str, ident: int) -> GatewayError:
    """Return the ``404 ENTITY_NOT_FOUND`` error for ``what`` number ``ident``."""
    return GatewayError(404, "ENTITY_NOT_FOUND", f"{what} {ident} not found")


def access_denied(what: str, ident: int) -> GatewayError:
    """Return the ``403 BITRIX_ACCESS_DENIED`` error for ``what`` number ``ident``."""
    return GatewayError(403, "BITRIX_ACCESS_DENIED", f"Access denied to {what} {ident}")


# --------------------------------------------------------------------- parameters
def positive(value: Any, name: str) -> int:
    """Read a positive integer given as a JSON number or a decimal string."""
    if isinstance(value, bool):
        raise invalid(f"{name} must be a positive integer", name)
    if isinstance(value, int) and 0 < value <= MAX_INT:
        return value
    if isinstance(value, str) and _decimal(value, _POSITIVE_INT):
        return int(value)
    raise invalid(f"{name} must be a positive integer", name)


def _decimal(raw: str, pattern: re.Pattern[str]) -> bool:
    """``raw`` matches ``pattern`` and fits :data:`MAX_INT` (checked before converting it)."""
    return len(raw) <= _MAX_DIGITS and pattern.fullmatch(raw) is not None and int(raw) <= MAX_INT


def path_id(request: web.Request) -> int:
    """Read the ``{id}`` of the route's path."""
    return positive(request.match_info["id"], "id")


def limit(raw: str | None, default: int, maximum: int) -> int:
    """Read a query's ``limit``."""
    if raw is None or raw == "":
        return default
    if not _POSITIVE_INT.match(raw):
        raise invalid("limit must be a positive integer", "limit")
    if len(raw) > _MAX_DIGITS:
        return maximum  # however many digits: capped like any oversized limit, never int()
    # The gateway caps an oversized limit instead of rejecting it (REST 3.0 behaviour).
    return min(int(raw), maximum)


def offset(raw: str | None) -> int:
    """Read a query's ``offset``."""
    if raw is None or raw == "":
        return 0
    if not _decimal(raw, _NON_NEGATIVE_INT):
        raise invalid("offset must be a non-negative integer", "offset")
    return int(raw)


def body_limit(value: Any, default: int, maximum: int) -> int:
    """Read a JSON body's ``limit`` (a number or a decimal string)."""
    if value is None:
        return default
    if isinstance(value, str):
        return limit(value, default, maximum)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid("limit must be a positive integer", "limit")
    return min(value, maximum)


def body_offset(value: Any) -> int:
    """Read a JSON body's ``offset`` (a number or a decimal string)."""
    if value is None:
        return 0
    if isinstance(value, str):
        return offset(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise invalid("offset must be a non-negative integer", "offset")
    return value


def flag(raw: str | None, name: str) -> bool | None:
    """Read an optional ``true``/``false`` query parameter."""
    if raw is None:
        return None
    if raw == "true":
        return True
    if raw == "false":
        return False
    raise invalid(f"{name} must be true or false", name)


def iso_date(raw: str | None, name: str) -> datetime | None:
    """Read an optional ISO 8601 date; a naive one is in the portal's timezone."""
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise invalid(f"{name} must be an ISO 8601 date", name) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=MSK)


def string_list(body: dict[str, Any], name: str, *, required: bool) -> list[str]:
    """Read a list of non-blank strings from a JSON body."""
    value = body.get(name)
    if value is None and not required:
        return []
    if (
        not isinstance(value, list)
        or not all(isinstance(v, str) and v.strip() for v in value)
        or (required and not value)
    ):
        raise invalid(f"{name} must be a {'non-empty ' if required else ''}list of strings", name)
    return value


def string(body: dict[str, Any], name: str, *, required: bool, non_empty: bool = False) -> str:
    """Read a string from a JSON body (``""`` when optional and absent)."""
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (non_empty and not value.strip()):
        raise invalid(f"{name} is required and must be a string", name)
    return value


# --------------------------------------------------------------------- the JSON body
def _too_large() -> GatewayError:
    # The contract names no size limit; HTTP's own answer to an oversized body is 413.
    return GatewayError(
        413,
        "PAYLOAD_TOO_LARGE",
        f"Request body is larger than {MAX_BODY_BYTES} bytes",
        hint="Send a smaller body",
    )


async def read_json(request: web.Request, record: RecordedRequest) -> GatewayError | None:
    """Parse a JSON body into the record; return (not raise) the 400 so auth still goes first.

    A body over :data:`MAX_BODY_BYTES` is refused at once (raised: 413), as a front proxy
    refuses it before the gateway sees the key. The record keeps the body as
    :func:`~bitrix_mail_async.testing.log.bounded_body` bounds it.
    """
    if not request.body_exists:
        request[_BODY_KEY] = {}
        return None
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        record.json = f"[body over {MAX_BODY_BYTES} bytes, not read]"
        raise _too_large() from None
    if not raw.strip():
        request[_BODY_KEY] = {}
        return None
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError: not JSON, not UTF-8, or an integer of over 4,300 digits;
        # RecursionError: nesting deeper than the parser's stack.
        record.json = bounded_body(raw.decode("utf-8", errors="replace"), raw)
        return invalid("request body must be JSON")
    record.json = bounded_body(parsed, raw)
    if not isinstance(parsed, dict):
        return invalid("request body must be a JSON object")
    request[_BODY_KEY] = parsed
    return None


def body(request: web.Request) -> dict[str, Any]:
    """Return the JSON object :func:`read_json` parsed (``{}`` without a body)."""
    return request.get(_BODY_KEY) or {}
