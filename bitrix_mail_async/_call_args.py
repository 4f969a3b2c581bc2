"""Checks of what ``MailClient.request()`` and ``with_options()`` extras would put on the wire.

Everything is refused here, before a request is prepared, with ``InvalidArgumentError``: a
method the gateway has not, a path that could leave ``base_url``, query values the URL
encoder would alter (lone surrogates) or cannot carry, JSON bodies with NaN or Infinity, and
extra headers that would replace the client's own (key, token, body type, request id).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from bitrix_mail_async import _args, errors
from bitrix_mail_async._jsonlib import dumps

__all__ = [
    "custom_body",
    "custom_method",
    "custom_path",
    "custom_query",
    "extra_body",
    "extra_headers",
]


#: What a path may carry unencoded: RFC 3986 path characters; anything else is percent-encoded.
_PATH_CHARS: Final = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")
_BROKEN_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_MAX_PATH: Final = 2048
_METHODS: Final = ("GET", "POST")  # the gateway's routes use only these (contract section 1)


def custom_method(method: object) -> str:
    """``GET`` or ``POST`` (any case)."""
    if isinstance(method, str) and method.upper() in _METHODS:
        return method.upper()
    raise errors.InvalidArgumentError(
        f"method must be 'GET' or 'POST' (the gateway's only methods), got {method!r:.40}"
    )


def custom_path(path: object, base_url: str) -> str:
    """A path below ``base_url``: one leading '/', no query, host, or '.'/'..' segment."""
    if not isinstance(path, str):
        raise errors.InvalidArgumentError(f"path must be a str, got {type(path).__name__}")
    if not path.startswith("/") or path.startswith("//"):
        raise errors.InvalidArgumentError(
            "path must start with a single '/' and be relative to base_url, e.g. '/me'"
        )
    if "?" in path or "#" in path:
        raise errors.InvalidArgumentError("path must not carry a query or fragment: use params=")
    if len(path) > _MAX_PATH:
        raise errors.InvalidArgumentError(f"path is longer than {_MAX_PATH} characters")
    if not _PATH_CHARS.fullmatch(path) or _BROKEN_ESCAPE.search(path):
        raise errors.InvalidArgumentError(
            "path has characters a URL path cannot carry as they are (spaces, non-ASCII, "
            "backslashes, a stray '%'): percent-encode them"
        )
    # Decoded first, so that '%2e%2e' or '%2F..' cannot climb out of base_url either.
    if any(segment in (".", "..") for segment in unquote(path).split("/")):
        raise errors.InvalidArgumentError("path must not contain '.' or '..' segments")
    prefix = urlsplit(base_url).path.rstrip("/")
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        raise errors.InvalidArgumentError(
            f"path is relative to base_url, which already ends in {prefix!r}: "
            f"pass {path[len(prefix) :] or '/'!r}"
        )
    return path


#: Most digits an int query value may have: far above any id, far below what str() refuses.
_MAX_INT_DIGITS: Final = 100


def _query_value(name: str, value: object) -> str:
    label = f"params[{name!r:.40}]"
    if isinstance(value, bool):
        return "true" if value else "false"  # the gateway's spelling of query booleans
    if isinstance(value, str):
        # Lone surrogates would be dropped silently by the URL encoder: refused instead.
        return _args.text(label, value, allow_empty=True)
    if isinstance(value, int):
        # 400 bits hold over 100 digits; past that str() would cost (and raise past 4,300).
        digits = str(int.__int__(value)) if int.bit_length(value) <= 400 else ""
        if not digits or len(digits.lstrip("-")) > _MAX_INT_DIGITS:
            raise errors.InvalidArgumentError(
                f"{label} is an int of more than {_MAX_INT_DIGITS} digits"
            )
        return digits
    if isinstance(value, float) and math.isfinite(value):
        return repr(float(value))
    raise errors.InvalidArgumentError(
        f"{label} must be a str, int, finite float or bool, got {type(value).__name__}"
    )


def _check_finite(value: object) -> None:
    """Refuse NaN and Infinity anywhere in a JSON body: JSON has no spelling for them."""
    stack = [value]
    seen: set[int] = set()  # a cycle is the encoder's to refuse; it must not loop here
    while stack:
        node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            raise errors.InvalidArgumentError(
                f"json holds {float(node)!r}, which JSON cannot carry (orjson would send null)"
            )
        if isinstance(node, Mapping | list | tuple) and id(node) not in seen:
            seen.add(id(node))
            stack.extend(node.values() if isinstance(node, Mapping) else node)


def custom_query(params: object) -> dict[str, str] | None:
    """Query parameters as strings; None values are left out."""
    if params is None:
        return None
    if not isinstance(params, Mapping):
        raise errors.InvalidArgumentError(
            f"params must be a mapping of names to values, got {type(params).__name__}"
        )
    query: dict[str, str] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not name:
            raise errors.InvalidArgumentError("params names must be non-empty strings")
        _args.text("params names", name)
        if value is not None:
            query[name] = _query_value(name, value)
    return query or None


def custom_body(method: str, json: object) -> Mapping[str, Any] | None:
    """The JSON object a POST sends (``{}`` when none is given); a GET sends none."""
    if method == "GET":
        if json is not None:
            raise errors.InvalidArgumentError("a GET sends no body: pass its values in params=")
        return None
    if json is None:
        return {}
    if not isinstance(json, Mapping):
        raise errors.InvalidArgumentError(
            f"json must be a mapping (the gateway's POST bodies are objects), "
            f"got {type(json).__name__}"
        )
    _check_finite(json)
    return json


#: Headers the client owns: extras may not replace the key, the token, the body's type or size,
#: the host or the request id.
_OWN_HEADERS: Final = frozenset(
    {
        "x-api-key",
        "authorization",
        "content-type",
        "content-length",
        "transfer-encoding",
        "host",
        "x-request-id",
    }
)
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")


def extra_headers(headers: object) -> dict[str, str] | None:
    """``extra_headers`` checked: HTTP token names, one-line values, none of the client's own."""
    if headers is None:
        return None
    if not isinstance(headers, Mapping):
        raise errors.InvalidArgumentError("extra_headers must be a mapping of names to values")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise errors.InvalidArgumentError(f"extra_headers: {name!r:.60} is not a header name")
        if name.lower() in _OWN_HEADERS:
            raise errors.InvalidArgumentError(
                f"extra_headers may not set {name}: the client sets it (key, token, body type)"
            )
        text = _args.single_line(f"extra_headers[{name!r}]", value, allow_empty=True)
        if not text.isascii():
            raise errors.InvalidArgumentError(f"extra_headers[{name!r}] must be ASCII")
        checked[name] = text
    return checked or None


def extra_body(body: object) -> dict[str, Any] | None:
    """``extra_body`` checked: a JSON object of finite values, added to every POST body."""
    if body is None:
        return None
    if not isinstance(body, Mapping) or not all(isinstance(k, str) for k in body):
        raise errors.InvalidArgumentError("extra_body must be a mapping with str keys")
    _check_finite(body)
    dumps(body)  # what JSON cannot carry is refused here, not at the first call
    return dict(body) or None
