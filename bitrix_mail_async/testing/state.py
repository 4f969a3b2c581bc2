"""The emulated portal: mailboxes, messages, recipients and the log of side effects.

Everything is seeded deterministically from ``seed`` so two emulators built with the same
arguments hold the same data. Seeding stays cheap (plain dicts, bodies rendered on demand)
because benchmarks build portals of 100,000 messages.
"""

from __future__ import annotations

import bisect
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

__all__ = [
    "FOLDERS",
    "MSK",
    "EmulatorOptions",
    "PortalState",
    "parse_address",
]

#: The portal's timezone: Bitrix24 cloud portals answer in Moscow time in the contract's examples.
MSK = timezone(timedelta(hours=3))

FOLDERS: tuple[str, ...] = ("INBOX", "Sent", "Spam", "Trash", "Archive")

FIRST_MESSAGE_ID = 1001
_SEED_NEWEST = datetime(2026, 5, 25, 10, 0, 0, tzinfo=MSK)
_ADDRESS = re.compile(r"<\s*([^<>\s]+@[^<>\s]+)\s*>")

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
class EmulatorOptions:
    """Tolerance knobs: which of the plausible payload shapes the emulator answers with."""

    list_meta: bool = True
    mailboxes_shape: Literal["list", "items"] = "list"
    mailbox_get_shape: Literal["item", "bare"] = "item"
    thread_shape: Literal["list", "items"] = "list"
    crm_activity_shape: Literal["bool", "object"] = "bool"


def parse_address(value: str) -> str:
    """Return the bare, lower-cased e-mail of ``"Name <user@host>"`` or ``"user@host"``."""
    match = _ADDRESS.search(value)
    return (match.group(1) if match else value.strip()).lower()


def _seed_body(msg: Mapping[str, Any]) -> str:
    phrase = _PHRASES[msg["id"] % len(_PHRASES)]
    return f"Hello,\n\n{msg['subject']}: {phrase}\n\nMessage #{msg['id']}.\n"


