"""The emulator's admin API: drive and inspect a running emulator over HTTP, from any language.

Served under :data:`ADMIN_PREFIX` (``/_emulator``), a path no gateway route uses (those live
under ``/v1``). It is the emulator's own: it needs no ``X-Api-Key``, it is not written to the
request log, it meets no limit or fault, and it changes nothing the gateway routes do. Its
fields are camelCase, like the gateway data it returns (messages, side effects). Errors answer
``{"error": "<what is wrong>"}`` with 400, 404 or 405.

- ``GET /_emulator/`` — what runs: the gateway's path, mailboxes, folders, limits, faults;
- ``POST /_emulator/messages`` — deliver a message (any mailbox, folder, date, sender, ...);
- ``GET /_emulator/effects`` — the side effects: sent mail, tasks, events, chats, feed posts,
  CRM activities, moves;
- ``GET /_emulator/requests`` — the request log (filters: ``method``, ``path``,
  ``pathPrefix``, ``status``, ``fault``, ``limit``: the last N);
- ``GET /_emulator/stats`` — the counters;
- ``POST /_emulator/reset`` — forget the requests, counters and what the limits counted, and
  (unless ``{"portal": false}``) put the portal back to its seed; the configuration (limits,
  fault rates, latency, keys) stays as the emulator was started.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler

from bitrix_mail_async._convert import wire_name
from bitrix_mail_async.testing.log import EmulatorStats, RecordedRequest
from bitrix_mail_async.testing.state import MSK

if TYPE_CHECKING:
    from bitrix_mail_async.testing.app import Gateway

__all__ = [
    "ADMIN_PREFIX",
    "ADMIN_ROUTES",
    "admin_routes",
    "answer_admin",
    "is_admin_path",
    "recorded",
    "stats",
]

#: Where the admin API lives: outside ``/v1``, so no gateway route can ever be shadowed.
ADMIN_PREFIX: Final = "/_emulator"

#: The side effects ``GET /_emulator/effects`` lists: its field -> the portal's record.
EFFECT_KINDS: Final = {
    "sent": "sent",
    "tasks": "tasks",
    "events": "events",
    "chats": "chats",
    "feedPosts": "feed_posts",
    "crmActivities": "crm_activities",
    "moves": "moves",
}

_DELIVER_FIELDS: Final = frozenset(
    {
        "mailboxId",
        "folder",
        "date",
        "from",
        "to",
        "cc",
        "subject",
        "body",
        "isSeen",
        "hasAttachments",
        "threadOf",
    }
)
_MAX_ADMIN_BODY = 4 * 1024 * 1024


class AdminError(Exception):
    """A refused admin request: its status and what is wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_admin_path(path: str) -> bool:
    """True for the admin API's paths (``/_emulator`` and below)."""
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


def _json(payload: Any, status: int = 200) -> web.Response:
    # default=str: a side effect may hold a value JSON has no type for; show it, never fail.
    text = json.dumps(payload, ensure_ascii=False, default=str)
    return web.Response(status=status, text=text, content_type="application/json")


