"""Steering a watcher and trusting its inputs: commit()/stop(), the gateway's Date header,
a 400 on the first poll, old and corrupt checkpoints, bad options, the id ranges.

Against the emulator (its clock set by the test) or small aiohttp servers on loopback whose
answers the test writes; waits are on counts under a hang guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bitrix_mail_async import FileCheckpoint, MailClient, RetryPolicy, errors
from bitrix_mail_async.resources._idranges import IdRanges
from bitrix_mail_async.testing import MailEmulator

from .test_watch import (
    HANG_GUARD,
    POLL,
    Consumer,
    MemoryCheckpoint,
    client,
    handled_ids,
    list_requests,
    more_polls,
    until,
)
from .test_watch_guarantee import FUTURE, NOW, on_clock

# ----------------------------------------------------------------- commit() and stop()


@pytest.mark.skipif(sys.platform == "win32", reason="add_signal_handler is POSIX")
async def test_stop_from_a_signal_handler_ends_a_waiting_watch_at_once(
    mail_emulator: MailEmulator,
) -> None:
    emu = mail_emulator
    loop = asyncio.get_running_loop()
    async with client(emu) as mail:
        watcher = mail.messages.watch(1, poll_interval=3600)
        loop.add_signal_handler(signal.SIGUSR1, watcher.stop)
        try:
            consumer = Consumer(watcher)
            await until(lambda: list_requests(emu) >= 1, "the first poll")
            await asyncio.sleep(0.05)  # now waiting an hour for the next poll
            os.kill(os.getpid(), signal.SIGUSR1)
            async with asyncio.timeout(HANG_GUARD):
                await consumer.task  # ends, without an error, long before the hour
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)
    assert consumer.got == []
    with pytest.raises(StopAsyncIteration):
        await anext(watcher)  # and stays ended


async def test_stop_while_handling_commits_that_message_and_ends(
    mail_emulator: MailEmulator,
) -> None:
    emu = mail_emulator
    checkpoint = MemoryCheckpoint()
    async with client(emu) as mail:
        watcher = mail.messages.watch(1, poll_interval=POLL, checkpoint=checkpoint)
        consumer = Consumer(watcher)
        await until(lambda: bool(checkpoint.saved), "the start")
        await consumer.stop()
        delivered = [emu.deliver(subject=f"m{i}")["id"] for i in range(4)]
        got = []
        watcher = mail.messages.watch(1, poll_interval=POLL, checkpoint=checkpoint)
        async for msg in watcher:
            got.append(msg.id)
            if len(got) == 2:
                watcher.stop()  # e.g. SIGTERM arrived while this one was handled
        assert got == delivered[:2]
        assert delivered[1] in handled_ids(json.loads(checkpoint.saved[-1]))
        rest = []
        async for msg in mail.messages.watch(1, poll_interval=POLL, checkpoint=checkpoint):
            rest.append(msg.id)
            if len(rest) == 2:
                break
    assert rest == delivered[2:]  # none repeated


async def test_commit_then_break_repeats_nothing(mail_emulator: MailEmulator) -> None:
    emu = mail_emulator
    checkpoint = MemoryCheckpoint()
    async with client(emu) as mail:
        consumer = Consumer(mail.messages.watch(1, poll_interval=POLL, checkpoint=checkpoint))
        await until(lambda: bool(checkpoint.saved), "the start")
        await consumer.stop()
        delivered = [emu.deliver(subject=f"m{i}")["id"] for i in range(3)]
        got = []
        for _ in range(2):
            watcher = mail.messages.watch(1, poll_interval=POLL, checkpoint=checkpoint)
            async for msg in watcher:
                got.append(msg.id)
                await watcher.commit()
                await watcher.commit()  # a second commit has nothing left to do
                break
    assert got == delivered[:2]


async def test_one_watcher_iterated_from_two_tasks_is_refused(
    mail_emulator: MailEmulator,
) -> None:
    async with client(mail_emulator) as mail:
        watcher = mail.messages.watch(1, poll_interval=3600)
        first = asyncio.ensure_future(anext(watcher))
        await until(lambda: list_requests(mail_emulator) >= 1, "the first poll")
        with pytest.raises(errors.InvalidArgumentError, match="one task"):
            await anext(watcher)
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        watcher.stop()
        with pytest.raises(StopAsyncIteration):
            await anext(watcher)


# ----------------------------------------------------------------- a scripted gateway

#: request -> (status, envelope, extra headers)
Script = Callable[[web.Request], tuple[int, dict[str, Any], dict[str, str]]]


class Served:
    """An aiohttp server on loopback answering from a script (and its request log)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.seen: list[web.Request] = []
        self.base_url = ""

    async def __aenter__(self) -> Served:
        async def handle(request: web.Request) -> web.Response:
            self.seen.append(request)
            status, body, headers = self.script(request)
            return web.json_response(body, status=status, headers=headers)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    def client(self) -> MailClient:
        retry = RetryPolicy(max_attempts=1, rate_limit_attempts=1, backoff_base=0.001)
        key = "vibe_api_watch_key"
        return MailClient(key, base_url=self.base_url, rate_limit=None, retry=retry)


