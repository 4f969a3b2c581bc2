"""The one place that reads the gateway's answers.

An answer is ``{"success": true, "data": ..., "meta"?: ...}`` or ``{"success": false, "error":
{...}}`` (contract section 1). This module turns an :class:`Answer` into the ``data`` and
``meta`` of a success or into the typed :mod:`errors` exception of a failure, unwraps ``item``/
``items`` payloads, reads paging ``meta`` and decodes payloads into models through
:mod:`bitrix_mail_async._convert`. Every :class:`~errors.DecodeError` raised here names the
method and path of the call.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple, TypeVar

from bitrix_mail_async import errors
from bitrix_mail_async._convert import structure, structure_list
from bitrix_mail_async._fastlane import Shape, lane
from bitrix_mail_async._httpdate import parse_http_date
from bitrix_mail_async._jsonlib import MAX_DEPTH, TooDeepError, check_depth, loads
from bitrix_mail_async.models import Page

__all__ = [
    "Answer",
    "Call",
    "Decoder",
    "FastPage",
    "Reply",
    "Unwrap",
    "decode",
    "decode_list",
    "decode_page",
    "error_for",
    "parse_retry_after",
    "read",
    "unwrap_item",
    "unwrap_items",
]

T = TypeVar("T")

log = logging.getLogger("bitrix_mail_async.transport")

#: A Retry-After above a day is not advice but garbage (the gateway's longest block is 10 min).
MAX_RETRY_AFTER = 86_400.0
Unwrap = Literal["item"] | None
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class Call(NamedTuple):
    """Which call an answer belongs to: named in every error this module raises."""

    method: str
    path: str


class Answer(NamedTuple):
    """What one attempt got back over HTTP: status, headers and the (bounded) body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def retry_after(self) -> float | None:
        """Seconds from the Retry-After header, None when absent or unusable."""
        return parse_retry_after(self.headers.get("Retry-After"))


#: Headers a gateway may name its request id in, in order of preference.
REQUEST_ID_HEADERS: Final = ("X-Request-Id", "Request-Id", "X-Correlation-Id")


def answer_request_id(headers: Mapping[str, str]) -> str | None:
    """The request id an answer's headers carry, if any (bounded, controls escaped)."""
    folded = {name.lower(): value for name, value in headers.items()}
    for name in REQUEST_ID_HEADERS:
        value = folded.get(name.lower())
        if value:
            return errors.clean(value, 200)
    return None


_UNREAD: Final = object()


class Reply:
    """A successful answer: ``data``, ``meta`` (None when it has none), status and headers.

    The status and headers are what ``mail.with_raw_response`` shows; the resources only
    read ``data`` and ``meta``. When the fast lane decoded the answer from its bytes, ``data``
    is parsed from ``body`` only if someone asks for it (a raw response does).
    """

    __slots__ = ("_body", "_data", "headers", "meta", "parsed", "status")

    def __init__(
        self,
        data: Any,
        meta: Any = None,
        status: int = 200,
        headers: Mapping[str, str] = _NO_HEADERS,
        parsed: Any = None,
        *,
        body: bytes | None = None,
    ) -> None:
        self._data = data
        self.meta = meta
        self.status = status
        self.headers = headers
        #: ``data`` decoded by the call's decoder (``Pipeline.request(decoder=...)``), else None.
        self.parsed = parsed
        self._body = body

    @property
    def data(self) -> Any:
        """The envelope's ``data`` as plain JSON."""
        if self._data is _UNREAD:
            self._data = loads(self._body or b"")["data"]
        return self._data

    def _replace(self, **changes: Any) -> Reply:
        """A copy with some fields changed (as a NamedTuple's ``_replace``)."""
        fields = {"data": self._data, "meta": self.meta, "status": self.status}
        fields.update(headers=self.headers, parsed=self.parsed)
        fields.update(changes)
        return Reply(**fields, body=self._body)

    def __repr__(self) -> str:
        data = "<unread>" if self._data is _UNREAD else repr(self._data)
        return f"Reply(status={self.status}, data={data:.200}, meta={self.meta!r:.100})"


