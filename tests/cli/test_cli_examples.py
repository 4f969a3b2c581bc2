"""Every example a command's help shows runs as written against the emulator.

The examples use the seeded portal's ids (mailbox 1, message 1001, ...), so a person trying
them on ``bitrix-mail emulator`` gets what the help promises. Examples that only make sense
in a shell (``source <(...)``, ``> file``) or that serve forever are left out.
"""

from __future__ import annotations

import io
import shlex
import sys
from pathlib import Path

import pytest

from bitrix_mail_async.cli import COMMANDS, build_parser
from bitrix_mail_async.cli.parsing import Command, Group

from .conftest import RunInProcess

# Not run here: they serve until Ctrl-C, or need a shell; each has its own tests.
_NOT_RUN = ("bitrix-mail emulator", "bitrix-mail demo", "source <(", " > ")


def _examples() -> list[str]:
    lines: list[str] = []
    for entry in COMMANDS:
        records: tuple[Command | Group, ...] = (entry,)
        if isinstance(entry, Group):
            records += entry.actions
        for record in records:
            lines += record.example.strip().splitlines()
    top = build_parser().epilog or ""
    # The top level's examples, a line ending in a backslash joined to the next.
    block = top.split("examples:\n", 1)[1].split("\n\n", 1)[0].replace("\\\n", " ")
    lines += [" ".join(line.split()) for line in block.splitlines()]
    starts = ("bitrix-mail ", "echo ", "BITRIX_MAIL_")
    return [line for line in dict.fromkeys(lines) if line.startswith(starts)]


def _command(line: str) -> tuple[list[str], str]:
    """The argv after ``bitrix-mail`` and the stdin of one example line."""
    stdin = ""
    if line.startswith("echo "):
        echoed, line = line.split(" | ", 1)
        stdin = shlex.split(echoed)[1] + "\n"
    line = line.split(" | ", 1)[0]  # what follows a pipe reads our output
    words = shlex.split(line, comments=True)
    while "=" in words[0]:  # VAR=value before the command: the fixture sets the environment
        words.pop(0)
    return words[1:], stdin or "Hello from the example\n"


EXAMPLES = [e for e in _examples() if not any(skip in e for skip in _NOT_RUN)]


def test_the_examples_cover_every_command() -> None:
    covered = {tuple(_command(e)[0][:2]) for e in EXAMPLES}
    names = {word for words in covered for word in words}
    for entry in COMMANDS:
        if isinstance(entry, Command) and (entry.hidden or not entry.gateway):
            continue
        assert entry.name in names, entry.name
        if isinstance(entry, Group):
            for action in entry.actions:
                assert (entry.name, action.name) in covered, action.name


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs_as_written(
    cli_in_process: RunInProcess,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    example: str,
) -> None:
    argv, stdin = _command(example)
    monkeypatch.chdir(tmp_path)  # export writes its file here
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code, out, err = cli_in_process(*argv)
    assert code == 0, err
    assert out
