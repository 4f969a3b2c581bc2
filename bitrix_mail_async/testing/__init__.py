"""The gateway emulator: an aiohttp.web app speaking the mail contract, and its runner.

``MailEmulator`` serves seeded portal data over real HTTP with the gateway's validation, error
codes, API-key checks, ``GET /v1/me``, fault injection and a log of received requests. The
gateway's limit system is there too, every part off unless asked for: the per-key sliding
window with its ``X-RateLimit-*`` headers, the portal bucket its keys share, the portal queue
(504 ``QUEUE_TIMEOUT``), the circuit breaker (429 ``ERROR_LOOP_DETECTED``) and a key's own
token bucket (``set_rate_limit``); ``MailEmulator(limits=LimitSettings.documented())`` or
``emu.enable_gateway_limits()`` switches the gateway's four on; ``clock=ManualClock()`` makes
their time move only when a test says so. The pytest plugin gives the ``mail_emulator`` and
``mail_emulator_factory`` fixtures.

A running emulator is also driven over HTTP, from any process or language: its admin API
under ``/_emulator/`` (:mod:`~bitrix_mail_async.testing.admin`) delivers mail, lists side
effects and the request log, and resets; :class:`EmulatorAdmin` is its typed Python client.
"""

from bitrix_mail_async.testing.admin import ADMIN_PREFIX
from bitrix_mail_async.testing.admin_client import AdminAPIError, EmulatorAdmin, SideEffects
from bitrix_mail_async.testing.app import DEFAULT_API_KEY, DEFAULT_PORTAL, KeyInfo, create_app
from bitrix_mail_async.testing.faults import Faults
from bitrix_mail_async.testing.limits import (
    BreakerSettings,
    LimitSettings,
    ManualClock,
    PortalRate,
    QueueSettings,
    WindowSettings,
)
from bitrix_mail_async.testing.log import EmulatorStats, RecordedRequest, RequestLog
from bitrix_mail_async.testing.server import MailEmulator, run, serve_forever
from bitrix_mail_async.testing.state import EmulatorOptions, PortalState
from bitrix_mail_async.testing.wire import GatewayError

__all__ = [
    "ADMIN_PREFIX",
    "DEFAULT_API_KEY",
    "DEFAULT_PORTAL",
    "AdminAPIError",
    "BreakerSettings",
    "EmulatorAdmin",
    "EmulatorOptions",
    "EmulatorStats",
    "Faults",
    "GatewayError",
    "KeyInfo",
    "LimitSettings",
    "MailEmulator",
    "ManualClock",
    "PortalRate",
    "PortalState",
    "QueueSettings",
    "RecordedRequest",
    "RequestLog",
    "SideEffects",
    "WindowSettings",
    "create_app",
    "run",
    "serve_forever",
]