class Decoder:
    """The decoder of a model in an answer ``shape``: ``data`` into ``cast_to``.

    :meth:`decode` runs the converter (the pure-Python lane). :func:`read` first offers it
    the answer's bytes (:meth:`from_body`): with msgspec installed, a well-formed answer is
    decoded there in C (:mod:`bitrix_mail_async._fastlane`). A page decoder decodes nothing
    from ``data``: the pager does, with :func:`decode_page`. It holds nothing of a call, so
    one per model and shape serves every call (:func:`decoder_for`).
    """

    __slots__ = ("_lane", "cast_to", "shape")

    def __init__(self, cast_to: type[Any], shape: Shape) -> None:
        self.cast_to = cast_to
        self.shape = shape
        self._lane = lane(cast_to, shape)

    def decode(self, call: Call, data: Any) -> Any:
        """Decode the answer's ``data`` of ``call`` (the pure-Python lane)."""
        if self.shape == "page":
            return None
        if self.shape == "list":
            return decode_list(call, data, self.cast_to)
        unwrap: Unwrap = "item" if self.shape == "item" else None
        return decode(call, data, self.cast_to, unwrap=unwrap)

    def from_body(self, answer: Answer) -> Reply | None:
        """The fast lane's reply for a well-formed answer; None to take the other lane."""
        if self._lane is None:
            return None
        fast = self._lane.decode(answer.body)
        if fast is None:
            return None
        parsed = fast.parsed
        if self.shape == "page":
            parsed = FastPage(parsed, fast.page_meta)
        return Reply(_UNREAD, fast.meta, answer.status, answer.headers, parsed, body=answer.body)


_DECODERS: Final[dict[tuple[type[Any], Shape], Decoder]] = {}


def decoder_for(cast_to: type[Any], shape: Shape) -> Decoder:
    """The one :class:`Decoder` of a model in a shape, made on first use."""
    decoder = _DECODERS.get((cast_to, shape))
    if decoder is None:
        decoder = _DECODERS[cast_to, shape] = Decoder(cast_to, shape)
    return decoder


class FastPage(NamedTuple):
    """A page's items and the meta its paging logic reads, from the fast lane."""

    items: list[Any]
    meta: Any


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None when unusable.

    Negative, non-finite and absurd values (over :data:`MAX_RETRY_AFTER`) are unusable: the
    client then waits by its own rules, and says so at DEBUG.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        when = parse_http_date(text)
        if when is None:
            _unusable_retry_after(text)
            return None
        # An HTTP-date a little in the past only means "now".
        seconds = max(0.0, when.timestamp() - time.time())
    if not (math.isfinite(seconds) and 0.0 <= seconds <= MAX_RETRY_AFTER):
        _unusable_retry_after(text)
        return None
    return seconds


def _unusable_retry_after(text: str) -> None:
    log.debug("ignoring an unusable Retry-After %r: the client's own wait applies", text[:40])


