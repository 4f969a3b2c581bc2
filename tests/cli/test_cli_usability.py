"""Issue 26, items 12-14: times as people write them, errors naming the option typed,
completable shells, groups alone, the old ``senders``, and an unknown read state."""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bitrix_mail_async.cli.arguments import when
from bitrix_mail_async.testing import MailEmulator

from .conftest import CLI_TIMEOUT, RunCli, RunInProcess, clean_env, run_cli

MOSCOW = ZoneInfo("Europe/Moscow")
# A fixed clock: Wednesday 3 June 2026, 15:30:45.123456 in Moscow (UTC+3).
NOW = datetime(2026, 6, 3, 15, 30, 45, 123456, tzinfo=MOSCOW)


def fixed() -> datetime:
    return NOW


# ----------------------------------------------------------------------------- --since
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", datetime(2026, 6, 3, 13, 30, 45, tzinfo=MOSCOW)),
        ("30m", datetime(2026, 6, 3, 15, 0, 45, tzinfo=MOSCOW)),
        ("3d", datetime(2026, 5, 31, 15, 30, 45, tzinfo=MOSCOW)),
        ("1w", datetime(2026, 5, 27, 15, 30, 45, tzinfo=MOSCOW)),
        (" 2H ", datetime(2026, 6, 3, 13, 30, 45, tzinfo=MOSCOW)),
        ("today", datetime(2026, 6, 3, tzinfo=MOSCOW)),
        ("Yesterday", datetime(2026, 6, 2, tzinfo=MOSCOW)),
    ],
)
def test_relative_times_count_back_from_the_clock(text: str, expected: datetime) -> None:
    got = when(text, now=fixed)
    assert isinstance(got, datetime)
    assert got == expected
    assert got.utcoffset() == timedelta(hours=3)
    assert got.microsecond == 0  # sent to the second


@pytest.mark.parametrize(
    "text", ["2026-06-01T10:00:00+03:00", "2026-06-01T10:00:00", "2026-06-01", "2026-06-01 10:00"]
)
def test_iso_times_are_sent_as_written(text: str) -> None:
    assert when(text, now=fixed) == text


@pytest.mark.parametrize("text", ["garbage", "2x", "h", "-2h", "2026-13-01", "", "tomorrow"])
def test_other_times_are_refused_with_the_forms_taken(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="ISO 8601, or 2h, 30m, 3d, 1w"):
        when(text, now=fixed)


def test_since_2h_and_until_yesterday_reach_the_gateway(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator
) -> None:
    # No fixed clock in the command itself: the sent times must lie between the clock read
    # before and after the run, however long it takes.
    before = datetime.now().astimezone().replace(microsecond=0)
    code, _, err = cli_in_process("messages", "list", "1", "--since", "2h", "--until", "yesterday")
    after = datetime.now().astimezone()
    assert code == 0, err
    query = mail_emulator.requests.last.query
    since = datetime.fromisoformat(query["dateFrom"])
    assert since.utcoffset() is not None
    assert before - timedelta(hours=2) <= since <= after - timedelta(hours=2)
    until = datetime.fromisoformat(query["dateTo"])
    midnights = {
        datetime.combine(moment.date() - timedelta(days=1), time(), tzinfo=moment.tzinfo)
        for moment in (before, after)
    }
    assert until in midnights


def test_since_error_names_the_option_and_help_says_how_a_bare_time_goes(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator
) -> None:
    code, out, err = cli_in_process("messages", "list", "1", "--since", "last tuesday")
    assert (code, out) == (2, "")
    assert "argument --since: expected ISO 8601, or 2h, 30m, 3d, 1w, today, yesterday" in err
    assert "date_from" not in err
    code, _, err = cli_in_process("messages", "list", "1", "--until", "2026-13-01")
    assert code == 2
    assert "argument --until" in err
    assert "date_to" not in err
    assert len(mail_emulator.requests) == 0
    code, out, _ = cli_in_process("messages", "list", "--help")
    assert code == 0
    assert "without an offset is sent as written" in " ".join(out.split())


@pytest.mark.parametrize(
    ("args", "expected", "absent"),
    [
        (("messages", "event", "1001", "--start", "soon", "--end", "later"),
         "--start must look like", "date_from"),
        (("messages", "event", "1001", "--start", "2026-06-01 10:00:00",
          "--end", "2026-06-01 09:00:00"),
         "--end (2026-06-01 09:00:00) is before --start (2026-06-01 10:00:00)", "date_"),
        (("messages", "send", "--from", " ", "--to", "a@x.io", "--subject", "s", "--body", "b"),
         "--from must not be empty", "from_"),
        (("messages", "list", "1", "--folder", ""), "--folder must not be empty", "error: folder"),
        (("mailboxes", "--name", ""), "--name must not be empty", "error: name"),
        (("messages", "thread", "1001", "--limit", "51"), "--limit must be", "error: limit"),
        (("recipients", "contacts", ""), "QUERY must not be empty", "query"),
    ],
)  # fmt: skip
def test_library_refusals_name_the_option_typed(
    cli_in_process: RunInProcess,
    mail_emulator: MailEmulator,
    args: tuple[str, ...],
    expected: str,
    absent: str,
) -> None:
    code, out, err = cli_in_process(*args)
    assert (code, out) == (2, ""), err
    assert expected in err
    assert absent not in err
    assert len(mail_emulator.requests) == 0


