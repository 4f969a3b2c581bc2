"""Every documented error code, unknown codes and broken answers become typed errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bitrix_mail_async import MailClient, RetryPolicy, errors

from .conftest import ScriptedServer

CODES = [
    (400, "INVALID_PARAMS", errors.InvalidParamsError),
    (401, "MISSING_API_KEY", errors.AuthenticationError),
    (401, "INVALID_API_KEY", errors.AuthenticationError),
    (401, "KEY_INACTIVE", errors.AuthenticationError),
    (401, "KEY_EXPIRED", errors.AuthenticationError),
    (401, "TOKEN_MISSING", errors.AuthenticationError),
    (403, "SCOPE_DENIED", errors.PermissionDeniedError),
    (403, "BITRIX_ACCESS_DENIED", errors.PermissionDeniedError),
    (404, "NOT_FOUND", errors.NotFoundError),
    (404, "ENTITY_NOT_FOUND", errors.NotFoundError),
    (422, "BITRIX_ERROR", errors.BitrixError),
    (429, "RATE_LIMITED", errors.RateLimitedError),
    (502, "BITRIX_UNAVAILABLE", errors.UpstreamUnavailableError),
]


@pytest.mark.parametrize(("status", "code", "cls"), CODES)
async def test_each_documented_code_maps_to_its_class(
    scripted: ScriptedServer,
    scripted_client: Callable[..., MailClient],
    status: int,
    code: str,
    cls: type[errors.APIError],
) -> None:
    body = {
        "success": False,
        "error": {"code": code, "message": "Сообщение", "hint": "check it", "retryAfter": 1},
    }
    scripted.push(status, body)
    async with scripted_client(retry=RetryPolicy.never()) as mail:
        with pytest.raises(cls) as info:
            await mail.mailboxes.get(7)
    err = info.value
    assert type(err) is cls
    assert (err.code, err.status, err.message, err.hint) == (code, status, "Сообщение", "check it")
    assert (err.method, err.path) == ("GET", "/mail/mailboxes/7")
    assert err.retry_after == 1.0
    assert code in str(err) and "/mail/mailboxes/7" in str(err)
    assert len(scripted.hits) == 1


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.InvalidParamsError),
        (401, errors.AuthenticationError),
        (403, errors.PermissionDeniedError),
        (404, errors.NotFoundError),
        (409, errors.APIError),
        (422, errors.BitrixError),
        (500, errors.UpstreamUnavailableError),
        (504, errors.UpstreamUnavailableError),
    ],
)
async def test_unknown_code_maps_by_status(
    scripted: ScriptedServer,
    scripted_client: Callable[..., MailClient],
    status: int,
    cls: type[errors.APIError],
) -> None:
    scripted.push(status, {"success": False, "error": {"code": "SOMETHING_NEW", "message": "x"}})
    async with scripted_client(retry=RetryPolicy.never()) as mail:
        with pytest.raises(cls) as info:
            await mail.mailboxes.get(1)
    assert type(info.value) is cls
    assert info.value.code == "SOMETHING_NEW"
    assert info.value.status == status


async def test_html_error_page_becomes_typed_error_with_excerpt(
    scripted: ScriptedServer, scripted_client: Callable[..., MailClient]
) -> None:
    scripted.push(502, "<html><body><h1>502 Bad Gateway</h1> nginx </body></html>")
    async with scripted_client(retry=RetryPolicy.never()) as mail:
        with pytest.raises(errors.UpstreamUnavailableError) as info:
            await mail.mailboxes.get(1)
    assert info.value.status == 502
    assert info.value.code is None
    assert info.value.body_excerpt is not None and "502 Bad Gateway" in info.value.body_excerpt


async def test_validation_list_is_passed_through(
    scripted: ScriptedServer, scripted_client: Callable[..., MailClient]
) -> None:
    scripted.push(
        400,
        {
            "success": False,
            "error": {
                "code": "INVALID_PARAMS",
                "message": "bad",
                "validation": [{"field": "to", "message": "empty"}, "junk"],
            },
        },
    )
    async with scripted_client() as mail:
        with pytest.raises(errors.InvalidParamsError) as info:
            await mail.mailboxes.get(1)
    assert info.value.validation == [{"field": "to", "message": "empty"}]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('{"success": true, "data": {"item": {"id": 1}', "not valid JSON"),
        ("", "not valid JSON"),
        ("<html>oops</html>", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        ('{"success": true}', "without 'data'"),
        ("[1, 2, 3]", "envelope"),
        ('{"data": {}}', "envelope"),
    ],
)
async def test_broken_success_answers_raise_decode_error(
    scripted: ScriptedServer,
    scripted_client: Callable[..., MailClient],
    body: str | bytes,
    fragment: str,
) -> None:
    scripted.push(200, body, {"Content-Type": "application/json"})
    async with scripted_client() as mail:
        with pytest.raises(errors.DecodeError) as info:
            await mail.mailboxes.get(1)
    assert fragment in str(info.value)
    assert info.value.status == 200
    assert len(scripted.hits) == 1  # a 2xx is never retried


async def test_success_false_with_200_is_an_api_error(
    scripted: ScriptedServer, scripted_client: Callable[..., MailClient]
) -> None:
    scripted.push(
        200, {"success": False, "error": {"code": "BITRIX_ACCESS_DENIED", "message": "no"}}
    )
    async with scripted_client() as mail:
        with pytest.raises(errors.PermissionDeniedError) as info:
            await mail.mailboxes.get(1)
    assert info.value.status == 200
    assert info.value.code == "BITRIX_ACCESS_DENIED"


async def test_payload_that_does_not_fit_the_model_is_decode_error(
    scripted: ScriptedServer, scripted_client: Callable[..., MailClient]
) -> None:
    scripted.push(200, {"success": True, "data": {"item": {"id": "not-a-number"}}})
    async with scripted_client() as mail:
        with pytest.raises(errors.DecodeError):
            await mail.mailboxes.get(1)


def test_error_class_table_falls_back_by_status() -> None:
    assert errors.error_class_for("RATE_LIMITED", 200) is errors.RateLimitedError
    assert errors.error_class_for(None, 503) is errors.UpstreamUnavailableError
    assert errors.error_class_for(None, 418) is errors.APIError
    assert issubclass(errors.TimeoutError, TimeoutError)
    assert issubclass(errors.UpstreamOutcomeUnknownError, errors.OutcomeUnknownError)
    assert issubclass(errors.UpstreamOutcomeUnknownError, errors.UpstreamUnavailableError)
