"""``bitrix-mail demo``: the gateway's documented seven-step scenario, without a key.

Owns the scenario (mailboxes, senders, send, find, read, reply, create a task) run through
:class:`~bitrix_mail_async.MailClient` against an emulator started in this process, and how
each step is reported; the first failing step ends the demo with exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final

from bitrix_mail_async import Mailbox, MailClient, Message, errors
from bitrix_mail_async.cli import output
from bitrix_mail_async.cli.arguments import seeded_messages_argument
from bitrix_mail_async.cli.failures import EXIT_ERROR, EXIT_OK, describe, print_error
from bitrix_mail_async.cli.output import print_json
from bitrix_mail_async.cli.parsing import Command

__all__ = ["COMMAND", "run_demo"]

_DEMO_STEPS: Final = 7

#: What a step reports: a one-line summary and the lines shown indented below it.
_StepResult = tuple[str, list[str]]


class _DemoFailure(Exception):
    """A demo step got an answer, but not the one the scenario needs."""


class _Demo:
    """The documented seven-step scenario against an in-process emulator."""

    def __init__(self, mail: MailClient) -> None:
        self.mail = mail
        self.mailbox: Mailbox | None = None
        self.sender = ""
        self.colleague = ""
        self.subject = f"bitrix-mail demo {uuid.uuid4().hex[:8]}"
        self.message_id = 0
        self.message: Message | None = None

    def steps(self) -> list[tuple[str, Callable[[], Awaitable[_StepResult]]]]:
        """The steps in order, each with the name the demo prints."""
        return [
            ("list mailboxes", self.list_mailboxes),
            ("read sender addresses of the first mailbox", self.read_senders),
            ("send a message to a colleague", self.send),
            ("find it among the mailbox's messages", self.find),
            ("read it", self.read),
            ("reply to it", self.reply),
            ("create a task from it", self.create_task),
        ]

    async def list_mailboxes(self) -> _StepResult:
        boxes = await self.mail.mailboxes.list()
        if not boxes:
            raise _DemoFailure("the portal has no mailboxes")
        self.mailbox = boxes[0]
        return f"{len(boxes)} mailboxes", output.mailbox_table(boxes).splitlines()

    async def read_senders(self) -> _StepResult:
        assert self.mailbox is not None
        senders = await self.mail.mailboxes.senders(self.mailbox.id)
        if not senders or not senders[0].sender:
            raise _DemoFailure(f"mailbox {self.mailbox.id} has no sender addresses")
        self.sender = senders[0].sender
        return (
            f"{len(senders)} senders of mailbox {self.mailbox.id}, using {self.sender}",
            output.sender_table(senders).splitlines(),
        )

    async def send(self) -> _StepResult:
        employees = await self.mail.recipients.employees("a", limit=1)
        self.colleague = employees[0].email if employees and employees[0].email else ""
        self.colleague = self.colleague or "colleague@example.com"
        result = await self.mail.messages.send(
            from_=self.sender,
            to=[self.colleague],
            subject=self.subject,
            body="Hello from the bitrix-mail demo.\n\nThis message was sent through MailClient.",
        )
        return f"sent to {', '.join(result.to) or self.colleague}", [
            f"from:    {self.sender}",
            f"subject: {self.subject}",
        ]

    async def find(self) -> _StepResult:
        assert self.mailbox is not None
        page = await self.mail.messages.list(self.mailbox.id, folder="Sent", page_size=5)
        for item in page.items:
            if item.subject == self.subject:
                self.message_id = item.id
                return f"message {item.id} in the Sent folder", output.message_table(
                    page.items
                ).splitlines()
        raise _DemoFailure(
            f"no message with subject {self.subject!r} on the first page of the Sent folder"
        )

    async def read(self) -> _StepResult:
        self.message = await self.mail.messages.get(self.message_id)
        return f"message {self.message.id}: {self.message.subject}", output.message_text(
            self.message
        ).splitlines()

    async def reply(self) -> _StepResult:
        assert self.message is not None
        to = list(self.message.to) or [self.colleague]
        result = await self.mail.messages.reply(
            self.message.id,
            from_=self.sender,
            to=to,
            subject=f"Re: {self.subject}",
            body="A reply sent by the bitrix-mail demo.",
        )
        return f"replied to {', '.join(result.to) or ', '.join(to)}", []

    async def create_task(self) -> _StepResult:
        task = await self.mail.messages.create_task(self.message_id)
        return f"taskId {task.task_id} created from message {self.message_id}", []


class _Report:
    """How the demo tells its steps: as they happen, or (``--json``) one document at the end."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        self.document: dict[str, Any] = {"emulator": None, "steps": [], "succeeded": False}

    def start(self, base_url: str) -> None:
        self.document["emulator"] = base_url
        if not self.as_json:
            print(f"emulator: {base_url} (in-process; no key or network needed)")

    def step(self, number: int, name: str, summary: str, details: list[str]) -> None:
        self.document["steps"].append({"step": number, "name": name, "result": summary})
        if not self.as_json:
            print(f"Step {number}/{_DEMO_STEPS}: {name}: {summary}")
            for line in details:
                print(f"    {line}".rstrip())

    def failed(self, number: int, name: str, message: str) -> int:
        error = f"demo step {number} ({name}) failed: {message}"
        if self.as_json:
            self.document["steps"].append({"step": number, "name": name, "error": message})
            print_json(self.document)
        else:
            print(f"Step {number}/{_DEMO_STEPS}: {name}: FAILED")
        print_error(error)
        return EXIT_ERROR

    def succeeded(self) -> int:
        self.document["succeeded"] = True
        if self.as_json:
            print_json(self.document)
        else:
            print(f"All {_DEMO_STEPS} steps succeeded.")
        return EXIT_OK


async def _demo(messages: int, report: _Report) -> int:
    # Imported here, not at the top: only the demo and the emulator command need aiohttp.web.
    from bitrix_mail_async.testing import MailEmulator

    async with MailEmulator(messages=messages) as emulator:
        report.start(emulator.base_url)
        async with MailClient(
            emulator.api_key, base_url=emulator.base_url, rate_limit=None, timeout=10.0
        ) as mail:
            for number, (name, step) in enumerate(_Demo(mail).steps(), start=1):
                try:
                    summary, details = await step()
                except errors.MailError as exc:
                    return report.failed(number, name, describe(exc)[0])
                except _DemoFailure as exc:
                    return report.failed(number, name, str(exc))
                report.step(number, name, summary, details)
    return report.succeeded()


def run_demo(args: argparse.Namespace) -> int:
    """The ``demo`` handler: run the scenario; a failure to start the emulator is exit 1."""
    try:
        return asyncio.run(_demo(args.messages, _Report(as_json=args.json)))
    except BrokenPipeError:
        raise
    except OSError as exc:
        print_error(f"cannot start the emulator: {exc}")
        return EXIT_ERROR


COMMAND: Final = Command(
    "demo",
    run_demo,
    help="run the documented seven-step scenario against a built-in emulator (no key)",
    description="Start the emulator in-process and run the seven-step scenario through "
    "MailClient: mailboxes, senders, send, find, read, reply, create a task. --json prints "
    "the steps as one JSON document.",
    example="bitrix-mail demo",
    arguments=seeded_messages_argument,
    gateway=False,
)