def _coerce_seconds(value: Any) -> float | None:
    """Seconds from an error body's ``retryAfter`` (a number or text); None when unusable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        # The stdlib parser keeps every digit: float() of an int past 1e308 would raise
        # OverflowError, and its repr() may run to thousands of digits. Range first.
        if 0 <= value <= MAX_RETRY_AFTER:
            return float(value)
        bits = value.bit_length()
        _unusable_retry_after(str(value) if bits <= 64 else f"an integer of {bits} bits")
        return None
    if isinstance(value, float):
        return parse_retry_after(repr(value))
    if isinstance(value, str):
        return parse_retry_after(value)
    return None


def _decode_error(call: Call, message: str, **details: Any) -> errors.DecodeError:
    return errors.DecodeError(message, method=call.method, path=call.path, **details)


def read(
    call: Call,
    answer: Answer,
    *,
    untyped: bool = False,
    decoder: Decoder | None = None,
) -> Reply:
    """Return the ``data``/``meta`` of a 2xx answer (``parsed`` by ``decoder``), or raise.

    ``untyped``: the caller takes ``data`` as plain JSON, so it must not be absurdly deep.
    The ``decoder`` may take a well-formed answer straight from its bytes; otherwise it
    decodes the parsed ``data``.
    """
    if decoder is not None and not untyped:
        fast = decoder.from_body(answer)
        if fast is not None:
            return fast
    reply = _read(call, answer, untyped=untyped)
    if decoder is not None:
        reply.parsed = decoder.decode(call, reply.data)
    return reply


def _read(call: Call, answer: Answer, *, untyped: bool) -> Reply:
    raw = answer.body
    try:
        envelope = loads(raw)
    except ValueError as exc:
        deep = isinstance(exc, TooDeepError)
        raise _decode_error(
            call,
            _TOO_DEEP if deep else "the answer is not valid JSON",
            status=answer.status,
            body_excerpt=errors.excerpt(raw),
        ) from None
    if not isinstance(envelope, dict) or "success" not in envelope:
        raise _decode_error(
            call,
            "the answer is not the gateway's envelope (no 'success' field)",
            status=answer.status,
            body_excerpt=errors.excerpt(raw),
        )
    if envelope["success"] is True:
        if "data" not in envelope:
            raise _decode_error(call, "'success: true' without 'data'", status=answer.status)
        if untyped:
            try:
                check_depth(envelope["data"])
            except TooDeepError:
                raise _decode_error(call, _TOO_DEEP, status=answer.status) from None
        return Reply(envelope["data"], envelope.get("meta"), answer.status, answer.headers)
    # success: false with a 2xx status: still a gateway error, typed by its code.
    raise error_for(call, answer, envelope=envelope)


def error_for(call: Call, answer: Answer, *, envelope: Any = None) -> errors.APIError:
    """The typed exception for an error answer (any status); unknown codes map by status."""
    status = answer.status
    if envelope is None:
        try:
            envelope = loads(answer.body) if answer.body else None
        except ValueError:
            envelope = None
    try:
        check_depth(envelope)  # its validation list is passed on as it came
    except TooDeepError:
        envelope = None
    error_obj = envelope.get("error") if isinstance(envelope, dict) else None
    code: str | None = None
    message = f"HTTP {status}"
    hint = user_message = warning = None
    validation: list[dict[str, Any]] | None = None
    body_retry_after = None
    body_excerpt: str | None = None
    if isinstance(error_obj, dict):
        raw_code = error_obj.get("code")
        code = str(raw_code) if raw_code is not None else None
        message = str(error_obj.get("message") or message)
        hint = _opt_str(error_obj.get("hint"))
        user_message = _opt_str(error_obj.get("userMessage"))
        warning = _opt_str(error_obj.get("warning"))
        body_retry_after = _coerce_seconds(error_obj.get("retryAfter"))
        raw_validation = error_obj.get("validation")
        if isinstance(raw_validation, list):
            validation = [v for v in raw_validation if isinstance(v, dict)]
    else:
        message = f"HTTP {status} with an answer that is not the gateway's error envelope"
        body_excerpt = errors.excerpt(answer.body)
    retry_after = answer.retry_after
    if retry_after is None:
        retry_after = body_retry_after
    cls = errors.error_class_for(code, status)
    err = cls(
        message,
        code=code,
        status=status,
        hint=hint,
        retry_after=retry_after,
        method=call.method,
        path=call.path,
        body_excerpt=body_excerpt,
        validation=validation,
        user_message=user_message,
        warning=warning,
    )
    err.request_id = answer_request_id(answer.headers)
    return err


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


# --- payloads ------------------------------------------------------------------------------


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def unwrap_items(call: Call, data: object) -> list[Any]:
    """Return the list from a bare JSON array or from ``{"items": [...]}``."""
    # The contract allows a bare JSON array or {"items": [...]} for lists (section 3).
    if data.__class__ is list:
        return data
    if isinstance(data, dict):
        items = data.get("items")
        if items.__class__ is list:
            return items
        keys = ", ".join(sorted(map(str, data))[:8])
        got = f"an object with keys [{keys}]"
    else:
        got = _kind(data)
    raise _decode_error(call, f"expected a list or an object with an 'items' list, got {got}")


def unwrap_item(call: Call, data: object) -> Any:
    """Return the object from ``{"item": {...}}``, or a bare object itself."""
    # {"item": {...}} in REST 3.0, a bare object possibly from the gateway: accept both.
    if not isinstance(data, dict):
        raise _decode_error(call, f"expected an object, got {_kind(data)}")
    if "item" not in data:
        return data
    inner = data["item"]
    if isinstance(inner, dict):
        return inner
    raise _decode_error(call, f"expected 'item' to be an object, got {_kind(inner)}")


_TOO_DEEP = f"the answer is JSON nested deeper than {MAX_DEPTH} levels"


def _named(call: Call, exc: errors.DecodeError) -> errors.DecodeError:
    return _decode_error(call, exc.message)


def decode(call: Call, data: Any, cast_to: type[T], *, unwrap: Unwrap = None) -> T:
    """Decode one payload into ``cast_to``; ``unwrap="item"`` accepts ``{"item": {...}}``."""
    if unwrap == "item":
        data = unwrap_item(call, data)
    try:
        return structure(data, cast_to)
    except errors.DecodeError as exc:
        raise _named(call, exc) from None
    except RecursionError:
        # loads() bounds the depth; this guards payloads built some other way.
        raise _decode_error(call, _TOO_DEEP) from None


def decode_list(call: Call, data: Any, cast_to: type[T]) -> list[T]:
    """Decode a list payload (a bare array or ``{"items": [...]}``) into ``list[cast_to]``."""
    items = unwrap_items(call, data)
    try:
        return structure_list(items, cast_to)
    except errors.DecodeError as exc:
        raise _named(call, exc) from None
    except RecursionError:
        raise _decode_error(call, _TOO_DEEP) from None


def _meta_of(meta: Any) -> tuple[bool | None, int | None]:
    # The contract only infers that mail lists carry meta (I), so it is optional here.
    if not isinstance(meta, dict):
        return None, None
    has_more = meta.get("hasMore")
    total = meta.get("total")
    return (
        has_more if isinstance(has_more, bool) else None,
        total if isinstance(total, int) and not isinstance(total, bool) else None,
    )


def decode_page(call: Call, reply: Reply, cast_to: type[T], *, offset: int, limit: int) -> Page[T]:
    """Decode one page of an offset-paged list and decide whether another page follows.

    ``hasMore`` wins, then ``total``; without either, a page shorter than ``limit`` is the
    last one (REST 3.0's rule). An empty page always ends the walk, so a gateway that claims
    more but returns nothing cannot make a pager loop forever.
    """
    parsed = reply.parsed
    if parsed.__class__ is FastPage:
        items, meta = parsed
    else:
        items = decode_list(call, reply.data, cast_to)
        meta = reply.meta
        if meta is None and isinstance(reply.data, dict):
            # Tolerate meta nested in data, or hasMore/total beside "items".
            meta = reply.data.get("meta", reply.data)
    has_more, total = _meta_of(meta)
    if has_more is None:
        has_more = offset + len(items) < total if total is not None else len(items) >= limit
    if not items:
        has_more = False
    truncated = meta.get("truncated") if isinstance(meta, dict) else None
    return Page(
        items=items,
        has_more=has_more,
        total=total,
        offset=offset,
        limit=limit,
        truncated=truncated if isinstance(truncated, bool) else None,
    )
