"""A bot that turns every new message of a mailbox into a Bitrix24 task, once.

    export BITRIX_MAIL_API_KEY=vibe_api_...
    python examples/task_bot.py 1 --state task-bot.json [--responsible-id 7]

It watches the mailbox (``mail.messages.watch``) and creates one task per new message. Its
place is kept in ``--state``: stopped with Ctrl-C or SIGTERM (the message in hand is finished
first) and started again with the same file, it goes on where it stopped and skips nothing.
After a crash (kill -9, power loss) the message it was handling comes again; the bot then
finds that message's task in its ``bindings`` and creates no second one. The same check
answers "did my create_task go through?" after an ``OutcomeUnknownError``. 429s, 5xx and
outages only slow it down. Each handled message prints one JSON line on stdout.

Offline, against the emulator: ``bitrix-mail emulator --port 8765`` in one terminal, then
``BITRIX_MAIL_BASE_URL=http://127.0.0.1:8765/v1 BITRIX_MAIL_API_KEY=vibe_api_emulator_test_key
python examples/task_bot.py 1 --state /tmp/bot.json --since 2026-01-01T00:00:00+03:00``
(the emulator's mail is dated up to 25 May 2026, so ``--since`` makes all of it "new").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from bitrix_mail_async import MailClient, MessageSummary, errors

log = logging.getLogger("task_bot")

#: How long to let the gateway finish a call whose answer was lost before looking at its result.
RECHECK_AFTER = 2.0


def task_binding(msg: MessageSummary) -> Any | None:
    """The message's task binding, if it has one.

    The contract lists ``bindings`` on every message but documents no item shape; the
    emulator writes ``{"type": "task", "id": <taskId>}``. Any item naming a task counts.
    """
    for binding in msg.bindings:
        kind = binding.get("type") if isinstance(binding, dict) else binding
        if "task" in str(kind).lower():
            return binding
    return None


def _bound(msg: MessageSummary, binding: Any) -> dict[str, Any]:
    task = binding.get("id") if isinstance(binding, dict) else None
    return {"message": msg.id, "task": task, "existing": True}


async def handle(
    mail: MailClient,
    msg: MessageSummary,
    *,
    responsible_id: int | None = None,
    recheck_after: float = RECHECK_AFTER,
    attempts: int = 3,
) -> dict[str, Any]:
    """Make sure the message has one task: create it unless its bindings show one already."""
    binding = task_binding(msg)
    if binding is not None:  # a repeat after a crash: done before
        return _bound(msg, binding)
    for attempt in range(1, attempts + 1):
        try:
            task = await mail.messages.create_task(msg.id, responsible_id=responsible_id)
        except errors.OutcomeUnknownError:
            # The request may have been applied: look at the message before creating again.
            log.warning("message %d: task outcome unknown (attempt %d)", msg.id, attempt)
            await asyncio.sleep(recheck_after)
            current = await mail.messages.get(msg.id)
            binding = task_binding(current)
            if binding is not None:
                return _bound(msg, binding)
            continue
        return {"message": msg.id, "task": task.task_id, "existing": False}
    raise RuntimeError(f"message {msg.id}: no task after {attempts} attempts")


async def next_or_stop(
    watcher: AsyncIterator[MessageSummary], stop: asyncio.Event
) -> MessageSummary | None:
    """The next message, or None once ``stop`` is set.

    Asking for the next message first lets the watcher move its checkpoint past the one just
    handled; only then is the wait for new mail given up.
    """
    step = asyncio.ensure_future(anext(watcher))
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({step, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if step.done():
        return step.result()
    step.cancel()
    await asyncio.wait({step})
    return None


async def run(args: argparse.Namespace) -> int:
    """Watch, handle, print; stop on a signal or after ``--max-messages``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            loop.add_signal_handler(sig, stop.set)
    handled = 0
    async with MailClient() as mail:
        watcher = mail.messages.watch(
            args.mailbox, poll_interval=args.poll_interval, checkpoint=args.state, since=args.since
        )
        async with contextlib.aclosing(watcher):
            while True:
                if args.max_messages is not None and handled >= args.max_messages:
                    stop.set()
                msg = await next_or_stop(watcher, stop)
                if msg is None or stop.is_set():
                    break  # a message received as the stop came was not handled: it comes again
                result = await handle(mail, msg, responsible_id=args.responsible_id)
                print(json.dumps(result), flush=True)
                handled += 1
    log.info("stopped after %d messages", handled)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the bot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mailbox", type=int, help="id of the mailbox to watch")
    parser.add_argument("--state", required=True, help="checkpoint file (JSON)")
    parser.add_argument("--responsible-id", type=int, help="user the tasks are assigned to")
    parser.add_argument("--poll-interval", type=float, default=30.0, help="seconds (30)")
    parser.add_argument(
        "--since", type=datetime.fromisoformat, help="first run only: start at this ISO date"
    )
    parser.add_argument("--max-messages", type=int, help="stop after this many (tests)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        return asyncio.run(run(args))
    except errors.MailError as exc:
        print(f"task_bot: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
