"""The steps every request shares, in the gateway's order, and the middleware that runs them.

A request meets them in this order (each refusal answers at once and stops the road):

1. its JSON body is read (a malformed one is answered only after auth) and latency is added;
2. **auth** (:func:`authenticate`): the key, an app key's bearer token, the key's state and
   expiry, the ``mail`` scope (``GET /v1/me`` needs none);
3. **circuit breaker**: a request that failed identically too often is blocked, 429
   ``ERROR_LOOP_DETECTED``;
4. **per-key window**: counts the request or refuses it, 429 ``RATE_LIMITED``; from here on
   every answer to the key carries the ``X-RateLimit-*`` headers;
5. the key's own **token bucket** (``emu.set_rate_limit``), 429 ``RATE_LIMITED``;
6. **portal bucket**, shared by the keys of a portal, 429 ``QUERY_LIMIT_EXCEEDED``;
7. **portal queue**: wait for one of the portal's slots; too long a wait answers 504
   ``QUEUE_TIMEOUT``;
8. holding the slot for the queue's service time, **faults** are injected, then the **route**
   runs; the breaker hears whether an executed request failed.

What a refused request keeps: the window counts every request of the key it did not refuse
itself, also those the breaker or a later step refuses (the real gateway counts every request
of the key; a request the window refuses is not counted, so the Retry-After it gets holds). A
request the portal bucket refuses keeps its key-bucket token (the key did ask). A queue timeout
gives the portal bucket its token back: the call never reached Bitrix24. Nothing refused by a
limit is executed (``RecordedRequest.applied`` stays false, ``limited_by`` names the limit), and
a refusal is not a failure for the breaker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bitrix_mail_async.testing import wire
from bitrix_mail_async.testing.admin import answer_admin, is_admin_path
from bitrix_mail_async.testing.limits import (
    Fingerprint,
    QueueTimeout,
    Quota,
    RateDecision,
    fingerprint,
)
from bitrix_mail_async.testing.log import EmulatorStats, RecordedRequest, redact_headers
from bitrix_mail_async.testing.wire import GatewayError

if TYPE_CHECKING:
    from bitrix_mail_async.testing.app import Gateway, KeyInfo

__all__ = ["Ticket", "admit", "authenticate", "gateway_middleware"]

logger = logging.getLogger("bitrix_mail_async.testing")

_PRE_ACTION = frozenset({"502", "503", "504", "429", "html", "success_false_200"})
_POST_ACTION = frozenset({"malformed", "empty", "no_data"})
_ME = wire.PREFIX + "/me"
# An emulator bug's 500 quotes its exception this far (an exception text may be huge).
_ERROR_TEXT_MAX = 300


@dataclass
class Ticket:
    """What the limits decided about one authenticated request."""

    portal: str
    #: The request's identity for the circuit breaker (``None`` while the breaker is off).
    identity: Fingerprint | None = None
    #: The key's standing in its window (``None`` while the window is off).
    quota: Quota | None = None
    #: The request passed every limit and held a queue slot.
    executed: bool = False


_TICKET: web.RequestKey[Ticket] = web.RequestKey("bitrix_mail_emulator.ticket")


# --------------------------------------------------------------------- auth
def _expired(info: KeyInfo) -> bool:
    if info.status == "expired":
        return True
    expires = info.expires_at
    if expires is None:
        return False
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return expires <= datetime.now(UTC)


#: Read-only POST routes: a read-only key may still search recipients.
_SEARCHES = "/v1/mail/recipients/"
#: Identical errors after which the gateway adds its ``warning`` (contract §1b).
_REPEATS_FOR_WARNING = 3
_MAX_REPEAT_ENTRIES = 10_000
_REPEAT_WARNING = (
    "The same request keeps failing with the same error: client code most likely has a bug"
)


def _note_repeat(
    gw: Gateway, request: web.Request, record: RecordedRequest, err: GatewayError
) -> None:
    """Count an error answer; from the third identical one on, it carries ``warning``."""
    if err.status == 429 or err.status >= 500:
        return  # limits and outages are not the caller's bug
    key = (request.headers.get("X-Api-Key", ""), request.method, record.path, err.code)
    repeats = gw.repeats
    if len(repeats) >= _MAX_REPEAT_ENTRIES and key not in repeats:
        repeats.clear()
    repeats[key] = count = repeats.get(key, 0) + 1
    if count >= _REPEATS_FOR_WARNING:
        err.warning = _REPEAT_WARNING


def authenticate(gw: Gateway, request: web.Request, *, scope: str | None = "mail") -> KeyInfo:
    """Check the request's API key (an app key's bearer token, the scope); return its KeyInfo."""
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
        if token in info.expired_tokens:
            raise GatewayError(
                401, "TOKEN_EXPIRED", "The session token has expired", hint="Refresh the token"
            )
        if info.token_portals:
            # The installation's portal: its buckets and queue; the key (window) stays one.
            info = replace(info, portal=info.portal_of(token))
    if info.status == "inactive":
        raise GatewayError(401, "KEY_INACTIVE", "API key is inactive")
    if _expired(info):
        raise GatewayError(401, "KEY_EXPIRED", "API key has expired")
    if info.status == "no_tokens":
        raise GatewayError(401, "TOKEN_MISSING", "No Bitrix24 tokens are configured for this key")
    if (
        info.access_mode == "READONLY"
        and request.method == "POST"
        and not request.path.startswith(_SEARCHES)
    ):
        raise GatewayError(
            403,
            "WRITE_BLOCKED_READONLY_KEY",
            "This API key is read-only: writes are blocked",
            hint="Use a key with write access",
        )
    if scope is not None and scope not in info.scopes:
        raise GatewayError(
            403, "SCOPE_DENIED", f"The key lacks the {scope} scope", hint=f"Add the {scope} scope"
        )
    return info


# --------------------------------------------------------------------- limits
def _refuse(gw: Gateway, record: RecordedRequest, limit: str, error: GatewayError) -> GatewayError:
    record.limited_by = limit
    gw.stats.count_refusal(limit)
    return error


def _too_many(retry_after: float, message: str = "Too many requests") -> GatewayError:
    hint = "Wait 1-2 seconds before retrying"
    return GatewayError(429, "RATE_LIMITED", message, hint=hint, retry_after=retry_after)


def _window_refusal(quota: Quota) -> GatewayError:
    return GatewayError(
        429,
        "RATE_LIMITED",
        f"Rate limit exceeded: {quota.limit} requests per window",
        hint="Rely on the X-RateLimit-* headers so that you never reach a refusal",
        retry_after=quota.reset,
    )


def _loop_detected(retry_after: float) -> GatewayError:
    return GatewayError(
        429,
        "ERROR_LOOP_DETECTED",
        "The same request keeps failing with the same error; it is blocked "
        "(Vibe-side block, not a Bitrix24 limit)",
        hint="Fix the request instead of repeating it",
        retry_after=retry_after,
    )


def admit(gw: Gateway, request: web.Request, record: RecordedRequest, info: KeyInfo) -> Ticket:
    """Pass the breaker, the key's window and bucket and the portal bucket, or raise a refusal."""
    limits = gw.limits
    ticket = Ticket(info.portal)
    record.portal = info.portal
    request[_TICKET] = ticket
    loop = RateDecision(True)
    if limits.breaker.enabled:
        ticket.identity = fingerprint(
            info.key, record.method, record.path, request.query.items(), record.json
        )
        loop = limits.breaker.check(ticket.identity)
    ticket.quota = limits.window.take(info.key)
    if not loop.allowed:
        raise _refuse(gw, record, "breaker", _loop_detected(loop.retry_after))
    if ticket.quota is not None and not ticket.quota.allowed:
        raise _refuse(gw, record, "window", _window_refusal(ticket.quota))
    decision = limits.key_bucket.acquire(info.key)
    if not decision.allowed:
        raise _refuse(gw, record, "key", _too_many(decision.retry_after))
    decision = limits.portal.acquire(info.portal)
    if not decision.allowed:
        raise _refuse(gw, record, "portal", _too_many(decision.retry_after, "QUERY_LIMIT_EXCEEDED"))
    return ticket


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


