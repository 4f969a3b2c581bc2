"""Run ``python -m bitrix_mail_async`` as a subprocess against the thread-backed emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Protocol

import pytest

import bitrix_mail_async
from bitrix_mail_async.cli import main
from bitrix_mail_async.testing import MailEmulator

#: Generous for a slow CI box; every command here finishes in well under a second locally.
CLI_TIMEOUT = 30.0


class RunInProcess(Protocol):
    def __call__(self, *args: str, key: str | None = ...) -> tuple[int, str, str]: ...


class RunCli(Protocol):
    def __call__(
        self,
        *args: str,
        key: str | None = ...,
        stdin: str | None = ...,
        cwd: str | os.PathLike[str] | None = ...,
    ) -> subprocess.CompletedProcess[str]: ...


#: The directory holding the package under test: subprocesses import it, whatever their cwd.
SOURCE_ROOT = str(Path(bitrix_mail_async.__file__).resolve().parent.parent)


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without the user's gateway settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BITRIX_MAIL_")}
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SOURCE_ROOT, env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_cli(
    *args: str,
    env: dict[str, str],
    stdin: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the command line once and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "bitrix_mail_async", *args],
        env=env,
        input=stdin,
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=CLI_TIMEOUT,
        check=False,
    )


@pytest.fixture
def cli(mail_emulator: MailEmulator) -> RunCli:
    """Run the CLI with the emulator's URL in ``--base-url``-less form (env) and its key."""

    def run(
        *args: str,
        key: str | None = mail_emulator.api_key,
        stdin: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        extra = {"BITRIX_MAIL_BASE_URL": mail_emulator.base_url}
        if key is not None:
            extra["BITRIX_MAIL_API_KEY"] = key
        return run_cli(*args, env=clean_env(**extra), stdin=stdin, cwd=cwd)

    return run


@pytest.fixture
def cli_in_process(
    mail_emulator: MailEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> RunInProcess:
    """``main(argv)`` in this process (no interpreter start-up): exit code, stdout, stderr."""

    def run(*args: str, key: str | None = mail_emulator.api_key) -> tuple[int, str, str]:
        for name in [n for n in os.environ if n.startswith("BITRIX_MAIL_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("BITRIX_MAIL_BASE_URL", mail_emulator.base_url)
        if key is not None:
            monkeypatch.setenv("BITRIX_MAIL_API_KEY", key)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run
