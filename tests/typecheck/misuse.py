"""Checked by mypy --strict (see test_typing.py): each line marked ``# type-error`` must fail.

Proof that the precise types bite: a raw method takes exactly the ordinary method's
arguments, ``move``'s action and ``request``'s method are literals, a view takes typed options.
"""

from __future__ import annotations

from bitrix_mail_async import MailClient


async def misuse(mail: MailClient) -> None:
    await mail.messages.move([1], action="archive")  # type-error
    await mail.with_raw_response.messages.move([1], action="archive")  # type-error
    await mail.with_raw_response.messages.get("1")  # type-error
    await mail.with_raw_response.messages.get(1, limit=5)  # type-error
    print((await mail.with_raw_response.messages.get(1)).parsed.no_such_field)  # type-error
    await mail.request("DELETE", "/me")  # type-error
    mail.with_options(timeout="5")  # type-error
    await mail.messages.get(1)  # fine: the unmarked lines must pass