async def _run(
    gw: Gateway,
    request: web.Request,
    handler: Handler,
    record: RecordedRequest,
    body_error: GatewayError | None,
) -> web.StreamResponse | None:
    """Inject a fault and run the route; ``None`` means: drop the connection."""
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


def _queue_timeout(retry_after: float) -> GatewayError:
    return GatewayError(
        504,
        "QUEUE_TIMEOUT",
        "Portal queue saturated — too many concurrent Bitrix24 calls",
        hint="Lower the concurrency and retry after retryAfter",
        retry_after=retry_after,
    )


async def _execute(
    gw: Gateway,
    request: web.Request,
    handler: Handler,
    record: RecordedRequest,
    ticket: Ticket,
    body_error: GatewayError | None,
) -> web.StreamResponse | None:
    """Take a slot of the portal's queue, hold it for the service time, run the request."""
    queue = gw.limits.queue
    try:
        record.queue_wait = await queue.enter(ticket.portal)
    except QueueTimeout as timeout:
        gw.limits.portal.refund(ticket.portal)
        raise _refuse(gw, record, "queue", _queue_timeout(timeout.retry_after)) from None
    try:
        ticket.executed = True
        record.concurrency = queue.executing(ticket.portal)
        gw.stats.executing(ticket.portal, record.concurrency)
        settings = queue.settings
        if settings is not None and settings.service_time > 0:
            await asyncio.sleep(settings.service_time)
        return await _run(gw, request, handler, record, body_error)
    finally:
        queue.leave(ticket.portal)


