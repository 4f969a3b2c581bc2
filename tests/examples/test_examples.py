"""The runnable examples, run as a user would: subprocesses against the emulator.

``examples/task_bot.py`` (bounded by ``--max-messages``, and stopped by SIGTERM and restarted),
``examples/bulk_export.py`` (whole, then resumed after a half-written line) and the user's own
suite ``examples/test_my_app.py`` (copied to a fresh directory, so no project configuration
helps it), so that they can never rot.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from bitrix_mail_async.resources._idranges import IdRanges
from bitrix_mail_async.testing import MailEmulator

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
HANG_GUARD = 60.0


def environment(emu: MailEmulator) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BITRIX_MAIL_API_KEY": emu.api_key,
        "BITRIX_MAIL_BASE_URL": emu.base_url,
    }


class Bot:
    """``examples/task_bot.py`` in a subprocess; its stdout lines are JSON results."""

    def __init__(self, emu: MailEmulator, *args: str) -> None:
        self.emu, self.args = emu, args
        self.results: list[dict[str, object]] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> Bot:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLES / "task_bot.py"),
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=environment(self.emu),
        )
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.results.append(json.loads(line))

    async def wait(self) -> int:
        assert self.proc is not None and self.reader is not None
        async with asyncio.timeout(HANG_GUARD):
            code = await self.proc.wait()
            await self.reader
        return code

    async def until(self, count: int) -> None:
        async with asyncio.timeout(HANG_GUARD):
            while True:
                if len(self.results) >= count:
                    return
                await asyncio.sleep(0.01)


async def wait_for_file(path: Path) -> None:
    async with asyncio.timeout(HANG_GUARD):
        while True:
            if path.exists():  # noqa: ASYNC240 - a stat per 10 ms in a test
                return
            await asyncio.sleep(0.01)


async def test_task_bot_turns_new_mail_into_tasks_and_stops_after_n(
    mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    emu = mail_emulator
    state = tmp_path / "bot.json"
    args = ["1", "--state", str(state), "--poll-interval", "0.05"]
    bot = await Bot(emu, *args, "--max-messages", "3").start()
    await wait_for_file(state)  # the bot started: from now on, mail is new
    delivered = [emu.deliver(subject=f"Order {i}")["id"] for i in range(3)]
    assert await bot.wait() == 0
    assert [r["message"] for r in bot.results] == delivered
    assert [t["messageId"] for t in emu.state.tasks] == delivered
    saved = json.loads(state.read_text())
    base = int(datetime.fromisoformat(saved["sweep_from"]).timestamp())
    handled = IdRanges.from_json(saved["handled"], base, limit=10**6)
    assert delivered[-1] in handled  # the last one was marked handled before it stopped


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM handling is POSIX")
async def test_task_bot_stops_on_sigterm_and_resumes_where_it_stopped(
    mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    emu = mail_emulator
    state = str(tmp_path / "bot.json")
    args = ["1", "--state", state, "--poll-interval", "0.05"]
    bot = await Bot(emu, *args).start()
    await wait_for_file(Path(state))
    first = [emu.deliver(subject=f"a{i}")["id"] for i in range(2)]
    await bot.until(2)
    assert bot.proc is not None
    bot.proc.send_signal(signal.SIGTERM)
    assert await bot.wait() == 0
    later = [emu.deliver(subject=f"b{i}")["id"] for i in range(2)]  # while it is stopped
    again = await Bot(emu, *args, "--max-messages", "2").start()
    assert await again.wait() == 0
    assert [r["message"] for r in bot.results] == first
    assert [r["message"] for r in again.results] == later  # none repeated, none missed
    assert [t["messageId"] for t in emu.state.tasks] == first + later


def run_export(emu: MailEmulator, out: Path) -> subprocess.CompletedProcess[str]:
    script = str(EXAMPLES / "bulk_export.py")
    fast = ["--rate", "200", "--burst", "20"]  # the emulator has no limit on; save the test time
    return subprocess.run(
        [sys.executable, script, "1", "--out", str(out), *fast],
        env=environment(emu),
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        check=False,
    )


def test_bulk_export_writes_every_message_and_resumes(
    mail_emulator_factory: Callable[..., MailEmulator], tmp_path: Path
) -> None:
    emu = mail_emulator_factory(messages=700)
    emu.faults.error_rate = 0.05  # the client's retries absorb them
    expected = emu.state.mailbox_message_ids(1)
    out = tmp_path / "box.jsonl"
    done = run_export(emu, out)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in lines] == expected
    assert all(r["body"] for r in lines)
    # An interrupted run left half a line; new mail arrived meanwhile.
    with out.open("rb+") as handle:
        handle.truncate(out.stat().st_size - 25)
    new = emu.state.add_message(subject="Arrived later", body="New body")["id"]
    fetched = len(emu.requests)
    again = run_export(emu, out)
    assert again.returncode == 0, again.stderr[-2000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == sorted([*expected, new])
    assert len(lines) == len(expected) + 1  # nothing twice
    gets = [r.path for r in emu.requests[fetched:] if r.path.startswith("/mail/messages/")]
    assert sorted(gets) == sorted({f"/mail/messages/{new}", f"/mail/messages/{expected[-1]}"})


def test_the_users_own_suite_passes_in_a_fresh_project(tmp_path: Path) -> None:
    for name in ("test_my_app.py", "task_bot.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_app.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD * 2,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "4 passed" in done.stdout
