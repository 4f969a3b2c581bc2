"""The gateway emulator: an aiohttp.web app speaking the mail contract, and its runner.

``MailEmulator`` serves seeded portal data over real HTTP with the gateway's validation, error
codes, API-key checks, a per-key token bucket (429 + ``Retry-After``), fault injection and a
log of received requests. The pytest plugin gives the ``mail_emulator`` fixture.
"""

from bitrix_mail_async.testing.app import DEFAULT_API_KEY, KeyInfo, create_app
from bitrix_mail_async.testing.faults import Faults
from bitrix_mail_async.testing.log import EmulatorStats, RecordedRequest, RequestLog
from bitrix_mail_async.testing.server import MailEmulator, run, serve_forever
from bitrix_mail_async.testing.state import EmulatorOptions, PortalState
from bitrix_mail_async.testing.wire import GatewayError

__all__ = [
    "DEFAULT_API_KEY",
    "EmulatorOptions",
    "EmulatorStats",
    "Faults",
    "GatewayError",
    "KeyInfo",
    "MailEmulator",
    "PortalState",
    "RecordedRequest",
    "RequestLog",
    "create_app",
    "run",
    "serve_forever",
]
