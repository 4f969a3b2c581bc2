"""Address lists: splitting ``"Ann <a@x.io>", b@y.io`` into addresses, for both directions.

The wire sends ``to``/``cc`` as one comma-separated string (contract section 3), and callers
may pass one too; a comma inside a quoted display name or inside ``<...>`` is not a separator.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["split_recipients"]

# One address: quoted strings (with \-escapes) and <...> may hold commas; an unterminated
# quote or bracket runs to the end, so a malformed list is kept whole rather than mangled.
_ADDRESS: Final = re.compile(r'(?:"(?:[^"\\]|\\.)*(?:"|\\?$)|<[^>]*(?:>|$)|[^,"<])+')


def split_recipients(text: str) -> tuple[str, ...]:
    """Split an address list on commas outside double quotes and angle brackets."""
    if "," not in text:
        one = text.strip()
        return (one,) if one else ()
    plain = '"' not in text and "<" not in text
    parts = [part.strip() for part in (text.split(",") if plain else _ADDRESS.findall(text))]
    if "" in parts:
        parts = [part for part in parts if part]
    return tuple(parts)
