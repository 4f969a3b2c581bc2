"""``bitrix-mail export``: every message of a mailbox, with its body, as JSON lines.

Owns the resumable export: reading back the ids a previous run wrote (and cutting off a line
a crash left half-written), listing and fetching with a bounded queue, appending one flushed
line per message (to a file, or to stdout with ``--out -``), the progress line shown to a
person at a terminal, and the closing summary.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
from pathlib import Path
from typing import Final, TextIO

from bitrix_mail_async import MailClient, errors, to_dict
from bitrix_mail_async.cli import output
from bitrix_mail_async.cli.arguments import mailbox_argument, positive_int
from bitrix_mail_async.cli.failures import EXIT_ERROR, EXIT_OK, UsageError, print_error
from bitrix_mail_async.cli.gateway import LIST_PAGE_MAX, run_gateway
from bitrix_mail_async.cli.parsing import Command
from bitrix_mail_async.cli.progress import Progress
from bitrix_mail_async.cli.terminal import json_text

__all__ = ["COMMAND", "run_export"]

_STDOUT: Final = "-"


# Keys that tell which names a line was written in (both spell "id", "subject", "body").
_PYTHON_KEYS: Final = frozenset({"mailbox_id", "from_", "is_seen", "has_attachments"})
_WIRE_KEYS: Final = frozenset({"mailboxId", "from", "isSeen", "hasAttachments"})


def _exported(line: bytes) -> tuple[int, bool | None] | None:
    """The id of a line this command wrote and whether in the gateway's names; else None."""
    try:
        item = json.loads(line)
    except ValueError:
        return None
    msg_id = item.get("id") if isinstance(item, dict) else None
    if not isinstance(msg_id, int) or isinstance(msg_id, bool):
        return None
    keys = item.keys()
    wire = True if _WIRE_KEYS & keys else False if _PYTHON_KEYS & keys else None
    return msg_id, wire


def _names(wire: bool) -> str:
    return "the gateway's field names" if wire else "the library's field names (--python-names)"


def _resume_ids(path: Path, *, repair: bool, wire: bool) -> set[int]:
    """Ids already exported to ``path``; ``repair`` cuts off a last line a crash left partial.

    A file written in the other field names is refused: one file, one set of names.
    """
    done: set[int] = set()
    if not path.exists():
        return done
    good_end = 0
    with path.open("r+b" if repair else "rb") as file:
        for number, line in enumerate(file, start=1):
            if not line.endswith(b"\n"):
                # Written without its newline: the run died mid-write. Re-fetch that message.
                break
            good_end += len(line)
            if not line.strip():
                continue
            found = _exported(line)
            if found is None:
                raise UsageError(
                    f"{path}: line {number} is not a message exported by bitrix-mail; "
                    "refusing to append to it"
                )
            msg_id, line_wire = found
            if line_wire is not None and line_wire != wire:
                raise UsageError(
                    f"{path}: line {number} is in {_names(line_wire)}, this run would write "
                    f"{_names(wire)}: {'pass' if wire else 'drop'} --python-names to continue "
                    "the file, or start a new one"
                )
            done.add(msg_id)
        if repair:
            file.truncate(good_end)
    return done


def run_export(args: argparse.Namespace) -> int:
    """The ``export`` handler: open the file (or stdout), then export through a client."""
    # Settled here: resuming reads which names the file's lines are in.
    output.check_json_options(args, alone=True)
    if args.out == _STDOUT:
        return _run(args, sys.stdout, set())
    path = Path(args.out)
    # File work happens here, outside the event loop; the loop only appends lines. A dry
    # run reads the file (a foreign one is refused as in a real run) but changes nothing.
    try:
        done = _resume_ids(path, repair=not args.dry_run, wire=args.wire)
        if args.dry_run:
            return _run(args, io.StringIO(), done)
        out = path.open("a", encoding="utf-8", newline="")
    except OSError as exc:
        print_error(f"cannot use {path}: {exc}")
        return EXIT_ERROR
    with out:
        return _run(args, out, done)


