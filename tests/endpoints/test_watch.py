"""messages.watch over loopback: every arrival once, in order, through restarts and failures.

Time is never measured: tests wait for counts (messages handled, requests the emulator saw),
each wait under a generous hang guard, and poll intervals are short.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import random
import signal
import sys
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bitrix_mail_async import (
    FileCheckpoint,
    MailClient,
    MessageSummary,
    RateLimit,
    RetryPolicy,
    errors,
)
from bitrix_mail_async.resources._idranges import IdRanges
from bitrix_mail_async.testing import MailEmulator
from bitrix_mail_async.testing.seed import SEED_NEWEST

ROOT = Path(__file__).resolve().parents[2]
POLL = 0.02
HANG_GUARD = 30.0


def client(emu: MailEmulator, **options: Any) -> MailClient:
    options.setdefault("rate_limit", None)
    options.setdefault("retry", RetryPolicy(backoff_base=0.01, backoff_cap=0.05))
    return MailClient(emu.api_key, base_url=emu.base_url, **options)


class MemoryCheckpoint:
    """The checkpoint protocol in memory; keeps every state saved, as JSON text."""

    def __init__(self) -> None:
        self.saved: list[str] = []

    async def load(self) -> dict[str, Any] | None:
        return json.loads(self.saved[-1]) if self.saved else None

    async def save(self, state: dict[str, Any]) -> None:
        self.saved.append(json.dumps(state))  # must be plain JSON


def handled_ids(saved: dict[str, Any]) -> IdRanges:
    """The handled ids of a checkpoint's state."""
    base = int(datetime.fromisoformat(saved["sweep_from"]).timestamp())
    return IdRanges.from_json(saved["handled"], base, limit=10**6)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (yielding to the loop) until ``condition()`` holds; fail after the hang guard."""
    try:
        async with asyncio.timeout(HANG_GUARD):
            while True:
                if condition():
                    return
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


def list_requests(emu: MailEmulator) -> int:
    return sum(1 for r in emu.requests if r.path == "/mail/messages" and r.method == "GET")


async def more_polls(emu: MailEmulator, count: int) -> None:
    polls = list_requests(emu)
    await until(lambda: list_requests(emu) >= polls + count, f"{count} more polls")


class Consumer:
    """Runs ``async for`` over a watcher in a task and records what it got."""

    def __init__(self, watcher: AsyncIterator[MessageSummary]) -> None:
        self.watcher = watcher
        self.got: list[MessageSummary] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for msg in self.watcher:
            self.got.append(msg)

    @property
    def ids(self) -> list[int]:
        return [m.id for m in self.got]

    async def wait_for(self, count: int) -> None:
        await until(lambda: len(self.got) >= count or self.task.done(), f"{count} messages")
        if self.task.done():
            self.task.result()  # surface the watcher's error

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.mark.parametrize("order", ["newest", "oldest", "scrambled"])
async def test_watch_sees_arrivals_exactly_once_in_order(
    mail_emulator: MailEmulator, order: str
) -> None:
    emu = mail_emulator
    emu.state.options.list_order = order  # type: ignore[assignment]
    async with client(emu) as mail:
        consumer = Consumer(mail.messages.watch(1, poll_interval=POLL))
        await until(lambda: list_requests(emu) >= 1, "the first poll")
        first = [emu.deliver(subject=f"first {i}")["id"] for i in range(3)]
        await consumer.wait_for(3)
        later = [emu.deliver(subject=f"later {i}")["id"] for i in range(4)]
        emu.deliver(mailbox_id=2, subject="another mailbox")
        await consumer.wait_for(7)
        await more_polls(emu, 5)  # and nothing more comes
        await consumer.stop()
    assert consumer.ids == first + later  # the 60 seeded messages were there before: not new
    assert all(m.mailbox_id == 1 for m in consumer.got)


async def test_watch_yields_by_date_whatever_the_ids_and_pages(
    mail_emulator_factory: Callable[..., MailEmulator],
) -> None:
    emu = mail_emulator_factory(messages=0)
    emu.state.options.list_order = "scrambled"
    start = SEED_NEWEST + timedelta(days=1)
    offsets = list(range(450))  # more than two pages of 200
    random.Random(7).shuffle(offsets)
    for minute in offsets:  # ids rise in a different order than the dates
        emu.state.add_message(subject=f"m{minute}", date=start + timedelta(minutes=minute))
    async with client(emu) as mail:
        consumer = Consumer(mail.messages.watch(1, poll_interval=POLL, since=start))
        await consumer.wait_for(450)
        await more_polls(emu, 3)  # and nothing more comes
        await consumer.stop()
    assert [m.subject for m in consumer.got] == [f"m{minute}" for minute in range(450)]
    first_poll = [r for r in emu.requests if r.query.get("offset") is not None][:3]
    assert [r.query["offset"] for r in first_poll] == ["0", "200", "400"]


async def test_idle_watch_costs_one_request_per_poll_interval(mail_emulator: MailEmulator) -> None:
    emu = mail_emulator
    async with client(emu, rate_limit=RateLimit(per_second=50, burst=5)) as mail:
        consumer = Consumer(mail.messages.watch(1, poll_interval=3600))
        await until(lambda: list_requests(emu) >= 1, "the first poll")
        for _ in range(50):
            await asyncio.sleep(0)
        await asyncio.sleep(0.2)
        assert len(emu.requests) == 1  # then nothing until the hour is over
        assert mail.stats.requests == 1  # it went through the client's limiter and pipeline
        await consumer.stop()
    async with client(emu) as mail:
        emu.requests.clear()
        consumer = Consumer(mail.messages.watch(1, poll_interval=POLL))
        await until(lambda: len(emu.requests) >= 10, "ten polls")
        await consumer.stop()
    queries = [r.query for r in emu.requests]
    assert {(q["offset"], q["limit"]) for q in queries} == {("0", "200")}  # one page each
    # The start is a sweep (no dateTo), reaching back ``lookback``; then regular polls, whose
    # window did not move: nothing new.
    assert "dateTo" not in queries[0] and all("dateTo" in q for q in queries[1:])
    assert len({q["dateFrom"] for q in queries[1:]}) == 1


async def test_late_arrival_within_the_overlap_is_seen_by_regular_polls(
    mail_emulator: MailEmulator,
) -> None:
    emu = mail_emulator
    start = SEED_NEWEST + timedelta(days=1)
    emu.state.wall_clock = lambda: start + timedelta(hours=1, minutes=1)  # the gateway's "now"
    async with client(emu) as mail:
        watcher = mail.messages.watch(
            1, poll_interval=POLL, since=start, overlap=600, sweep_interval=3600
        )
        consumer = Consumer(watcher)
        a = emu.state.add_message(subject="A", date=start + timedelta(hours=1))["id"]
        await consumer.wait_for(1)
        b = emu.state.add_message(subject="B", date=start + timedelta(minutes=55))["id"]
        # Dated more than the overlap behind the newest message handled: left to the sweep,
        # which is an hour away here (tests/endpoints/test_watch_guarantee.py has it come).
        emu.state.add_message(subject="C", date=start + timedelta(minutes=45))
        d = emu.state.add_message(subject="D", date=start + timedelta(hours=1))["id"]
        await consumer.wait_for(3)
        await more_polls(emu, 3)  # and nothing more comes
        await consumer.stop()
    assert consumer.ids == [a, b, d]


async def test_memory_and_checkpoint_stay_small_as_ranges(
    mail_emulator_factory: Callable[..., MailEmulator],
) -> None:
    emu = mail_emulator_factory(messages=0)
    start = SEED_NEWEST + timedelta(days=1)
    emu.state.wall_clock = lambda: start + timedelta(minutes=301)
    for minute in range(300):
        emu.state.add_message(subject=f"m{minute}", date=start + timedelta(minutes=minute))
    checkpoint = MemoryCheckpoint()
    async with client(emu) as mail:
        watcher = mail.messages.watch(
            1, poll_interval=POLL, since=start, overlap=150, checkpoint=checkpoint
        )
        consumer = Consumer(watcher)
        await consumer.wait_for(300)
        await until(lambda: len(checkpoint.saved) >= 300, "the 300th save")
        await until(lambda: len(emu.requests) >= 4, "two polls after the first")
        await consumer.stop()
    # The ids handled are one run: one range of three integers, however many messages.
    assert max(len(json.loads(text)["handled"]) for text in checkpoint.saved) == 3
    assert max(len(text) for text in checkpoint.saved) < 400
    later = emu.requests[2:]  # the first poll read 300 messages in two pages
    assert later and all(r.query["offset"] == "0" for r in later)  # then one page each


async def test_restart_after_cancel_misses_none_repeats_at_most_one(
    mail_emulator: MailEmulator,
) -> None:
    emu = mail_emulator
    checkpoint = MemoryCheckpoint()
    handled: list[int] = []
    busy = asyncio.Event()

    async def bot(stop_after: int | None) -> None:
        async for msg in mail.messages.watch(1, poll_interval=POLL, checkpoint=checkpoint):
            handled.append(msg.id)
            if len(handled) == stop_after:
                busy.set()
                await asyncio.Event().wait()  # killed while handling this one

    async with client(emu) as mail:
        task = asyncio.create_task(bot(stop_after=4))
        await until(lambda: bool(checkpoint.saved), "the start's checkpoint")
        delivered = [emu.deliver(subject=f"m{i}")["id"] for i in range(10)]
        async with asyncio.timeout(HANG_GUARD):
            await busy.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        delivered += [emu.deliver(subject=f"n{i}")["id"] for i in range(3)]
        task = asyncio.create_task(bot(stop_after=None))
        await until(lambda: set(delivered) <= set(handled), "every message")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert handled == delivered[:4] + delivered[3:]  # the 4th, being handled, came again


async def test_file_checkpoint_survives_break_and_restart(
    mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    emu = mail_emulator
    path = tmp_path / "state.json"
    async with client(emu) as mail:
        consumer = Consumer(mail.messages.watch(1, poll_interval=POLL, checkpoint=path))
        await until(path.exists, "the start's checkpoint")
        await consumer.stop()
        delivered = [emu.deliver(subject=f"m{i}")["id"] for i in range(5)]
        got: list[int] = []
        watcher = mail.messages.watch(1, poll_interval=POLL, checkpoint=str(path))
        async with contextlib.aclosing(watcher):
            async for msg in watcher:
                got.append(msg.id)
                if len(got) == 2:
                    break
        saved = json.loads(path.read_text())
        handled = handled_ids(saved)
        assert saved["mailbox_id"] == 1 and delivered[0] in handled
        assert delivered[1] not in handled  # being handled at the break: not committed
        watcher = mail.messages.watch(1, poll_interval=POLL, checkpoint=FileCheckpoint(path))
        async with contextlib.aclosing(watcher):
            async for msg in watcher:
                got.append(msg.id)
                if len(got) == 6:
                    break
    assert got == delivered[:2] + delivered[1:]
    assert os.listdir(tmp_path) == ["state.json"]  # no temporary file left behind


CHILD = """
import asyncio, sys
from bitrix_mail_async import MailClient, RetryPolicy

