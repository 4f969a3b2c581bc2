"""Export a mailbox to JSON Lines, one message with its body per line: list -> get_many -> file.

    export BITRIX_MAIL_API_KEY=vibe_api_...
    python examples/bulk_export.py 1 --out mailbox-1.jsonl [--folder INBOX] [--unseen]
        [--rate 2 --burst 50]   # the key's limit (Enterprise plans: --rate 5 --burst 250)

``mail.messages.get_many`` fetches the bodies ``max_concurrency`` at a time within the rate
limit and yields them in list order, so the file is written as they come, with bounded
memory. Resumable: a rerun skips the ids already in the file and drops a half-written last
line. A message deleted between the list and its fetch is skipped with a warning; any other
failure is reported at the end (exit 1) and the next run fetches what is missing. Progress
shows with ``tqdm`` when it is installed (``pip install tqdm``), else as a counter on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

from bitrix_mail_async import MailClient, Message, RateLimit, errors

log = logging.getLogger("bulk_export")


def done_ids(path: Path) -> set[int]:
    """Ids already exported; a half-written last line (an interrupted run) is cut off."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
        path.write_bytes(data)
    return {json.loads(line)["id"] for line in data.splitlines() if line.strip()}


def record(msg: Message) -> dict[str, Any]:
    """What one line of the export holds."""
    return {
        "id": msg.id,
        "mailbox_id": msg.mailbox_id,
        "date": msg.date.isoformat() if msg.date else None,
        "from": msg.from_,
        "to": list(msg.to),
        "cc": list(msg.cc),
        "subject": msg.subject,
        "is_seen": msg.is_seen,
        "has_attachments": msg.has_attachments,
        "body": msg.body,
    }


async def ids_to_fetch(
    mail: MailClient, args: argparse.Namespace, skip: set[int]
) -> AsyncIterator[int]:
    """The ids of the mailbox (lazily, page by page) not exported yet."""
    unseen = False if args.unseen else None
    async for summary in mail.messages.list(
        args.mailbox, folder=args.folder, is_seen=unseen, page_size=200
    ):
        if summary.id not in skip:
            skip.add(summary.id)  # a message listed twice (offsets shift) is fetched once
            yield summary.id


def progress(stream: AsyncIterator[Any]) -> tuple[AsyncIterator[Any], bool]:
    """Wrap the results in a tqdm bar when tqdm is installed; say whether it did."""
    try:
        from tqdm.asyncio import tqdm
    except ImportError:
        return stream, False
    return tqdm(stream, unit="msg", desc="export"), True


async def export(mail: MailClient, args: argparse.Namespace, out: TextIO) -> tuple[int, int]:
    """Write every missing message; return (written, failed)."""
    skip = done_ids(args.out)
    written = failed = 0
    results = mail.messages.get_many(ids_to_fetch(mail, args, skip), return_exceptions=True)
    stream, has_bar = progress(results)
    async for result in stream:
        if isinstance(result, errors.NotFoundError):
            log.warning("skipped: %s (deleted since it was listed)", result)
        elif isinstance(result, errors.MailError):
            failed += 1
            log.error("failed: %s", result)
        else:
            out.write(json.dumps(record(result), ensure_ascii=False) + "\n")
            out.flush()  # a crash loses at most the line being written
            written += 1
            if written % 100 == 0 and not has_bar:
                print(f"{written} exported", file=sys.stderr, flush=True)
    return written, failed


async def run(args: argparse.Namespace) -> int:
    """Export, then say how it went."""
    async with MailClient(rate_limit=RateLimit(per_second=args.rate, burst=args.burst)) as mail:
        with args.out.open("a", encoding="utf-8") as out:
            written, failed = await export(mail, args, out)
    print(f"exported {written} messages to {args.out}" + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the export."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mailbox", type=int, help="id of the mailbox to export")
    parser.add_argument("--out", type=Path, required=True, help="JSON Lines file (appended)")
    parser.add_argument("--folder", help="only this folder, e.g. INBOX")
    parser.add_argument("--unseen", action="store_true", help="only unread messages")
    parser.add_argument("--rate", type=float, default=2.0, help="requests/s of the key (2)")
    parser.add_argument("--burst", type=int, default=50, help="burst of the key (50)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        return asyncio.run(run(args))
    except errors.MailError as exc:
        print(f"bulk_export: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