async def _answer(
    gw: Gateway, request: web.Request, handler: Handler, record: RecordedRequest
) -> web.StreamResponse | None:
    """Run the shared steps and the route; ``None`` means: drop the connection."""
    try:
        body_error = await wire.read_json(request, record)
    finally:
        # Logged once its body is read, so the log can count what the entry holds.
        _log(gw, record)
    delay = gw.faults.delay()
    if delay > 0:
        await asyncio.sleep(delay)
    info = authenticate(gw, request, scope=None if request.path == _ME else "mail")
    ticket = admit(gw, request, record, info)
    return await _execute(gw, request, handler, record, ticket, body_error)


def _failed(record: RecordedRequest, response: web.StreamResponse | None) -> bool:
    """Tell whether an executed request failed, for the circuit breaker."""
    if response is None:
        return record.fault == "drop_before"
    return response.status >= 400 or record.fault == "success_false_200"


def _settle(
    gw: Gateway, request: web.Request, record: RecordedRequest, response: web.StreamResponse | None
) -> None:
    """Add the window's headers to the answer and tell the breaker how the request ended."""
    ticket = request.get(_TICKET)
    if ticket is None:
        return
    if response is not None and ticket.quota is not None:
        response.headers.update(ticket.quota.headers())
    if ticket.executed and ticket.identity is not None:
        gw.limits.breaker.observe(ticket.identity, failed=_failed(record, response))


def _record(request: web.Request) -> RecordedRequest:
    path = request.path
    rel = path[len(wire.PREFIX) :] if path.startswith(wire.PREFIX + "/") else path
    return RecordedRequest(
        method=request.method,
        path=rel,
        query=dict(request.query),
        json=None,
        headers=redact_headers(request.headers),
        time=time.time(),
    )


def _log(gw: Gateway, record: RecordedRequest) -> None:
    gw.requests.append(record)
    gw.stats.requests += 1


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
        if is_admin_path(request.path):
            # The emulator's own API: no key, no log, no limit, no fault.
            return await answer_admin(request, handler)
        record = _record(request)
        response: web.StreamResponse | None
        try:
            response = await _answer(gw, request, handler, record)
        except GatewayError as err:
            _note_repeat(gw, request, record, err)
            response = err.response()
        except Exception as exc:
            # An emulator bug must still answer in the envelope, loudly, not as aiohttp's page.
            logger.exception("emulator handler failed on %s %s", request.method, record.path)
            text = f"{type(exc).__name__}: {exc}"
            error = GatewayError(500, "EMULATOR_ERROR", text[:_ERROR_TEXT_MAX])
            response = error.response()
        _settle(gw, request, record, response)
        if response is None:
            gw.stats.dropped += 1
            return _drop(request)
        return _finish(gw.stats, record, response)

    return middleware
