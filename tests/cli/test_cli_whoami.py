"""``bitrix-mail whoami``: the key's portal, scopes, rate limit and expiry, never the key."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta

import pytest

from bitrix_mail_async import KeyInfo, KeyRateLimit
from bitrix_mail_async.cli import failures, output
from bitrix_mail_async.testing import DEFAULT_PORTAL, MailEmulator

from .conftest import RunCli, RunInProcess, clean_env, run_cli

SECRET = "vibe_api_s3cr3t_whoami_0042"
PORTAL = "acme.bitrix24.test"
# Far enough ahead that "in 30 days" holds however slowly the test runs.
EXPIRES_IN = timedelta(days=30, hours=12)


def _assert_key_hidden(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text
        assert "s3cr3t" not in text


def _field(stdout: str, name: str) -> str:
    """The value of the ``Name:`` line of the human output."""
    for line in stdout.splitlines():
        label, sep, value = line.partition(":")
        if sep and label == name:
            return value.strip()
    raise AssertionError(f"no {name!r} line in {stdout!r}")


@pytest.fixture
def expires_at(mail_emulator: MailEmulator) -> datetime:
    """Register ``SECRET`` on its own portal, limited to 5 requests/s; returns its expiry."""
    when = (datetime.now(UTC) + EXPIRES_IN).replace(microsecond=0)
    mail_emulator.add_key(SECRET, scopes=("mail", "crm"), portal=PORTAL, expires_at=when)
    mail_emulator.set_portal_limit(per_second=5, burst=250, portal=PORTAL)
    return when


def test_default_key_shows_portal_scopes_rate_and_no_expiry(
    cli: RunCli, mail_emulator: MailEmulator
) -> None:
    result = cli("whoami")
    assert result.returncode == 0, result.stderr
    assert _field(result.stdout, "Key") == "vibe_api_*** (from BITRIX_MAIL_API_KEY)"
    assert _field(result.stdout, "Portal") == DEFAULT_PORTAL
    assert _field(result.stdout, "Scopes") == "mail"
    # The emulator reports the documented default while no portal limit is set.
    assert _field(result.stdout, "Rate limit") == "10 requests/s"
    assert _field(result.stdout, "Expires") == "no expiry"
    assert "note:" not in result.stdout
    assert result.stderr == ""
    assert [(r.method, r.path) for r in mail_emulator.requests] == [("GET", "/me")]
    assert mail_emulator.api_key not in result.stdout


def test_own_key_shows_its_portal_rate_and_expiry(cli: RunCli, expires_at: datetime) -> None:
    result = cli("whoami", key=SECRET)
    assert result.returncode == 0, result.stderr
    assert _field(result.stdout, "Portal") == PORTAL
    assert _field(result.stdout, "Scopes") == "mail, crm"
    assert _field(result.stdout, "Rate limit") == "5 requests/s"
    assert _field(result.stdout, "Expires") == f"{expires_at.isoformat(sep=' ')} (in 30 days)"
    _assert_key_hidden(result.stdout, result.stderr)


def test_json_is_the_key_info(cli: RunCli, expires_at: datetime) -> None:
    result = cli("whoami", "--json", key=SECRET)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["scopes"] == ["mail", "crm"]
    assert data["rateLimit"]["requestsPerSecond"] == 5
    assert data["portal"] == PORTAL
    assert datetime.fromisoformat(data["expiresAt"]) == expires_at
    assert "extra" not in data
    _assert_key_hidden(result.stdout, result.stderr)
    assert "vibe_api_***" not in result.stdout  # JSON is the gateway's answer only


def test_json_without_expiry_is_null(cli: RunCli) -> None:
    result = cli("whoami", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["expiresAt"] is None


def test_key_without_mail_scope_is_shown_with_a_note(
    cli_in_process: RunInProcess, mail_emulator: MailEmulator
) -> None:
    # /v1/me needs no scope, so whoami is how such a key finds out what it lacks.
    mail_emulator.add_key(SECRET, scopes=("crm",))
    code, out, err = cli_in_process("whoami", key=SECRET)
    assert code == 0, err
    assert _field(out, "Scopes") == "crm"
    assert "without the 'mail' scope" in out
    assert "SCOPE_DENIED" in out
    _assert_key_hidden(out, err)


@pytest.mark.parametrize(
    ("kwargs", "code", "explanation"),
    [
        ({"status": "expired"}, "KEY_EXPIRED (HTTP 401)", "the key has expired"),
        (
            {"expires_at": datetime(2020, 1, 1, tzinfo=UTC)},
            "KEY_EXPIRED (HTTP 401)",
            "the key has expired",
        ),
        ({"status": "inactive"}, "KEY_INACTIVE (HTTP 401)", "the key is switched off"),
    ],
)
def test_rejected_key_exits_1_with_an_explanation(
    cli_in_process: RunInProcess,
    mail_emulator: MailEmulator,
    kwargs: dict[str, object],
    code: str,
    explanation: str,
) -> None:
    mail_emulator.add_key(SECRET, **kwargs)  # type: ignore[arg-type]
    exit_code, out, err = cli_in_process("whoami", key=SECRET)
    assert exit_code == failures.EXIT_ERROR
    assert code in err
    assert explanation in err
    assert out == ""
    _assert_key_hidden(out, err)


def test_unknown_key_exits_1_without_traceback(cli: RunCli) -> None:
    result = cli("whoami", key=SECRET)
    assert result.returncode == 1
    assert "INVALID_API_KEY (HTTP 401)" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    _assert_key_hidden(result.stdout, result.stderr)


def test_missing_key_exits_2_before_any_request(cli: RunCli, mail_emulator: MailEmulator) -> None:
    result = cli("whoami", key=None)
    assert result.returncode == 2
    assert "BITRIX_MAIL_API_KEY" in result.stderr
    assert len(mail_emulator.requests) == 0


def test_gateway_down_exits_1_without_traceback() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    env = clean_env(BITRIX_MAIL_API_KEY=SECRET)
    result = run_cli("whoami", "--base-url", f"http://127.0.0.1:{port}/v1", env=env)
    assert result.returncode == 1
    assert "cannot reach the gateway" in result.stderr
    assert "Traceback" not in result.stderr
    _assert_key_hidden(result.stdout, result.stderr)


def test_help_lists_whoami(cli: RunCli) -> None:
    result = cli("--help")
    assert result.returncode == 0
    assert "  bitrix-mail whoami\n" in result.stdout
    assert "show the key's portal, scopes, rate limit and expiry" in result.stdout


# ----------------------------------------------------------------------------- the text alone
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_absent_fields_read_unknown_none_and_no_expiry() -> None:
    text = output.key_text(KeyInfo(), key_hint="vibe_api_***", now=NOW)
    assert _field(text, "Portal") == "unknown"
    assert _field(text, "Scopes") == "none"
    assert _field(text, "Rate limit") == "unknown"
    assert _field(text, "Expires") == "no expiry"
    rated = KeyInfo(scopes=("mail",), rate_limit=KeyRateLimit())
    assert _field(output.key_text(rated, key_hint="***", now=NOW), "Rate limit") == "unknown"


@pytest.mark.parametrize(
    ("left", "shown"),
    [
        (timedelta(days=1, hours=23), "in 1 day"),
        (timedelta(hours=5, minutes=59), "in 5 hours"),
        (timedelta(hours=1), "in 1 hour"),
        (timedelta(minutes=59), "in less than an hour"),
        (timedelta(seconds=-1), "already past by this computer's clock"),
    ],
)
def test_expiry_counts_whole_units_left(left: timedelta, shown: str) -> None:
    info = KeyInfo(scopes=("mail",), expires_at=NOW + left)
    expires = _field(output.key_text(info, key_hint="***", now=NOW), "Expires")
    assert expires.endswith(f"({shown})")


def test_expiry_without_offset_is_shown_as_given() -> None:
    info = KeyInfo(scopes=("mail",), expires_at=datetime(2026, 6, 1, 9, 30))
    expires = _field(output.key_text(info, key_hint="***", now=NOW), "Expires")
    assert expires == "2026-06-01 09:30:00"


def test_whoami_shows_a_read_only_keys_access_and_status(
    mail_emulator: MailEmulator, cli: RunCli
) -> None:
    mail_emulator.add_key(SECRET, read_only=True)
    done = cli("whoami", key=SECRET)
    assert done.returncode == 0, done.stderr
    assert (_field(done.stdout, "Access"), _field(done.stdout, "Status")) == ("READONLY", "ACTIVE")
    sent = cli(
        "messages", "send", "--from", "a@example.com", "--to", "b@example.com",
        "--subject", "s", "--body", "b", key=SECRET,
    )  # fmt: skip
    assert sent.returncode == 1
    assert "WRITE_BLOCKED_READONLY_KEY" in sent.stderr
    _assert_key_hidden(done.stdout, done.stderr, sent.stdout, sent.stderr)
