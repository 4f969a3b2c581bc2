"""Shared helpers of the benchmarks: servers in child processes, result files, RSS.

Every benchmark keeps the server out of the measured process: the emulator (or a canned
aiohttp.web app) runs in a ``spawn``-ed child on a free loopback port and is stopped at the end.
The emulator child answers commands over a pipe (``stats``, ``reset``, ``stop``) so that a
benchmark can read the server-side 429 count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import os
import socket
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
def _emulator_child(conn: multiprocessing.connection.Connection, kwargs: dict[str, Any]) -> None:
    from bitrix_mail_async.testing import MailEmulator

    emulator = MailEmulator(**kwargs).start_in_thread(timeout=60)
    conn.send({"base_url": emulator.base_url, "api_key": emulator.api_key})
    try:
        while True:
            try:
                command = conn.recv()
            except EOFError:
                return
            if command == "stats":
                stats = emulator.stats
                conn.send(
                    {
                        "requests": stats.requests,
                        "rate_limited": stats.rate_limited,
                        "by_status": dict(stats.by_status),
                    }
                )
            elif command == "reset":
                emulator.stats.reset()
                emulator.requests.clear()
                # Refill the bucket: a new run must not start with the previous run's debt.
                limiter = emulator.limiter
                limiter.configure(limiter.per_second, limiter.burst, limiter.retry_after)
                conn.send(True)
            elif command == "stop":
                return
    finally:
        emulator.stop()


class EmulatorProcess:
    """``MailEmulator(**kwargs)`` in a child process; ``with EmulatorProcess(...) as emu:``."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.base_url = ""
        self.api_key = ""
        self._conn: multiprocessing.connection.Connection | None = None
        self._proc: Any = None

    def __enter__(self) -> EmulatorProcess:
        parent, child = _SPAWN.Pipe()
        self._proc = _SPAWN.Process(target=_emulator_child, args=(child, self.kwargs), daemon=True)
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
