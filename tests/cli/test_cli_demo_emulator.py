"""``demo`` (embedded emulator, no key) and ``emulator`` (served until stopped)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from bitrix_mail_async import testing
from bitrix_mail_async.cli import main
from bitrix_mail_async.testing import DEFAULT_API_KEY

from .conftest import CLI_TIMEOUT, clean_env, run_cli

STEPS = (
    "Step 1/7: list mailboxes: 3 mailboxes",
    "Step 2/7: read sender addresses of the first mailbox: 2 senders of mailbox 1",
    "Step 3/7: send a message to a colleague: sent to ",
    "Step 4/7: find it among the mailbox's messages: message ",
    "Step 5/7: read it: message ",
    "Step 6/7: reply to it: replied to ",
    "Step 7/7: create a task from it: taskId ",
)


def test_demo_runs_the_seven_steps_without_a_key() -> None:
    # No key and no base URL in the environment: the demo must not need them.
    result = run_cli("demo", env=clean_env())
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    positions = []
    for step in STEPS:
        matching = [i for i, line in enumerate(lines) if line.startswith(step)]
        assert len(matching) == 1, (step, result.stdout)
        positions.append(matching[0])
    assert positions == sorted(positions)
    assert lines[-1] == "All 7 steps succeeded."
    assert result.stderr == ""
    # The message found in step 4 is the one sent in step 3, read in 5, replied to in 6.
    found = lines[positions[3]].split("message ")[1].split()[0]
    assert lines[positions[4]].startswith(f"Step 5/7: read it: message {found}: bitrix-mail demo ")
    assert f"from message {found}" in lines[positions[6]]
    assert "Sent" in lines[positions[4] + 3]  # the Folder line of the message read back


def test_demo_works_on_a_tiny_portal() -> None:
    result = run_cli("demo", "--messages", "1", env=clean_env())
    assert result.returncode == 0, result.stderr
    assert "All 7 steps succeeded." in result.stdout


def test_demo_stops_at_the_first_failing_step(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class DeniedMailbox(testing.MailEmulator):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.state.denied_mailboxes.add(1)

    # In-process: the demo builds its emulator from bitrix_mail_async.testing at run time.
    monkeypatch.setattr(testing, "MailEmulator", DeniedMailbox)
    assert main(["demo"]) == 1
    out, err = capsys.readouterr()
    assert "Step 1/7: list mailboxes: 3 mailboxes" in out
    assert "Step 2/7: read sender addresses of the first mailbox: FAILED" in out
    assert "Step 3/7" not in out
    assert "succeeded" not in out
    assert "demo step 2 (read sender addresses of the first mailbox) failed" in err
    assert "BITRIX_ACCESS_DENIED (HTTP 403)" in err
    assert "Traceback" not in err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _emulator(*options: str) -> subprocess.Popen[str]:
    """``bitrix-mail emulator OPTIONS`` in a child process, its output piped as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "bitrix_mail_async", "emulator", *options],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_emulator_command_serves_until_stopped() -> None:
    port = _free_port()
    process = _emulator("--port", str(port))
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        second = process.stdout.readline()
        base_url = f"http://127.0.0.1:{port}/v1"
        assert first.strip().endswith(base_url), first
        assert second.strip() == f"API key: {DEFAULT_API_KEY}"
        request = urllib.request.Request(
            base_url + "/mail/mailboxes", headers={"X-Api-Key": DEFAULT_API_KEY}
        )
        with urllib.request.urlopen(request, timeout=CLI_TIMEOUT) as answer:
            assert answer.status == 200
            body = json.load(answer)
        assert body["success"] is True
        assert [m["id"] for m in body["data"]] == [1, 2, 3]
    finally:
        process.terminate()
        process.communicate(timeout=CLI_TIMEOUT)


def test_emulator_command_reports_a_busy_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run_cli("emulator", "--port", str(port), env=clean_env())
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery differs on Windows")
def test_emulator_command_stops_on_ctrl_c() -> None:
    import signal

    process = _emulator("--port", "0")
    assert process.stdout is not None
    assert "emulator at http://127.0.0.1:" in process.stdout.readline()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=CLI_TIMEOUT)
    # 130, as every command interrupted with Ctrl-C (the README's exit codes).
    assert process.returncode == 130
    assert "emulator stopped" in err
    assert "Traceback" not in err


def test_demo_json_is_one_document_of_seven_steps() -> None:
    result = run_cli("demo", "--json", env=clean_env())
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["succeeded"] is True
    assert document["emulator"].endswith("/v1")
    assert [s["step"] for s in document["steps"]] == list(range(1, 8))
    assert document["steps"][6]["result"].startswith("taskId ")