def ok(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"success": True, "data": {"items": items}, "meta": {"hasMore": False}}


def refused(code: str, status: int) -> tuple[int, dict[str, Any], dict[str, str]]:
    return status, {"success": False, "error": {"code": code, "message": f"refused: {code}"}}, {}


def item(msg_id: int, date: datetime) -> dict[str, Any]:
    return {"id": msg_id, "mailboxId": 1, "subject": f"m{msg_id}", "date": date.isoformat()}


async def test_a_400_on_the_first_poll_ends_the_watch() -> None:
    def script(_request: web.Request) -> tuple[int, dict[str, Any], dict[str, str]]:
        return refused("INVALID_PARAMS", 400)

    async with Served(script) as server, server.client() as mail:
        watcher = mail.messages.watch(1, folder="No such folder", poll_interval=POLL)
        with pytest.raises(errors.InvalidParamsError, match="INVALID_PARAMS"):
            await asyncio.wait_for(anext(watcher), HANG_GUARD)
        with pytest.raises(StopAsyncIteration):
            await anext(watcher)
    assert len(server.seen) == 1


async def test_later_400s_and_422s_are_waited_out(caplog: pytest.LogCaptureFixture) -> None:
    # Dated by this machine's clock, as the server's Date header (aiohttp's) is.
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    answers = [
        (200, ok([item(1, since)]), {}),
        refused("INVALID_PARAMS", 400),
        refused("BITRIX_ERROR", 422),
        (200, ok([item(1, since), item(2, since)]), {}),
    ]

    def script(_request: web.Request) -> tuple[int, dict[str, Any], dict[str, str]]:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    caplog.set_level(logging.WARNING, logger="bitrix_mail_async.watch")
    async with Served(script) as server, server.client() as mail:
        watcher = mail.messages.watch(1, poll_interval=0.01, since=since)
        got = [(await asyncio.wait_for(anext(watcher), HANG_GUARD)).id for _ in range(2)]
        await watcher.aclose()
    assert got == [1, 2]
    assert caplog.text.count("poll failed") == 2


# ----------------------------------------------------------------- the gateway's "now"

GATEWAY_NOW = datetime(2030, 1, 1, tzinfo=UTC)  # ahead of this machine's clock


@pytest.mark.parametrize(
    "header",
    [
        "Tue, 01 Jan 2030 00:00:00 GMT",  # IMF-fixdate
        "Tuesday, 01-Jan-30 00:00:00 GMT",  # RFC 850
        "Tue Jan  1 00:00:00 2030",  # asctime
        None,  # garbage: this machine's clock instead
    ],
)
async def test_the_mark_is_capped_at_the_gateway_date_in_every_form(header: str | None) -> None:
    since = GATEWAY_NOW - timedelta(hours=1)
    recent = item(1, GATEWAY_NOW - timedelta(minutes=1))
    attacker = item(2, FUTURE)
    date = header or "yesterday at noon"

    def script(_request: web.Request) -> tuple[int, dict[str, Any], dict[str, str]]:
        return 200, ok([recent, attacker]), {"Date": date}

    checkpoint = MemoryCheckpoint()
    async with Served(script) as server, server.client() as mail:
        watcher = mail.messages.watch(1, poll_interval=POLL, since=since, checkpoint=checkpoint)
        got = [(await asyncio.wait_for(anext(watcher), HANG_GUARD)).id for _ in range(2)]
        await watcher.commit()
    assert got == [1, 2]
    saved = json.loads(checkpoint.saved[-1])
    mark = datetime.fromisoformat(saved["mark"])
    if header is None:
        # By this machine's clock (before 2030) both are future-dated: the mark stays at or
        # below that clock, under since.
        assert mark < since
    else:
        assert mark == GATEWAY_NOW - timedelta(minutes=1)
    assert saved["future"]  # 2099 is remembered, not the mark


# ----------------------------------------------------------------- checkpoints


def version_1(high_water: datetime, seen: list[tuple[int, datetime]], floor: datetime) -> str:
    return json.dumps(
        {
            "version": 1,
            "mailbox_id": 1,
            "folder": None,
            "is_seen": None,
            "floor": floor.isoformat(),
            "high_water": high_water.isoformat(),
            "seen": [[i, d.isoformat()] for i, d in seen],
        }
    )


