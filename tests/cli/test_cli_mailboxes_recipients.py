"""``mailboxes list|get|senders`` and ``recipients contacts|employees``, in a subprocess."""

from __future__ import annotations

import json

from bitrix_mail_async.testing import MailEmulator

from .conftest import RunCli, RunInProcess


def test_mailboxes_without_an_action_lists_them(cli: RunCli) -> None:
    plain = cli("mailboxes", "--json")
    listed = cli("mailboxes", "list", "--json")
    assert plain.returncode == listed.returncode == 0, plain.stderr + listed.stderr
    assert json.loads(plain.stdout) == json.loads(listed.stdout)
    assert [m["id"] for m in json.loads(plain.stdout)] == [1, 2, 3]


def test_mailboxes_list_filters_by_name(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("mailboxes", "list", "--name", "Supp", "--json")
    assert result.returncode == 0, result.stderr
    assert [m["name"] for m in json.loads(result.stdout)] == ["Support"]
    assert mail_emulator.requests.last.query["name"] == "Supp"
    # The default action takes its options on the group too.
    again = cli("mailboxes", "--email", "ivan@", "--json")
    assert [m["id"] for m in json.loads(again.stdout)] == [3]


def test_mailboxes_get(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("mailboxes", "get", "2", "--json", "--wire")
    assert result.returncode == 0, result.stderr
    box = json.loads(result.stdout)
    assert {k: box[k] for k in ("id", "name", "email", "senderName")} == {
        k: mail_emulator.state.mailboxes[2][k] for k in ("id", "name", "email", "senderName")
    }
    text = cli("mailboxes", "get", "2")
    assert "Email:" in text.stdout
    assert mail_emulator.state.mailboxes[2]["email"] in text.stdout
    missing = cli("mailboxes", "get", "99")
    assert missing.returncode == 1
    assert "ENTITY_NOT_FOUND" in missing.stderr


def test_mailboxes_senders_and_the_old_spelling(cli: RunCli, mail_emulator: MailEmulator) -> None:
    new = cli("mailboxes", "senders", "1", "--json", "--wire")
    old = cli("senders", "1", "--json", "--wire")
    assert new.returncode == old.returncode == 0, new.stderr + old.stderr
    assert json.loads(new.stdout) == json.loads(old.stdout) == mail_emulator.state.senders[1]
    assert "SENDER (use as --from)" in cli("mailboxes", "senders", "1").stdout


def test_contacts_latest_first_and_limited(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("recipients", "contacts", "--limit", "3", "--json")
    assert result.returncode == 0, result.stderr
    latest = list(reversed(mail_emulator.state.contacts))[:3]
    assert [c["id"] for c in json.loads(result.stdout)] == [c["id"] for c in latest]
    # One request of the size asked for, not the default page.
    [request] = mail_emulator.requests.filter(method="POST", path="/mail/recipients/contacts")
    assert request.json == {"limit": 3, "offset": 0}


def test_contacts_all_reads_every_page(cli: RunCli, mail_emulator: MailEmulator) -> None:
    contacts = mail_emulator.state.contacts
    first = max(c["id"] for c in contacts) + 1
    contacts.extend(
        {"id": i, "name": f"Person {i}", "email": f"p{i}@example.com"}
        for i in range(first, first + 400)
    )  # three pages of 200
    result = cli("recipients", "contacts", "--all", "--json")
    assert result.returncode == 0, result.stderr
    assert [c["id"] for c in json.loads(result.stdout)] == [c["id"] for c in reversed(contacts)]
    requests = mail_emulator.requests.filter(method="POST", path="/mail/recipients/contacts")
    assert [r.json["offset"] for r in requests] == [0, 200, 400]


def test_contacts_query_and_table(cli: RunCli, mail_emulator: MailEmulator) -> None:
    needle = mail_emulator.state.contacts[0]["name"].split()[0]
    result = cli("recipients", "contacts", needle)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "EMAIL"]
    assert all(needle.lower() in line.lower() for line in lines[1:])
    assert mail_emulator.requests.last.json["query"] == needle


def test_employees_need_a_query(
    cli: RunCli, cli_in_process: RunInProcess, mail_emulator: MailEmulator
) -> None:
    result = cli("recipients", "employees", "a", "--all", "--json")
    assert result.returncode == 0, result.stderr
    expected = [
        e["id"]
        for e in mail_emulator.state.employees
        if "a" in e["name"].lower() or "a" in e["email"].lower()
    ]
    assert [e["id"] for e in json.loads(result.stdout)] == expected
    mail_emulator.requests.clear()
    assert cli_in_process("recipients", "employees")[0] == 2
    code, _, err = cli_in_process("recipients", "employees", "  ")
    assert code == 2
    assert "argument QUERY: expected some text" in err
    assert len(mail_emulator.requests) == 0


def test_nothing_found_says_so(cli: RunCli) -> None:
    result = cli("recipients", "employees", "zzzzzz-nobody")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no employees"
    assert json.loads(cli("recipients", "employees", "zzzzzz", "--json").stdout) == []
