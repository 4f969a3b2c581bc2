"""What ``bitrix-mail`` reads besides its arguments: standard input and files, bounded, as UTF-8.

Owns ``-`` read as standard input (``--body -``, ``--description -``, ``api --data -``) and
``api --data @FILE``. Nothing is read past :data:`MAX_INPUT_BYTES`, the client's cap on a
request body, since more could never be sent: a regular file's size is checked before it is
read, and a pipe, a device or stdin is read at most one byte past the cap. The bytes must be
UTF-8 (the gateway's JSON is); a closed stdin, an unreadable file or other bytes are a
:class:`~bitrix_mail_async.cli.failures.UsageError` (exit code 2), before anything is sent.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO, Final

from bitrix_mail_async._config import DEFAULT_MAX_REQUEST_BYTES
from bitrix_mail_async.cli.failures import UsageError

__all__ = ["MAX_INPUT_BYTES", "read_file", "read_stdin", "text_or_stdin"]

#: The most read from stdin or a file: the client sends no request body larger (10 MiB).
MAX_INPUT_BYTES: Final = DEFAULT_MAX_REQUEST_BYTES


def _too_big(what: str, size: int | None) -> UsageError:
    amount = f"{size} bytes" if size is not None else f"more than {MAX_INPUT_BYTES} bytes"
    return UsageError(
        f"{what} holds {amount}; a request body may be at most {MAX_INPUT_BYTES} bytes "
        "(10 MiB), so it could never be sent"
    )


def _read_bounded(stream: BinaryIO, what: str) -> bytes:
    """At most :data:`MAX_INPUT_BYTES` of ``stream``; a regular file's size is checked first."""
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):
        info = None  # not a real file descriptor: the bounded read below still holds
    if info is not None and stat.S_ISREG(info.st_mode) and info.st_size > MAX_INPUT_BYTES:
        raise _too_big(what, info.st_size)
    data = stream.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise _too_big(what, None)
    return data


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{what} is not UTF-8 text (byte {exc.start} cannot be decoded); "
            "the gateway takes UTF-8"
        ) from None


def read_stdin(what: str) -> str:
    """All of standard input (``what`` names it in errors), bounded, as UTF-8 text."""
    stream = sys.stdin
    if stream is None:
        raise UsageError(f"{what}: standard input is closed; give the text itself or redirect it")
    binary = getattr(stream, "buffer", None)
    try:
        if binary is None:
            # A text stream without bytes underneath (a test's StringIO): bounded all the same.
            text = stream.read(MAX_INPUT_BYTES + 1)
            if len(text.encode("utf-8", "surrogatepass")) > MAX_INPUT_BYTES:
                raise _too_big(what, None)
            return text
        return _decode(_read_bounded(binary, what), what)
    except OSError as exc:
        raise UsageError(f"{what}: cannot read standard input: {exc}") from None


def read_file(path: Path, what: str) -> str:
    """The file at ``path`` (``what`` names it in errors), bounded, as UTF-8 text."""
    try:
        with path.open("rb") as file:
            data = _read_bounded(file, what)
    except OSError as exc:
        raise UsageError(f"{what}: cannot read it: {exc}") from None
    return _decode(data, what)


def text_or_stdin(value: str, option: str) -> str:
    """The text of ``option``, or all of standard input when it is ``-``."""
    return read_stdin(f"{option} -") if value == "-" else value
