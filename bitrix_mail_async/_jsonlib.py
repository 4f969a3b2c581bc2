"""JSON encoding for the wire: orjson when installed (extra "speedups"), else the stdlib.

Both backends behave the same at the edges: ``loads`` raises only ``ValueError`` (bad JSON,
or nesting past the parser's own limit, where the stdlib would raise ``RecursionError``), and
``dumps`` raises only :class:`~bitrix_mail_async.errors.InvalidArgumentError` for what it
cannot encode.

:data:`MAX_DEPTH` bounds what the client hands out *untyped*: a model's ``extra`` and
``bindings``, the ``data`` of ``mail.request()`` and raw responses, error bodies. Those places
call :func:`check_depth`; typed fields need no walk, since a nested value where a scalar or a
list of strings belongs fails decoding anyway. Walking every answer would cost as much as
parsing it (about 28 us per 50-item page).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from bitrix_mail_async import errors

__all__ = [
    "BACKEND",
    "MAX_DEPTH",
    "TooDeepError",
    "check_depth",
    "dumps",
    "loads",
    "std_dumps",
    "std_loads",
]

#: Deepest nesting an answer may have. The gateway's answers are a few levels deep (envelope,
#: data, items, item, bindings); a decoded value nested near the interpreter's recursion
#: limit would make ``repr()`` or ``copy.deepcopy()`` of a model fail later in the caller.
MAX_DEPTH: Final = 100


class TooDeepError(ValueError):
    """The JSON nests lists/objects deeper than :data:`MAX_DEPTH` (or than a parser allows)."""


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Raise :class:`TooDeepError` when ``value`` nests lists/objects deeper than ``limit``."""
    if type(value) is not dict and type(value) is not list:
        return
    # Iterative, so the check itself cannot hit the recursion limit.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise TooDeepError(f"JSON nested deeper than {limit} levels")
        for child in node.values() if type(node) is dict else node:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))


def std_loads(raw: bytes) -> Any:
    """Parse JSON bytes with the standard library."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise TooDeepError("JSON nested too deeply to parse") from None


def std_dumps(obj: Any) -> bytes:
    """Encode compact UTF-8 JSON with the standard library."""
    # allow_nan=False: NaN and Infinity are not JSON (orjson would send them as null).
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


_loads: Callable[[bytes], Any] = std_loads
_dumps: Callable[[Any], bytes] = std_dumps
BACKEND = "json"

try:
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    pass
else:
    # orjson raises subclasses of ValueError (decoding) and TypeError (encoding).
    _loads = orjson.loads
    _dumps = orjson.dumps
    BACKEND = "orjson"


def loads(raw: bytes) -> Any:
    """Parse an answer; any failure is a ValueError (:class:`TooDeepError` for deep nesting)."""
    try:
        value = _loads(raw)
    except ValueError as exc:
        # orjson's own limit (1,024 levels) says so only in its message.
        if "depth limit" in str(exc):
            raise TooDeepError(str(exc)) from None
        raise
    return value


def dumps(obj: Any) -> bytes:
    """Encode a request body; what JSON cannot carry is an InvalidArgumentError."""
    try:
        return _dumps(obj)
    # TypeError: not serialisable (orjson: also too deep); ValueError: a circular reference
    # or (UnicodeEncodeError) a lone surrogate; RecursionError: too deep for the stdlib.
    except (TypeError, ValueError, RecursionError) as exc:
        message = f"the JSON body cannot be encoded: {type(exc).__name__}: {exc}"
    # Raised outside the except block: the encoder's error (and its frames) stays out of it.
    raise errors.InvalidArgumentError(errors.clean(message, 300))
