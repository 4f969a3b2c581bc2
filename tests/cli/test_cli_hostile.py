"""Hostile input and hostile surroundings: one line and an exit code, never a traceback.

The command line runs as a subprocess against the emulator (or a raw loopback server for a
hostile gateway), with what an attacker or an odd shell gives it: a closed stdin or stdout,
an ASCII or Latin-1 stdout, malformed base URLs, argv bytes that are not UTF-8, a subject
full of terminal escapes, a huge or endless input.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from bitrix_mail_async.testing import MailEmulator

from .conftest import CLI_TIMEOUT, RunInProcess, clean_env

SENDER = "Sales Team <sales@emulator.bitrix24.test>"
SEND = ("messages", "send", "--from", SENDER, "--to", "bob@example.com", "--subject", "Hi")
CAP = 10 * 1024 * 1024  # the client's request cap, the most the CLI reads


def _run(
    emulator: MailEmulator,
    *args: str | bytes,
    stdin: int | bytes | None = None,
    shell: str | None = None,
    **env: str,
) -> subprocess.CompletedProcess[bytes]:
    """The CLI as a subprocess (bytes in, bytes out); ``shell`` wraps it: ``sh -c SHELL``."""
    extra = {
        "BITRIX_MAIL_BASE_URL": emulator.base_url,
        "BITRIX_MAIL_API_KEY": emulator.api_key,
        "PYTHONUTF8": "1",
        **env,
    }
    command: list[str | bytes] = [sys.executable, "-m", "bitrix_mail_async", *args]
    if shell is not None:
        command = ["sh", "-c", shell, "sh", *command]  # "sh" is $0
    return subprocess.run(
        command,
        env=clean_env(**extra),
        input=stdin if isinstance(stdin, bytes) else None,
        stdin=stdin if isinstance(stdin, int) else None,
        capture_output=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def _one_error_line(result: subprocess.CompletedProcess[bytes]) -> str:
    """The single ``bitrix-mail: error:`` line a refusal prints, checked to be that alone."""
    err = result.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bitrix-mail: error: "), err
    return lines[0]


# ----------------------------------------------------------------------------- stdin
def test_body_from_a_closed_stdin_is_refused(mail_emulator: MailEmulator) -> None:
    result = _run(mail_emulator, *SEND, "--body", "-", shell='exec "$@" <&-')
    assert result.returncode == 2
    assert "--body -: standard input is closed" in _one_error_line(result)
    assert len(mail_emulator.requests) == 0


def test_stdin_that_is_not_utf8_is_refused(mail_emulator: MailEmulator) -> None:
    result = _run(mail_emulator, *SEND, "--body", "-", stdin=b"Gr\xfc\xdfe\n")
    assert result.returncode == 2
    assert "--body - is not UTF-8 text" in _one_error_line(result)
    assert len(mail_emulator.requests) == 0


# ----------------------------------------------------------------------------- item 15
# A virtual-memory ceiling far below what reading the whole input would take: a CLI that
# read first and checked after would die of MemoryError instead of refusing.
LIMITED = 'ulimit -v 524288 && exec "$@"'
CONTACTS = ("api", "POST", "/mail/recipients/contacts")


def test_a_huge_data_file_is_refused_by_its_size_unread(
    mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as file:
        file.truncate(1024**3)  # sparse: 1 GiB that costs no disk
    result = _run(mail_emulator, *CONTACTS, "--data", f"@{big}", shell=LIMITED)
    assert result.returncode == 2
    line = _one_error_line(result)
    assert f"holds {1024**3} bytes" in line
    assert f"at most {CAP} bytes" in line
    assert len(mail_emulator.requests) == 0


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        ((*CONTACTS, "--data", "-"), "zero"),
        ((*CONTACTS, "--data", "@/dev/zero"), None),
        ((*SEND, "--body", "-"), "zero"),
        (("messages", "task", "1001", "--description", "-"), "zero"),
    ],
)
def test_an_endless_input_is_read_only_up_to_the_cap(
    mail_emulator: MailEmulator, args: tuple[str, ...], stdin: str | None
) -> None:
    with open("/dev/zero", "rb") as zero:
        result = _run(mail_emulator, *args, stdin=zero.fileno() if stdin else None, shell=LIMITED)
    assert result.returncode == 2
    assert f"holds more than {CAP} bytes" in _one_error_line(result)
    assert len(mail_emulator.requests) == 0


def test_data_at_the_cap_is_still_read(mail_emulator: MailEmulator, tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    text = '{"query": "smith"}'
    body.write_text(text + " " * (CAP - len(text)), encoding="utf-8")
    result = _run(mail_emulator, *CONTACTS, "--data", f"@{body}", shell=LIMITED)
    assert result.returncode == 0, result.stderr
    assert mail_emulator.requests.last.json == {"query": "smith"}


def test_in_process_stdin_without_bytes_is_bounded_too(
    cli_in_process: RunInProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("x" * (CAP + 10)))
    code, out, err = cli_in_process(*SEND, "--body", "-")
    assert (code, out) == (2, "")
    assert f"holds more than {CAP} bytes" in err
