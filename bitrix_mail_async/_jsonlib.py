"""JSON encoding for the wire: orjson when installed (extra "speedups"), else the stdlib."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["BACKEND", "dumps", "loads", "std_dumps", "std_loads"]


def std_loads(raw: bytes) -> Any:
    """Parse JSON bytes with the standard library."""
    return json.loads(raw)


def std_dumps(obj: Any) -> bytes:
    """Encode compact UTF-8 JSON with the standard library."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


loads: Callable[[bytes], Any] = std_loads
dumps: Callable[[Any], bytes] = std_dumps
BACKEND = "json"

try:
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    pass
else:
    # Both raise subclasses of ValueError on bad input, which is all the transport catches.
    loads = orjson.loads
    dumps = orjson.dumps
    BACKEND = "orjson"
