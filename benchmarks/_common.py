"""Shared helpers of the benchmarks: servers in child processes, result files, RSS.

Every benchmark keeps the server out of the measured process: the emulator (or a canned
aiohttp.web app) runs in a ``spawn``-ed child on a free loopback port and is stopped at the end.
The emulator child answers commands over a pipe (``stats``, ``reset``, ``stop``; and, for the
gateway's limit system, ``limit_stats``, ``apply_limits`` and ``sent``; ``call`` runs any
module-level function on the emulator) so that a benchmark can read the server-side counts.
The peer, the PyPI package vibecode-b24-bot, lives in a virtualenv
of its own created on first use (:func:`ensure_peer`); its jobs run there as scripts
(:func:`run_peer_script`) and print one JSON object.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent

_SPAWN = multiprocessing.get_context("spawn")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- the emulator
def _limit_stats(emulator: Any) -> dict[str, Any]:
    stats = emulator.stats
    return {
        "requests": stats.requests,
        "rate_limited": stats.rate_limited,
        "by_status": dict(stats.by_status),
        "window_limited": stats.window_limited,
        "portal_limited": stats.portal_limited,
        "queue_timeouts": stats.queue_timeouts,
        "loop_detected": stats.loop_detected,
        "max_concurrent": dict(stats.max_concurrent),
    }


def _sent_subjects(emulator: Any, prefix: str) -> dict[str, int]:
    """How many times each send whose subject starts with ``prefix`` was applied."""
    counts: dict[str, int] = {}
    for entry in emulator.state.side_effects():
        subject = str((entry.get("request") or {}).get("subject", ""))
        if entry.get("kind") == "send" and subject.startswith(prefix):
            counts[subject] = counts.get(subject, 0) + 1
    return counts


def _answer_command(emulator: Any, command: Any) -> Any:
    """The reply to one pipe command (``stop`` is handled by the caller)."""
    if command == "stats":
        full = _limit_stats(emulator)
        return {name: full[name] for name in ("requests", "rate_limited", "by_status")}
    if command == "reset":
        emulator.stats.reset()
        emulator.requests.clear()
        # Refill the bucket: a new run must not start with the previous run's debt.
        limiter = emulator.limiter
        limiter.configure(limiter.per_second, limiter.burst, limiter.retry_after)
        return True
    if command == "limit_stats":
        return _limit_stats(emulator)
    name, argument = command
    if name == "apply_limits":
        # Re-applying forgets the window's hits, the portal's tokens and the breaker's failures.
        emulator.limits.apply(argument)
        return True
    if name == "sent":
        return _sent_subjects(emulator, argument)
    if name == "call":
        function, args = argument
        return function(emulator, *args)
    raise ValueError(f"unknown emulator command {name!r}")


def _emulator_child(
    conn: multiprocessing.connection.Connection,
    kwargs: dict[str, Any],
    setup: Callable[[Any], None] | None,
) -> None:
    from bitrix_mail_async.testing import MailEmulator

    emulator = MailEmulator(**kwargs)
    if setup is not None:
        setup(emulator)  # keys, sessions, limits: before the first request can arrive
    emulator.start_in_thread(timeout=60)
    conn.send({"base_url": emulator.base_url, "api_key": emulator.api_key})
    try:
        while True:
            try:
                command = conn.recv()
            except EOFError:
                return
            if command == "stop":
                return
            conn.send(_answer_command(emulator, command))
    finally:
        emulator.stop()


class EmulatorProcess:
    """``MailEmulator(**kwargs)`` in a child process; ``with EmulatorProcess(...) as emu:``.

    ``setup`` (a module-level function, so that it pickles) is called with the emulator in the
    child before it starts.
    """

    def __init__(self, setup: Callable[[Any], None] | None = None, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.setup = setup
        self.base_url = ""
        self.api_key = ""
        self._conn: multiprocessing.connection.Connection | None = None
        self._proc: Any = None

    def __enter__(self) -> EmulatorProcess:
        parent, child = _SPAWN.Pipe()
        self._proc = _SPAWN.Process(
            target=_emulator_child, args=(child, self.kwargs, self.setup), daemon=True
        )
        self._proc.start()
        child.close()
        self._conn = parent
        if not parent.poll(120):
            self.__exit__()
            raise RuntimeError("the emulator did not start")
        info = parent.recv()
        self.base_url, self.api_key = info["base_url"], info["api_key"]
        return self

    def stats(self) -> dict[str, Any]:
        """The emulator's counters (requests, rate_limited = 429 answers, by_status)."""
        assert self._conn is not None
        self._conn.send("stats")
        result: dict[str, Any] = self._conn.recv()
        return result

    def reset(self) -> None:
        """Zero the counters and refill the rate-limit bucket."""
        assert self._conn is not None
        self._conn.send("reset")
        self._conn.recv()

    def _ask(self, command: Any) -> Any:
        assert self._conn is not None
        self._conn.send(command)
        return self._conn.recv()

    def limit_stats(self) -> dict[str, Any]:
        """The counters of ``stats`` plus each limit's refusals and the most calls at once."""
        result: dict[str, Any] = self._ask("limit_stats")
        return result

    def apply_limits(self, settings: Any) -> None:
        """Configure the gateway's limits (a ``LimitSettings``) afresh, forgetting their state."""
        self._ask(("apply_limits", settings))

    def sent(self, prefix: str) -> dict[str, int]:
        """Subject -> times applied, for every send whose subject starts with ``prefix``."""
        result: dict[str, int] = self._ask(("sent", prefix))
        return result

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(emulator, *args)`` in the child (a module-level function); its result."""
        return self._ask(("call", (function, args)))

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send("stop")
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            self._proc.join(15)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(5)
            self._proc = None


# --------------------------------------------------------------------------- the peer
PEER = "vibecode-b24-bot"
DEFAULT_VENV = Path(os.environ.get("TMPDIR", "/tmp")) / "bitrix-mail-async-peer-venv"


def ensure_peer(venv: Path) -> tuple[Path | None, str]:
    """The peer venv's python (creating the venv when needed) and the installed version."""
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    probe = "import importlib.metadata as m; print(m.version('vibecode-b24-bot'))"
    if python.exists():
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True)
        if done.returncode == 0:
            return python, done.stdout.strip()
    print(f"creating the peer virtualenv {venv} and installing {PEER} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", PEER],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        return None, "pip install failed: " + (pip.stderr or pip.stdout).strip()[-400:]
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    return python, done.stdout.strip()


