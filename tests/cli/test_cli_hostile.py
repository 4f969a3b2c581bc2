"""Hostile input and hostile surroundings: one line and an exit code, never a traceback.

The command line runs as a subprocess against the emulator (or a raw loopback server for a
hostile gateway), with what an attacker or an odd shell gives it: a closed stdin or stdout,
an ASCII or Latin-1 stdout, malformed base URLs, argv bytes that are not UTF-8, a subject
full of terminal escapes, a huge or endless input.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bitrix_mail_async.cli import output
from bitrix_mail_async.testing import MailEmulator

from .conftest import CLI_TIMEOUT, RunInProcess, clean_env

SENDER = "Sales Team <sales@emulator.bitrix24.test>"
SEND = ("messages", "send", "--from", SENDER, "--to", "bob@example.com", "--subject", "Hi")
CAP = 10 * 1024 * 1024  # the client's request cap, the most the CLI reads
# What must never reach a terminal from the gateway's text: C0 but newline (and tab in a
# body), DEL, C1 (0x9b is a one-byte CSI), line separators, bidi overrides and isolates.
DANGEROUS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069\u200e\u200f\u061c]")
HOSTILE_SUBJECT = "Hi\x1b]0;owned\x07\x1b[2J\x9b31m\u202egnp.exe\r\x00\x7fend"
HOSTILE_FROM = "Eve \x1b[31mRed\x1b[0m <eve@example.com>"


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


# ----------------------------------------------------------------------------- item 13
def test_body_from_a_closed_stdin_is_refused(mail_emulator: MailEmulator) -> None:
    result = _run(mail_emulator, *SEND, "--body", "-", shell='exec "$@" <&-')
    assert result.returncode == 2
    assert "--body -: standard input is closed" in _one_error_line(result)
    assert len(mail_emulator.requests) == 0


def test_a_closed_stdout_is_refused_before_anything_is_sent(mail_emulator: MailEmulator) -> None:
    # Nothing could report the send: doing it would invite a second one.
    result = _run(mail_emulator, *SEND, "--body", "x", shell='exec "$@" >&-')
    assert result.returncode == 2
    assert "standard output is closed" in _one_error_line(result)
    assert len(mail_emulator.requests) == 0


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_a_narrow_stdout_gets_escapes_not_a_traceback(
    mail_emulator: MailEmulator, encoding: str
) -> None:
    subject = "Привет, Jürgen 😀"
    mail_emulator.deliver(subject=subject, from_="Jürgen <j@example.com>", body="Grüße 😀")
    table = _run(mail_emulator, "messages", "list", "1", "--limit", "1", PYTHONIOENCODING=encoding)
    assert table.returncode == 0, table.stderr
    text = table.stdout.decode(encoding)  # every byte in the stream's encoding
    assert "\\u041f\\u0440" in text  # "Пр", escaped
    assert "\\U0001f600" in text
    listed = _run(
        mail_emulator, "messages", "list", "1", "--limit", "1", "--json", PYTHONIOENCODING=encoding
    )
    assert listed.returncode == 0, listed.stderr
    listed.stdout.decode("ascii")  # JSON falls back to its own \u escapes: lossless
    [item] = json.loads(listed.stdout)
    assert item["subject"] == subject
    shown = _run(mail_emulator, "messages", "get", str(item["id"]), PYTHONIOENCODING=encoding)
    assert shown.returncode == 0, shown.stderr
    assert "Gr" in shown.stdout.decode(encoding)


@pytest.mark.parametrize(
    "url",
    [
        "https://vibecode..bitrix24.tech/v1",
        "http://[::1/v1",
        "http://℀.example/v1",
        "https://[::ffff:999.1.1.1]/v1",
        "http://127.0.0.1:65536/v1",
        "http://127.0.0.1:-1/v1",
        "http://127.0.0.1:0/v1",
        "https://" + "a" * 64 + ".example/v1",
    ],
)
def test_a_malformed_base_url_is_one_line_and_exit_2(mail_emulator: MailEmulator, url: str) -> None:
    result = _run(mail_emulator, "--base-url", url, "whoami")
    assert result.returncode == 2
    assert "is not a usable URL" in _one_error_line(result)
    # The same from the environment, named as such.
    result = _run(mail_emulator, "whoami", BITRIX_MAIL_BASE_URL=url)
    assert result.returncode == 2
    assert "BITRIX_MAIL_BASE_URL" in _one_error_line(result)


def test_a_malformed_base_url_never_shows_its_password(mail_emulator: MailEmulator) -> None:
    result = _run(mail_emulator, "--base-url", "https://joe:hunter22@℀.example/v1", "whoami")
    assert result.returncode == 2
    line = _one_error_line(result)
    assert "hunter22" not in line
    assert "***" in line


@pytest.mark.parametrize(
    "args",
    [
        ("api", "GET", "/mail/messages", "-p", "mailboxId=1", "-p", b"searchQuery=\xff\xfe"),
        ("messages", "list", "1", "--search", b"caf\xe9"),
        (*SEND[:-1], b"Gr\xfc\xdfe", "--body", "x"),
        ("recipients", "employees", b"\xc3"),
    ],
)
def test_argv_bytes_that_are_not_utf8_are_refused(
    mail_emulator: MailEmulator, args: tuple[str | bytes, ...]
) -> None:
    result = _run(mail_emulator, *args)
    assert result.returncode == 2
    assert "not UTF-8" in _one_error_line(result)
    assert len(mail_emulator.requests) == 0  # never sent altered


def test_a_file_name_that_is_not_utf8_still_names_the_file(
    mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    out = os.fsencode(tmp_path) + b"/mail-\xff.jsonl"
    result = _run(mail_emulator, "export", "1", "--out", out)
    assert result.returncode == 0, result.stderr
    assert len(Path(os.fsdecode(out)).read_text(encoding="utf-8").splitlines()) > 0


def test_stdin_that_is_not_utf8_is_refused(mail_emulator: MailEmulator) -> None:
    result = _run(mail_emulator, *SEND, "--body", "-", stdin=b"Gr\xfc\xdfe\n")
    assert result.returncode == 2
    assert "--body - is not UTF-8 text" in _one_error_line(result)
    assert len(mail_emulator.requests) == 0


def test_an_unexpected_exception_is_one_line_and_exit_1(
    cli_in_process: RunInProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(messages: object) -> str:
        raise RuntimeError("the table broke " + "x" * 1000)

    monkeypatch.setattr(output, "message_table", broken)
    code, _, err = cli_in_process("messages", "list", "1")
    assert code == 1
    assert "Traceback" not in err
    [line] = err.splitlines()
    assert line.startswith("bitrix-mail: error: unexpected RuntimeError: the table broke")
    assert len(line) < 400  # bounded
    # --debug shows where it happened.
    code, _, err = cli_in_process("--debug", "messages", "list", "1")
    assert code == 1
    assert "Traceback" in err
    assert "the table broke" in err.splitlines()[-1]


def test_main_never_raises_even_for_an_exception_with_a_broken_str(
    cli_in_process: RunInProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Weird(Exception):
        def __str__(self) -> str:
            raise ValueError("no text")

    def broken(messages: object) -> str:
        raise Weird

    monkeypatch.setattr(output, "message_table", broken)
    code, _, err = cli_in_process("messages", "list", "1")
    assert code == 1
    assert err.strip() == "bitrix-mail: error: unexpected Weird (--debug shows where)"


# ----------------------------------------------------------------------------- item 14
def _assert_harmless(text: str, *, body: bool = False) -> None:
    found = DANGEROUS.findall(text if body else text.replace("\t", "\x01"))
    assert not found, f"{found!r} reached the terminal"


def test_a_hostile_subject_and_sender_are_escaped_in_list_and_get(
    mail_emulator: MailEmulator,
) -> None:
    record = mail_emulator.deliver(
        subject=HOSTILE_SUBJECT,
        from_=HOSTILE_FROM,
        body="line one\r\n\tindented\x1b[8m hidden\x1b[0m\u2066x\u2069\r\nend",
        folder="IN\x1bBOX",
    )
    listed = _run(mail_emulator, "messages", "list", "1", "--limit", "3")
    assert listed.returncode == 0, listed.stderr
    table = listed.stdout.decode("utf-8")
    _assert_harmless(table)
    assert "Hi\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u202egnp.exe" in table
    assert "Eve \\x1b[31mRed" in table
    shown = _run(mail_emulator, "messages", "get", str(record["id"]))
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.decode("utf-8")
    _assert_harmless(text, body=True)
    assert "\\x1b[2J" in text
    assert "\\r\\x00\\x7fend" in text  # a CR in a subject would rewrite the line: escaped
    assert "line one\n\tindented\\x1b[8m hidden" in text  # the body keeps lines and tabs
    assert "\r" not in text


def test_json_output_keeps_the_hostile_text_exactly_but_escaped(
    mail_emulator: MailEmulator,
) -> None:
    record = mail_emulator.deliver(subject=HOSTILE_SUBJECT, from_=HOSTILE_FROM)
    for args in (("messages", "get", str(record["id"])), ("messages", "list", "1")):
        result = _run(mail_emulator, *args, "--json")
        assert result.returncode == 0, result.stderr
        raw = result.stdout.decode("utf-8")
        _assert_harmless(raw, body=True)
        data = json.loads(raw)
        item = data if isinstance(data, dict) else data[0]
        assert (item["subject"], item["from"]) == (HOSTILE_SUBJECT, HOSTILE_FROM)


async def _hostile_gateway(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    error = {"code": "INVALID_PARAMS", "message": "bad \x1b]0;owned\x07\x9b2J\u202eparam"}
    body = json.dumps({"success": False, "error": error}).encode()
    writer.write(
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    await writer.drain()
    writer.close()


async def test_a_hostile_gateway_error_is_escaped_on_stderr() -> None:
    server = await asyncio.start_server(_hostile_gateway, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    env = clean_env(BITRIX_MAIL_API_KEY="vibe_api_test_key_0001")
    async with server:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bitrix_mail_async", "-v",
            "--base-url", f"http://127.0.0.1:{port}/v1", "messages", "get", "1",
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT)
    assert process.returncode == 1
    text = err.decode("utf-8")
    assert "bad \\x1b]0;owned\\x07\\x9b2J\\u202eparam" in text
    _assert_harmless(text)


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
