"""``export``: one JSON line per message with its body; reruns and interrupted runs resume."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bitrix_mail_async.testing import MailEmulator

from .conftest import CLI_TIMEOUT, RunCli, RunInProcess, clean_env

FAST = ("--rate", "0")


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _single_gets(emulator: MailEmulator) -> list[str]:
    """Paths of GET /mail/messages/{id} requests (not the list, not threads)."""
    return [
        r.path
        for r in emulator.requests.filter(method="GET", path_prefix="/mail/messages/")
        if r.path.rsplit("/", 1)[-1].isdigit()
    ]


def test_export_writes_every_message_with_its_body(
    cli: RunCli, mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    out = tmp_path / "box1.jsonl"
    result = cli("export", "1", "--out", str(out), "--concurrency", "3", *FAST)
    assert result.returncode == 0, result.stderr
    state = mail_emulator.state
    count = state.mailbox_count(1)
    rows = _lines(out)
    assert len(rows) == count
    assert sorted(r["id"] for r in rows) == sorted(state.mailbox_message_ids(1))
    for row in rows:
        msg = state.messages[row["id"]]
        assert row["body"] == state.message_body(msg)
        assert row["subject"] == msg["subject"]
        assert row["mailboxId"] == 1
        assert row["date"] == msg["date"].isoformat()
    assert f"exported {count} messages of mailbox 1" in result.stdout
    # Not a TTY: no progress indicator on stderr.
    assert result.stderr == ""
    assert len(_single_gets(mail_emulator)) == count


def test_export_rerun_adds_nothing_and_fetches_nothing(
    cli: RunCli, cli_in_process: RunInProcess, mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    out = tmp_path / "box1.jsonl"
    assert cli_in_process("export", "1", "--out", str(out), *FAST)[0] == 0
    before = out.read_bytes()
    mail_emulator.requests.clear()
    result = cli("export", "1", "--out", str(out), *FAST)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == before
    assert _single_gets(mail_emulator) == []
    assert "exported 0 messages" in result.stdout


def test_export_resumes_after_an_interrupted_run(
    cli: RunCli, cli_in_process: RunInProcess, mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    out = tmp_path / "box1.jsonl"
    assert cli_in_process("export", "1", "--out", str(out), *FAST)[0] == 0
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    count = len(lines)
    half = count // 2
    # What a crash mid-write leaves: complete lines, then the start of one more.
    out.write_text("".join(lines[:half]) + lines[half][:25], encoding="utf-8")
    mail_emulator.requests.clear()

    result = cli("export", "1", "--out", str(out), "--concurrency", "5", *FAST)
    assert result.returncode == 0, result.stderr
    rows = _lines(out)
    ids = [r["id"] for r in rows]
    assert len(ids) == count == mail_emulator.state.mailbox_count(1)
    assert len(set(ids)) == count
    assert sorted(ids) == sorted(mail_emulator.state.mailbox_message_ids(1))
    assert len(_single_gets(mail_emulator)) == count - half
    assert f"({half} were already there)" in result.stdout


def test_export_picks_up_new_mail(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    out = tmp_path / "box1.jsonl"
    assert cli_in_process("export", "1", "--out", str(out), *FAST)[0] == 0
    new = mail_emulator.state.add_message(mailbox_id=1, subject="Arrived later", body="New body")
    code, stdout, _ = cli_in_process("export", "1", "--out", str(out), *FAST)
    assert code == 0
    assert "exported 1 messages" in stdout
    rows = _lines(out)
    assert rows[-1]["id"] == new["id"]
    assert rows[-1]["body"] == "New body"
    assert len(rows) == mail_emulator.state.mailbox_count(1)


def test_export_refuses_a_file_it_did_not_write(
    cli: RunCli, mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    out = tmp_path / "notes.jsonl"
    out.write_text("my notes\n", encoding="utf-8")
    result = cli("export", "1", "--out", str(out), *FAST)
    assert result.returncode == 2
    assert "line 1 is not a message exported by bitrix-mail" in result.stderr
    assert out.read_text(encoding="utf-8") == "my notes\n"
    assert len(mail_emulator.requests) == 0


def test_export_failure_keeps_complete_lines_and_a_rerun_finishes(
    cli: RunCli, cli_in_process: RunInProcess, mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    out = tmp_path / "box1.jsonl"
    ids = mail_emulator.state.mailbox_message_ids(1)
    # Every attempt at the oldest message fails: retries run out and the export stops.
    mail_emulator.faults.schedule("502", "502", "502", "502", paths=f"/mail/messages/{ids[-1]}")
    result = cli("export", "1", "--out", str(out), *FAST)
    assert result.returncode == 1
    assert "BITRIX_UNAVAILABLE" in result.stderr
    assert "Traceback" not in result.stderr
    partial = _lines(out)  # every line that made it is complete JSON
    assert ids[-1] not in {r["id"] for r in partial}
    assert len(partial) < len(ids)

    code, _, err = cli_in_process("export", "1", "--out", str(out), *FAST)
    assert code == 0, err
    assert sorted(r["id"] for r in _lines(out)) == sorted(ids)


def test_export_without_a_key_touches_nothing_remote(
    cli: RunCli, mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    result = cli("export", "1", "--out", str(tmp_path / "x.jsonl"), key=None)
    assert result.returncode == 2
    assert "BITRIX_MAIL_API_KEY" in result.stderr
    assert len(mail_emulator.requests) == 0


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_export_shows_progress_only_on_a_terminal(
    cli_in_process: RunInProcess,
    mail_emulator: MailEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code, out, _ = cli_in_process("export", "1", "--out", str(tmp_path / "x.jsonl"), *FAST)
    assert code == 0
    count = mail_emulator.state.mailbox_count(1)
    shown = terminal.getvalue()
    assert f"\rexported {count}/{count} messages" in shown
    assert shown.endswith("\n")
    assert "\r" not in out


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery differs on Windows")
def test_export_ctrl_c_exits_130_and_leaves_complete_lines(
    mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    out = tmp_path / "box1.jsonl"
    env = clean_env(
        BITRIX_MAIL_API_KEY=mail_emulator.api_key, BITRIX_MAIL_BASE_URL=mail_emulator.base_url
    )
    # A slow client-side rate keeps the export busy long enough to interrupt it.
    args = ["export", "1", "--out", str(out), "--rate", "10", "--burst", "2"]
    process = subprocess.Popen(
        [sys.executable, "-m", "bitrix_mail_async", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + CLI_TIMEOUT
    while (not out.exists() or out.read_text(encoding="utf-8").count("\n") < 3) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=CLI_TIMEOUT)
    assert process.returncode == 130
    assert "interrupted" in err
    assert "Traceback" not in err
    rows = _lines(out)
    assert 3 <= len(rows) < mail_emulator.state.mailbox_count(1)
    assert len({r["id"] for r in rows}) == len(rows)


def test_export_to_stdout_with_dash(
    cli: RunCli, mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    result = cli("export", "2", "--out", "-", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines.pop() == ""
    rows = [json.loads(line) for line in lines]
    assert sorted(r["id"] for r in rows) == sorted(mail_emulator.state.mailbox_message_ids(2))
    assert all(r["body"] is not None for r in rows)
    # The summary goes to stderr, so stdout is nothing but the lines; no file named "-".
    assert f"exported {len(rows)} messages of mailbox 2 to stdout" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_export_wire_names_and_json_summary(
    cli: RunCli, mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    out = tmp_path / "wire.jsonl"
    result = cli("export", "2", "--out", str(out), "--json", *FAST)
    assert result.returncode == 0, result.stderr
    rows = _lines(out)
    assert all("mailboxId" in r and "mailbox_id" not in r for r in rows)
    summary = json.loads(result.stdout)
    assert summary == {
        "mailbox": 2,
        "out": str(out),
        "exported": len(rows),
        "already_there": 0,
        "gone": [],
    }
    # A rerun resumes (--wire, the old flag for these names, still accepted).
    again = json.loads(cli("export", "2", "--out", str(out), "--wire", "--json", *FAST).stdout)
    assert (again["exported"], again["already_there"]) == (0, len(rows))


def test_export_python_names_and_a_file_in_the_other_names_is_refused(
    cli: RunCli, mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    out = tmp_path / "python.jsonl"
    result = cli("export", "2", "--out", str(out), "--python-names", *FAST)
    assert result.returncode == 0, result.stderr
    rows = _lines(out)
    assert rows and all("mailbox_id" in r and "mailboxId" not in r for r in rows)
    before = out.read_bytes()
    # Resuming without the flag would append the gateway's names to the library's: refused.
    mail_emulator.requests.clear()
    refused = cli("export", "2", "--out", str(out), *FAST)
    assert refused.returncode == 2
    assert "line 1 is in the library's field names" in refused.stderr
    assert "pass --python-names" in refused.stderr
    assert out.read_bytes() == before
    assert len(mail_emulator.requests) == 0
    again = cli("export", "2", "--out", str(out), "--python-names", "--json", *FAST)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["already_there"] == len(rows)


def test_a_python_names_run_on_a_file_in_the_gateway_names_is_refused(
    cli: RunCli, tmp_path: Path
) -> None:
    out = tmp_path / "wire.jsonl"
    assert cli("export", "2", "--out", str(out), *FAST).returncode == 0
    refused = cli("export", "2", "--out", str(out), "--python-names", *FAST)
    assert refused.returncode == 2
    assert "line 1 is in the gateway's field names" in refused.stderr
    assert "drop --python-names" in refused.stderr
