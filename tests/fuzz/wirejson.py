"""JSON text as a hostile server writes it: raw tokens (``1e400``, ``NaN``, 400-digit ints)
where a value goes, strings with lone surrogates sent as the bytes they would be."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["HUGE", "Huge", "Raw", "deep", "realize", "to_json", "to_wire"]


class Raw(str):
    """Text written into the JSON as it is: a number no encoder would write, a broken token."""

    __slots__ = ()


def to_json(value: Any) -> str:
    """``value`` as JSON text; :class:`Raw` pieces verbatim, non-finite floats as NaN/Infinity."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{to_json(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return int.__repr__(value) if abs(value) < 10**4000 else Raw("9" * 4500)
    if isinstance(value, float):
        return json.dumps(value)  # NaN, Infinity, -Infinity pass as the stdlib writes them
    return json.dumps(str(value))


def to_wire(value: Any) -> bytes:
    """UTF-8 of :func:`to_json`; a lone surrogate goes out as the invalid bytes it encodes to."""
    return to_json(value).encode("utf-8", "surrogatepass")


def deep(depth: int, leaf: str = "0") -> Raw:
    """A list nested ``depth`` levels deep, as raw text (no recursion to build it)."""
    return Raw("[" * depth + leaf + "]" * depth)


class Huge:
    """Stands for ``10**exponent`` in drawn examples: an int past CPython's 4,300-digit
    str() limit cannot be printed, so hypothesis could not show a failing example holding it.
    :func:`realize` swaps in the int when the example runs."""

    __slots__ = ("exponent", "sign")

    def __init__(self, exponent: int, sign: int = 1) -> None:
        self.exponent, self.sign = exponent, sign

    def __repr__(self) -> str:
        return f"{'-' if self.sign < 0 else ''}10**{self.exponent}"


HUGE = (Huge(5000), Huge(5000, -1))


def realize(value: Any, depth: int = 12) -> Any:
    """``value`` with every :class:`Huge` made the int it stands for (containers copied).

    Only the first ``depth`` levels are looked at: deeper ones (a deeply nested body under
    test) hold no :class:`Huge` and are kept as they are.
    """
    if isinstance(value, Huge):
        return value.sign * 10**value.exponent
    if depth <= 0:
        return value
    if isinstance(value, dict):
        return {realize(k, depth - 1): realize(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list):
        return [realize(v, depth - 1) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(realize(v, depth - 1) for v in value)
    return value
