"""The route handlers, one module per part of the contract, and the lookups they share.

A handler is ``async (gateway, request) -> web.Response``: it validates its parameters with
:mod:`~bitrix_mail_async.testing.wire` and reads or changes the :class:`PortalState`; the
shared steps (auth, limits, faults, the request log) already ran in the middleware.
"""

from __future__ import annotations

from typing import Any

from bitrix_mail_async.testing import wire
from bitrix_mail_async.testing.state import PortalState

__all__ = ["find_mailbox", "find_message"]


def find_mailbox(state: PortalState, mailbox_id: int) -> dict[str, Any]:
    """Return a mailbox the key may read (404 when unknown, 403 when denied)."""
    mailbox = state.mailboxes.get(mailbox_id)
    if mailbox is None:
        raise wire.not_found("Mailbox", mailbox_id)
    if mailbox_id in state.denied_mailboxes:
        raise wire.access_denied("mailbox", mailbox_id)
    return mailbox


def find_message(state: PortalState, message_id: int) -> dict[str, Any]:
    """Return a message the key may read (404 when unknown, 403 when its mailbox is denied)."""
    msg = state.messages.get(message_id)
    if msg is None:
        raise wire.not_found("Message", message_id)
    if msg["mailboxId"] in state.denied_mailboxes:
        raise wire.access_denied("message", message_id)
    return msg
