"""What every resource shares: the transport it declares its routes against."""

from __future__ import annotations

from bitrix_mail_async._transport import Transport


class Resource:
    """Base of the resources: holds the transport, never touches aiohttp."""

    __slots__ = ("_transport",)

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
