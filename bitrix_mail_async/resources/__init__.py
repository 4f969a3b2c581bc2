"""Resources: one thin class per route family, one coroutine per endpoint."""

from bitrix_mail_async.resources.mailboxes import Mailboxes
from bitrix_mail_async.resources.messages import Messages
from bitrix_mail_async.resources.recipients import Recipients

__all__ = ["Mailboxes", "Messages", "Recipients"]
