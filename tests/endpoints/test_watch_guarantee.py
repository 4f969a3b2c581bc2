"""The watcher's guarantee, against the emulator on a controllable clock (issue 22).

The emulator's answers carry its wall clock as their HTTP ``Date`` header, and a test sets
that clock (``emu.state.wall_clock``): "now" is whatever the test says, whatever the machine's
clock reads. Mail with any date is delivered at any time (``emu.deliver(date=...)``). Waits
are on counts (messages yielded, requests seen), each under a hang guard.

The guarantee: every message dated no more than ``lookback`` before it arrives is yielded
exactly once, across restarts; after a crash at most the message being handled comes again;
mail dated more than ``lookback`` before it arrives is never yielded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bitrix_mail_async.testing import MailEmulator
from bitrix_mail_async.testing.seed import SEED_NEWEST

from .test_watch import (
    POLL,
    ROOT,
    Consumer,
    MemoryCheckpoint,
    client,
    handled_ids,
    list_requests,
    more_polls,
    until,
)

NOW = SEED_NEWEST + timedelta(days=1)
FUTURE = datetime.fromisoformat("2099-01-01T00:00:00+00:00")
LOOKBACK = timedelta(days=3)  # the default


class GatewayNow:
    """The emulator's wall clock, moved only by the test."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def on_clock(emu: MailEmulator, now: datetime = NOW) -> GatewayNow:
    clock = GatewayNow(now)
    emu.state.wall_clock = clock
    return clock


def sweeps(emu: MailEmulator) -> int:
    """Polls that were sweeps: a list query with no upper date bound."""
    return sum(1 for r in emu.requests if r.path == "/mail/messages" and "dateTo" not in r.query)


async def more_sweeps(emu: MailEmulator, count: int) -> None:
    done = sweeps(emu)
    await until(lambda: sweeps(emu) >= done + count, f"{count} more sweeps")


async def test_a_future_dated_message_blinds_nothing_also_after_a_restart(
    mail_emulator_factory: Callable[..., MailEmulator],
) -> None:
    emu = mail_emulator_factory(messages=0)
    clock = on_clock(emu)
    before = [
        emu.deliver(subject=f"a{i}", date=NOW - timedelta(minutes=10 - i))["id"] for i in range(3)
    ]
    attacker = emu.deliver(subject="from 2099", date=FUTURE)["id"]
    checkpoint = MemoryCheckpoint()
    since = NOW - timedelta(hours=1)
    async with client(emu) as mail:
        consumer = Consumer(
            mail.messages.watch(1, poll_interval=POLL, since=since, checkpoint=checkpoint)
        )
        await consumer.wait_for(4)
        after = [emu.deliver(subject=f"b{i}", date=clock.tick(60))["id"] for i in range(3)]
        await consumer.wait_for(7)
        await more_polls(emu, 3)  # and nothing more comes
        await consumer.stop()
        assert sorted(consumer.ids[:4]) == sorted([*before, attacker])
        assert consumer.ids[4:] == after
        # The mark never passed the gateway's "now"; the 2099 id is remembered.
        saved = json.loads(checkpoint.saved[-1])
        assert datetime.fromisoformat(saved["mark"]) <= clock.now
        restarted = Consumer(mail.messages.watch(1, poll_interval=POLL, checkpoint=checkpoint))
        await until(lambda: list_requests(emu) >= 1 and sweeps(emu) >= 2, "the restart's sweep")
        later = [emu.deliver(subject=f"c{i}")["id"] for i in range(2)]
        await restarted.wait_for(2)
        await more_polls(emu, 3)
        await restarted.stop()
    assert restarted.ids == later  # the restart's sweep saw the 2099 message: not again


CHILD = """
import asyncio, json, sys
from bitrix_mail_async import MailClient, RetryPolicy

async def main(base_url, key, path, options):
    retry = RetryPolicy(backoff_base=0.01, backoff_cap=0.05)
    async with MailClient(key, base_url=base_url, rate_limit=None, retry=retry) as mail:
        watcher = mail.messages.watch(1, poll_interval=0.02, checkpoint=path, **options)
        async for msg in watcher:
            print("start", msg.id, flush=True)
            await asyncio.sleep(0.03)  # handling: the kill most likely lands here
            print("done", msg.id, flush=True)

asyncio.run(main(*sys.argv[1:4], json.loads(sys.argv[4])))
"""