async def test_a_version_1_checkpoint_is_migrated(
    mail_emulator_factory: Callable[..., MailEmulator], tmp_path: Path
) -> None:
    emu = mail_emulator_factory(messages=0)
    on_clock(emu)
    dates = [NOW - timedelta(minutes=m) for m in (30, 20, 10)]
    old = [emu.deliver(subject=f"old{i}", date=d)["id"] for i, d in enumerate(dates)]
    path = tmp_path / "state.json"
    seen = [(old[1], dates[1]), (old[2], dates[2])]  # v1 kept ids within its overlap
    path.write_text(version_1(dates[2], seen, floor=NOW - timedelta(hours=1)))
    new = emu.deliver(subject="new", date=NOW - timedelta(minutes=5))["id"]
    async with client(emu) as mail:
        consumer = Consumer(mail.messages.watch(1, poll_interval=POLL, checkpoint=path))
        await consumer.wait_for(1)
        await more_polls(emu, 3)
        await consumer.stop()
    assert consumer.ids == [new]  # nothing handled under version 1 comes again
    saved = json.loads(path.read_text())
    assert saved["version"] == 2 and {old[1], old[2]} <= set_of(handled_ids(saved))


def set_of(ranges: IdRanges) -> set[int]:
    return {i for lo, hi, _ in ranges for i in range(lo, hi + 1)}


