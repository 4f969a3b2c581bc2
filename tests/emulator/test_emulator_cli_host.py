"""An out-of-process bot tested with nothing but ``bitrix-mail emulator`` and its admin API.

The emulator and the bot are separate processes, as they are for a user whose bot is not
Python or not importable: the test host delivers mail and reads side effects over HTTP, once
with curl (what any language can do) and once with ``EmulatorAdmin``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import bitrix_mail_async
from bitrix_mail_async.testing import EmulatorAdmin

#: Generous for a loaded CI box; nothing here is timed, these only bound a hang.
TIMEOUT = 60.0
SOURCE_ROOT = str(Path(bitrix_mail_async.__file__).resolve().parent.parent)

# The bot under test: replies to every new message of mailbox 1 and makes a task of it.
BOT = """
import asyncio, sys
from bitrix_mail_async import MailClient

async def main(count):
    async with MailClient() as mail:  # key and base URL from the environment
        handled = 0
        # INBOX: the Sent copies of its own replies land in the mailbox too.
        async for msg in mail.messages.watch(1, folder="INBOX", poll_interval=0.05):
            await mail.messages.reply(msg.id, body=f"Got it: {msg.subject}")
            await mail.messages.create_task(msg.id, title=f"Handle: {msg.subject}")
            handled += 1
            if handled == count:
                return

asyncio.run(main(int(sys.argv[1])))
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BITRIX_MAIL_")}
    # The package under test, whatever the subprocess's working directory.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SOURCE_ROOT, env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@contextmanager
def emulator_cli(*options: str) -> Iterator[dict[str, Any]]:
    """``bitrix-mail emulator --port 0 --json OPTIONS``; yields its start-up line, then
    stops it with SIGTERM and checks it ended cleanly."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bitrix_mail_async", "emulator", "--port", "0", "--json", *options],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, process.communicate(timeout=TIMEOUT)[1]
        yield json.loads(line)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, err
    assert "emulator stopped (SIGTERM)" in err


def start_bot(tmp_path: Path, started: dict[str, Any], count: int) -> subprocess.Popen[str]:
    script = tmp_path / "bot.py"
    script.write_text(BOT)
    env = _env(BITRIX_MAIL_API_KEY=started["api_key"], BITRIX_MAIL_BASE_URL=started["base_url"])
    return subprocess.Popen(
        [sys.executable, str(script), str(count)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )


def finish(bot: subprocess.Popen[str]) -> None:
    _, err = bot.communicate(timeout=TIMEOUT)
    assert bot.returncode == 0, err


# ----------------------------------------------------------------- with curl
CURL = shutil.which("curl")


def curl(*args: str) -> Any:
    assert CURL is not None
    done = subprocess.run(
        [CURL, "--silent", "--show-error", "--fail-with-body", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    return json.loads(done.stdout)


def poll(check: Any, what: str) -> Any:
    """Call ``check()`` until it returns something true; fail after TIMEOUT (a hang, not a
    speed requirement)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


@pytest.mark.skipif(CURL is None, reason="curl is not installed: this test drives the admin API "
                    "with curl as a non-Python host would (apt-get install curl)")  # fmt: skip
def test_a_bot_tested_with_curl_alone(tmp_path: Path) -> None:
    with emulator_cli("--seed", "7", "--messages", "20") as started:
        admin = started["admin_url"]
        curl("-X", "POST", admin + "/reset")
        bot = start_bot(tmp_path, started, count=2)
        # The bot watches from "now": deliver once it has looked at the mailbox.
        poll(lambda: curl(admin + "/requests?path=/mail/messages")["items"], "the bot's poll")
        for subject in ("Invoice 42", "Contract draft"):
            delivered = curl(
                "-X", "POST", admin + "/messages",
                "-H", "Content-Type: application/json",
                "--data", json.dumps({"mailboxId": 1, "subject": subject,
                                      "from": "Client <client@example.com>"}),
            )  # fmt: skip
            assert delivered["subject"] == subject
        finish(bot)
        effects = curl(admin + "/effects")
        assert [(e["kind"], e["request"]["body"]) for e in effects["sent"]] == [
            ("reply", "Got it: Invoice 42"),
            ("reply", "Got it: Contract draft"),
        ]
        assert [t["title"] for t in effects["tasks"]] == [
            "Handle: Invoice 42",
            "Handle: Contract draft",
        ]
        posts = curl(admin + "/requests?method=POST")["items"]
        assert [p["status"] for p in posts] == [200, 200, 200, 200]
        assert all(p["headers"]["X-Api-Key"] == "***" for p in posts)


# ----------------------------------------------------------------- with the helper
async def test_a_bot_tested_with_the_helper(tmp_path: Path) -> None:
    options = ("--limits", "documented", "--time-scale", "0.05", "--plan", "enterprise")
    with emulator_cli(*options) as started:
        async with EmulatorAdmin(started["admin_url"]) as admin:
            info = await admin.info()
            assert info["limits"]["portal"]["restPerSecond"] == 100  # 5/s, 20 times faster
            await admin.reset()
            bot = start_bot(tmp_path, started, count=1)
            # Another process: its first poll is seen in the log, no event to wait on.
            async with asyncio.timeout(TIMEOUT):
                while not await admin.requests(path="/mail/messages"):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            message = await admin.deliver(subject="Hello bot", from_="Client <client@example.com>")
            effects = await admin.wait_for(lambda e: len(e.tasks) == 1, timeout=TIMEOUT)
            finish(bot)
            assert [e["kind"] for e in effects.sent] == ["reply"]
            assert effects.tasks[0]["title"] == "Handle: Hello bot"
            log = await admin.requests()
            assert {r.path for r in log} >= {"/mail/messages", f"/mail/messages/{message.id}/reply"}
            counters = await admin.stats()
            assert counters.requests == len(log) and counters.refused == 0
