"""The steps every request shares, in the gateway's order, and the middleware that runs them.

Record the request, read its JSON body, add latency, check the key (:func:`authenticate`),
ask the limit mechanisms for a permit (:func:`admit`), inject a fault, run the route, and turn
any error into the envelope. A new per-request step is one more small function called from
:func:`_answer`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bitrix_mail_async.testing import wire
from bitrix_mail_async.testing.log import EmulatorStats, RecordedRequest, redact_headers
from bitrix_mail_async.testing.wire import GatewayError

if TYPE_CHECKING:
    from bitrix_mail_async.testing.app import Gateway

__all__ = ["admit", "authenticate", "gateway_middleware"]

logger = logging.getLogger("bitrix_mail_async.testing")

_PRE_ACTION = frozenset({"502", "503", "504", "429", "html", "success_false_200"})
_POST_ACTION = frozenset({"malformed", "empty", "no_data"})


# --------------------------------------------------------------------- auth
def authenticate(gw: Gateway, request: web.Request) -> str:
    """Check the request's API key (and an app key's bearer token); return the key."""
    key = request.headers.get("X-Api-Key")
    if not key:
        raise GatewayError(
            401,
            "MISSING_API_KEY",
            "X-Api-Key header is required",
            hint="Pass X-Api-Key: vibe_api_...",
        )
    info = gw.keys.get(key)
    if info is None:
        raise GatewayError(401, "INVALID_API_KEY", "Invalid API key")
    if info.app:
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not token or token not in info.tokens:
            raise GatewayError(
                401, "INVALID_API_KEY", "Invalid or missing session token for an app key"
            )
    if info.status == "inactive":
        raise GatewayError(401, "KEY_INACTIVE", "API key is inactive")
    if info.status == "expired":
        raise GatewayError(401, "KEY_EXPIRED", "API key has expired")
    if info.status == "no_tokens":
        raise GatewayError(401, "TOKEN_MISSING", "No Bitrix24 tokens are configured for this key")
    if "mail" not in info.scopes:
        raise GatewayError(
            403, "SCOPE_DENIED", "The key lacks the mail scope", hint="Add the mail scope"
        )
    return key


# --------------------------------------------------------------------- limits
def admit(gw: Gateway, key: str) -> None:
    """Ask every limit mechanism for a permit; the first refusal answers 429."""
    for limit in gw.limits:
        decision = limit.acquire(key)
        if not decision.allowed:
            raise GatewayError(
                429,
                "RATE_LIMITED",
                "Too many requests",
                hint="Wait 1-2 seconds before retrying",
                retry_after=decision.retry_after,
            )


# --------------------------------------------------------------------- faults
def _pick_fault(gw: Gateway, record: RecordedRequest) -> str | None:
    fault = gw.faults.pick(record.method, record.path)
    if fault is not None:
        record.fault = fault
        gw.stats.faults += 1
    return fault


def _fault_response(gw: Gateway, fault: str) -> web.Response:
    """Answer a fault injected before the route runs (nothing is applied)."""
    retry = gw.faults.fault_retry_after
    if fault == "502":
        return GatewayError(502, "BITRIX_UNAVAILABLE", "Bitrix24 is unavailable").response()
    if fault == "503":
        return GatewayError(
            503, "SERVICE_UNAVAILABLE", "Service temporarily unavailable"
        ).response()
    if fault == "504":
        return GatewayError(504, "GATEWAY_TIMEOUT", "Queue timeout", retry_after=retry).response()
    if fault == "429":
        return GatewayError(
            429, "RATE_LIMITED", "Too many requests", retry_after=retry, hint="Wait 1-2 s"
        ).response()
    if fault == "html":
        return web.Response(
            status=502,
            text="<html><head><title>502 Bad Gateway</title></head>"
            "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body>"
            "</html>",
            content_type="text/html",
        )
    if fault == "success_false_200":
        return wire.json_response(
            200,
            {"success": False, "error": {"code": "BITRIX_ERROR", "message": "Internal error"}},
        )
    raise AssertionError(f"not a pre-action fault: {fault}")


def _post_action_response(fault: str) -> web.Response:
    """Answer a fault injected after the route ran (its change is applied)."""
    if fault == "malformed":
        return web.Response(
            status=200, body=b'{"success": true, "data": {"ite', content_type=wire.JSON
        )
    if fault == "empty":
        return web.Response(status=200, body=b"", content_type=wire.JSON)
    return wire.json_response(200, {"success": True})


def _drop(request: web.Request) -> web.Response:
    transport = request.transport
    if transport is not None:
        transport.abort()
    # Nothing reaches the client: the transport is gone, aiohttp skips writing to it.
    return web.Response(status=204)


# --------------------------------------------------------------------- the pipeline
async def _route(request: web.Request, handler: Handler, path: str) -> web.StreamResponse:
    """Run the route; an unknown path or method is the gateway's ``404 NOT_FOUND``."""
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        raise GatewayError(404, "NOT_FOUND", f"Unknown action: {request.method} {path}") from None


async def _answer(
    gw: Gateway, request: web.Request, handler: Handler, record: RecordedRequest
) -> web.StreamResponse | None:
    """Run the shared steps and the route; ``None`` means: drop the connection."""
    body_error = await wire.read_json(request, record)
    delay = gw.faults.delay()
    if delay > 0:
        await asyncio.sleep(delay)
    admit(gw, authenticate(gw, request))
    fault = _pick_fault(gw, record)
    if fault is not None:
        if fault.startswith("slow:"):
            await asyncio.sleep(float(fault[5:]))
        elif fault == "drop_before":
            return None
        elif fault in _PRE_ACTION:
            return _fault_response(gw, fault)
    if body_error is not None:
        raise body_error
    response = await _route(request, handler, record.path)
    record.applied = response.status < 400
    if fault == "drop_after":
        return None
    if fault in _POST_ACTION:
        return _post_action_response(fault)
    return response


def _record(gw: Gateway, request: web.Request) -> RecordedRequest:
    path = request.path
    rel = path[len(wire.PREFIX) :] if path.startswith(wire.PREFIX + "/") else path
    record = RecordedRequest(
        method=request.method,
        path=rel,
        query=dict(request.query),
        json=None,
        headers=redact_headers(request.headers),
        time=time.time(),
    )
    gw.requests.append(record)
    gw.stats.requests += 1
    return record


def _finish(
    stats: EmulatorStats, record: RecordedRequest, response: web.StreamResponse
) -> web.StreamResponse:
    record.status = response.status
    stats.by_status[response.status] += 1
    if response.status == 429:
        stats.rate_limited += 1
    return response


def gateway_middleware(gw: Gateway) -> Middleware:
    """Build the one middleware of the app: the shared steps of ``gw`` around every route."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        record = _record(gw, request)
        response: web.StreamResponse | None
        try:
            response = await _answer(gw, request, handler, record)
        except GatewayError as err:
            response = err.response()
        except Exception as exc:
            # An emulator bug must still answer in the envelope, loudly, not as aiohttp's page.
            logger.exception("emulator handler failed on %s %s", request.method, record.path)
            error = GatewayError(500, "EMULATOR_ERROR", f"{type(exc).__name__}: {exc}")
            response = error.response()
        if response is None:
            gw.stats.dropped += 1
            return _drop(request)
        return _finish(gw.stats, record, response)

    return middleware
