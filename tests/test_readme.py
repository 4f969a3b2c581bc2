"""The README's async example runs as written against the emulator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from readme_examples import block_with, python_blocks, run_example

from bitrix_mail_async.testing import MailEmulator


def test_readme_example_runs(mail_emulator: MailEmulator, tmp_path: Path) -> None:
    example = python_blocks()[0]
    assert "async with MailClient()" in example
    done = run_example(example, mail_emulator, tmp_path)
    assert "ENTITY_NOT_FOUND" in done.stdout
    assert [(r.method, r.path) for r in mail_emulator.requests] == [
        ("GET", "/mail/mailboxes"),
        ("GET", "/mail/mailboxes/1/senders"),
        ("POST", "/mail/messages"),
        ("GET", "/mail/messages"),
        ("GET", "/mail/messages/42"),
    ]
    assert mail_emulator.state.sent[0]["request"]["subject"] == "Hello"


def test_readme_fixture_example_passes(tmp_path: Path) -> None:
    example = block_with("def test_send_is_never_repeated")
    (tmp_path / "test_readme_example.py").write_text(example)
    # A fresh project: no configuration of ours, pytest-asyncio in its default (strict) mode.
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_readme_raw_responses_example_runs(mail_emulator: MailEmulator, tmp_path: Path) -> None:
    done = run_example(block_with("with_raw_response", "asyncio.run"), mail_emulator, tmp_path)
    lines = done.stdout.splitlines()
    assert lines[1].startswith("200 ")  # status, X-RateLimit-Remaining, request id
    assert lines[2] == "True"  # parsed and data agree
    assert ("GET", "/me") in [(r.method, r.path) for r in mail_emulator.requests]


def test_every_readme_python_block_compiles() -> None:
    # Copied into a file, each block must at least be valid Python (no top-level `async with`).
    blocks = python_blocks()
    assert len(blocks) >= 8
    for index, block in enumerate(blocks):
        compile(block, f"README.md python block {index}", "exec")


def test_readme_bulk_example_runs(mail_emulator: MailEmulator, tmp_path: Path) -> None:
    example = block_with("get_many", "asyncio.run")
    done = run_example(example, mail_emulator, tmp_path, timeout=120)
    listed = [r for r in mail_emulator.requests if r.path == "/mail/messages"]
    fetched = [r for r in mail_emulator.requests if r.path.startswith("/mail/messages/")]
    assert listed and len(done.stdout.splitlines()) == len(fetched) > 0


def test_readme_tenants_example_runs(
    mail_emulator: MailEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_key = "vibe_app_readme_tenants_key"
    portals = {"tok_acme": "acme.bitrix24.ru", "tok_globex": "globex.bitrix24.de"}
    mail_emulator.add_key(app_key, app=True, tokens=tuple(portals))
    for token, portal in portals.items():
        mail_emulator.add_session(app_key, token, portal=portal)
    monkeypatch.setattr(mail_emulator, "api_key", app_key)  # the script's BITRIX_MAIL_API_KEY
    done = run_example(block_with("for_session", "asyncio.run"), mail_emulator, tmp_path)
    boxes = len(mail_emulator.state.mailboxes)
    assert done.stdout.splitlines() == [
        f"acme.bitrix24.ru: {boxes} mailbox(es), {1 + boxes} requests",
        f"globex.bitrix24.de: {boxes} mailbox(es), {2 + boxes} requests",  # with its /v1/me
    ]
    seen = [(r.portal, r.path) for r in mail_emulator.requests]
    # Each tenant's calls went out with its own session, to its own portal; /v1/me only for
    # the tenant whose portal was not given, and once.
    assert {portal for portal, _ in seen} == set(portals.values())
    assert seen.count(("globex.bitrix24.de", "/me")) == 1
    assert ("acme.bitrix24.ru", "/me") not in seen
    assert all(r.status == 200 for r in mail_emulator.requests)
