"""Global options (before or after the command), -v/--debug, help, completion, Ctrl-C."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from bitrix_mail_async.cli import build_parser
from bitrix_mail_async.cli.completion import tree
from bitrix_mail_async.testing import MailEmulator

from .conftest import CLI_TIMEOUT, RunCli, RunInProcess, clean_env, run_cli

SECRET = "vibe_api_s3cr3t_global_4242"


def test_global_options_before_the_command(mail_emulator: MailEmulator) -> None:
    env = clean_env(BITRIX_MAIL_API_KEY=mail_emulator.api_key)
    url = mail_emulator.base_url
    before = run_cli("--base-url", url, "--json", "--timeout", "5", "mailboxes", env=env)
    after = run_cli("mailboxes", "--base-url", url, "--json", "--timeout", "5", env=env)
    between = run_cli("--json", "messages", "--base-url", url, "get", "1001", env=env)
    for result in (before, after, between):
        assert result.returncode == 0, result.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout)
    assert json.loads(between.stdout)["id"] == 1001


def test_an_option_given_after_wins_over_none(cli_in_process: RunInProcess) -> None:
    # Given at both places, the command's own copy is the one that counts.
    code, out, err = cli_in_process("--rate", "0", "mailboxes", "--rate", "5", "--json")
    assert code == 0, err
    assert json.loads(out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--base-url", "http://x/v1", "demo"), "--base-url does not apply to 'demo'"),
        (("--dry-run", "emulator", "--port", "0"), "--dry-run does not apply to 'emulator'"),
        (("--rate", "5", "completion", "bash"), "--rate does not apply to 'completion'"),
    ],
)
def test_gateway_options_on_local_commands_are_refused(
    cli_in_process: RunInProcess, args: tuple[str, ...], message: str
) -> None:
    code, out, err = cli_in_process(*args)
    assert (code, out) == (2, "")
    assert message in err


def test_verbose_logs_each_attempt_and_retry(cli: RunCli, mail_emulator: MailEmulator) -> None:
    mail_emulator.faults.schedule("502", methods=["GET"], paths="/mail/mailboxes")
    result = cli("-v", "mailboxes", "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any(
        "GET /mail/mailboxes -> 502 UpstreamUnavailableError" in line and "attempt 1" in line
        for line in lines
    ), lines
    assert any("retrying in" in line and "server_error" in line for line in lines), lines
    assert any("GET /mail/mailboxes -> 200" in line and "attempt 2" in line for line in lines)
    assert all(line.startswith("bitrix-mail: INFO ") for line in lines)
    json.loads(result.stdout)  # logs never mix into stdout


def test_debug_shows_the_library_lines_never_the_key(
    cli: RunCli, mail_emulator: MailEmulator
) -> None:
    mail_emulator.add_key(SECRET)
    result = cli("--debug", "messages", "get", "1001", key=SECRET)
    assert result.returncode == 0, result.stderr
    assert "bitrix-mail: DEBUG bitrix_mail_async.transport:" in result.stderr
    assert "GET /mail/messages/{id} -> 200" in result.stderr
    assert "s3cr3t" not in result.stderr + result.stdout
    quiet = cli("messages", "get", "1001")
    assert quiet.stderr == ""


def test_logging_is_undone_after_an_in_process_run(cli_in_process: RunInProcess) -> None:
    import logging

    logger = logging.getLogger("bitrix_mail_async")
    handlers, level = list(logger.handlers), logger.level
    assert cli_in_process("--debug", "mailboxes")[0] == 0
    assert (logger.handlers, logger.level) == (handlers, level)


def test_wire_without_json_is_refused_before_any_request(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator
) -> None:
    code, _, err = cli_in_process("--wire", "mailboxes")
    assert code == 2
    assert "--wire goes with --json" in err
    assert len(mail_emulator.requests) == 0


# ----------------------------------------------------------------------------- help
def test_top_level_help_lists_every_command_and_the_environment(cli: RunCli) -> None:
    result = cli("--help")
    assert result.returncode == 0
    parser = build_parser()
    for name, child in parser.commands.items():
        if child.hidden:
            assert f"  {name} " not in result.stdout
            continue
        assert f"\n  {name} " in result.stdout, name
        for action in child.commands:
            assert action in result.stdout, (name, action)
    for variable in ("BITRIX_MAIL_API_KEY", "BITRIX_MAIL_BASE_URL", "BITRIX_MAIL_SESSION_TOKEN"):
        assert variable in result.stdout
    assert "examples:" in result.stdout
    assert "before or after" in result.stdout


@pytest.mark.parametrize(
    "command",
    [node.path for node in tree(build_parser()) if node.path],
    ids=" ".join,
)
def test_every_command_help_has_its_example_and_no_shared_block(
    cli_in_process: RunInProcess, capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    code, out, _ = cli_in_process(*command, "--help")
    assert code == 0
    assert "example" in out
    assert f"bitrix-mail {command[0]}" in out.split("example", 1)[1]
    assert "exit codes:" not in out
    assert "global options (before or after the command" in out
    # The emulator takes every switch MailEmulator has (limits, plan, faults, latency).
    assert len(out.splitlines()) < (60 if command == ("emulator",) else 45)


# ----------------------------------------------------------------------------- completion
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    ("words", "expected", "absent"),
    [
        (["m"], ["messages", "mailboxes"], ["senders", "demo"]),
        (["s"], [], ["senders"]),
        (["messages", "fe"], ["feed-post"], []),
        (["messages", "list", "1", "--un"], ["--unseen"], []),
        (["--json", "recipients", "c"], ["contacts"], []),
        (["mailboxes", "list", "--"], ["--name", "--json", "--dry-run"], ["--unseen"]),
        (["demo", "--"], ["--messages", "--json"], ["--dry-run"]),
    ],
)
def test_bash_completion(words: list[str], expected: list[str], absent: list[str]) -> None:
    script = run_cli("completion", "bash", env=clean_env())
    assert script.returncode == 0, script.stderr
    line = " ".join(["bitrix-mail", *words])
    probe = (
        f"{script.stdout}\nCOMP_WORDS=({line}); COMP_CWORD={len(words)}; "
        '_bitrix_mail; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    found = subprocess.run(
        ["bash", "-c", probe], capture_output=True, text=True, timeout=CLI_TIMEOUT, check=True
    ).stdout.split()
    assert set(expected) <= set(found), found
    assert not set(absent) & set(found), found


def test_zsh_and_fish_completion_scripts() -> None:
    zsh = run_cli("completion", "zsh", env=clean_env())
    assert zsh.returncode == 0
    assert zsh.stdout.startswith("#compdef bitrix-mail\n")
    assert "bashcompinit" in zsh.stdout
    fish = run_cli("completion", "fish", env=clean_env())
    assert fish.returncode == 0
    assert (
        "complete -c bitrix-mail -n '__fish_seen_subcommand_from messages; and not "
        "__fish_seen_subcommand_from list get thread send reply forward move task event "
        "chat feed-post crm-activity' -f -a thread"
    ) in fish.stdout
    assert (
        "__fish_seen_subcommand_from messages; and __fish_seen_subcommand_from list' -l unseen"
        in (fish.stdout)
    )
    assert run_cli("completion", "tcsh", env=clean_env()).returncode == 2


# ----------------------------------------------------------------------------- Ctrl-C
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery differs on Windows")
def test_ctrl_c_during_a_request_exits_130(mail_emulator: MailEmulator) -> None:
    mail_emulator.faults.schedule("slow:20", paths="/mail/mailboxes")
    env = clean_env(
        BITRIX_MAIL_API_KEY=mail_emulator.api_key, BITRIX_MAIL_BASE_URL=mail_emulator.base_url
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "bitrix_mail_async", "mailboxes"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + CLI_TIMEOUT
    # The request has reached the emulator (which holds it): the command is mid-call.
    while len(mail_emulator.requests) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=CLI_TIMEOUT)
    assert process.returncode == 130
    assert "interrupted" in err
    assert "Traceback" not in err
    assert out == ""