async def test_a_version_1_checkpoint_blinded_by_2099_resumes_at_now(
    mail_emulator_factory: Callable[..., MailEmulator],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emu = mail_emulator_factory(messages=0)
    real_now = datetime.now(UTC).replace(microsecond=0)
    clock = on_clock(emu, real_now)  # a version 1 state knows only this machine's clock
    attacker = emu.deliver(subject="from 2099", date=FUTURE)["id"]
    path = tmp_path / "state.json"
    path.write_text(version_1(FUTURE, [(attacker, FUTURE)], floor=real_now - timedelta(days=1)))
    caplog.set_level(logging.WARNING, logger="bitrix_mail_async.watch")
    async with client(emu) as mail:
        consumer = Consumer(mail.messages.watch(1, poll_interval=POLL, checkpoint=path))
        await until(lambda: list_requests(emu) >= 1, "the first poll")
        later = emu.deliver(subject="after the attack", date=clock.tick(5))["id"]
        await consumer.wait_for(1)
        await more_polls(emu, 3)
        await consumer.stop()
    assert consumer.ids == [later]  # the 2099 one is not repeated, and no longer blinds
    assert "is in the future" in caplog.text


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00\x81 garbage \xc3", "not UTF-8"),
        (
            b'{"version": 1, "mailbox_id": 1, "folder": null, "is_seen": null, "floor": '
            b'"2026-01-01T00:00:00+00:00", "high_water": "2026-01-01T00:00:00+00:00", '
            b'"seen": [[1e999, "2026-01-01T00:00:00+00:00"]]}',
            "fractional",
        ),
        (DEEP.encode(), "nested too deep"),
        (b'{"version": NaN}', "NaN"),
        (b'{"version": 1' + b"1" * 5000 + b"}", "digits"),
        (b" " * (16 * 1024 * 1024 + 1), "over 16777216 bytes"),
        (
            b'{"version": 2, "mailbox_id": 1, "folder": null, "is_seen": null, "floor": '
            b'"0001-01-01T00:00:00+00:00", "mark": "0001-01-01T00:00:00+00:00", '
            b'"sweep_from": "0001-01-01T00:00:00+00:00", "handled": [], "future": []}',
            "out of range",
        ),
        (
            b'{"version": 2, "mailbox_id": 1, "folder": null, "is_seen": null, "floor": '
            b'"2026-01-01T00:00:00+00:00", "mark": "2026-01-01T00:00:00+00:00", '
            b'"sweep_from": "2026-01-01T00:00:00+00:00", "handled": [5, 0, 1, 1, 0, 1], '
            b'"future": []}',
            "sorted, disjoint",
        ),
    ],
    ids=["binary", "1e999", "deep", "nan", "huge-int", "huge-file", "year-1", "overlapping"],
)
async def test_a_corrupt_checkpoint_file_is_an_invalid_argument(
    mail: MailClient,
    mail_emulator: MailEmulator,
    tmp_path: Path,
    content: bytes,
    message: str,
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    watcher = mail.messages.watch(1, checkpoint=path)
    with pytest.raises(errors.InvalidArgumentError, match=message) as caught:
        await anext(watcher)
    assert len(str(caught.value)) < 300  # bounded, whatever the file holds
    assert len(mail_emulator.requests) == 0
    assert path.read_bytes() == content  # left as it was


@pytest.mark.parametrize(
    "state",
    [
        {"handled": [1.5, 0, 0]},
        {"handled": [float("inf"), 0, 0]},
        {"handled": [True, 0, 0]},
        {"future": list(range(3 * 1001))},
        {"mark": 12},
        {"version": 3},
    ],
)
async def test_a_corrupt_state_from_any_checkpoint_is_an_invalid_argument(
    mail: MailClient, mail_emulator: MailEmulator, state: dict[str, Any]
) -> None:
    class Stored(MemoryCheckpoint):
        async def load(self) -> dict[str, Any] | None:
            when = "2026-01-01T00:00:00+00:00"
            valid = {"version": 2, "mailbox_id": 1, "folder": None, "is_seen": None}
            valid |= {"floor": when, "mark": when, "sweep_from": when}
            return valid | {"handled": [], "future": []} | state

    with pytest.raises(errors.InvalidArgumentError, match="unreadable"):
        await anext(mail.messages.watch(1, checkpoint=Stored()))
    assert len(mail_emulator.requests) == 0


async def test_file_checkpoint_round_trips_through_a_restart(
    mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    emu = mail_emulator
    path = tmp_path / "state.json"
    async with client(emu) as mail:
        consumer = Consumer(mail.messages.watch(1, poll_interval=POLL, checkpoint=path))
        await until(path.exists, "the start")
        await consumer.stop()
        saved = await FileCheckpoint(path).load()
        assert saved is not None and saved["version"] == 2


async def test_a_checkpoint_path_that_cannot_be_read_or_written_is_an_invalid_argument(
    mail: MailClient, mail_emulator: MailEmulator, tmp_path: Path
) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="cannot be read"):
        await anext(mail.messages.watch(1, checkpoint=tmp_path))  # a directory
    assert len(mail_emulator.requests) == 0
    nowhere = tmp_path / "no such directory" / "state.json"
    with pytest.raises(errors.InvalidArgumentError, match="cannot be written"):
        await anext(mail.messages.watch(1, checkpoint=nowhere, since=NOW))


# ----------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"overlap": 1e300}, "overlap"),
        ({"lookback": 60, "overlap": 600}, "at least overlap"),
        ({"lookback": 400 * 86_400}, "lookback"),
        ({"lookback": float("nan")}, "lookback"),
        ({"sweep_interval": 0}, "sweep_interval"),
        ({"sweep_interval": 2 * 86_400}, "sweep_interval"),
        ({"poll_interval": 1e300}, "poll_interval"),
        ({"since": datetime(1, 1, 1, tzinfo=UTC)}, "since"),
    ],
)
async def test_bad_watch_options_are_refused_before_anything_is_sent(
    mail: MailClient, mail_emulator: MailEmulator, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(errors.InvalidArgumentError, match=message):
        mail.messages.watch(1, **kwargs)
    assert len(mail_emulator.requests) == 0


# ----------------------------------------------------------------- id ranges


def test_id_ranges_behave_as_a_set_and_round_trip() -> None:
    rng = random.Random(22)
    base = 1_750_000_000
    for _ in range(50):
        ranges, model = IdRanges(), set[int]()
        for _ in range(rng.randrange(1, 200)):
            lo = rng.randrange(1, 300)
            hi = lo + rng.choice([0, 0, 0, rng.randrange(0, 20)])
            ranges.add_range(lo, hi, rng.randrange(1_700_000_000, 1_800_000_000))
            model.update(range(lo, hi + 1))
        assert set_of(ranges) == model and ranges.id_count() == len(model)
        assert all(((i in ranges) == (i in model)) for i in range(0, 330))
        spans = list(ranges)
        assert all(spans[k][1] + 1 < spans[k + 1][0] for k in range(len(spans) - 1))
        again = IdRanges.from_json(ranges.to_json(base), base, limit=10**6)
        assert set_of(again) == model
        # Dates are kept to the minute, rounded up: never forgotten early.
        assert all(b[2] >= a[2] > b[2] - 60 for a, b in zip(spans, again, strict=True))
        dropped = ranges.remove_where(base.__gt__)
        assert all(newest < base for _, _, newest in dropped)
        assert all(newest >= base for _, _, newest in ranges)


def test_ten_thousand_ids_in_runs_need_few_bytes() -> None:
    ranges = IdRanges()
    msg_id = 1000
    for _ in range(200):
        for _ in range(50):
            ranges.add(msg_id, 1_750_000_000)
            msg_id += 1
        msg_id += 3  # other mailboxes' ids between the runs
    assert len(ranges) == 200 and ranges.id_count() == 10_000
    assert (
        len(json.dumps(ranges.to_json(1_750_000_000 - 3 * 86_400), separators=(",", ":"))) < 2_500
    )