def test_emulator_json_line_and_retry_after() -> None:
    process = _emulator(
        "--port", "0", "--json", "--rate", "0.001", "--burst", "1", "--retry-after", "7"
    )
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        assert started["api_key"] == DEFAULT_API_KEY
        statuses = []
        for _ in range(2):
            request = urllib.request.Request(
                started["base_url"] + "/mail/mailboxes", headers={"X-Api-Key": DEFAULT_API_KEY}
            )
            try:
                with urllib.request.urlopen(request, timeout=CLI_TIMEOUT) as answer:
                    statuses.append((answer.status, None))
            except urllib.error.HTTPError as refused:
                statuses.append((refused.code, refused.headers["Retry-After"]))
        # A burst of one: the second call at once is refused with the Retry-After asked for.
        assert statuses == [(200, None), (429, "7")]
    finally:
        process.terminate()
        process.communicate(timeout=CLI_TIMEOUT)


def test_emulator_burst_without_rate_is_a_usage_error() -> None:
    result = run_cli("emulator", "--port", "0", "--retry-after", "3", env=clean_env())
    assert result.returncode == 2
    assert "go with --rate" in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM cannot be caught on Windows")
def test_emulator_command_stops_gracefully_on_sigterm() -> None:
    import signal

    process = _emulator("--port", "0")
    assert process.stdout is not None
    started = [process.stdout.readline() for _ in range(3)]
    assert "emulator at http://127.0.0.1:" in started[0]
    assert started[2].startswith("Admin API (no key): http://127.0.0.1:")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=CLI_TIMEOUT)
    # A service manager's (or docker's) way to stop a server: a clean exit, not -15.
    assert process.returncode == 0, err
    assert "emulator stopped (SIGTERM)" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--time-scale", "0.1"], "--time-scale and --plan go with --limits documented"),
        (["--plan", "enterprise"], "--time-scale and --plan go with --limits documented"),
        (["--limits", "documented", "--time-scale", "0"], "expected a positive number, got '0'"),
        (["--limits", "some"], "invalid choice: 'some'"),
        (["--fault-rate", "1.5"], "expected a share from 0 to 1, got '1.5'"),
        (["--lost-answer-rate", "-0.1"], "expected a positive number, got '-0.1'"),
        (["--fault-rate", "0.6", "--lost-answer-rate", "0.5"], "add up to 1.1: together at most 1"),
        (["--latency-jitter", "0.1"], "--latency-jitter goes with --latency"),
        (["--latency", "soon"], "expected a number, got 'soon'"),
        (["--seed", "x"], "invalid int value: 'x'"),
        (["--messages", "0"], "expected a positive integer, got '0'"),
    ],
)
def test_emulator_switches_refuse_what_they_cannot_use(options: list[str], says: str) -> None:
    result = run_cli("emulator", "--port", "0", *options, env=clean_env())
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr


def _serve_json(*options: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    process = _emulator("--port", "0", "--json", *options)
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())


def _call(url: str, body: dict[str, Any] | None = None, key: str | None = DEFAULT_API_KEY) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} | ({"X-Api-Key": key} if key else {})
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=CLI_TIMEOUT) as answer:
            return answer.status, json.load(answer), answer.headers
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused), refused.headers


def test_emulator_switches_take_effect() -> None:
    process, started = _serve_json("--limits", "documented", "--time-scale", "0.1", "--seed", "3")
    try:
        assert started["limits"] == "documented" and started["time_scale"] == 0.1
        status, me, headers = _call(started["base_url"] + "/me")
        assert status == 200 and me["data"]["rateLimit"] == {"requestsPerSecond": 100}
        assert headers["X-RateLimit-Limit"] == "300"
    finally:
        process.terminate()
        process.communicate(timeout=CLI_TIMEOUT)
    assert process.returncode == 0

    process, started = _serve_json("--fault-rate", "1")
    try:
        statuses = {_call(started["base_url"] + "/mail/mailboxes")[0] for _ in range(5)}
        assert statuses <= {502, 503, 504}
        assert _call(started["admin_url"] + "/stats", key=None)[1]["faults"] == 5
    finally:
        process.terminate()
        process.communicate(timeout=CLI_TIMEOUT)


def test_emulator_lost_answers_are_applied_yet_unanswered() -> None:
    process, started = _serve_json("--lost-answer-rate", "1")
    send = {"from": "sales@emulator.bitrix24.test", "to": ["a@example.com"], "subject": "S",
            "body": "B"}  # fmt: skip
    try:
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            _call(started["base_url"] + "/mail/messages", send)
        status, effects, _ = _call(started["admin_url"] + "/effects", key=None)
        assert status == 200
        assert [e["request"]["subject"] for e in effects["sent"]] == ["S"]
    finally:
        process.terminate()
        process.communicate(timeout=CLI_TIMEOUT)
