"""``bitrix-mail api METHOD PATH``: any route through the client, raw JSON out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bitrix_mail_async.testing import MailEmulator

from .conftest import RunCli, RunInProcess


def test_get_prints_the_data_as_json(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("api", "GET", "/mail/messages", "-p", "mailboxId=1", "--param", "limit=2")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [m["id"] for m in data["items"]] == mail_emulator.state.mailbox_message_ids(1)[:2]
    assert "mailboxId" in data["items"][0]  # the gateway's own names
    assert mail_emulator.requests.last.query == {"mailboxId": "1", "limit": "2"}


def test_query_in_the_path_and_params_override_it(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("api", "GET", "/mail/messages?mailboxId=2&limit=9", "-p", "limit=1")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["items"]) == 1
    assert mail_emulator.requests.last.query == {"mailboxId": "2", "limit": "1"}


def test_method_any_case_and_path_without_slash(cli: RunCli) -> None:
    result = cli("api", "get", "me")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["scopes"] == ["mail"]


def test_post_data_inline(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("api", "POST", "/mail/messages/1001/task", "--data", '{"title": "Inline"}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["taskId"] == mail_emulator.state.tasks[0]["taskId"]
    assert mail_emulator.state.tasks[0]["request"] == {"title": "Inline"}


def test_post_data_from_a_file(cli: RunCli, mail_emulator: MailEmulator, tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text('{"query": "Ольга"}', encoding="utf-8")
    result = cli("api", "POST", "/mail/recipients/employees", "-d", f"@{body}")
    assert result.returncode == 0, result.stderr
    assert mail_emulator.requests.last.json == {"query": "Ольга"}
    assert isinstance(json.loads(result.stdout)["items"], list)


def test_post_data_from_stdin(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("api", "POST", "/mail/recipients/contacts", "--data", "-", stdin='{"limit": 2}\n')
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["items"]) == 2
    assert mail_emulator.requests.last.json == {"limit": 2}


def test_gateway_error_exits_1_with_its_code(cli: RunCli) -> None:
    result = cli("api", "POST", "/mail/messages/move", "--data", "{}")
    assert result.returncode == 1
    assert "INVALID_PARAMS (HTTP 400)" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("PUT", "/me"), "invalid choice"),
        (("GET", "/me", "--data", "{}"), "a GET sends no body"),
        (("POST", "/mail/recipients/contacts", "--data", "{not json"), "--data is not JSON"),
        (("POST", "/mail/recipients/contacts", "--data", "[1, 2]"), "json must be a mapping"),
        (("POST", "/mail/recipients/contacts", "--data", "@/no/such/file"), "cannot read it"),
        (("GET", "/v1/me"), "pass '/me'"),
        (("GET", "/../admin"), "'..' segments"),
        (("GET", "/me", "-p", "novalue"), "expected NAME=VALUE"),
    ],
)
def test_bad_requests_exit_2_before_sending(
    cli_in_process: RunInProcess,
    mail_emulator: MailEmulator,
    args: tuple[str, ...],
    message: str,
) -> None:
    code, out, err = cli_in_process("api", *args)
    assert (code, out) == (2, "")
    assert message in err
    assert len(mail_emulator.requests) == 0


def test_unknown_route_is_the_gateways_not_found(cli: RunCli) -> None:
    result = cli("api", "GET", "/mail/nothing-here")
    assert result.returncode == 1
    assert "NOT_FOUND (HTTP 404)" in result.stderr
    assert "no /v1" not in result.stderr  # the base URL is right; the route is not