async def main(base_url, key, path):
    retry = RetryPolicy(backoff_base=0.01, backoff_cap=0.05)
    async with MailClient(key, base_url=base_url, rate_limit=None, retry=retry) as mail:
        async for msg in mail.messages.watch(1, poll_interval=0.02, checkpoint=path):
            print("start", msg.id, flush=True)
            await asyncio.sleep(0.03)  # handling: the kill most likely lands here
            print("done", msg.id, flush=True)

asyncio.run(main(*sys.argv[1:4]))
"""


class Child:
    """The watcher in a subprocess; it prints when it starts and when it is done handling."""

    def __init__(self, emu: MailEmulator, path: Path) -> None:
        self.emu, self.path = emu, path
        self.started: list[int] = []
        self.done: list[int] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        args = ["-c", CHILD, self.emu.base_url, self.emu.api_key, str(self.path)]
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, *args, stdout=asyncio.subprocess.PIPE, env=env
        )
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            what, msg_id = line.split()
            (self.started if what == b"start" else self.done).append(int(msg_id))

    async def kill(self, sig: int) -> None:
        assert self.proc is not None and self.reader is not None
        self.proc.send_signal(sig)
        await self.proc.wait()
        await self.reader


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
async def test_sigkill_mid_stream_and_restart_misses_none(
    mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    emu = mail_emulator
    path = tmp_path / "state.json"
    child = Child(emu, path)
    await child.start()
    try:
        await until(path.exists, "the child's first checkpoint")
        delivered = [emu.deliver(subject=f"m{i}")["id"] for i in range(30)]
        await until(lambda: len(child.started) >= 10, "ten messages started")
        await child.kill(signal.SIGKILL)
        first_run = len(child.started)
        delivered += [emu.deliver(subject=f"n{i}")["id"] for i in range(10)]
        await child.start()
        await until(lambda: set(delivered) <= set(child.done), "every message done")
    finally:
        await child.kill(signal.SIGKILL)
    started = child.started
    assert started[:first_run] == delivered[:first_run]
    repeats = len(started) - len(set(started))
    assert repeats <= 1  # at most the message being handled when the kill came
    assert started[first_run:] == delivered[first_run - repeats :]
    assert sorted(set(child.done)) == delivered  # none skipped


async def test_429_storms_502s_timeouts_and_an_outage_lose_nothing(
    mail_emulator: MailEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu = mail_emulator
    emu.set_rate_limit(per_second=20, burst=2, retry_after=0.05)
    emu.faults.error_rate = 0.3  # 502/503/504
    caplog.set_level(logging.WARNING, logger="bitrix_mail_async.watch")
    # One attempt per call: every failure reaches the watcher, not only the client's retries.
    retry = RetryPolicy(max_attempts=1, rate_limit_attempts=1, backoff_base=0.01)
    async with client(emu, retry=retry) as mail:
        watcher = mail.messages.watch(1, poll_interval=POLL, timeout=0.5)
        consumer = Consumer(watcher)
        await until(lambda: list_requests(emu) >= 3, "the first polls")
        delivered = [emu.deliver(subject=f"m{i}")["id"] for i in range(10)]
        await consumer.wait_for(10)
        emu.faults.error_rate = 1.0  # an outage: every answer a 5xx, then slow ones, dropped ones
        seen = len(emu.requests)
        await until(lambda: len(emu.requests) >= seen + 4, "polls during the outage")
        emu.faults.error_rate = 0.0
        emu.faults.schedule("slow:2", "drop_before", "drop_after", "html", "502")
        delivered += [emu.deliver(subject=f"n{i}")["id"] for i in range(10)]
        await consumer.wait_for(20)
        assert not consumer.task.done()
        await consumer.stop()
    assert consumer.ids == delivered
    assert emu.stats.faults > 5 and emu.stats.rate_limited > 0
    assert not emu.faults.pending
    assert "poll failed" in caplog.text and emu.api_key not in caplog.text


@pytest.mark.parametrize("case", ["unknown mailbox", "denied mailbox", "key removed"])
async def test_auth_permission_and_not_found_end_the_watch(
    mail_emulator: MailEmulator, case: str
) -> None:
    emu = mail_emulator
    mailbox = 1
    expected: type[errors.APIError] = errors.NotFoundError
    if case == "unknown mailbox":
        mailbox = 999
    elif case == "denied mailbox":
        emu.state.denied_mailboxes.add(1)
        expected = errors.PermissionDeniedError
    else:
        emu.remove_key(emu.api_key)
        expected = errors.AuthenticationError
    async with client(emu) as mail:
        watcher = mail.messages.watch(mailbox, poll_interval=POLL)
        with pytest.raises(expected):
            await asyncio.wait_for(anext(watcher), HANG_GUARD)
    assert len(emu.requests) == 1


async def test_closing_the_client_ends_the_watch(mail_emulator: MailEmulator) -> None:
    async with client(mail_emulator) as mail:
        consumer = Consumer(mail.messages.watch(1, poll_interval=POLL))
        await until(lambda: list_requests(mail_emulator) >= 2, "two polls")
    with pytest.raises(errors.MailError):
        async with asyncio.timeout(HANG_GUARD):
            await consumer.task


async def test_break_and_cancel_leave_nothing_running(mail_emulator: MailEmulator) -> None:
    emu = mail_emulator
    async with client(emu) as mail:
        since = SEED_NEWEST - timedelta(hours=1)
        async for _msg in mail.messages.watch(1, poll_interval=POLL, since=since):
            break
        consumer = Consumer(mail.messages.watch(1, poll_interval=POLL))
        await until(lambda: list_requests(emu) >= 4, "polls")
        await consumer.stop()
        gc.collect()
        for _ in range(20):
            await asyncio.sleep(0)
        assert asyncio.all_tasks() == {asyncio.current_task()}
        sent = len(emu.requests)
        await asyncio.sleep(0.1)  # five poll intervals: a leftover watcher would poll
        assert len(emu.requests) == sent
        assert mail._pipeline.concurrency.in_flight == 0


async def test_since_starts_at_that_date_with_the_messages_already_there(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    state = mail_emulator.state
    since = SEED_NEWEST - timedelta(hours=3)
    expected = sorted((m["date"], m["id"]) for m in state.messages.values() if m["mailboxId"] == 1)
    expected = [(d, i) for d, i in expected if d >= since]
    assert 0 < len(expected) < state.mailbox_count(1)
    got = []
    async for msg in mail.messages.watch(1, poll_interval=POLL, since=since.isoformat()):
        got.append((msg.date, msg.id))
        if len(got) == len(expected):
            break
    assert got == expected
    assert mail_emulator.requests[0].query["dateFrom"] == since.isoformat()


async def test_filters_reach_every_poll(mail: MailClient, mail_emulator: MailEmulator) -> None:
    emu = mail_emulator
    consumer = Consumer(mail.messages.watch(1, folder="INBOX", is_seen=False, poll_interval=POLL))
    await until(lambda: list_requests(emu) >= 1, "the first poll")
    emu.deliver(subject="read already", is_seen=True)
    emu.deliver(subject="in spam", folder="Spam")
    wanted = emu.deliver(subject="new")["id"]
    await consumer.wait_for(1)
    await more_polls(emu, 3)  # and nothing more comes
    await consumer.stop()
    assert consumer.ids == [wanted]
    assert {(r.query["folder"], r.query["isSeen"]) for r in emu.requests} == {("INBOX", "false")}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mailbox_id": 0}, "mailbox_id"),
        ({"mailbox_id": "1"}, "mailbox_id"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"poll_interval": float("nan")}, "poll_interval"),
        ({"overlap": -1}, "overlap"),
        ({"since": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-01-01T10:00:00"}, "offset"),
        ({"folder": "INBOX\r\nX: y"}, "folder"),
        ({"is_seen": "no"}, "is_seen"),
        ({"checkpoint": 42}, "checkpoint"),
        ({"timeout": -1}, "timeout"),
    ],
)
async def test_bad_arguments_are_refused_before_anything_is_sent(
    mail: MailClient, mail_emulator: MailEmulator, kwargs: dict[str, Any], message: str
) -> None:
    kwargs = {"mailbox_id": 1, **kwargs}
    with pytest.raises(errors.InvalidArgumentError, match=message):
        mail.messages.watch(**kwargs)
    assert len(mail_emulator.requests) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a watcher's JSON"),
        ("[1, 2]", "not a watcher's JSON"),
        ('{"version": 1, "mailbox_id": 2, "folder": null, "is_seen": null}', "another watch"),
        ('{"version": 1, "mailbox_id": 1, "folder": null, "is_seen": null}', "unreadable"),
        (
            '{"version": 1, "mailbox_id": 1, "folder": null, "is_seen": null, "floor": '
            '"2026-01-01T00:00:00", "high_water": "2026-01-01T00:00:00+00:00", "seen": []}',
            "no offset",
        ),
    ],
)
async def test_a_bad_checkpoint_is_refused_before_anything_is_sent(
    mail: MailClient, mail_emulator: MailEmulator, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(errors.InvalidArgumentError, match=message):
        async for _msg in mail.messages.watch(1, checkpoint=path):
            pass
    assert len(mail_emulator.requests) == 0
    assert path.read_text() == content  # left as it was
