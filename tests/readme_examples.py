"""The python blocks of the README and the docs, and running one as a script against an emulator.

Blocks are found by their content (``block_with``), never by their place, so a block can move
between README.md and the pages under docs/ without a test noticing. Every block is accounted
for in :data:`RUN` (the test that runs it) or :data:`NOT_RUN` (why none does); the test
``test_every_python_block_is_run_or_listed`` keeps it so.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from bitrix_mail_async.testing import MailEmulator

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

#: Blocks run by a test, by the strings that find them -> that test ("file::function").
RUN: dict[tuple[str, ...], str] = {
    ("async with MailClient() as mail:  # key from BITRIX_MAIL_API_KEY", "NotFoundError"): (
        "tests/test_readme.py::test_readme_example_runs"
    ),
    ("class MailService", "await self.mail.open()"): (
        "tests/test_readme.py::test_open_and_close_example_runs"
    ),
    ("MailClient(\n    api_key=None",): (
        "tests/test_readme.py::test_client_options_listing_matches_the_signature"
    ),
    ("page_size=200", "iter_contacts"): "tests/test_readme.py::test_paging_example_runs",
    ("create_task(1001)", "msg.bindings"): "tests/test_readme.py::test_bindings_example_runs",
    ("get_many", "tqdm"): "tests/test_readme.py::test_readme_bulk_example_runs",
    ("def on_retry", "asyncio.run"): "tests/test_readme.py::test_hooks_example_runs",
    (
        "otel.instrument()",
        "ConsoleSpanExporter",
    ): "tests/test_otel.py::test_the_readme_example_runs",
    ("with_raw_response", "asyncio.run"): (
        "tests/test_readme.py::test_readme_raw_responses_example_runs"
    ),
    ("RedisRateLimit.documented", "multiprocessing"): (
        "tests/redis/test_redis_readme.py::test_the_workers_recipe_runs_and_keeps_the_limits"
    ),
    ("for_session", "asyncio.run"): "tests/test_readme.py::test_readme_tenants_example_runs",
    ("def test_send_is_never_repeated",): (
        "tests/test_readme.py::test_readme_fixture_example_passes"
    ),
}

#: Blocks no test runs as written -> why (each still must compile).
NOT_RUN: dict[tuple[str, ...], str] = {
    ("EmulatorAdmin(", "admin.wait_for"): (
        "talks to an emulator served on port 8080 by another process; the same calls run "
        "against a served emulator in tests/emulator/test_emulator_cli_host.py"
    ),
    ("async def task_bot", "watcher.stop"): (
        "a bot that polls until SIGTERM and defines no entry point; its runnable form, "
        "examples/task_bot.py, is run, stopped and restarted by tests/examples"
    ),
}


def doc_files() -> list[Path]:
    """README.md, then every Markdown page under docs/, in path order."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def located_blocks() -> list[tuple[Path, str]]:
    """Every ```python block of the README and the docs, with the file it is in."""
    return [
        (path, block)
        for path in doc_files()
        for block in _BLOCK.findall(path.read_text(encoding="utf-8"))
    ]


def python_blocks() -> list[str]:
    """Every ```python block of the README and the docs, README first."""
    return [block for _, block in located_blocks()]


def block_with(*needles: str) -> str:
    """The first python block (README, then docs/) that contains every one of ``needles``."""
    for block in python_blocks():
        if all(needle in block for needle in needles):
            return block
    raise LookupError(f"no python block in README.md or docs/ contains all of {needles!r}")


def run_example(
    example: str, emulator: MailEmulator, tmp_path: Path, *, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``example`` as a script, its key and base URL those of ``emulator``; must exit 0."""
    script = tmp_path / "example.py"
    script.write_text(example)
    env = dict(
        os.environ,
        BITRIX_MAIL_API_KEY=emulator.api_key,
        BITRIX_MAIL_BASE_URL=emulator.base_url,
    )
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return done