async def answer_admin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run an admin route; its refusals, and unknown admin paths, answer ``{"error": ...}``."""
    try:
        return await handler(request)
    except AdminError as err:
        return _json({"error": err.message}, err.status)
    except web.HTTPNotFound:
        what = f"{request.method} {request.path}"
        return _json({"error": f"no admin route {what}; GET {ADMIN_PREFIX}/ lists them"}, 404)
    except web.HTTPMethodNotAllowed as err:
        allowed = ", ".join(sorted(err.allowed_methods))
        return _json({"error": f"{request.method} is not allowed here; use {allowed}"}, 405)


# --------------------------------------------------------------------- reading a request
async def _body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    raw = await request.read()
    if len(raw) > _MAX_ADMIN_BODY:
        raise AdminError(400, "request body too large")
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        raise AdminError(400, "request body must be JSON") from None
    if not isinstance(parsed, dict):
        raise AdminError(400, "request body must be a JSON object")
    return parsed


def _typed(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = body.get(name)
    if value is None:
        return None
    # bool is an int to Python, never to a JSON reader.
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise AdminError(400, f"{name} must be {what}")
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _addresses(body: Mapping[str, Any], name: str) -> str | list[str] | None:
    value = body.get(name)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise AdminError(400, f"{name} must be a string or a list of strings")


def _date(body: Mapping[str, Any]) -> datetime | None:
    raw = _typed(body, "date", str, "an ISO 8601 date")
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise AdminError(400, f"date must be an ISO 8601 date, got {raw!r}") from None
    # Without an offset, the portal's own zone, as the gateway's date filters read it.
    return value if value.tzinfo is not None else value.replace(tzinfo=MSK)


def _deliver_arguments(gw: Gateway, body: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(body) - _DELIVER_FIELDS)
    if unknown:
        known = ", ".join(sorted(_DELIVER_FIELDS))
        raise AdminError(400, f"unknown field(s) {', '.join(unknown)}; known: {known}")
    mailbox_id = _typed(body, "mailboxId", int, "a mailbox id")
    mailbox_id = 1 if mailbox_id is None else mailbox_id
    if mailbox_id not in gw.state.mailboxes:
        known = ", ".join(map(str, sorted(gw.state.mailboxes)))
        raise AdminError(404, f"no mailbox {mailbox_id}; the portal has {known}")
    arguments: dict[str, Any] = {"mailbox_id": mailbox_id, "date": _date(body)}
    texts = {"folder": "folder", "from": "from_", "subject": "subject", "body": "body"}
    for field, keyword in texts.items():
        value = _typed(body, field, str, "a string")
        if value is not None:
            arguments[keyword] = value
    if arguments.get("folder") == "" or arguments.get("from_") == "":
        raise AdminError(400, "folder and from must not be empty")
    for field, keyword in (("to", "to"), ("cc", "cc")):
        arguments[keyword] = _addresses(body, field)
    for field, keyword in (("isSeen", "is_seen"), ("hasAttachments", "has_attachments")):
        flag = _typed(body, field, bool, "true or false")
        if flag is not None:
            arguments[keyword] = flag
    thread_of = _typed(body, "threadOf", int, "a message id")
    if thread_of is not None and thread_of not in gw.state.messages:
        raise AdminError(404, f"no message {thread_of} to thread the new one under")
    arguments["thread_of"] = thread_of
    return arguments


# --------------------------------------------------------------------- the routes
async def describe(gw: Gateway, request: web.Request) -> web.Response:
    """GET /_emulator/: what runs, and the admin routes."""
    limits = gw.limits.settings()
    faults = gw.faults
    return _json(
        {
            "gateway": "/v1",
            "mailboxes": [
                {"id": m["id"], "email": m["email"], "name": m["name"]}
                for m in gw.state.mailboxes.values()
            ],
            "folders": list(gw.state.folders),
            "limits": {
                "window": _settings(limits.window),
                "portal": _settings(limits.portal),
                "queue": _settings(limits.queue),
                "breaker": _settings(limits.breaker),
                "keyPerSecond": gw.limits.key_bucket.per_second,
            },
            "faults": {
                "errorRate": faults.error_rate,
                "dropBeforeRate": faults.drop_before_rate,
                "dropAfterRate": faults.drop_after_rate,
                "latency": faults.latency,
                "latencyJitter": faults.latency_jitter,
                "pending": faults.pending,
            },
            "routes": [f"{method} {ADMIN_PREFIX}{path}" for method, path, _ in ADMIN_ROUTES],
        }
    )


def _settings(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    return {wire_name(k): v for k, v in dataclasses.asdict(value).items()}  # type: ignore[call-overload]


async def deliver(gw: Gateway, request: web.Request) -> web.Response:
    """POST /_emulator/messages: a message arriving now; answers it as the gateway shows it."""
    arguments = _deliver_arguments(gw, await _body(request))
    state = gw.state
    record = state.deliver(**arguments)
    return _json(state.full(record), 201)


async def effects(gw: Gateway, request: web.Request) -> web.Response:
    """GET /_emulator/effects: every side effect, by kind, oldest first."""
    state = gw.state
    with state.lock:
        return _json({field: list(getattr(state, name)) for field, name in EFFECT_KINDS.items()})


def recorded(entry: RecordedRequest) -> dict[str, Any]:
    """One request log entry in the admin API's (camelCase) shape."""
    return {wire_name(k): v for k, v in dataclasses.asdict(entry).items()}


def _status_filter(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit():
        raise AdminError(400, f"status must be an HTTP status, got {raw!r}")
    return int(raw)


async def requests(gw: Gateway, request: web.Request) -> web.Response:
    """GET /_emulator/requests: the request log, oldest first (filters in the query)."""
    query = request.query
    unknown = sorted(set(query) - {"method", "path", "pathPrefix", "status", "fault", "limit"})
    if unknown:
        raise AdminError(400, f"unknown filter(s) {', '.join(unknown)}")
    limit = query.get("limit")
    if limit is not None and not limit.isdigit():
        raise AdminError(400, f"limit must be a whole number, got {limit!r}")
    entries = gw.requests.filter(
        method=query.get("method"),
        path=query.get("path"),
        path_prefix=query.get("pathPrefix"),
        status=_status_filter(query.get("status")),
        fault=query.get("fault"),
    )
    if limit is not None:
        entries = entries[-int(limit) :] if int(limit) else []
    return _json({"items": [recorded(e) for e in entries]})


def stats(counters: EmulatorStats) -> dict[str, Any]:
    """The counters in the admin API's (camelCase) shape."""
    payload = {wire_name(k): v for k, v in dataclasses.asdict(counters).items()}
    payload["byStatus"] = {str(k): v for k, v in counters.by_status.items()}
    return payload


async def show_stats(gw: Gateway, request: web.Request) -> web.Response:
    """GET /_emulator/stats: the counters."""
    return _json(stats(gw.stats))


async def reset(gw: Gateway, request: web.Request) -> web.Response:
    """POST /_emulator/reset: a fresh start with the same configuration."""
    portal = _typed(await _body(request), "portal", bool, "true or false")
    portal = True if portal is None else portal
    gw.restart(portal=portal)
    return _json({"reset": True, "portal": portal})


AdminHandler = Callable[["Gateway", web.Request], Awaitable[web.Response]]

#: The admin routes: method, path under :data:`ADMIN_PREFIX`, handler.
ADMIN_ROUTES: tuple[tuple[str, str, AdminHandler], ...] = (
    ("GET", "/", describe),
    ("POST", "/messages", deliver),
    ("GET", "/effects", effects),
    ("GET", "/requests", requests),
    ("GET", "/stats", show_stats),
    ("POST", "/reset", reset),
)


def admin_routes(gw: Gateway) -> list[web.RouteDef]:
    """The admin routes bound to ``gw``."""
    routes = [
        web.route(method, ADMIN_PREFIX + path, partial(handler, gw))
        for method, path, handler in ADMIN_ROUTES
    ]
    # The bare prefix too: `curl http://host:port/_emulator` is what people type.
    return [*routes, web.get(ADMIN_PREFIX, partial(describe, gw))]