class PortalState:
    """A seeded Bitrix24 portal: the data the emulator serves and the effects it records."""

    def __init__(self, *, messages: int = 60, seed: int = 0) -> None:
        self.seed = seed
        self.options = EmulatorOptions()
        # A lock for mutations: handlers run on the emulator's loop while tests may call the
        # helpers below from another thread.
        self.lock = threading.RLock()
        self.mailboxes: dict[int, dict[str, Any]] = {}
        self.senders: dict[int, list[dict[str, Any]]] = {}
        self.folders: tuple[str, ...] = FOLDERS
        self.messages: dict[int, dict[str, Any]] = {}
        self.threads: dict[int, list[int]] = {}
        self.contacts: list[dict[str, Any]] = []
        self.employees: list[dict[str, Any]] = []
        self.denied_mailboxes: set[int] = set()
        self.sent: list[dict[str, Any]] = []
        self.tasks: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.chats: list[dict[str, Any]] = []
        self.feed_posts: list[dict[str, Any]] = []
        self.crm_activities: list[dict[str, Any]] = []
        self.moves: list[dict[str, Any]] = []
        self._effects: list[dict[str, Any]] = []
        # Per mailbox, message ids sorted oldest -> newest: pages are slices taken from the end,
        # so an unfiltered page costs O(limit) however big the mailbox is.
        self._order: dict[int, list[int]] = {}
        self._filter_cache: dict[tuple[Any, ...], list[int]] = {}
        self._version = 0
        self._next_message_id = FIRST_MESSAGE_ID
        self._next_thread_id = 1
        self._counters: dict[str, int] = {}
        self._chat_by_message: dict[int, int] = {}
        self._seed_portal(messages)

    # ----------------------------------------------------------------- seeding
    def _seed_portal(self, count: int) -> None:
        rng = random.Random(self.seed)
        for index, (name, email, sender_name, senders) in enumerate(_MAILBOXES, start=1):
            self.mailboxes[index] = {
                "id": index,
                "name": name,
                "email": email,
                "senderName": sender_name,
            }
            self.senders[index] = [
                {"email": s_email, "name": s_name, "sender": f"{s_name} <{s_email}>"}
                for s_name, s_email in senders
            ]
            self._order[index] = []

        people = [
            (f"{first} {last}", f"{first.lower()}.{last.lower()}@{_COMPANIES[i % len(_COMPANIES)]}")
            for i, (first, last) in enumerate(
                (f, la) for la in _LAST_NAMES for f in _FIRST_NAMES[: 3 + len(la) % 3]
            )
        ]
        rng.shuffle(people)
        self.contacts = [
            {"id": 101 + i, "email": email, "name": name}
            for i, (name, email) in enumerate(people[:30])
        ]
        self.employees = [
            {
                "id": 1 + i,
                "email": f"{first.lower()}.{_LAST_NAMES[i % len(_LAST_NAMES)].lower()}"
                "@emulator.bitrix24.test",
                "name": f"{first} {_LAST_NAMES[i % len(_LAST_NAMES)]}",
            }
            for i, first in enumerate((_FIRST_NAMES * 2)[:20])
        ]
        contact_addrs = [f"{c['name']} <{c['email']}>" for c in self.contacts]

        # Messages are generated newest first (id 1001 is the newest): a list page of mailbox 1
        # starts at its lowest id, which keeps examples in docs and tests readable.
        date = _SEED_NEWEST
        open_thread: dict[int, list[int]] = {}
        rand = rng.random
        seeded: list[dict[str, Any]] = []
        for offset in range(count):
            msg_id = FIRST_MESSAGE_ID + offset
            roll = rand()
            mailbox_id = 1 if roll < 0.6 else (2 if roll < 0.85 else 3)
            mailbox = self.mailboxes[mailbox_id]
            roll = rand()
            folder = (
                "INBOX"
                if roll < 0.8
                else "Sent"
                if roll < 0.92
                else "Archive"
                if roll < 0.96
                else "Spam"
                if roll < 0.98
                else "Trash"
            )
            contact = contact_addrs[int(rand() * len(contact_addrs))]
            if folder == "Sent":
                sender, to = self.senders[mailbox_id][0]["sender"], parse_address(contact)
            else:
                sender, to = contact, mailbox["email"]
            thread = open_thread.get(mailbox_id)
            if thread is not None and len(thread) < 5 and rand() < 0.35:
                thread_id = self.messages[thread[0]]["threadId"]
                subject = self.messages[thread[0]]["baseSubject"]
                thread.append(msg_id)
            else:
                thread_id = self._next_thread_id
                self._next_thread_id += 1
                subject = _SUBJECTS[int(rand() * len(_SUBJECTS))]
                thread = [msg_id]
                open_thread[mailbox_id] = thread
                self.threads[thread_id] = thread
            flags = rand()
            msg = {
                "id": msg_id,
                "mailboxId": mailbox_id,
                "baseSubject": subject,
                "subject": subject,
                "from": sender,
                "to": to,
                "cc": contact_addrs[msg_id % len(contact_addrs)] if flags < 0.1 else None,
                "date": date,
                "isSeen": folder != "INBOX" or flags >= 0.3,
                "hasAttachments": 0.15 <= flags < 0.4,
                "folder": folder,
                "body": None,
                "threadId": thread_id,
                "bindings": [],
            }
            self.messages[msg_id] = msg
            seeded.append(msg)
            date -= timedelta(minutes=5 + int(rand() * 115))
        for msg in reversed(seeded):
            self._order[msg["mailboxId"]].append(msg["id"])
        # Threads were built newest first; store them chronologically and prefix replies.
        for ids in self.threads.values():
            ids.reverse()
            for msg_id in ids[1:]:
                msg = self.messages[msg_id]
                msg["subject"] = "Re: " + msg["baseSubject"]
        self._next_message_id = FIRST_MESSAGE_ID + count

    # ----------------------------------------------------------------- reading
    @property
    def version(self) -> int:
        """A counter bumped by every change to the message store."""
        return self._version

    def mailbox_message_ids(self, mailbox_id: int) -> list[int]:
        """Return the ids of a mailbox's messages, newest first."""
        return self._order.get(mailbox_id, [])[::-1]

    def mailbox_count(self, mailbox_id: int) -> int:
        """Return how many messages a mailbox holds (all folders)."""
        return len(self._order.get(mailbox_id, ()))

    def page_ids(self, mailbox_id: int, offset: int, limit: int) -> list[int]:
        """Return one newest-first page of a mailbox's message ids without filtering."""
        order = self._order.get(mailbox_id, [])
        end = len(order) - offset
        if end <= 0:
            return []
        start = max(0, end - limit)
        return order[start:end][::-1]

    def filtered_ids(
        self, mailbox_id: int, key: tuple[Any, ...], predicate: Callable[[dict[str, Any]], bool]
    ) -> list[int]:
        """Return the newest-first ids of a mailbox matching ``predicate``, cached per ``key``."""
        cache_key = (self._version, mailbox_id, *key)
        cached = self._filter_cache.get(cache_key)
        if cached is None:
            messages = self.messages
            with self.lock:
                order = self._order.get(mailbox_id, [])
                cached = [i for i in reversed(order) if predicate(messages[i])]
                if len(self._filter_cache) > 64:
                    self._filter_cache.clear()
                self._filter_cache[cache_key] = cached
        return cached

    def message_body(self, msg: Mapping[str, Any]) -> str:
        """Return a message's body, rendering seeded bodies on demand."""
        body = msg.get("body")
        return body if isinstance(body, str) else _seed_body(msg)

    def summary(self, msg: Mapping[str, Any]) -> dict[str, Any]:
        """Return the wire shape of a message in a list (MessageSummary)."""
        msg_id = msg["id"]
        mailbox_id = msg["mailboxId"]
        return {
            "id": msg_id,
            "mailboxId": mailbox_id,
            "mailboxEmail": self.mailboxes[mailbox_id]["email"],
            "subject": msg["subject"],
            "from": msg["from"],
            "to": msg["to"],
            "cc": msg["cc"],
            "date": msg["date"].isoformat(),
            "isSeen": msg["isSeen"],
            "hasAttachments": msg["hasAttachments"],
            "folder": msg["folder"],
            "url": f"https://emulator.bitrix24.test/mail/message/{msg_id}",
            "bindings": [dict(b) for b in msg["bindings"]],
        }

    def full(self, msg: Mapping[str, Any]) -> dict[str, Any]:
        """Return the wire shape of a single message (summary plus body)."""
        data = self.summary(msg)
        data["body"] = self.message_body(msg)
        return data

    def thread_item(self, msg: Mapping[str, Any]) -> dict[str, Any]:
        """Return the wire shape of a thread entry (date as ``Y-m-d H:i:s``, no offset)."""
        return {
            "id": msg["id"],
            "subject": msg["subject"],
            "from": msg["from"],
            "to": msg["to"],
            "cc": msg["cc"],
            "date": msg["date"].strftime("%Y-%m-%d %H:%M:%S"),
            "body": self.message_body(msg),
        }

    def mailbox_for_address(self, address: str) -> int | None:
        """Return the id of the mailbox an address (or one of its senders) belongs to."""
        email = parse_address(address)
        for mailbox_id, senders in self.senders.items():
            if self.mailboxes[mailbox_id]["email"] == email:
                return mailbox_id
            if any(s["email"] == email for s in senders):
                return mailbox_id
        return None

    def side_effects(self) -> list[dict[str, Any]]:
        """Return every recorded side effect (sends, moves, created objects) in order."""
        with self.lock:
            return list(self._effects)

    # ----------------------------------------------------------------- writing
    def next_id(self, kind: str, start: int) -> int:
        """Return the next sequential id of a created object kind (tasks, events...)."""
        with self.lock:
            value = self._counters.get(kind, start)
            self._counters[kind] = value + 1
            return value

    def record(self, bucket: list[dict[str, Any]], entry: dict[str, Any]) -> dict[str, Any]:
        """Append a side-effect entry to its bucket and to the ordered log."""
        with self.lock:
            entry.setdefault("time", time.time())
            bucket.append(entry)
            self._effects.append(entry)
            return entry

    def add_message(
        self,
        *,
        mailbox_id: int = 1,
        subject: str = "Test message",
        body: str = "Test body",
        from_: str = "Tester <tester@example.com>",
        to: str | Iterable[str] | None = None,
        cc: str | Iterable[str] | None = None,
        folder: str = "INBOX",
        is_seen: bool = False,
        has_attachments: bool = False,
        date: datetime | None = None,
        thread_of: int | None = None,
    ) -> dict[str, Any]:
        """Add a message to a mailbox and return its stored record (newest unless ``date``)."""
        with self.lock:
            if mailbox_id not in self.mailboxes:
                raise KeyError(f"unknown mailbox {mailbox_id}")
            msg_id = self._next_message_id
            self._next_message_id += 1
            order = self._order[mailbox_id]
            if date is None:
                newest = [self.messages[order[-1]]["date"]] if order else []
                date = max([_SEED_NEWEST, *newest]) + timedelta(minutes=1)
            elif date.tzinfo is None:
                date = date.replace(tzinfo=MSK)
            if thread_of is not None and thread_of in self.messages:
                thread_id = self.messages[thread_of]["threadId"]
            else:
                thread_id = self._next_thread_id
                self._next_thread_id += 1
            self.threads.setdefault(thread_id, []).append(msg_id)
            msg: dict[str, Any] = {
                "id": msg_id,
                "mailboxId": mailbox_id,
                "baseSubject": subject,
                "subject": subject,
                "from": from_,
                "to": _join(to) or self.mailboxes[mailbox_id]["email"],
                "cc": _join(cc),
                "date": date,
                "isSeen": is_seen,
                "hasAttachments": has_attachments,
                "folder": folder,
                "body": body,
                "threadId": thread_id,
                "bindings": [],
            }
            self.messages[msg_id] = msg
            bisect.insort(order, msg_id, key=lambda i: (self.messages[i]["date"], i))
            thread = self.threads[thread_id]
            thread.sort(key=lambda i: (self.messages[i]["date"], i))
            self._changed()
            return msg

    def move_messages(self, ids: Iterable[int], folder: str) -> int:
        """Move messages to a folder; return how many moved."""
        with self.lock:
            count = 0
            for msg_id in ids:
                self.messages[msg_id]["folder"] = folder
                count += 1
            self._changed()
            return count

    def add_binding(self, message_id: int, kind: str, object_id: int) -> None:
        """Attach a created object to a message's ``bindings``."""
        with self.lock:
            self.messages[message_id]["bindings"].append({"type": kind, "id": object_id})
            self._changed()

    def chat_for(self, message_id: int) -> int | None:
        """Return the chat already created from a message, if any."""
        return self._chat_by_message.get(message_id)

    def remember_chat(self, message_id: int, chat_id: int) -> None:
        """Remember the chat created from a message so a second call finds it."""
        with self.lock:
            self._chat_by_message[message_id] = chat_id

    def _changed(self) -> None:
        self._version += 1


def _join(value: str | Iterable[str] | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    joined = ", ".join(value)
    return joined or None
