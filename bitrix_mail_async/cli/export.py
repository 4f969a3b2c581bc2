"""``bitrix-mail export``: every message of a mailbox, with its body, as JSON lines.

Owns the resumable export: reading back the ids a previous run wrote (and cutting off a line
a crash left half-written), listing and fetching with a bounded queue, appending one flushed
line per message, and the progress line shown to a person at a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TextIO

from bitrix_mail_async import MailClient, errors, to_dict
from bitrix_mail_async.cli import output
from bitrix_mail_async.cli.commands import LIST_PAGE_MAX, run_gateway
from bitrix_mail_async.cli.parsing import Command, mailbox_argument, positive_int

__all__ = ["COMMAND", "run_export"]


def _resume_ids(path: Path) -> set[int]:
    """Ids already exported to ``path``; cuts off a final line left partial by a crash."""
    done: set[int] = set()
    if not path.exists():
        return done
    good_end = 0
    with path.open("r+b") as file:
        for number, line in enumerate(file, start=1):
            if not line.endswith(b"\n"):
                # Written without its newline: the run died mid-write. Re-fetch that message.
                break
            good_end += len(line)
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                item = None
            msg_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(msg_id, int) or isinstance(msg_id, bool):
                raise output.UsageError(
                    f"{path}: line {number} is not a message exported by bitrix-mail; "
                    "refusing to append to it"
                )
            done.add(msg_id)
        file.truncate(good_end)
    return done


class _Progress:
    """A one-line counter on stderr, shown only to a person at a terminal."""

    def __init__(self, skipped: int) -> None:
        self.enabled = sys.stderr.isatty()
        self.done = 0
        self.skipped = skipped
        self.total: int | None = None

    def update(self) -> None:
        if not self.enabled:
            return
        total = f"/{self.total}" if self.total is not None else ""
        sys.stderr.write(f"\rexported {self.done + self.skipped}{total} messages")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def run_export(args: argparse.Namespace) -> int:
    """The ``export`` handler: open the file, then export through a client built from args."""
    path = Path(args.out)
    # File work happens here, outside the event loop; the loop only appends lines.
    try:
        done = _resume_ids(path)
        out = path.open("a", encoding="utf-8", newline="")
    except OSError as exc:
        output.print_error(f"cannot use {path}: {exc}")
        return output.EXIT_ERROR
    with out:

        async def command(mail: MailClient, args: argparse.Namespace) -> int:
            return await _export(mail, args.mailbox, args.concurrency, out, done)

        code = run_gateway(args, command)
    return code


async def _export(mail: MailClient, mailbox: int, workers: int, out: TextIO, done: set[int]) -> int:
    # Bounded: the lister runs at most a few ids ahead of the fetchers, whatever the mailbox size.
    queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=workers * 2)
    progress = _Progress(len(done))
    vanished: list[int] = []
    # Offset paging may show an id twice when mail arrives meanwhile; fetch each id once.
    seen = set(done)

    async def list_ids() -> None:
        pager = mail.messages.list(mailbox, page_size=LIST_PAGE_MAX)
        async for page in pager.pages():
            if page.total is not None:
                progress.total = page.total
            for item in page.items:
                if item.id not in seen:
                    seen.add(item.id)
                    await queue.put(item.id)
        # Only on success: after a failure the task group cancels the fetchers itself, and a
        # put into a full queue nobody drains would hang the shutdown.
        for _ in range(workers):
            await queue.put(None)

    async def fetch() -> None:
        while (msg_id := await queue.get()) is not None:
            try:
                msg = await mail.messages.get(msg_id)
            except errors.NotFoundError:
                vanished.append(msg_id)  # deleted since it was listed
                continue
            # One write and a flush per line: a crash loses at most the line being written.
            out.write(json.dumps(to_dict(msg), ensure_ascii=False) + "\n")
            out.flush()
            progress.done += 1
            progress.update()

    progress.update()
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(list_ids())
            for _ in range(workers):
                group.create_task(fetch())
    finally:
        progress.finish()

    summary = f"exported {progress.done} messages of mailbox {mailbox} to {out.name}"
    if done:
        summary += f" ({len(done)} were already there)"
    print(summary)
    if vanished:
        print(f"{len(vanished)} listed messages were gone when fetched: {vanished[:10]}")
    return output.EXIT_OK


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    mailbox_argument(parser)
    parser.add_argument("--out", required=True, metavar="FILE", help="the .jsonl file")
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=4,
        metavar="N",
        help="messages fetched at once (default: 4); the rate limit still applies",
    )


COMMAND = Command(
    "export",
    run_export,
    help="save every message of a mailbox, with bodies, as JSON lines (resumable)",
    description="Save every message of a mailbox with its body to FILE, one JSON object "
    "per line. Rerunning skips the messages already in FILE.",
    arguments=_export_arguments,
    json=False,
)
