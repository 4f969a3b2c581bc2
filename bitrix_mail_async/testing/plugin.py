"""pytest plugin: the ``mail_emulator`` and ``mail_emulator_factory`` fixtures.

Registered through the ``pytest11`` entry point. The fixtures are synchronous and run the
emulator on its own loop in a thread, so they work with any test loop (or none) and need no
pytest-asyncio. The emulator itself is imported lazily to keep plugin loading cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from bitrix_mail_async.testing.server import MailEmulator

__all__ = ["mail_emulator", "mail_emulator_factory"]


@pytest.fixture
def mail_emulator() -> Iterator[MailEmulator]:
    """A started emulator (60 seeded messages, default key) on a free local port."""
    from bitrix_mail_async.testing.server import MailEmulator

    with MailEmulator().in_thread() as emulator:
        yield emulator


@pytest.fixture
def mail_emulator_factory() -> Iterator[Callable[..., MailEmulator]]:
    """A factory starting customised emulators (``MailEmulator`` keywords); all stop at teardown."""
    from bitrix_mail_async.testing.server import MailEmulator

    started: list[MailEmulator] = []

    def factory(**kwargs: Any) -> MailEmulator:
        emulator = MailEmulator(**kwargs)
        emulator.start_in_thread()
        started.append(emulator)
        return emulator

    yield factory
    for emulator in reversed(started):
        emulator.stop()
