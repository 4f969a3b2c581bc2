"""The seed data of the emulated portal: its timezone, mailboxes, people and messages.

Everything comes from one ``random.Random(seed)``, so two portals built with the same
arguments hold the same data. Message ids grow with the dates, as Bitrix24's auto-increment ids
do: the oldest message is ``FIRST_MESSAGE_ID``, the newest (dated ``SEED_NEWEST``) the highest
id. Seeding stays cheap (plain dicts, bodies rendered on demand) because benchmarks build
portals of 100,000 messages.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["FIRST_MESSAGE_ID", "MSK", "SEED_NEWEST", "Seed", "seed_body", "seed_portal"]

#: The portal's timezone: Bitrix24 cloud portals answer in Moscow time in the contract's examples.
MSK = timezone(timedelta(hours=3))

FIRST_MESSAGE_ID = 1001
#: The date of the newest seeded message.
SEED_NEWEST = datetime(2026, 5, 25, 10, 0, 0, tzinfo=MSK)

_MAILBOXES: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Sales",
        "sales@emulator.bitrix24.test",
        "Sales Team",
        (
            ("Sales Team", "sales@emulator.bitrix24.test"),
            ("Anna Petrova", "anna@emulator.bitrix24.test"),
        ),
    ),
    (
        "Support",
        "support@emulator.bitrix24.test",
        "Support Desk",
        (("Support Desk", "support@emulator.bitrix24.test"),),
    ),
    (
        "Ivan Personal",
        "ivan@emulator.bitrix24.test",
        "Ivan Smirnov",
        (
            ("Ivan Smirnov", "ivan@emulator.bitrix24.test"),
            ("Ivan S.", "i.smirnov@emulator.bitrix24.test"),
        ),
    ),
)

_FIRST_NAMES = (
    "Olga", "Dmitry", "Elena", "Sergey", "Maria", "Alexey", "Natalia", "Pavel",
    "Irina", "Mikhail", "Tatiana", "Andrey", "Svetlana", "Nikolai", "Julia",
)  # fmt: skip
_LAST_NAMES = (
    "Ivanova", "Kuznetsov", "Popova", "Sokolov", "Lebedeva", "Kozlov", "Novikova",
    "Morozov", "Volkova", "Fedorov",
)  # fmt: skip
_COMPANIES = ("acme.example", "globex.example", "initech.example", "umbrella.example")
_SUBJECTS = (
    "Invoice for May", "Meeting on Thursday", "Contract draft", "Delivery schedule",
    "Price list update", "Question about the order", "Quarterly report", "Support ticket",
    "Partnership proposal", "Welcome aboard", "Project kickoff", "Payment confirmation",
    "Shipment delayed", "New requirements", "Feedback on the demo", "Password reset",
)  # fmt: skip
_PHRASES = (
    "Please find the details below.",
    "Could you confirm by Friday?",
    "Thank you for the quick answer.",
    "The attached file has the numbers we discussed.",
    "Let us schedule a call next week.",
    "Здравствуйте! Пришлите, пожалуйста, счёт.",
)


@dataclass
class Seed:
    """A freshly seeded portal: the fields of the same name of ``PortalState``."""

    mailboxes: dict[int, dict[str, Any]] = field(default_factory=dict)
    senders: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    employees: list[dict[str, Any]] = field(default_factory=list)
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: Thread id -> message ids, oldest first; thread ids run from 1 without gaps.
    threads: dict[int, list[int]] = field(default_factory=dict)
    #: Mailbox id -> message ids, oldest first.
    order: dict[int, list[int]] = field(default_factory=dict)


def seed_portal(seed: int, count: int) -> Seed:
    """Build the portal of ``seed`` with ``count`` messages."""
    rng = random.Random(seed)
    data = Seed()
    _seed_mailboxes(data)
    _seed_people(data, rng)
    _seed_messages(data, rng, count)
    return data


def seed_body(msg: Mapping[str, Any]) -> str:
    """Render the body of a seeded message (they are not stored)."""
    phrase = _PHRASES[msg["id"] % len(_PHRASES)]
    return f"Hello,\n\n{msg['subject']}: {phrase}\n\nMessage #{msg['id']}.\n"


def _seed_mailboxes(data: Seed) -> None:
    for index, (name, email, sender_name, senders) in enumerate(_MAILBOXES, start=1):
        data.mailboxes[index] = {
            "id": index,
            "name": name,
            "email": email,
            "senderName": sender_name,
        }
        data.senders[index] = [
            {"email": s_email, "name": s_name, "sender": f"{s_name} <{s_email}>"}
            for s_name, s_email in senders
        ]
        data.order[index] = []


def _seed_people(data: Seed, rng: random.Random) -> None:
    people = [
        (f"{first} {last}", f"{first.lower()}.{last.lower()}@{_COMPANIES[i % len(_COMPANIES)]}")
        for i, (first, last) in enumerate(
            (f, la) for la in _LAST_NAMES for f in _FIRST_NAMES[: 3 + len(la) % 3]
        )
    ]
    rng.shuffle(people)
    data.contacts = [
        {"id": 101 + i, "email": email, "name": name} for i, (name, email) in enumerate(people[:30])
    ]
    data.employees = [
        {
            "id": 1 + i,
            "email": f"{first.lower()}.{_LAST_NAMES[i % len(_LAST_NAMES)].lower()}"
            "@emulator.bitrix24.test",
            "name": f"{first} {_LAST_NAMES[i % len(_LAST_NAMES)]}",
        }
        for i, first in enumerate((_FIRST_NAMES * 2)[:20])
    ]


def _seed_messages(data: Seed, rng: random.Random, count: int) -> None:
    # Generated newest first, walking back in time from SEED_NEWEST with falling ids, so every
    # seeded date stays in the past whatever the count, and a later date has a larger id.
    contacts = data.contacts
    addresses = [f"{c['name']} <{c['email']}>" for c in contacts]
    date = SEED_NEWEST
    open_thread: dict[int, list[int]] = {}
    rand = rng.random
    for msg_id in reversed(range(FIRST_MESSAGE_ID, FIRST_MESSAGE_ID + count)):
        roll = rand()
        mailbox_id = 1 if roll < 0.6 else (2 if roll < 0.85 else 3)
        folder = _seed_folder(rand())
        contact = int(rand() * len(addresses))
        if folder == "Sent":
            sender, to = data.senders[mailbox_id][0]["sender"], contacts[contact]["email"]
        else:
            sender, to = addresses[contact], data.mailboxes[mailbox_id]["email"]
        thread_id, subject = _seed_thread(data, open_thread, mailbox_id, msg_id, rand)
        flags = rand()
        data.messages[msg_id] = {
            "id": msg_id,
            "mailboxId": mailbox_id,
            "baseSubject": subject,
            "subject": subject,
            "from": sender,
            "to": to,
            "cc": addresses[msg_id % len(addresses)] if flags < 0.1 else None,
            "date": date,
            "isSeen": folder != "INBOX" or flags >= 0.3,
            "hasAttachments": 0.15 <= flags < 0.4,
            "folder": folder,
            "body": None,
            "threadId": thread_id,
            "bindings": [],
        }
        date -= timedelta(minutes=5 + int(rand() * 115))
    for msg_id in range(FIRST_MESSAGE_ID, FIRST_MESSAGE_ID + count):
        data.order[data.messages[msg_id]["mailboxId"]].append(msg_id)
    _number_threads(data)


def _number_threads(data: Seed) -> None:
    """Store threads chronologically, numbered from the oldest, and prefix their replies."""
    # Threads were built newest first; their ids, like message ids, must grow with time.
    threads = sorted(data.threads.values(), key=lambda ids: ids[-1])
    data.threads = {}
    for thread_id, ids in enumerate(threads, start=1):
        ids.reverse()
        data.threads[thread_id] = ids
        for position, msg_id in enumerate(ids):
            msg = data.messages[msg_id]
            msg["threadId"] = thread_id
            if position:
                msg["subject"] = "Re: " + msg["baseSubject"]


def _seed_folder(roll: float) -> str:
    if roll < 0.8:
        return "INBOX"
    if roll < 0.92:
        return "Sent"
    if roll < 0.96:
        return "Archive"
    return "Spam" if roll < 0.98 else "Trash"


def _seed_thread(
    data: Seed,
    open_thread: dict[int, list[int]],
    mailbox_id: int,
    msg_id: int,
    rand: Callable[[], float],
) -> tuple[int, str]:
    """Continue the mailbox's open thread now and then, or start a new one."""
    thread = open_thread.get(mailbox_id)
    if thread is not None and len(thread) < 5 and rand() < 0.35:
        thread.append(msg_id)
        first = data.messages[thread[0]]
        return first["threadId"], first["baseSubject"]
    thread_id = len(data.threads) + 1
    open_thread[mailbox_id] = data.threads[thread_id] = [msg_id]
    return thread_id, _SUBJECTS[int(rand() * len(_SUBJECTS))]
