"""The README's "Many workers, one key" recipe runs as written, against the emulator with
every documented limit on and a real redis-server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from readme_examples import block_with, run_example

from bitrix_mail_async.testing import MailEmulator
from bitrix_mail_async.testing.limits import LimitSettings

pytestmark = pytest.mark.redis

SCALE = 0.1  # the emulator and the recipe ten times faster: about 1.6 s of calls


def test_the_workers_recipe_runs_and_keeps_the_limits(
    redis_url: str,
    mail_emulator_factory: Callable[..., MailEmulator],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = block_with("RedisRateLimit.documented", "Pool(8)")
    emulator = mail_emulator_factory(limits=LimitSettings.documented(SCALE))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("TIME_SCALE", str(SCALE))
    done = run_example(example, emulator, tmp_path, timeout=120)
    seen = int(done.stdout.split("429s seen:")[1])
    calls = [r for r in emulator.requests if r.path == "/mail/mailboxes/1"]
    # 80 calls, each answered; the processes start one by one, so a 429 is rare: a loaded
    # machine may bunch a few calls (benchmarks/redis_workers.py has the figures).
    assert len(calls) - emulator.stats.rate_limited == 80
    assert seen == emulator.stats.rate_limited <= 2, done.stdout
