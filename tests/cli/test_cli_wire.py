"""``--json`` in the gateway's field names (``--python-names``: the library's), via to_dict."""

from __future__ import annotations

import json

import pytest

from bitrix_mail_async import Mailbox, Message, Sender, from_dict
from bitrix_mail_async.testing import MailEmulator

from .conftest import RunCli, RunInProcess


def test_message_get_json_is_in_the_gateway_names(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator
) -> None:
    code, out, err = cli_in_process("messages", "get", "1001", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert {"mailboxId", "isSeen", "hasAttachments", "from", "body"} <= data.keys()
    assert not {"mailbox_id", "from_", "extra"} & data.keys()
    state = mail_emulator.state
    sent = state.full(state.messages[1001])
    assert from_dict(data, Message) == from_dict(sent, Message)
    assert (data["from"], data["mailboxId"]) == (sent["from"], sent["mailboxId"])
    # --wire, the flag that asked for these names before they were the default, still works.
    code, wire, err = cli_in_process("messages", "get", "1001", "--json", "--wire")
    assert code == 0, err
    assert json.loads(wire) == data


def test_python_names_keeps_the_library_names(cli_in_process: RunInProcess) -> None:
    code, out, err = cli_in_process("messages", "get", "1001", "--json", "--python-names")
    assert code == 0, err
    data = json.loads(out)
    assert {"mailbox_id", "is_seen", "from_", "extra"} <= data.keys()
    assert not {"mailboxId", "from"} & data.keys()
    code, out, err = cli_in_process("--python-names", "mailboxes", "--json")
    assert code == 0, err
    assert all("sender_name" in b and "senderName" not in b for b in json.loads(out))


def test_lists_in_the_gateway_names(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator
) -> None:
    code, out, err = cli_in_process("mailboxes", "senders", "1", "--json")
    assert code == 0, err
    assert json.loads(out) == mail_emulator.state.senders[1]
    code, out, err = cli_in_process("mailboxes", "--json")
    assert code == 0, err
    boxes = json.loads(out)
    assert [from_dict(b, Mailbox) for b in boxes] == [
        from_dict(b, Mailbox) for b in mail_emulator.state.mailboxes.values()
    ]
    assert all("senderName" in b for b in boxes)
    code, out, err = cli_in_process("messages", "list", "1", "--limit", "3", "--json")
    assert code == 0, err
    assert [m["mailboxId"] for m in json.loads(out)] == [1, 1, 1]


def test_whoami_and_send_in_the_gateway_names(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator
) -> None:
    code, out, err = cli_in_process("whoami", "--json")
    assert code == 0, err
    assert "rateLimit" in json.loads(out)
    sender = from_dict(mail_emulator.state.senders[1][0], Sender).sender
    code, out, err = cli_in_process(
        "messages", "send", "--from", sender, "--to", "a@x.io", "--subject", "s", "--body", "b",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["success"] is True


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--wire",), "--wire goes with --json"),
        (("--python-names",), "--python-names goes with --json"),
        (("--json", "--wire", "--python-names"), "opposite field names"),
    ],
)
def test_names_flags_misused_are_usage_errors(
    cli: RunCli, mail_emulator: MailEmulator, flags: tuple[str, ...], message: str
) -> None:
    result = cli("messages", "get", "1001", *flags)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""
    assert len(mail_emulator.requests) == 0  # refused before any request
