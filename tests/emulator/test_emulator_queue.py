"""The portal queue over loopback: N calls at once, FIFO, and the 504 that applied nothing.

The emulator runs in the test's own loop so the test can hold the portal's slots itself: who
waits and who runs is then decided by the test, never by how fast the machine is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bitrix_mail_async.testing import DEFAULT_PORTAL, MailEmulator

TASK = "/mail/messages/1001/task"


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds, polling (a generous bound, not a timing)."""
    for _ in range(2_000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never held")


@pytest.fixture
async def emu():
    async with MailEmulator() as emulator:
        yield emulator


@pytest.fixture
def emu_api(make_api, emu):
    return make_api(emu)


async def queue_tasks(emu, emu_api, count):
    """Send ``count`` task requests, each queued behind the one before."""
    queue = emu.limits.queue
    sent = []
    for n in range(count):
        sent.append(asyncio.create_task(emu_api.post(TASK, {"title": f"t{n}"})))
        await until(lambda n=n: queue.waiting(DEFAULT_PORTAL) == n + 1)
    return sent


async def test_queue_runs_n_calls_at_once(emu, emu_api):
    emu.set_queue(concurrency=2, service_time=0.01)
    queue = emu.limits.queue
    for _ in range(2):  # the test holds both slots while six calls line up
        await queue.enter(DEFAULT_PORTAL)
    sent = await queue_tasks(emu, emu_api, 6)
    queue.leave(DEFAULT_PORTAL)
    queue.leave(DEFAULT_PORTAL)
    replies = await asyncio.gather(*sent)
    assert [r.status for r in replies] == [200] * 6
    records = emu.requests.filter(path=TASK)
    assert max(r.concurrency for r in records) == 2
    assert emu.stats.max_concurrent == {DEFAULT_PORTAL: 2}
    assert all(r.queue_wait > 0 for r in records)


async def test_queue_is_first_in_first_out(emu, emu_api):
    emu.set_queue(concurrency=2)
    queue = emu.limits.queue
    for _ in range(2):
        await queue.enter(DEFAULT_PORTAL)
    sent = await queue_tasks(emu, emu_api, 5)
    queue.leave(DEFAULT_PORTAL)  # one slot: the queued calls pass through it one by one
    await asyncio.gather(*sent)
    assert [task["title"] for task in emu.state.tasks] == [f"t{n}" for n in range(5)]
    queue.leave(DEFAULT_PORTAL)


async def test_queue_timeout_is_504_and_not_applied(emu, emu_api):
    emu.set_queue(concurrency=1, timeout=0.05)
    # A portal bucket of one token: the timed-out call must give it back.
    emu.set_portal_limit(per_second=0.001, burst=1, rest_per_second=None)
    queue = emu.limits.queue
    await queue.enter(DEFAULT_PORTAL)  # nobody leaves: the call times out
    reply = await emu_api.post(TASK, {})
    assert reply.status == 504
    assert reply.error == {
        "code": "QUEUE_TIMEOUT",
        "message": "Portal queue saturated — too many concurrent Bitrix24 calls",
        "hint": "Lower the concurrency and retry after retryAfter",
        "retryAfter": 10,
    }
    assert reply.headers["Retry-After"] == "10"
    assert emu.state.tasks == []
    record = emu.requests.last
    assert (record.applied, record.limited_by, record.status) == (False, "queue", 504)
    assert emu.stats.queue_timeouts == 1 and emu.stats.by_status[504] == 1
    queue.leave(DEFAULT_PORTAL)
    assert (await emu_api.post(TASK, {})).status == 200
    assert len(emu.state.tasks) == 1


async def test_queue_off_still_records_concurrency(emu, emu_api):
    await asyncio.gather(*(emu_api.get("/mail/mailboxes") for _ in range(3)))
    records = emu.requests.snapshot()
    assert all(r.concurrency >= 1 and r.queue_wait == 0 for r in records)
    assert emu.stats.max_concurrent[DEFAULT_PORTAL] >= 1