def _run(args: argparse.Namespace, out: TextIO, done: set[int]) -> int:
    async def command(mail: MailClient, args: argparse.Namespace) -> int:
        job = _Export(mail, args, out, done)
        await job.run()
        return job.report()

    # --python-names alone picks the names of the exported lines.
    return run_gateway(args, command, wire_alone=True)


class _Export:
    """One export run: a lister feeding ids to ``--concurrency`` fetchers through a queue."""

    def __init__(
        self, mail: MailClient, args: argparse.Namespace, out: TextIO, done: set[int]
    ) -> None:
        self.mail = mail
        self.args = args
        self.out = out
        self.done = done
        self.workers: int = args.concurrency
        # Bounded: the lister runs at most a few ids ahead of the fetchers, whatever the size.
        self.queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=self.workers * 2)
        self.progress = Progress("exported", "messages", start=len(done))
        self.exported = 0
        self.vanished: list[int] = []
        # Offset paging may show an id twice when mail arrives meanwhile; fetch each id once.
        self.seen = set(done)

    async def list_ids(self) -> None:
        pager = self.mail.messages.list(self.args.mailbox, page_size=LIST_PAGE_MAX)
        async for page in pager.pages():
            if page.total is not None:
                self.progress.total = page.total
            for item in page.items:
                if item.id not in self.seen:
                    self.seen.add(item.id)
                    await self.queue.put(item.id)
        # Only on success: after a failure the task group cancels the fetchers itself, and a
        # put into a full queue nobody drains would hang the shutdown.
        for _ in range(self.workers):
            await self.queue.put(None)

    async def fetch(self) -> None:
        while (msg_id := await self.queue.get()) is not None:
            try:
                msg = await self.mail.messages.get(msg_id)
            except errors.NotFoundError:
                self.vanished.append(msg_id)  # deleted since it was listed
                continue
            # Safe for a terminal and for any encoding of the stream, the same JSON all the same.
            line = json_text(to_dict(msg, wire=self.args.wire), stream=self.out)
            # One write and a flush per line: a crash loses at most the line being written.
            self.out.write(line + "\n")
            self.out.flush()
            self.exported += 1
            self.progress.advance()

    async def run(self) -> None:
        self.progress.draw(force=True)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.list_ids())
                for _ in range(self.workers):
                    group.create_task(self.fetch())
        finally:
            self.progress.finish()

    def report(self) -> int:
        """The summary: on stdout, or on stderr when stdout carries the lines."""
        where = "stdout" if self.args.out == _STDOUT else self.args.out
        stream = sys.stderr if self.args.out == _STDOUT else sys.stdout
        if self.args.json:
            summary = {
                "mailbox": self.args.mailbox,
                "out": self.args.out,
                "exported": self.exported,
                "already_there": len(self.done),
                "gone": self.vanished,
            }
            print(json_text(summary, stream=stream), file=stream)
            return EXIT_OK
        text = f"exported {self.exported} messages of mailbox {self.args.mailbox} to {where}"
        if self.done:
            text += f" ({len(self.done)} were already there)"
        print(text, file=stream)
        if self.vanished:
            gone = f"{len(self.vanished)} listed messages were gone when fetched"
            print(f"{gone}: {self.vanished[:10]}", file=stream)
        return EXIT_OK


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    mailbox_argument(parser)
    parser.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="the .jsonl file, appended to and resumed; - writes to stdout (no resuming)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=4,
        metavar="N",
        help="messages fetched at once (default: 4); the rate limit still applies",
    )


COMMAND: Final = Command(
    "export",
    run_export,
    help="save every message of a mailbox, with bodies, as JSON lines (resumable)",
    description="Save every message of a mailbox with its body to FILE, one JSON object per "
    "line, in the gateway's field names (--python-names: the library's). Rerunning skips the "
    "messages already in FILE; a progress counter shows on a terminal. --json prints the "
    "summary as JSON.",
    example="bitrix-mail export 1 --out sales.jsonl --concurrency 8\n"
    "bitrix-mail export 1 --out - | jq -r .subject",
    arguments=_export_arguments,
    usage="MAILBOX_ID --out FILE",
)