class Child:
    """A watcher in a subprocess that prints when it starts and ends handling a message."""

    def __init__(self, emu: MailEmulator, path: Path, options: dict[str, Any]) -> None:
        self.args = [emu.base_url, emu.api_key, str(path), json.dumps(options)]
        self.started: list[int] = []
        self.done: list[int] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, *self.args, stdout=asyncio.subprocess.PIPE, env=env
        )
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            what, msg_id = line.split()
            (self.started if what == b"start" else self.done).append(int(msg_id))

    async def kill(self) -> None:
        assert self.proc is not None and self.reader is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        await self.reader


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
async def test_sigkill_and_restart_with_a_future_dated_message_among_the_mail(
    mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    emu = mail_emulator
    clock = on_clock(emu)
    path = tmp_path / "state.json"
    child = Child(emu, path, {"sweep_interval": 0.2})
    await child.start()
    try:
        await until(path.exists, "the child's first checkpoint")
        normal = [emu.deliver(subject=f"m{i}", date=clock.tick())["id"] for i in range(15)]
        attacker = emu.deliver(subject="from 2099", date=FUTURE)["id"]
        await until(lambda: attacker in child.done, "the 2099 message handled")
        normal += [emu.deliver(subject=f"m{i}", date=clock.tick())["id"] for i in range(15, 30)]
        await until(lambda: len(child.started) >= 21, "five of the later messages started")
        await child.kill()
        first_run = len(child.started)
        normal += [emu.deliver(subject=f"n{i}", date=clock.tick())["id"] for i in range(10)]
        await child.start()
        everything = {*normal, attacker}
        await until(lambda: everything <= set(child.done), "every message done")
        await more_sweeps(emu, 3)  # and nothing comes again
    finally:
        await child.kill()
    started = child.started
    assert len(started) - len(set(started)) <= 1  # at most the one in hand at the kill
    assert set(started) == everything
    assert [i for i in started[first_run:] if i in started[: first_run - 1]] == []
    in_order = [i for i in started if i != attacker]
    assert sorted(set(in_order)) == normal and in_order == sorted(in_order)


async def test_back_dated_arrivals_are_yielded_by_the_sweep_and_too_old_ones_never(
    mail_emulator: MailEmulator,
) -> None:
    emu = mail_emulator
    clock = on_clock(emu)
    async with client(emu) as mail:
        consumer = Consumer(mail.messages.watch(1, poll_interval=POLL, sweep_interval=0.1))
        await until(lambda: list_requests(emu) >= 2, "the start")
        first = emu.deliver(subject="on time", date=clock.tick())["id"]
        await consumer.wait_for(1)
        hour = emu.deliver(subject="an hour late", date=clock.now - timedelta(hours=1))["id"]
        days = emu.deliver(subject="two days late", date=clock.now - timedelta(days=2))["id"]
        lost = emu.deliver(subject="too late", date=clock.now - LOOKBACK - timedelta(hours=1))
        last = emu.deliver(subject="on time too", date=clock.tick())["id"]
        await consumer.wait_for(4)
        await more_sweeps(emu, 3)  # the one past lookback does not come
        await consumer.stop()
    assert consumer.ids[0] == first and sorted(consumer.ids[1:]) == sorted([hour, days, last])
    assert lost["id"] not in consumer.ids
    regular = [r for r in emu.requests if r.path == "/mail/messages" and "dateTo" in r.query]
    earliest = min(datetime.fromisoformat(r.query["dateFrom"]) for r in regular)
    assert earliest > clock.now - timedelta(hours=1)  # only a sweep could reach them


async def test_a_wider_lookback_sees_older_mail(mail_emulator: MailEmulator) -> None:
    emu = mail_emulator
    clock = on_clock(emu)
    async with client(emu) as mail:
        watcher = mail.messages.watch(
            1, poll_interval=POLL, sweep_interval=0.1, lookback=LOOKBACK.total_seconds() * 2
        )
        consumer = Consumer(watcher)
        await until(lambda: list_requests(emu) >= 2, "the start")
        old = emu.deliver(subject="four days late", date=clock.now - timedelta(days=4))["id"]
        await consumer.wait_for(1)
        await consumer.stop()
    assert consumer.ids == [old]


async def test_a_thousand_messages_in_one_second_across_a_restart(
    mail_emulator_factory: Callable[..., MailEmulator],
) -> None:
    emu = mail_emulator_factory(messages=0)
    on_clock(emu)  # frozen: every message is dated the same second
    checkpoint = MemoryCheckpoint()
    got: list[int] = []
    async with client(emu) as mail:
        watcher = mail.messages.watch(1, poll_interval=POLL, checkpoint=checkpoint)
        consumer = Consumer(watcher)
        await until(lambda: bool(checkpoint.saved), "the start")
        delivered = [emu.deliver(subject=f"m{i}")["id"] for i in range(600)]
        await consumer.wait_for(250)
        watcher.stop()  # ends at the next __anext__, the message in hand committed
        async with asyncio.timeout(30):
            await consumer.task
        got += consumer.ids
        delivered += [emu.deliver(subject=f"n{i}")["id"] for i in range(400)]
        restarted = Consumer(mail.messages.watch(1, poll_interval=POLL, checkpoint=checkpoint))
        await restarted.wait_for(1000 - len(got))
        await more_polls(emu, 3)
        await restarted.stop()
        got += restarted.ids
    assert sorted(got) == delivered and len(got) == len(set(got)) == 1000
    assert got == sorted(got)  # one date: by id


def spread(emu: MailEmulator, count: int, *, date: datetime, run: int) -> list[int]:
    """``count`` messages of mailbox 1 dated ``date``, in runs of ``run`` consecutive ids."""
    ids: list[int] = []
    while len(ids) < count:
        for _ in range(min(run, count - len(ids))):
            ids.append(emu.state.add_message(subject="x", date=date)["id"])
        emu.state.add_message(mailbox_id=2, subject="between", date=date)
    return ids


async def test_ten_thousand_future_dated_messages_stay_within_the_bounds(
    mail_emulator_factory: Callable[..., MailEmulator], caplog: pytest.LogCaptureFixture
) -> None:
    emu = mail_emulator_factory(messages=0)
    clock = on_clock(emu)
    caplog.set_level(logging.WARNING, logger="bitrix_mail_async.watch")
    # Every id alone between two of another mailbox: ranges cannot merge them.
    attack = spread(emu, 10_000, date=FUTURE, run=1)
    checkpoint = MemoryCheckpoint()
    since = NOW - timedelta(hours=1)
    async with client(emu) as mail:
        watcher = mail.messages.watch(
            1, poll_interval=POLL, since=since, checkpoint=checkpoint, sweep_interval=3600
        )
        consumer = Consumer(watcher)
        await consumer.wait_for(1000)
        await more_polls(emu, 3)
        assert len(consumer.got) == 1000  # then the rest is held back
        normal = emu.deliver(subject="still seen", date=clock.tick())["id"]
        await consumer.wait_for(1001)
        await consumer.stop()
    assert consumer.ids == [*attack[:1000], normal]
    assert "9000 future-dated messages held back" in caplog.text
    biggest = max(len(text) for text in checkpoint.saved)
    assert biggest < 20_000  # the stated bound: 1,000 ranges of future ids, ~15 KB
    assert len(json.loads(checkpoint.saved[-1])["future"]) == 3 * 1000


async def test_future_dated_mail_in_a_run_is_one_range(
    mail_emulator_factory: Callable[..., MailEmulator],
) -> None:
    emu = mail_emulator_factory(messages=0)
    on_clock(emu)
    attack = spread(emu, 10_000, date=FUTURE, run=10_000)
    checkpoint = MemoryCheckpoint()
    async with client(emu) as mail:
        watcher = mail.messages.watch(
            1, since=NOW - timedelta(hours=1), checkpoint=checkpoint, sweep_interval=3600
        )
        got = []
        async for msg in watcher:
            got.append(msg.id)
            if len(got) == len(attack):
                await watcher.commit()
                break
    assert got == attack
    assert max(len(text) for text in checkpoint.saved) < 1000


async def test_ten_thousand_handled_in_runs_checkpoint_under_10_kb(
    mail_emulator_factory: Callable[..., MailEmulator],
) -> None:
    emu = mail_emulator_factory(messages=0)
    on_clock(emu)
    mail_ids = spread(emu, 10_000, date=NOW - timedelta(hours=2), run=50)
    checkpoint = MemoryCheckpoint()
    async with client(emu) as mail:
        watcher = mail.messages.watch(
            1, since=NOW - timedelta(hours=3), checkpoint=checkpoint, sweep_interval=3600
        )
        got = []
        async for msg in watcher:
            got.append(msg.id)
            if len(got) == len(mail_ids):
                await watcher.commit()
                break
    assert got == mail_ids
    saved = checkpoint.saved[-1]
    assert len(handled_ids(json.loads(saved))) == 200  # 200 runs of 50
    assert max(len(text) for text in checkpoint.saved) < 10_000