def run_peer_script(
    python: Path,
    script: str,
    args: list[str],
    timeout: float,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``script`` (a file beside this one) with the peer's python; its last line, as JSON."""
    cmd = [str(python), str(HERE / script), *args]
    full_env = {**os.environ, **env} if env else None
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
    if done.returncode != 0:
        raise RuntimeError(f"peer job failed: {done.stderr.strip()[-400:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- any app
def _app_child(port: int, factory: Callable[[], Any]) -> None:
    from aiohttp import web

    web.run_app(factory(), host="127.0.0.1", port=port, access_log=None, print=None)


class AppProcess:
    """An ``aiohttp.web.Application`` built by ``factory`` (picklable) in a child process."""

    def __init__(self, factory: Callable[[], Any], ready_path: str) -> None:
        self.factory = factory
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ready_path = ready_path
        self._proc: Any = None

    def __enter__(self) -> AppProcess:
        self._proc = _SPAWN.Process(target=_app_child, args=(self.port, self.factory), daemon=True)
        self._proc.start()
        asyncio.run(wait_ready(self.base_url + self.ready_path, {}, time.monotonic() + 60))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.join(10)
            self._proc = None


async def wait_ready(url: str, headers: dict[str, str], deadline: float) -> None:
    """Poll ``url`` until it answers 200."""
    async with aiohttp.ClientSession(headers=headers) as http:
        while True:
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up")
            await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- results
def write_json(path: str | None, result: dict[str, Any]) -> None:
    """Write a benchmark's result dict for ``run_all.py`` (no-op without ``--json``)."""
    if path:
        Path(path).write_text(json.dumps(result, indent=2, default=str))


def current_rss_mb() -> float:
    """Resident set size now, in MiB (Linux /proc; psutil elsewhere when installed)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        import psutil  # type: ignore[import-not-found]

        return float(psutil.Process().memory_info().rss) / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (``getrusage``)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024
