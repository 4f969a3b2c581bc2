"""Defaults of ``reply()`` and ``forward()``: what follows from the original message.

``to`` of a reply is the original's sender; a subject is the original's with ``Re:`` or
``Fwd:`` in front (never twice); ``from_`` is the mailbox's sender whose address is the
mailbox's own (else its first). The senders of a mailbox are asked once per client and
session (``GET /mail/mailboxes/{id}/senders``), then kept, at most :data:`MAX_CACHED`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from bitrix_mail_async import errors
from bitrix_mail_async.models import Message, Sender

__all__ = ["MAX_CACHED", "SenderCache", "prefixed", "sender_for"]

#: Mailboxes whose default sender a client keeps (per session of an app key).
MAX_CACHED: Final = 1024
# What mail clients put in front of a subject for each kind, in any case.
_SEEN_PREFIXES: Final = {"Re:": ("re:", "aw:", "ответ:"), "Fwd:": ("fwd:", "fw:", "wg:")}


def prefixed(prefix: str, subject: str | None) -> str:
    """``subject`` with ``prefix`` ("Re:" or "Fwd:") in front, unless it starts with one."""
    text = (subject or "").strip()
    if text.lower().startswith(_SEEN_PREFIXES.get(prefix, (prefix.lower(),))):
        return text
    return f"{prefix} {text}" if text else prefix


def sender_for(original: Message, senders: Sequence[Sender]) -> str:
    """The ``from`` of an answer: the sender with the mailbox's own address, else the first."""
    if not senders:
        raise errors.InvalidArgumentError(
            f"mailbox {original.mailbox_id} has no sender to answer from: pass from_="
        )
    own = (original.mailbox_email or "").strip().lower()
    for sender in senders:
        if own and (sender.email or "").strip().lower() == own:
            return sender.sender
    return senders[0].sender


class SenderCache:
    """The default sender of each mailbox, per session (an app key's tenants differ)."""

    __slots__ = ("_senders",)

    def __init__(self) -> None:
        self._senders: dict[tuple[str, int], str] = {}

    def get(self, session: str, mailbox_id: int) -> str | None:
        """The kept sender, or None."""
        return self._senders.get((session, mailbox_id))

    def put(self, session: str, mailbox_id: int, sender: str) -> None:
        """Keep a sender; past :data:`MAX_CACHED` the oldest goes."""
        if len(self._senders) >= MAX_CACHED:
            del self._senders[next(iter(self._senders))]
        self._senders[(session, mailbox_id)] = sender
