"""``--json --wire``: the gateway's own field names, built on the public ``to_dict``."""

from __future__ import annotations

import json

from bitrix_mail_async import Mailbox, Message, Sender, from_dict
from bitrix_mail_async.testing import MailEmulator

from .conftest import RunCli, RunInProcess


def test_message_get_wire_reads_back_as_the_gateway_message(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator
) -> None:
    code, out, err = cli_in_process("messages", "get", "1001", "--json", "--wire")
    assert code == 0, err
    data = json.loads(out)
    assert {"mailboxId", "isSeen", "hasAttachments", "from", "body"} <= data.keys()
    assert not {"mailbox_id", "from_", "extra"} & data.keys()
    state = mail_emulator.state
    sent = state.full(state.messages[1001])
    assert from_dict(data, Message) == from_dict(sent, Message)
    assert (data["from"], data["mailboxId"]) == (sent["from"], sent["mailboxId"])


def test_message_get_json_keeps_python_names(cli_in_process: RunInProcess) -> None:
    code, out, err = cli_in_process("messages", "get", "1001", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert {"mailbox_id", "is_seen", "from_", "extra"} <= data.keys()
    assert "mailboxId" not in data


def test_lists_in_wire_names(cli_in_process: RunInProcess, mail_emulator: MailEmulator) -> None:
    code, out, err = cli_in_process("senders", "1", "--json", "--wire")
    assert code == 0, err
    assert json.loads(out) == mail_emulator.state.senders[1]
    code, out, err = cli_in_process("mailboxes", "--json", "--wire")
    assert code == 0, err
    boxes = json.loads(out)
    assert [from_dict(b, Mailbox) for b in boxes] == [
        from_dict(b, Mailbox) for b in mail_emulator.state.mailboxes.values()
    ]
    assert all("senderName" in b for b in boxes)
    code, out, err = cli_in_process("messages", "list", "1", "--limit", "3", "--json", "--wire")
    assert code == 0, err
    assert [m["mailboxId"] for m in json.loads(out)] == [1, 1, 1]


def test_whoami_and_send_in_wire_names(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator
) -> None:
    code, out, err = cli_in_process("whoami", "--json", "--wire")
    assert code == 0, err
    assert "rateLimit" in json.loads(out)
    sender = from_dict(mail_emulator.state.senders[1][0], Sender).sender
    code, out, err = cli_in_process(
        "messages", "send", "--from", sender, "--to", "a@x.io", "--subject", "s", "--body", "b",
        "--json", "--wire",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["success"] is True


def test_wire_without_json_is_a_usage_error(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("messages", "get", "1001", "--wire")
    assert result.returncode == 2
    assert "--wire goes with --json" in result.stderr
    assert result.stdout == ""
    assert len(mail_emulator.requests) == 0  # refused before any request
