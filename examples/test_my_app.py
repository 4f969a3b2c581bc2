"""Your own tests, on the emulator: a test suite for the task bot of ``task_bot.py``.

Copy it next to your code and run ``pytest``. It needs ``pytest`` and ``pytest-asyncio``
(``pip install pytest pytest-asyncio``); the ``mail_emulator`` fixture comes with
bitrix-mail-async itself (a local gateway on a free port, 60 seeded messages, the key in
``mail_emulator.api_key``). Every test here is marked for pytest-asyncio explicitly, so no
pytest configuration is needed.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from task_bot import handle, task_binding

from bitrix_mail_async import MailClient, RetryPolicy, errors
from bitrix_mail_async.testing import MailEmulator

pytestmark = pytest.mark.asyncio

FAST_RETRIES = RetryPolicy(backoff_base=0.01, backoff_cap=0.05)


def client(emu: MailEmulator) -> MailClient:
    return MailClient(emu.api_key, base_url=emu.base_url, rate_limit=None, retry=FAST_RETRIES)


async def test_each_new_message_becomes_one_task(mail_emulator: MailEmulator) -> None:
    first = mail_emulator.deliver(subject="Invoice 17", from_="Ann <ann@example.com>")
    second = mail_emulator.deliver(subject="Contract draft")
    async with client(mail_emulator) as mail:
        watcher = mail.messages.watch(1, poll_interval=0.05, since=first["date"])
        async with contextlib.aclosing(watcher):
            results = []
            async for msg in watcher:
                results.append(await handle(mail, msg, recheck_after=0))
                if len(results) == 2:
                    break
    assert [r["message"] for r in results] == [first["id"], second["id"]]
    tasks = mail_emulator.state.tasks
    assert [(t["messageId"], t["title"]) for t in tasks] == [
        (first["id"], "Invoice 17"),
        (second["id"], "Contract draft"),
    ]


async def test_a_lost_answer_does_not_create_a_second_task(mail_emulator: MailEmulator) -> None:
    # The gateway creates the task, but the connection drops before the answer arrives.
    mail_emulator.faults.schedule("drop_after", methods=["POST"], paths="/mail/messages/")
    async with client(mail_emulator) as mail:
        msg = await mail.messages.get(1001)
        with pytest.raises(errors.OutcomeUnknownError):
            await mail.messages.create_task(msg.id)  # what the bot would see without care
        mail_emulator.faults.schedule("drop_after", methods=["POST"], paths="/mail/messages/")
        result = await handle(mail, await mail.messages.get(1002), recheck_after=0)
    assert result["existing"] is True  # found through the message's bindings
    assert [t["messageId"] for t in mail_emulator.state.tasks] == [1001, 1002]  # one each


async def test_a_message_handled_before_a_crash_is_not_handled_twice(
    mail_emulator: MailEmulator,
) -> None:
    async with client(mail_emulator) as mail:
        await handle(mail, await mail.messages.get(1003))
        again = await mail.messages.get(1003)  # the watcher repeats it after a restart
        assert task_binding(again) is not None
        result = await handle(mail, again)
    assert result["existing"] is True
    assert len(mail_emulator.state.tasks) == 1


async def test_the_bot_rides_out_429s_and_502s(mail_emulator: MailEmulator) -> None:
    mail_emulator.set_rate_limit(per_second=50, burst=1, retry_after=0.05)
    mail_emulator.faults.schedule("502", "429", "503", "502", methods=["GET"])
    arrived = mail_emulator.deliver(subject="Urgent")
    async with client(mail_emulator) as mail:
        watcher = mail.messages.watch(1, poll_interval=0.05, since=arrived["date"])
        async with contextlib.aclosing(watcher):
            msg = await asyncio.wait_for(anext(watcher), 30)
            result = await handle(mail, msg, recheck_after=0)
    assert result == {"message": arrived["id"], "task": 501, "existing": False}
    assert mail_emulator.stats.faults >= 4
