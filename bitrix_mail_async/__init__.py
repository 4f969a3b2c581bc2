"""Asyncio client for the Bitrix24 Vibe API mail gateway."""

from bitrix_mail_async import errors
from bitrix_mail_async._version import __version__

__all__ = ["__version__", "errors"]
