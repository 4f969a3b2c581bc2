"""The README's python blocks, and running one as a script against an emulator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from bitrix_mail_async.testing import MailEmulator

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    """Every ```python block of the README, in order."""
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def block_with(*needles: str) -> str:
    """The first README python block that contains every one of ``needles``."""
    return next(b for b in python_blocks() if all(n in b for n in needles))


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
