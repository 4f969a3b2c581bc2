"""The emulated portal: mailboxes, messages, recipients and the log of side effects.

The portal starts from :func:`~bitrix_mail_async.testing.seed.seed_portal`; this module owns
reading it in the wire's shapes and changing it (new messages, moves, created objects).

New messages get the next id and, unless a test gives a date, the portal's "now": a clock that
starts a minute after the newest seeded message and runs with real time. It is the portal's own
clock, not the wall clock, so seeded and new dates stay in one consistent past whatever day the
tests run (a date filter written in a test keeps matching); pass ``now=`` to choose another.
:meth:`PortalState.deliver` is the exception: it stands for mail arriving from outside, dated
by the gateway's wall clock as real incoming mail is, so a ``messages.watch()`` started
without ``since`` (which starts at the gateway's "now") sees it.

The gateway's wall clock is :attr:`PortalState.wall_clock` (the machine's UTC clock unless a
test sets another callable): ``deliver()`` dates by it and the emulator's answers carry it as
their HTTP ``Date`` header, which is what a watcher takes as "now". Mail with any date can
arrive at any time: ``deliver(date=...)`` (or ``add_message(date=...)``) adds a message dated
in the past or the future right now, and a test moves "now" by changing ``wall_clock``::

    clock = {"now": datetime(2026, 6, 1, 12, 0, tzinfo=UTC)}
    emu.state.wall_clock = lambda: clock["now"]
    emu.deliver(subject="a day late", date=clock["now"] - timedelta(days=1))
    clock["now"] += timedelta(hours=1)
"""

from __future__ import annotations

import bisect
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from bitrix_mail_async.testing.seed import (
    FIRST_MESSAGE_ID,
    MSK,
    SEED_NEWEST,
    seed_body,
    seed_portal,
)

__all__ = [
    "FOLDERS",
    "MSK",
    "EmulatorOptions",
    "PortalState",
    "parse_address",
]

FOLDERS: tuple[str, ...] = ("INBOX", "Sent", "Spam", "Trash", "Archive")

_ADDRESS = re.compile(r"<\s*([^<>\s]+@[^<>\s]+)\s*>")


@dataclass
class EmulatorOptions:
    """Tolerance knobs: which of the plausible payload shapes the emulator answers with."""

    list_meta: bool = True
    mailboxes_shape: Literal["list", "items"] = "list"
    mailbox_get_shape: Literal["item", "bare"] = "item"
    thread_shape: Literal["list", "items"] = "list"
    crm_activity_shape: Literal["bool", "object"] = "bool"
    #: Order of ``GET /mail/messages``, which the contract leaves undocumented: newest first,
    #: oldest first, or a stable scramble (a fixed permutation by id), so that clients can be
    #: tested for not relying on any of them.
    list_order: Literal["newest", "oldest", "scrambled"] = "newest"


def parse_address(value: str) -> str:
    """Return the bare, lower-cased e-mail of ``"Name <user@host>"`` or ``"user@host"``."""
    match = _ADDRESS.search(value)
    return (match.group(1) if match else value.strip()).lower()


class PortalState:
    """A seeded Bitrix24 portal: the data the emulator serves and the effects it records."""

    def __init__(
        self, *, messages: int = 60, seed: int = 0, now: Callable[[], datetime] | None = None
    ) -> None:
        self.seed = seed
        #: How many messages the seed made (``fresh()`` makes as many again).
        self.seeded_messages = messages
        self._now = now if now is not None else _portal_clock()
        #: The gateway's wall clock (aware datetimes): dates ``deliver()``'s mail and the
        #: answers' HTTP ``Date`` header. Tests may replace it to control "now".
        self.wall_clock: Callable[[], datetime] = _utc_now
        self.options = EmulatorOptions()
        # A lock for mutations: handlers run on the emulator's loop while tests may call the
        # helpers below from another thread.
        self.lock = threading.RLock()
        seeded = seed_portal(seed, messages)
        self.mailboxes: dict[int, dict[str, Any]] = seeded.mailboxes
        self.senders: dict[int, list[dict[str, Any]]] = seeded.senders
        self.folders: tuple[str, ...] = FOLDERS
        self.messages: dict[int, dict[str, Any]] = seeded.messages
        self.threads: dict[int, list[int]] = seeded.threads
        self.contacts: list[dict[str, Any]] = seeded.contacts
        self.employees: list[dict[str, Any]] = seeded.employees
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
        self._order: dict[int, list[int]] = seeded.order
        self._filter_cache: dict[tuple[Any, ...], list[int]] = {}
        self._version = 0
        self._next_message_id = FIRST_MESSAGE_ID + messages
        # The newest date a message was given by a clock, so that one dated by a clock later
        # never sorts before it (a message given its own date, say 2099, does not count).
        self._latest = SEED_NEWEST
        self._next_thread_id = len(seeded.threads) + 1
        self._counters: dict[str, int] = {}
        self._chat_by_message: dict[int, int] = {}

    def fresh(self) -> PortalState:
        """A new portal from the same seed: its clocks and options, none of its changes."""
        state = PortalState(messages=self.seeded_messages, seed=self.seed, now=self._now)
        state.wall_clock = self.wall_clock
        state.options = replace(self.options)
        state.denied_mailboxes = set(self.denied_mailboxes)
        return state

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

    def in_list_order(self, ids: list[int]) -> list[int]:
        """Reorder newest-first ids into the order ``options.list_order`` asks for."""
        order = self.options.list_order
        if order == "oldest":
            return ids[::-1]
        if order == "scrambled":
            return sorted(ids, key=lambda i: ((i * 2654435761) % 2**32, i))
        return ids

    def message_body(self, msg: Mapping[str, Any]) -> str:
        """Return a message's body, rendering seeded bodies on demand."""
        body = msg.get("body")
        return body if isinstance(body, str) else seed_body(msg)

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
                date = self._latest = max(self._now().replace(microsecond=0), self._latest)
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

    def deliver(
        self, *, mailbox_id: int = 1, date: datetime | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Add a message arriving now; dated by :attr:`wall_clock` unless ``date`` is given.

        Takes :meth:`add_message`'s keywords. Without ``date`` the date is never older than
        the newest message dated by a clock (the seed's, earlier deliveries), so deliveries
        keep arrival order even when the wall clock is behind the seed; with one (an aware
        datetime, in the past or the future) the message carries that date, as mail from a
        sender with a wrong clock, a slow relay or an attacker does.
        """
        with self.lock:
            if date is None:
                now = self.wall_clock().astimezone(MSK).replace(microsecond=0)
                date = self._latest = max(now, self._latest)
            return self.add_message(mailbox_id=mailbox_id, date=date, **fields)

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


def _portal_clock() -> Callable[[], datetime]:
    """Return the default "now" of a portal: a minute after its newest seed, running on."""
    origin = time.monotonic()
    start = SEED_NEWEST + timedelta(minutes=1)
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _join(value: str | Iterable[str] | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    joined = ", ".join(value)
    return joined or None
