"""The gateway commands (mailboxes, senders, messages) against the emulator, in a subprocess."""

from __future__ import annotations

import io
import json
import sys

import pytest

from bitrix_mail_async.cli import main
from bitrix_mail_async.testing import MailEmulator

from .conftest import RunCli, RunInProcess


def test_help_documents_commands_and_exit_codes(cli: RunCli) -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("demo", "emulator", "mailboxes", "senders", "messages", "export"):
        assert command in result.stdout
    assert "BITRIX_MAIL_API_KEY" in result.stdout
    assert "0    success" in result.stdout
    assert "1    API error" in result.stdout
    assert "2    usage or configuration error" in result.stdout


def test_mailboxes_json_matches_the_portal(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("mailboxes", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    expected = [
        {"id": m["id"], "name": m["name"], "email": m["email"], "senderName": m["senderName"]}
        for m in mail_emulator.state.mailboxes.values()
    ]
    assert [{k: d[k] for k in ("id", "name", "email", "senderName")} for d in data] == expected


def test_mailboxes_table_is_aligned(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("mailboxes")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "EMAIL", "SENDER", "NAME"]
    assert len(lines) == 1 + len(mail_emulator.state.mailboxes)
    email_column = lines[0].index("EMAIL")
    for line, box in zip(lines[1:], mail_emulator.state.mailboxes.values(), strict=True):
        assert line.startswith(str(box["id"]))
        assert line[email_column:].startswith(box["email"])


def test_senders_json_matches_the_portal(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("senders", "1", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(s["sender"], s["email"], s["name"]) for s in data] == [
        (s["sender"], s["email"], s["name"]) for s in mail_emulator.state.senders[1]
    ]


def test_messages_list_json_is_the_newest_page(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("messages", "list", "1", "--limit", "5", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    state = mail_emulator.state
    newest = state.mailbox_message_ids(1)[:5]
    assert [m["id"] for m in data] == newest
    assert [m["subject"] for m in data] == [state.messages[i]["subject"] for i in newest]
    assert all(m["mailboxId"] == 1 for m in data)
    assert data[0]["date"] == state.messages[newest[0]]["date"].isoformat()


def test_messages_list_limit_spans_pages(cli: RunCli, mail_emulator: MailEmulator) -> None:
    # More than one list page would hold at the default of 20: the limit, not the page, rules.
    total = mail_emulator.state.mailbox_count(1)
    result = cli("messages", "list", "1", "--limit", str(total + 10), "--json")
    assert result.returncode == 0, result.stderr
    assert [m["id"] for m in json.loads(result.stdout)] == mail_emulator.state.mailbox_message_ids(
        1
    )
    default = json.loads(cli("messages", "list", "1", "--json").stdout)
    assert len(default) == 20


def test_messages_list_human_shows_subjects(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("messages", "list", "1", "--limit", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "DATE", "FOLDER"]
    assert len(lines) == 4
    for line, msg_id in zip(lines[1:], mail_emulator.state.mailbox_message_ids(1)[:3], strict=True):
        assert line.startswith(str(msg_id))
        assert mail_emulator.state.messages[msg_id]["subject"] in line


def test_messages_list_filters(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("messages", "list", "1", "--unseen", "--folder", "INBOX", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    state = mail_emulator.state
    expected = [
        i
        for i in state.mailbox_message_ids(1)
        if not state.messages[i]["isSeen"] and state.messages[i]["folder"] == "INBOX"
    ][:20]
    assert expected, "the seeded portal should hold unread inbox mail"
    assert [m["id"] for m in data] == expected
    query = mail_emulator.requests.filter(method="GET", path="/mail/messages")[-1].query
    assert query["isSeen"] == "false"
    assert query["folder"] == "INBOX"


def test_messages_get_json_has_the_body(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("messages", "get", "1001", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    msg = mail_emulator.state.messages[1001]
    assert data["id"] == 1001
    assert data["subject"] == msg["subject"]
    assert data["from"] == msg["from"]
    assert data["body"] == mail_emulator.state.message_body(msg)


def test_messages_get_human_shows_headers_and_body(
    cli: RunCli, mail_emulator: MailEmulator
) -> None:
    result = cli("messages", "get", "1001")
    assert result.returncode == 0, result.stderr
    msg = mail_emulator.state.messages[1001]
    assert f"Subject:     {msg['subject']}" in result.stdout
    assert f"From:        {msg['from']}" in result.stdout
    # The seeded body holds Cyrillic text: it must come through intact.
    assert mail_emulator.state.message_body(msg).strip() in result.stdout


def test_messages_send_lands_exactly_once(cli: RunCli, mail_emulator: MailEmulator) -> None:
    sender = mail_emulator.state.senders[1][0]["sender"]
    result = cli(
        "messages",
        "send",
        "--from",
        sender,
        "--to",
        "bob@example.com, carol@example.com",
        "--to",
        '"Doe, John" <john@example.com>',
        "--cc",
        "dave@example.com",
        "--bcc",
        "erin@example.com",
        "--subject",
        "Quarterly numbers",
        "--body",
        "Attached below.",
    )
    assert result.returncode == 0, result.stderr
    assert "sent to bob@example.com" in result.stdout
    assert len(mail_emulator.state.sent) == 1
    request = mail_emulator.state.sent[0]["request"]
    assert request["from"] == sender
    assert request["to"] == [
        "bob@example.com",
        "carol@example.com",
        '"Doe, John" <john@example.com>',
    ]
    assert request["cc"] == ["dave@example.com"]
    assert request["bcc"] == ["erin@example.com"]
    assert request["subject"] == "Quarterly numbers"
    assert request["body"] == "Attached below."
    assert len(mail_emulator.requests.filter(method="POST", path="/mail/messages")) == 1


def test_messages_send_reads_the_body_from_stdin(cli: RunCli, mail_emulator: MailEmulator) -> None:
    body = "Line one\nСтрока два\n"
    result = cli(
        "messages",
        "send",
        "--from",
        "Sales Team <sales@emulator.bitrix24.test>",
        "--to",
        "bob@example.com",
        "--subject",
        "From stdin",
        "--body",
        "-",
        "--json",
        stdin=body,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["to"] == ["bob@example.com"]
    assert mail_emulator.state.sent[0]["request"]["body"] == body


def test_usage_error_exits_2_in_a_subprocess(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("messages", "get", "0")
    assert result.returncode == 2
    assert "usage: bitrix-mail messages get" in result.stderr
    assert "expected a positive integer" in result.stderr
    assert len(mail_emulator.requests) == 0


@pytest.mark.parametrize(
    "args",
    [
        ("messages", "list", "abc"),
        ("messages", "send", "--to", "a@b.c"),
        ("nonsense",),
        ("messages", "list", "1", "--limit", "-3"),
        ("export", "1"),
        ("emulator", "--port", "70000"),
        ("mailboxes", "--rate", "-1"),
    ],
)
def test_usage_errors_exit_2_before_any_request(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator, args: tuple[str, ...]
) -> None:
    code, _, err = cli_in_process(*args)
    assert code == 2
    assert "usage:" in err
    assert len(mail_emulator.requests) == 0


def test_main_returns_codes_in_process() -> None:
    assert main(["--version"]) == 0
    assert main(["senders", "x"]) == 2
    assert main([]) == 2


def test_send_with_unknown_outcome_says_to_check_before_resending(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator
) -> None:
    mail_emulator.faults.schedule("502", methods=["POST"], paths="/mail/messages")
    code, out, err = cli_in_process(
        "messages", "send", "--from", "a@b.c", "--to", "d@e.f", "--subject", "s", "--body", "b"
    )
    assert code == 1
    assert out == ""
    assert "BITRIX_UNAVAILABLE (HTTP 502)" in err
    assert "may have been applied" in err
    # Never resent on its own: one POST reached the emulator.
    assert len(mail_emulator.requests.filter(method="POST", path="/mail/messages")) == 1


def test_messages_list_all_reads_every_page(cli: RunCli, mail_emulator: MailEmulator) -> None:
    for number in range(250):
        mail_emulator.state.add_message(mailbox_id=3, subject=f"Bulk {number}")
    ids = mail_emulator.state.mailbox_message_ids(3)
    result = cli("messages", "list", "3", "--all", "--json")
    assert result.returncode == 0, result.stderr
    assert [m["id"] for m in json.loads(result.stdout)] == ids
    pages = mail_emulator.requests.filter(method="GET", path="/mail/messages")
    assert [r.query["limit"] for r in pages] == ["200", "200"]
    assert cli("messages", "list", "3", "--all", "--limit", "5").returncode == 2


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_long_listing_counts_on_a_terminal_then_erases_the_line(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(250):
        mail_emulator.state.add_message(mailbox_id=3, subject=f"Bulk {number}")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code, out, _ = cli_in_process("messages", "list", "3", "--all")
    assert code == 0
    shown = terminal.getvalue()
    assert shown.startswith("\rlisted 200 messages")
    assert shown.endswith("\r")  # erased: the table on stdout starts on a clean line
    assert "\r" not in out
    assert len(out.splitlines()) == 1 + mail_emulator.state.mailbox_count(3)


def test_messages_list_more_filters(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli(
        "messages", "list", "1", "--seen", "--no-attachments", "--since",
        "2026-05-20T00:00:00+03:00", "--until", "2026-05-31T00:00:00+03:00", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    query = mail_emulator.requests.last.query
    assert query["isSeen"] == "true"
    assert query["hasAttachments"] == "false"
    assert query["dateFrom"] == "2026-05-20T00:00:00+03:00"
    assert query["dateTo"] == "2026-05-31T00:00:00+03:00"
    assert all(m["isSeen"] and not m["hasAttachments"] for m in json.loads(result.stdout))
