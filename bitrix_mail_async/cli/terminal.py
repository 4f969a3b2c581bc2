"""What may reach the terminal: control characters escaped, and only what the stream can encode.

Owns the escaping of text that came from the gateway (a subject, a sender, an error message)
before it is printed for a person: C0 controls (but newline and tab in a message's body), DEL,
C1 controls (``\\x9b`` is a one-byte CSI), the line and paragraph separators, the
bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069, ...) and lone surrogates
are shown as ``\\x1b``, ``\\u202e``, ``\\n`` (the set and the spelling of
:func:`bitrix_mail_async.errors.clean`), so a hostile subject can neither drive the terminal
(title, screen clear, colours) nor forge a line or reorder what is shown. JSON
output keeps every character, with the same ones written as ``\\uXXXX`` escapes (still the
same JSON), and is pure ASCII when the stream's encoding cannot carry Unicode. Also owns
:func:`safe_stdout`, which makes a stdout in ASCII or Latin-1 write ``\\xfc`` instead of
failing on a character it cannot encode.
"""

from __future__ import annotations

import codecs
import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, TextIO

__all__ = ["json_text", "printable", "printable_lines", "safe_stdout", "speaks_unicode"]

# Bidirectional controls: embeddings and overrides, isolates, marks.
_BIDI: Final = (
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    0x200E,
    0x200F,
    0x061C,
)
_CONTROLS: Final = (
    *range(0x00, 0x20),
    *range(0x7F, 0xA0),
    0x2028,
    0x2029,
    *_BIDI,
    *range(0xD800, 0xE000),
)
_SHORT: Final = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _escape(code: int) -> str:
    if code in _SHORT:
        return _SHORT[code]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# One line (a table cell, a field, an error): every control, newline and tab too.
_ONE_LINE: Final = {code: _escape(code) for code in _CONTROLS}
# Many lines (a message's body): newline and tab stay.
_LINES: Final = {code: text for code, text in _ONE_LINE.items() if chr(code) not in "\n\t"}
# Inside JSON strings, where a \uXXXX escape means the same character (C0 json escapes itself);
# lone surrogates (undecodable bytes of a file name) are written so too.
_JSON: Final = {code: f"\\u{code:04x}" for code in _CONTROLS if code >= 0x7F}
_UNICODE_CODECS: Final = frozenset({"utf-8", "utf-16", "utf-32"})


def printable(text: str) -> str:
    """``text`` for one line of a terminal: control and bidi characters escaped."""
    return text.translate(_ONE_LINE)


def printable_lines(text: str) -> str:
    """``text`` for a terminal, keeping its lines and tabs; CR (which rewrites a line) escaped."""
    return text.replace("\r\n", "\n").translate(_LINES)


def speaks_unicode(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (stdout by default) encodes every character (UTF-8/16/32)."""
    stream = sys.stdout if stream is None else stream
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        return codecs.lookup(encoding).name in _UNICODE_CODECS
    except LookupError:
        return False


def json_text(value: Any, *, indent: int | None = None, stream: TextIO | None = None) -> str:
    """``value`` as JSON for ``stream`` (stdout by default): readable where it can be, safe."""
    ascii_only = not speaks_unicode(stream)
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    return text if ascii_only else text.translate(_JSON)


@contextmanager
def safe_stdout() -> Iterator[None]:
    """Make stdout escape (``\\xfc``) what its encoding cannot carry, instead of failing."""
    stream = sys.stdout
    errors = getattr(stream, "errors", None)
    if not isinstance(stream, io.TextIOWrapper) or errors in (None, "backslashreplace"):
        yield
        return
    stream.reconfigure(errors="backslashreplace")
    try:
        yield
    finally:
        if not stream.closed:
            stream.reconfigure(errors=errors)