def test_a_quoted_value_keeps_what_the_user_typed(
    cli_in_process: RunInProcess,
) -> None:
    # The refusal quotes the value; a value that happens to spell a library name stays as is.
    code, _, err = cli_in_process("messages", "event", "1001", "--start", "date_from",
                                  "--end", "x")  # fmt: skip
    assert code == 2
    assert "--start must look like" in err
    assert "got 'date_from'" in err


# ----------------------------------------------------------------------------- completion
def _bash_complete(*words: str) -> list[str]:
    """What the generated bash script offers for ``bitrix-mail WORDS``, the last word current."""
    script = run_cli("completion", "bash", env=clean_env())
    assert script.returncode == 0, script.stderr
    line = shlex.join(["bitrix-mail", *words])
    probe = (
        f"{script.stdout}\nCOMP_WORDS=({line}); COMP_CWORD={len(words)}; "
        '_bitrix_mail; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    return subprocess.run(
        ["bash", "-c", probe], capture_output=True, text=True, timeout=CLI_TIMEOUT, check=True
    ).stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_completion_completes_the_shells_and_api_the_methods() -> None:
    offered = _bash_complete("completion", "")
    assert {"bash", "zsh", "fish"} <= set(offered)
    assert not {"demo", "messages", "GET"} & set(offered)
    assert _bash_complete("completion", "f") == ["fish"]
    assert _bash_complete("api", "G") == ["GET"]


def test_fish_completes_the_shells() -> None:
    fish = run_cli("completion", "fish", env=clean_env())
    assert fish.returncode == 0
    for shell in ("bash", "zsh", "fish"):
        line = (
            f"complete -c bitrix-mail -n '__fish_seen_subcommand_from completion' -f -a '{shell}'"
        )
        assert line in fish.stdout


# ----------------------------------------------------------------------------- groups alone
@pytest.mark.parametrize("group", ["messages", "recipients"])
def test_a_group_alone_prints_its_help(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator, group: str
) -> None:
    code, out, err = cli_in_process(group)
    assert (code, err) == (0, "")
    assert out.startswith(f"usage: bitrix-mail {group} ")
    action = {"messages": "list a mailbox's messages", "recipients": "CRM contacts matching"}
    assert action[group] in out
    assert f"bitrix-mail {group} " in out.split("example", 1)[1]
    assert len(mail_emulator.requests) == 0


def test_mailboxes_alone_still_lists(cli_in_process: RunInProcess) -> None:
    code, out, err = cli_in_process("mailboxes")
    assert code == 0, err
    assert out.startswith("ID")


def test_old_senders_works_with_a_deprecation_note(cli: RunCli) -> None:
    new = cli("mailboxes", "senders", "1", "--json")
    old = cli("senders", "1", "--json")
    assert old.returncode == new.returncode == 0, old.stderr
    assert old.stdout == new.stdout  # scripts reading stdout see no difference
    assert "'senders' is deprecated, use 'mailboxes senders'" in old.stderr
    assert new.stderr == ""
    top = " ".join(cli("--help").stdout.split())
    assert "sender addresses (list, get, senders)" in top  # listed under mailboxes


# ----------------------------------------------------------------------------- unknown is_seen
def test_an_unknown_read_state_is_shown_as_unknown(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator
) -> None:
    unknown = mail_emulator.deliver(subject="State unknown", is_seen=None)
    unread = mail_emulator.deliver(subject="Not read yet", is_seen=False)
    read = mail_emulator.deliver(subject="Read already", is_seen=True)
    code, out, err = cli_in_process("messages", "list", "1", "--limit", "3")
    assert code == 0, err
    header, *rows = out.splitlines()
    new = header.index("NEW")
    marks = {row.split()[0]: row[new : new + 3].strip() for row in rows}
    assert marks == {str(unknown["id"]): "?", str(unread["id"]): "*", str(read["id"]): ""}
    code, out, err = cli_in_process("messages", "get", str(unknown["id"]))
    assert code == 0, err
    assert "Seen:        unknown" in out
    code, out, err = cli_in_process("messages", "get", str(unknown["id"]), "--json")
    assert code == 0, err
    assert '"isSeen": null' in out
