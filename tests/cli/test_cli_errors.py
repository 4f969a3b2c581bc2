"""What a person sees when something is wrong: exit codes, explanations, never the key."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path

import pytest
from aiohttp import web

from bitrix_mail_async.testing import MailEmulator

from .conftest import RunCli, RunInProcess, clean_env, run_cli

SECRET = "vibe_api_s3cr3t_do_not_print_4711"


def _assert_key_hidden(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text
        assert "s3cr3t" not in text


def test_missing_key_exits_2_and_names_the_variable(
    cli: RunCli, mail_emulator: MailEmulator
) -> None:
    result = cli("mailboxes", key=None)
    assert result.returncode == 2
    assert "BITRIX_MAIL_API_KEY" in result.stderr
    assert result.stdout == ""
    assert len(mail_emulator.requests) == 0


def test_unknown_key_exits_1_with_an_explanation(cli: RunCli) -> None:
    result = cli("mailboxes", key=SECRET)
    assert result.returncode == 1
    assert "INVALID_API_KEY (HTTP 401): the key is unknown: check BITRIX_MAIL_API_KEY" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    _assert_key_hidden(result.stdout, result.stderr)


@pytest.mark.parametrize(
    ("kwargs", "code", "explanation"),
    [
        ({"scopes": ()}, "SCOPE_DENIED (HTTP 403)", "the key lacks the mail scope"),
        ({"status": "expired"}, "KEY_EXPIRED (HTTP 401)", "the key has expired"),
        ({"status": "inactive"}, "KEY_INACTIVE (HTTP 401)", "the key is switched off"),
        ({"status": "no_tokens"}, "TOKEN_MISSING (HTTP 401)", "no Bitrix24 tokens"),
    ],
)
def test_key_problems_are_explained(
    cli_in_process: RunInProcess,
    mail_emulator: MailEmulator,
    kwargs: dict[str, object],
    code: str,
    explanation: str,
) -> None:
    mail_emulator.add_key(SECRET, **kwargs)  # type: ignore[arg-type]
    exit_code, out, err = cli_in_process("messages", "list", "1", key=SECRET)
    assert exit_code == 1
    assert code in err
    assert explanation in err
    _assert_key_hidden(out, err)


def test_other_api_errors_print_code_and_message(cli: RunCli) -> None:
    result = cli("messages", "get", "999999")
    assert result.returncode == 1
    assert "ENTITY_NOT_FOUND (HTTP 404)" in result.stderr
    assert "999999" in result.stderr
    assert result.stdout == ""


def test_plain_http_to_another_host_needs_insecure_http(cli: RunCli) -> None:
    # Refused before any connection, so the unresolvable host is never looked up.
    result = cli("mailboxes", "--base-url", "http://gateway.invalid/v1", key=SECRET)
    assert result.returncode == 2
    assert "--insecure-http" in result.stderr
    _assert_key_hidden(result.stdout, result.stderr)


def test_insecure_http_opt_in_goes_through(cli: RunCli, mail_emulator: MailEmulator) -> None:
    # Loopback is allowed anyway; the flag must not break it.
    url = mail_emulator.base_url.replace("127.0.0.1", "localhost")
    result = cli("mailboxes", "--json", "--insecure-http", "--base-url", url)
    assert result.returncode == 0, result.stderr
    assert len(mail_emulator.requests) == 1


def test_transport_error_exits_1_with_the_reason() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    env = clean_env(BITRIX_MAIL_API_KEY=SECRET)
    result = run_cli("mailboxes", "--base-url", f"http://127.0.0.1:{port}/v1", env=env)
    assert result.returncode == 1
    assert "cannot reach the gateway" in result.stderr
    assert "Traceback" not in result.stderr
    _assert_key_hidden(result.stdout, result.stderr)


def test_env_base_url_and_option_precedence(cli: RunCli, mail_emulator: MailEmulator) -> None:
    # --base-url wins over BITRIX_MAIL_BASE_URL (set by the fixture to the emulator).
    result = cli("mailboxes", "--base-url", "http://gateway.invalid/v1")
    assert result.returncode == 2
    assert len(mail_emulator.requests) == 0


def test_base_url_without_v1_gets_a_hint(cli: RunCli, mail_emulator: MailEmulator) -> None:
    root = mail_emulator.base_url.removesuffix("/v1")
    result = cli("mailboxes", "--base-url", root)
    assert result.returncode == 1
    assert "NOT_FOUND (HTTP 404)" in result.stderr
    assert f"--base-url has no /v1 at the end: try --base-url {root}/v1" in result.stderr


def test_a_server_that_is_not_the_gateway_is_named(tmp_path: Path) -> None:
    # A plain web server: its 404 is an HTML page, not the gateway's JSON.
    async def main() -> subprocess.CompletedProcess[str]:
        app = web.Application()
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        env = clean_env(BITRIX_MAIL_API_KEY=SECRET)
        try:
            return await asyncio.to_thread(
                run_cli, "mailboxes", "--base-url", f"http://127.0.0.1:{port}", env=env
            )
        finally:
            await runner.cleanup()

    result = asyncio.run(main())
    assert result.returncode == 1
    assert "HTTP 404 from http://127.0.0.1:" in result.stderr
    assert "not the gateway's JSON error" in result.stderr
    assert "try --base-url http://127.0.0.1:" in result.stderr
    assert "HTTP (HTTP 404)" not in result.stderr
    _assert_key_hidden(result.stdout, result.stderr)
