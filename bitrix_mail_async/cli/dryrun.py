"""``--dry-run``: the request a command would send, printed, and nothing sent.

Owns the stand-in: a server on a loopback port of this process that records the first
request it receives and refuses it, so the command stops there. The command runs unchanged
through a real :class:`~bitrix_mail_async.MailClient` pointed at the stand-in, so every
argument check of the library runs and a dry run refuses bad input exactly as a real run
does; nothing reaches the gateway. The client gets a placeholder of the key's kind, never the
key itself (nor the session token), so the printed ``X-Api-Key`` is ``vibe_api_***``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

import attrs
from aiohttp import web

from bitrix_mail_async import MailClient, errors
from bitrix_mail_async._config import redact_key, redact_url
from bitrix_mail_async.cli.failures import EXIT_OK, first_error
from bitrix_mail_async.cli.output import print_json
from bitrix_mail_async.cli.terminal import json_text, printable

__all__ = ["DRY_RUN_CODE", "RecordedRequest", "StandIn", "dry_run"]

#: The error code the stand-in answers with; the client raises it as an ``APIError``.
DRY_RUN_CODE: Final = "DRY_RUN"
_PREFIX: Final = "/v1"
# Headers every request carries that say nothing about this one.
_NOT_SHOWN: Final = frozenset({"host", "content-length", "accept-encoding", "connection"})


@attrs.frozen
class RecordedRequest:
    """What the client sent the stand-in: method, path below ``/v1``, query, headers, JSON."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    body: Any

    def url(self, base_url: str) -> str:
        """The URL the request would go to under ``base_url``, query included."""
        query = f"?{urlencode(self.query)}" if self.query else ""
        return f"{redact_url(base_url)}{self.path}{query}"


def _shown_header(name: str, value: str) -> str:
    if name.lower() == "x-api-key":
        return redact_key(value)
    if name.lower() == "authorization":
        return "Bearer ***"
    return value


class StandIn:
    """A loopback server that records requests and answers each with a ``DRY_RUN`` refusal."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def _record(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        path = request.path[len(_PREFIX) :] if request.path.startswith(_PREFIX) else request.path
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=path,
                query=tuple(parse_qsl(request.query_string, keep_blank_values=True)),
                headers=tuple(
                    (name, _shown_header(name, value))
                    for name, value in request.headers.items()
                    if name.lower() not in _NOT_SHOWN
                ),
                body=body,
            )
        )
        # 400 is never retried, for a POST either: the command stops at its first request.
        error = {"code": DRY_RUN_CODE, "message": "dry run: the request was not sent"}
        return web.json_response({"success": False, "error": error}, status=400)

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._record)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address: Any = runner.addresses[0]
        self.base_url = f"http://127.0.0.1:{int(address[1])}{_PREFIX}"

    async def close(self) -> None:
        """Stop listening."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


def _print_request(request: RecordedRequest, base_url: str, *, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "dry_run": True,
                "method": request.method,
                "url": request.url(base_url),
                "query": dict(request.query),
                "headers": dict(request.headers),
                "json": request.body,
            }
        )
        return
    print(printable(f"dry run, nothing sent: {request.method} {request.url(base_url)}"))
    for name, value in request.headers:
        print(printable(f"{name}: {value}"))
    if request.body is not None:
        print()
        print(json_text(request.body, indent=2))


async def dry_run(
    command: Callable[[MailClient], Awaitable[int]],
    *,
    key: str,
    base_url: str,
    session_token: bool,
    options: dict[str, Any],
    as_json: bool,
) -> int:
    """Run ``command`` against the stand-in and print its first request as sent to ``base_url``.

    ``key`` only gives the placeholder its kind; ``session_token`` says whether one is set.
    ``options`` are further ``MailClient`` keywords (timeout, portal_timezone).
    """
    stand_in = StandIn()
    await stand_in.start()
    try:
        async with MailClient(
            redact_key(key),
            base_url=stand_in.base_url,
            session_token="***" if session_token else None,
            rate_limit=None,
            **options,
        ) as mail:
            try:
                await command(mail)
            except (errors.APIError, BaseExceptionGroup) as exc:
                refused = first_error(exc)
                if not (isinstance(refused, errors.APIError) and refused.code == DRY_RUN_CODE):
                    raise
    finally:
        await stand_in.close()
    if stand_in.requests:
        _print_request(stand_in.requests[0], base_url, as_json=as_json)
    elif as_json:
        print_json({"dry_run": True, "method": None})
    else:
        print("dry run: this command sends no request")
    return EXIT_OK
