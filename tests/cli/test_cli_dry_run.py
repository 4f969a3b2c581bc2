"""``--dry-run``: the request is printed as it would be sent, and nothing reaches the gateway.

The emulator's request log is the witness: after a dry run it is empty. A real run of the
same command then shows that the printed request is the one that would have been sent.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bitrix_mail_async.testing import MailEmulator

from .conftest import RunCli, RunInProcess, clean_env, run_cli

SECRET = "vibe_api_s3cr3t_dry_run_0815"
SENDER = "Sales Team <sales@emulator.bitrix24.test>"
SEND = ("--from", SENDER, "--to", "bob@example.com", "--subject", "Hi", "--body", "Hello")

# (command line, method, path): one per command that talks to the gateway.
COMMANDS = [
    (("whoami",), "GET", "/me"),
    (("mailboxes",), "GET", "/mail/mailboxes"),
    (("mailboxes", "get", "2"), "GET", "/mail/mailboxes/2"),
    (("mailboxes", "senders", "1"), "GET", "/mail/mailboxes/1/senders"),
    (("messages", "list", "1", "--unseen"), "GET", "/mail/messages"),
    (("messages", "get", "1001"), "GET", "/mail/messages/1001"),
    (("messages", "thread", "1001"), "GET", "/mail/messages/1001/thread"),
    (("messages", "send", *SEND), "POST", "/mail/messages"),
    (("messages", "reply", "1001", *SEND), "POST", "/mail/messages/1001/reply"),
    (("messages", "forward", "1001", *SEND), "POST", "/mail/messages/1001/forward"),
    (("messages", "move", "1001", "--spam"), "POST", "/mail/messages/move"),
    (("messages", "task", "1001"), "POST", "/mail/messages/1001/task"),
    (
        ("messages", "event", "1001", "--start", "2026-06-01 10:00", "--end", "2026-06-01 11:00"),
        "POST",
        "/mail/messages/1001/calendar-event",
    ),
    (("messages", "chat", "1001"), "POST", "/mail/messages/1001/chat"),
    (("messages", "feed-post", "1001"), "POST", "/mail/messages/1001/feed-post"),
    (("messages", "crm-activity", "1001"), "POST", "/mail/messages/1001/crm-activity"),
    (("recipients", "contacts"), "POST", "/mail/recipients/contacts"),
    (("recipients", "employees", "ann"), "POST", "/mail/recipients/employees"),
    (("api", "POST", "/mail/recipients/contacts", "-d", "{}"), "POST", "/mail/recipients/contacts"),
    (("export", "1", "--out", "-"), "GET", "/mail/messages"),
]


@pytest.mark.parametrize(("args", "method", "path"), COMMANDS, ids=lambda v: " ".join(v)[:40])
def test_dry_run_sends_nothing(
    cli: RunCli, mail_emulator: MailEmulator, args: tuple[str, ...], method: str, path: str
) -> None:
    result = cli("--dry-run", *args, "--json")
    assert result.returncode == 0, result.stderr
    assert len(mail_emulator.requests) == 0
    shown = json.loads(result.stdout)
    assert shown["dry_run"] is True
    assert shown["method"] == method
    url = urlsplit(shown["url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == mail_emulator.base_url + path
    assert shown["headers"]["X-Api-Key"] == "vibe_api_***"
    assert mail_emulator.api_key not in result.stdout
    assert (shown["json"] is None) == (method == "GET")
    # Nothing changed on the portal either.
    assert mail_emulator.state.side_effects() == []


@pytest.mark.parametrize(
    "args",
    [
        ("messages", "send", *SEND, "--cc", "carol@example.com"),
        ("messages", "task", "1001", "--title", "T", "--responsible", "3"),
        ("messages", "list", "1", "--unseen", "--folder", "INBOX", "--limit", "7"),
        ("recipients", "contacts", "smith", "--limit", "4"),
    ],
    ids=lambda v: " ".join(v[:2]),
)
def test_dry_run_shows_what_a_real_run_sends(
    cli: RunCli, mail_emulator: MailEmulator, args: tuple[str, ...]
) -> None:
    dry = cli(*args, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert len(mail_emulator.requests) == 0
    shown = json.loads(dry.stdout)
    real = cli(*args)
    assert real.returncode == 0, real.stderr
    sent = mail_emulator.requests[0]
    assert (sent.method, sent.query, sent.json) == (
        shown["method"],
        shown["query"],
        shown["json"],
    )


def test_human_dry_run_shows_method_url_headers_and_body(
    cli: RunCli, mail_emulator: MailEmulator
) -> None:
    result = cli("messages", "send", *SEND, "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"dry run, nothing sent: POST {mail_emulator.base_url}/mail/messages"
    assert "X-Api-Key: vibe_api_***" in lines
    assert "Content-Type: application/json" in lines
    body = json.loads(result.stdout.split("\n\n", 1)[1])
    assert body["subject"] == "Hi"
    assert len(mail_emulator.requests) == 0


def test_dry_run_query_is_in_the_url(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("messages", "list", "1", "--seen", "--limit", "5", "--dry-run")
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"dry run, nothing sent: GET {mail_emulator.base_url}/mail/messages?")
    assert "mailboxId=1" in first
    assert "isSeen=true" in first
    assert "limit=5" in first


@pytest.mark.parametrize(
    "args",
    [
        (
            "messages",
            "send",
            "--from",
            SENDER,
            "--to",
            "b@x.io",
            "--subject",
            "a\nb",
            "--body",
            ".",
        ),
        ("messages", "list", "1", "--since", "not a date"),
        ("messages", "move", *map(str, range(1001, 1102)), "--spam"),
        ("messages", "event", "1001", "--start", "2026-06-02 10:00", "--end", "2026-06-01 10:00"),
        ("api", "GET", "/v1/me"),
    ],
    ids=["subject", "since", "move-101", "event-order", "api-prefix"],
)
def test_dry_run_refuses_bad_input_like_a_real_run(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator, args: tuple[str, ...]
) -> None:
    dry = cli_in_process("--dry-run", *args)
    real = cli_in_process(*args)
    assert dry[0] == real[0] == 2
    assert dry[1] == real[1] == ""
    assert dry[2] == real[2]
    assert len(mail_emulator.requests) == 0


def test_dry_run_needs_a_key_like_a_real_run(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("--dry-run", "mailboxes", key=None)
    assert result.returncode == 2
    assert "BITRIX_MAIL_API_KEY" in result.stderr


def test_dry_run_never_shows_the_key_or_the_session_token(mail_emulator: MailEmulator) -> None:
    env = clean_env(
        BITRIX_MAIL_API_KEY=SECRET,
        BITRIX_MAIL_SESSION_TOKEN="tok_s3cr3t_session",
        BITRIX_MAIL_BASE_URL="https://gateway.example/v1",
    )
    result = run_cli("--dry-run", "-v", "--debug", "whoami", env=env)
    assert result.returncode == 0, result.stderr
    assert "s3cr3t" not in result.stdout + result.stderr
    assert "dry run, nothing sent: GET https://gateway.example/v1/me" in result.stdout
    assert "Authorization: Bearer ***" in result.stdout
    assert len(mail_emulator.requests) == 0


def test_dry_run_export_leaves_the_file_alone(
    cli: RunCli, mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    out = tmp_path / "box.jsonl"
    result = cli("export", "1", "--out", str(out), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert not out.exists()
    partial = '{"id": 1001}\n{"id": 10'
    out.write_text(partial, encoding="utf-8")
    assert cli("export", "1", "--out", str(out), "--dry-run").returncode == 0
    assert out.read_text(encoding="utf-8") == partial  # a real run would cut the last line
    out.write_text("not mine\n", encoding="utf-8")
    refused = cli("export", "1", "--out", str(out), "--dry-run")
    assert refused.returncode == 2
    assert len(mail_emulator.requests) == 0
