"""Helpers for the emulator's contract tests: a raw aiohttp client, never the project's client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bitrix_mail_async.testing import MailEmulator

_UNSET: Any = object()


@dataclass
class Reply:
    """One raw answer: status, headers and the parsed JSON body (None when not JSON)."""

    status: int
    headers: Mapping[str, str]
    text: str
    body: Any

    @property
    def data(self) -> Any:
        assert self.body["success"] is True, self.body
        return self.body["data"]

    @property
    def error(self) -> dict[str, Any]:
        assert self.body["success"] is False, self.body
        error: dict[str, Any] = self.body["error"]
        return error


class Api:
    """Raw HTTP against an emulator, with its key sent by default."""

    def __init__(self, session: aiohttp.ClientSession, emulator: MailEmulator) -> None:
        self.session = session
        self.emulator = emulator

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = _UNSET,
        data: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        key: str | None = _UNSET,
    ) -> Reply:
        sent = dict(headers or {})
        api_key = self.emulator.api_key if key is _UNSET else key
        if api_key is not None:
            sent.setdefault("X-Api-Key", api_key)
        kwargs: dict[str, Any] = {"params": params, "headers": sent}
        if json is not _UNSET:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        async with self.session.request(method, self.emulator.base_url + path, **kwargs) as resp:
            text = await resp.text()
            try:
                body = await resp.json(content_type=None) if text else None
            except ValueError:
                body = None
            return Reply(resp.status, resp.headers, text, body)

    async def get(self, path: str, **params: Any) -> Reply:
        return await self.request("GET", path, params={k: str(v) for k, v in params.items()})

    async def post(self, path: str, json: Any = _UNSET, **kwargs: Any) -> Reply:
        return await self.request("POST", path, json=json, **kwargs)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
def api(session: aiohttp.ClientSession, mail_emulator: MailEmulator) -> Api:
    return Api(session, mail_emulator)


@pytest.fixture
def make_api(session: aiohttp.ClientSession) -> Any:
    """Build an :class:`Api` for another emulator (e.g. one from ``mail_emulator_factory``)."""

    def build(emulator: MailEmulator) -> Api:
        return Api(session, emulator)

    return build
