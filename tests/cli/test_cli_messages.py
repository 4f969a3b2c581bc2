"""``messages thread|reply|forward|move`` and the objects made from a message, in a subprocess.

Each side effect is checked in the emulator's portal state (it happened, once, with these
fields) and in what the command printed (what it did and the id it got).
"""

from __future__ import annotations

import json

import pytest

from bitrix_mail_async.testing import MailEmulator

from .conftest import RunCli, RunInProcess

SENDER = "Sales Team <sales@emulator.bitrix24.test>"


def _posts(emulator: MailEmulator, path: str) -> int:
    return len(emulator.requests.filter(method="POST", path=path))


def test_thread_json_is_the_conversation(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("messages", "thread", "1001", "--limit", "3", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    expected = mail_emulator.state.threads[mail_emulator.state.messages[1001]["threadId"]][:3]
    assert [m["id"] for m in data] == expected
    assert mail_emulator.requests.last.query == {"limit": "3"}


def test_thread_limit_over_50_is_refused_before_sending(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator
) -> None:
    code, out, err = cli_in_process("messages", "thread", "1001", "--limit", "51")
    assert (code, out) == (2, "")
    assert "limit" in err
    assert len(mail_emulator.requests) == 0


@pytest.mark.parametrize(
    ("action", "id_field", "printed"),
    [
        ("reply", "replyToMessageId", "replied to message 1001: sent to bob@example.com"),
        ("forward", "forwardMessageId", "forwarded message 1001 to bob@example.com"),
    ],
)
def test_reply_and_forward_send_once_about_the_message(
    cli: RunCli, mail_emulator: MailEmulator, action: str, id_field: str, printed: str
) -> None:
    body = "Thanks,\nСпасибо\n"
    result = cli(
        "messages", action, "1001", "--from", SENDER, "--to", "bob@example.com",
        "--cc", "carol@example.com", "--subject", f"{action} subject", "--body", "-",
        stdin=body,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == printed
    [sent] = mail_emulator.state.sent
    request = sent["request"]
    assert request[id_field] == 1001
    assert (request["to"], request["cc"]) == (["bob@example.com"], ["carol@example.com"])
    assert (request["subject"], request["body"]) == (f"{action} subject", body)
    assert _posts(mail_emulator, f"/mail/messages/1001/{action}") == 1


@pytest.mark.parametrize(
    ("options", "action", "printed"),
    [
        (("--folder", "Archive"), "move", "moved 2 messages to Archive"),
        (("--spam",), "spam", "moved 2 messages to spam"),
        (("--delete",), "delete", "deleted 2 messages"),
    ],
)
def test_move_spam_delete(
    cli: RunCli,
    mail_emulator: MailEmulator,
    options: tuple[str, ...],
    action: str,
    printed: str,
) -> None:
    ids = [i for i in mail_emulator.state.mailbox_message_ids(1)][:2]
    same_folder = {mail_emulator.state.messages[i]["folder"] for i in ids}
    assert len(same_folder) == 1, "the two newest messages of mailbox 1 share a folder"
    result = cli("messages", "move", *map(str, ids), *options)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == printed
    [move] = mail_emulator.state.moves
    assert move["request"]["messageIds"] == ids
    assert move["request"]["action"] == action


def test_move_needs_exactly_one_destination(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator
) -> None:
    assert cli_in_process("messages", "move", "1001")[0] == 2
    assert cli_in_process("messages", "move", "1001", "--spam", "--delete")[0] == 2
    assert len(mail_emulator.requests) == 0


def test_task_prints_its_id_and_json_carries_it(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli(
        "messages", "task", "1001", "--title", "Call back", "--responsible", "7",
        "--description", "-", stdin="Before Friday",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [task] = mail_emulator.state.tasks
    assert result.stdout.strip() == f"created task {task['taskId']} from message 1001"
    assert task["request"] == {
        "messageId": 1001,
        "title": "Call back",
        "responsibleId": 7,
        "description": "Before Friday",
    }
    again = cli("messages", "task", "1001", "--json", "--wire")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {
        "success": True,
        "taskId": mail_emulator.state.tasks[1]["taskId"],
        "messageId": 1001,
    }


def test_event_sends_portal_time(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli(
        "messages", "calendar-event", "1001", "--start", "2026-06-01 10:00:00",
        "--end", "2026-06-01T11:30:00", "--name", "Review", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [event] = mail_emulator.state.events
    assert json.loads(result.stdout)["eventId"] == event["eventId"]
    assert event["request"]["dateFrom"] == "2026-06-01 10:00:00"
    assert event["request"]["dateTo"] == "2026-06-01 11:30:00"
    assert event["request"]["name"] == "Review"


def test_event_with_an_offset_converts_to_the_portal_zone(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator
) -> None:
    args = ("messages", "event", "1001", "--start", "2026-06-01T07:00:00+00:00",
            "--end", "2026-06-01T08:00:00+00:00")  # fmt: skip
    code, out, err = cli_in_process(*args)
    assert (code, out) == (2, "")
    assert "--portal-timezone" in err
    assert len(mail_emulator.requests) == 0
    code, out, err = cli_in_process(*args, "--portal-timezone", "Europe/Moscow")
    assert code == 0, err
    assert out.startswith("created calendar event ")
    assert mail_emulator.state.events[0]["request"]["dateFrom"] == "2026-06-01 10:00:00"


def test_event_ending_before_it_starts_is_refused(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator
) -> None:
    code, _, err = cli_in_process(
        "messages", "event", "1001", "--start", "2026-06-01 10:00:00",
        "--end", "2026-06-01 09:00:00",
    )  # fmt: skip
    assert code == 2
    assert "before" in err
    assert len(mail_emulator.requests) == 0


def test_chat_says_whether_it_already_existed(cli: RunCli, mail_emulator: MailEmulator) -> None:
    first = cli("messages", "chat", "1001")
    second = cli("messages", "chat", "1001")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    chat_id = mail_emulator.state.chats[0]["chatId"]
    assert first.stdout.strip() == f"opened chat {chat_id} about message 1001"
    assert second.stdout.strip() == f"chat {chat_id} about message 1001 already existed"


def test_feed_post_and_crm_activity(cli: RunCli, mail_emulator: MailEmulator) -> None:
    post = cli("messages", "feed-post", "1001", "--title", "For everyone")
    assert post.returncode == 0, post.stderr
    [created] = mail_emulator.state.feed_posts
    assert post.stdout.strip() == f"created feed post {created['postId']} from message 1001"
    assert created["request"]["title"] == "For everyone"
    crm = cli("messages", "crm-activity", "1001", "--json")
    assert crm.returncode == 0, crm.stderr
    assert json.loads(crm.stdout)["success"] is True
    assert len(mail_emulator.state.crm_activities) == 1


def test_object_of_an_unknown_message_exits_1(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("messages", "task", "999999")
    assert result.returncode == 1
    assert "ENTITY_NOT_FOUND (HTTP 404)" in result.stderr
    assert result.stdout == ""
    assert mail_emulator.state.tasks == []


def test_unknown_outcome_of_a_task_is_not_repeated(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator
) -> None:
    mail_emulator.faults.schedule("drop_after", methods=["POST"])
    code, out, err = cli_in_process("messages", "task", "1001")
    assert (code, out) == (1, "")
    assert "may have been applied" in err
    assert len(mail_emulator.state.tasks) == 1  # applied once, the answer lost
    assert _posts(mail_emulator, "/mail/messages/1001/task") == 1
