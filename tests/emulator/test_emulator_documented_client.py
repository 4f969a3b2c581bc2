"""A client sized by ``RateLimit.documented(plan, time_scale)`` meets no 429 from an emulator
with ``LimitSettings.documented(time_scale, plan)``: one table of figures for both sides.

Emulator and client run on one virtual clock (``tests/client/virtual_time.py``), so the
result does not depend on the machine's speed or load.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from bitrix_mail_async import MailClient, RateLimit
from bitrix_mail_async.testing import LimitSettings, MailEmulator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from client.virtual_time import in_virtual_time


async def _run(plan: str, time_scale: float, calls: int) -> tuple[int, int, float]:
    """(answered, 429s at the emulator, what the portal's buckets allowed in that time)."""
    loop = asyncio.get_running_loop()
    settings = LimitSettings.documented(time_scale, plan)
    limit = RateLimit.documented(plan, time_scale)
    async with (
        MailEmulator(clock=loop.time, limits=settings) as emulator,
        MailClient(
            emulator.api_key, base_url=emulator.base_url, rate_limit=limit, max_concurrency=32
        ) as mail,
    ):
        started = loop.time()
        boxes = await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(calls)))
        elapsed = loop.time() - started
    assert settings.portal is not None
    # The tighter of the portal's rate and the REST bucket under it, over the run.
    allowed = min(burst + elapsed * rate for rate, burst in settings.portal.stages())
    return len(boxes), emulator.stats.rate_limited, allowed


@pytest.mark.parametrize(
    ("plan", "time_scale", "calls"),
    [("standard", 1.0, 120), ("standard", 0.01, 120), ("enterprise", 0.1, 290)],
)
def test_documented_client_meets_no_429_from_documented_emulator(
    plan: str, time_scale: float, calls: int
) -> None:
    answered, rate_limited, allowed = in_virtual_time(lambda: _run(plan, time_scale, calls))
    assert (answered, rate_limited) == (calls, 0)
    # Past the burst, so the buckets' rates held the client back, and it used them, not a
    # rate far below (90 % of what the buckets allowed).
    assert calls > RateLimit.documented(plan, time_scale).burst  # type: ignore[operator]
    assert calls >= 0.9 * allowed


def test_plans_are_one_table() -> None:
    for plan in ("standard", "enterprise"):
        portal = LimitSettings.documented(0.5, plan).portal
        client = RateLimit.documented(plan, 0.5)
        assert portal is not None
        assert (client.per_second, client.burst) == (portal.rest_per_second, portal.rest_burst)
        assert (client.peak_per_second, client.peak_burst) == (portal.per_second, portal.burst)
    with pytest.raises(ValueError, match="plan must be one of 'standard', 'enterprise'"):
        LimitSettings.documented(plan="gold")
