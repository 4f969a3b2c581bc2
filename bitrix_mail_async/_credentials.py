"""The headers one client (or one tenant of an app key) sends, and the refresh of its token.

An app key (``vibe_app_``) needs ``Authorization: Bearer <session token>`` beside its
``X-Api-Key``. A session token expires (401 ``TOKEN_EXPIRED``); ``session_token`` may then be an
async callable that returns a fresh one. :meth:`Credentials.refresh` calls it at most once for
any number of calls that failed with the same stale token: they all wait for that one call.

The key and token live only in :attr:`Credentials.headers` (and the copy for POSTs); the repr
is redacted, so a traceback that captures locals shows ``<Credentials vibe_app_***>``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from bitrix_mail_async import errors
from bitrix_mail_async._config import check_header_value, redact_key
from bitrix_mail_async._version import __version__

__all__ = ["USER_AGENT", "Credentials", "TokenSource"]

USER_AGENT: Final = f"bitrix-mail-async/{__version__}"
#: An async callable returning a session token (``MailClient(session_token=...)``).
TokenSource = Callable[[], Awaitable[str]]
#: Longest wait for a token callable: one that hangs must not hold every call of a tenant.
TOKEN_TIMEOUT: Final = 30.0


class Credentials:
    """The key's headers, with the session token when there is one; refreshable by a callable."""

    __slots__ = ("_hint", "_key", "_refreshing", "_source", "headers", "post_headers", "version")

    def __init__(self, api_key: str, session_token: str | TokenSource | None) -> None:
        # The key was checked by _config.resolve_api_key; a str token by resolve_session_token.
        self._key = api_key
        self._hint = redact_key(api_key)
        self._source: TokenSource | None = (
            None if isinstance(session_token, str | None) else (session_token)
        )
        self._refreshing: asyncio.Future[str | None] | None = None
        #: Counts the tokens set so far: 0 while a callable has not been asked for one yet.
        self.version = 0 if self._source is not None else 1
        self.headers: dict[str, str] = {}
        self.post_headers: dict[str, str] = {}
        self._set(session_token if isinstance(session_token, str) else None)

    def __repr__(self) -> str:
        return f"<Credentials {self._hint}>"

    def _set(self, token: str | None) -> None:
        headers = {"X-Api-Key": self._key, "User-Agent": USER_AGENT, "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self.headers = headers
        self.post_headers = {**headers, "Content-Type": "application/json"}

    def sent_headers(
        self, request_id: str, post: bool, extra: Mapping[str, str] | None
    ) -> dict[str, str]:
        """The headers of one attempt: ``extra`` first, then these, then the request id.

        Built here, with no local variable of their own, so that no frame holds them.
        """
        if extra is None:
            return {**(self.post_headers if post else self.headers), "X-Request-Id": request_id}
        return {
            **extra,
            **(self.post_headers if post else self.headers),
            "X-Request-Id": request_id,
        }

    def with_token(self, session_token: str | TokenSource) -> Credentials:
        """The same key with another session token (one installation of an app key)."""
        return Credentials(self._key, session_token)

    @property
    def ready(self) -> bool:
        """False until a token callable has given its first token."""
        return self.version > 0

    @property
    def refreshable(self) -> bool:
        """True when the token comes from a callable that can give a fresh one."""
        return self._source is not None

    def secrets(self) -> tuple[str, ...]:
        """The texts that must never leave: the key and the token (for scrubbing messages)."""
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        return (self._key, token) if token else (self._key,)

    async def refresh(self, seen: int) -> None:
        """Ask the callable for a token, unless one newer than version ``seen`` came already.

        Calls that saw the same stale token share one call of the callable, run as a task of
        its own so that a caller's cancel does not cancel it for the others (it is bounded by
        :data:`TOKEN_TIMEOUT`). Its failure is a ``ConfigurationError`` for each of them, with
        the callable's error type, never its text, which might quote a token.
        """
        if self._source is None or self.version > seen:
            return
        task = self._refreshing
        if task is None:
            task = self._refreshing = asyncio.ensure_future(self._fetch(self._source))
            task.add_done_callback(self._fetched)
        problem = await asyncio.shield(task)
        if problem is not None:
            raise errors.ConfigurationError(f"the session_token callable failed: {problem}")

    def _fetched(self, task: asyncio.Future[str | None]) -> None:
        if self._refreshing is task:
            self._refreshing = None

    async def _fetch(self, source: TokenSource) -> str | None:
        """Set a fresh token from ``source``; what went wrong, or None."""
        try:
            async with asyncio.timeout(TOKEN_TIMEOUT):
                token = await source()
            check_header_value("session_token", token)
        except errors.ConfigurationError as exc:
            return str(exc.args[0]) if exc.args else "the token is not valid"
        except TimeoutError:
            return f"it did not return within {TOKEN_TIMEOUT:g}s"
        except Exception as exc:
            return f"it raised {type(exc).__name__}"
        self._set(token)
        self.version += 1
        return None
