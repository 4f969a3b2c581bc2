"""Issue 14, input items 9-12: text the wire cannot carry, header-breaking characters,
calendar times with offsets, and the ids of a move are refused before anything is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bitrix_mail_async import MailClient, errors
from bitrix_mail_async.cli import main
from bitrix_mail_async.resources.messages import MAX_MOVE_IDS
from bitrix_mail_async.testing import MailEmulator

S = "Sales Team <sales@emulator.bitrix24.test>"
LONE = "\ud800"  # a lone surrogate: a str Python allows, but no UTF-8 (hence no JSON/URL) has

Call = Callable[[MailClient], Awaitable[Any]]


def sent(emu: MailEmulator) -> list[str]:
    return [f"{r.method} {r.path}" for r in emu.requests]


# ------------------------------------------------------------ 9. lone surrogates
BODY_FIELDS: list[tuple[str, Call]] = [
    (
        "from_",
        lambda m: m.messages.send(from_=f"A{LONE} <a@x.io>", to="b@x.io", subject="s", body="b"),
    ),
    ("to", lambda m: m.messages.send(from_=S, to=[f"b{LONE}@x.io"], subject="s", body="b")),
    ("cc", lambda m: m.messages.send(from_=S, to="b@x.io", subject="s", body="b", cc=LONE)),
    ("subject", lambda m: m.messages.send(from_=S, to="b@x.io", subject=LONE, body="b")),
    ("body", lambda m: m.messages.send(from_=S, to="b@x.io", subject="s", body=f"hi {LONE}")),
    ("reply", lambda m: m.messages.reply(1001, from_=S, to="b@x.io", subject="s", body=LONE)),
    ("forward", lambda m: m.messages.forward(1001, from_=S, to="b@x.io", subject=LONE, body="")),
    ("move folder", lambda m: m.messages.move([1001], folder=f"Arch{LONE}")),
    ("task title", lambda m: m.messages.create_task(1001, title=LONE)),
    ("task description", lambda m: m.messages.create_task(1001, description=LONE)),
    ("feed title", lambda m: m.messages.create_feed_post(1001, title=LONE)),
    (
        "event name",
        lambda m: m.messages.create_calendar_event(
            1001, date_from="2026-01-01 10:00:00", date_to="2026-01-01 11:00:00", name=LONE
        ),
    ),
    ("contacts query", lambda m: m.recipients.contacts(LONE)),
    ("employees query", lambda m: m.recipients.employees(f"an{LONE}")),
    ("mailbox name filter", lambda m: m.mailboxes.list(name=LONE)),
    ("mailbox email filter", lambda m: m.mailboxes.list(email=LONE)),
]


@pytest.mark.parametrize(("field", "call"), BODY_FIELDS, ids=[f for f, _ in BODY_FIELDS])
async def test_lone_surrogates_are_refused_before_sending(
    mail: MailClient, mail_emulator: MailEmulator, field: str, call: Call
) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="surrogate"):
        await call(mail)
    assert sent(mail_emulator) == []


@pytest.mark.parametrize("name", ["folder", "search"])
async def test_lone_surrogate_in_a_list_filter_is_not_dropped(
    mail: MailClient, mail_emulator: MailEmulator, name: str
) -> None:
    # It used to go out as folder='' (the query encoder drops it): the whole mailbox.
    kwargs: dict[str, Any] = {name: LONE}
    with pytest.raises(errors.InvalidArgumentError, match=f"{name} .*surrogate"):
        mail.messages.list(1, **kwargs)
    assert sent(mail_emulator) == []


@pytest.fixture
def run_cli(
    mail_emulator: MailEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    def run(*argv: str) -> tuple[int, str, str]:
        monkeypatch.setenv("BITRIX_MAIL_BASE_URL", mail_emulator.base_url)
        monkeypatch.setenv("BITRIX_MAIL_API_KEY", mail_emulator.api_key)
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_folder_that_is_not_utf8_is_a_usage_error(
    mail_emulator: MailEmulator, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    # Python hands undecodable argv bytes (here 0xff) over as lone surrogates.
    code, out, err = run_cli("messages", "list", "1", "--folder", "\udcff")
    assert (code, out) == (2, "")
    assert "not UTF-8" in err and "Traceback" not in err
    assert sent(mail_emulator) == []


# ------------------------------------------------------ 10. header-breaking characters
BREAKERS = ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1b[31m", "\x7f", "\x9b", "\x01"]


@pytest.mark.parametrize("char", BREAKERS, ids=repr)
@pytest.mark.parametrize("field", ["from_", "to", "subject"])
async def test_header_fields_refuse_control_and_line_separator_characters(
    mail: MailClient, mail_emulator: MailEmulator, field: str, char: str
) -> None:
    args: dict[str, Any] = {"from_": S, "to": "b@x.io", "subject": "s", "body": "b"}
    args[field] = f"Hi{char}Bcc: evil@x.io" if field == "subject" else f"b{char}@x.io"
    with pytest.raises(errors.InvalidArgumentError, match=f"{field}.*U\\+{ord(char[0]):04X}"):
        await mail.messages.send(**args)
    assert sent(mail_emulator) == []


async def test_tab_in_a_subject_and_controls_in_a_body_still_go_out(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    # A tab is ordinary header whitespace; the body is not a header and keeps its text.
    await mail.messages.send(from_=S, to="b@x.io", subject="a\tb", body="line\r\nnext\x0cpage")
    assert mail_emulator.requests[-1].json["subject"] == "a\tb"
    assert mail_emulator.requests[-1].json["body"] == "line\r\nnext\x0cpage"


# ------------------------------------------------------------ 11. calendar times
@pytest.fixture
async def msk_mail(mail_emulator: MailEmulator) -> AsyncIterator[MailClient]:
    """A client that knows the emulated portal runs on Moscow time."""
    async with MailClient(
        mail_emulator.api_key,
        base_url=mail_emulator.base_url,
        rate_limit=None,
        portal_timezone="Europe/Moscow",
    ) as client:
        yield client


async def event(mail: MailClient, emu: MailEmulator, start: Any, end: Any) -> tuple[str, str]:
    await mail.messages.create_calendar_event(1001, date_from=start, date_to=end)
    body = emu.requests[-1].json
    return body["dateFrom"], body["dateTo"]


async def test_one_instant_in_three_zones_is_one_portal_time(
    msk_mail: MailClient, mail_emulator: MailEmulator
) -> None:
    instant = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    zones = [UTC, ZoneInfo("Europe/Moscow"), ZoneInfo("America/New_York")]
    got = [
        await event(msk_mail, mail_emulator, instant.astimezone(z), instant + timedelta(hours=1))
        for z in zones
    ]
    assert got == [("2026-06-01 13:00:00", "2026-06-01 14:00:00")] * 3
    assert len(mail_emulator.state.events) == 3


@pytest.mark.parametrize(
    "start",
    [
        "2026-06-01T10:00:00+00:00",
        "2026-06-01T10:00:00Z",
        "2026-06-01 06:00:00-04:00",
        "2026-06-01T13:00:00.250+03:00",
    ],
)
async def test_iso_strings_with_an_offset_are_converted(
    msk_mail: MailClient, mail_emulator: MailEmulator, start: str
) -> None:
    got = await event(msk_mail, mail_emulator, start, "2026-06-01 14:00:00")
    assert got == ("2026-06-01 13:00:00", "2026-06-01 14:00:00")


@pytest.mark.parametrize(
    ("start", "wire"),
    [
        (datetime(2026, 6, 1, 10, 0), "2026-06-01 10:00:00"),
        ("2026-06-01 10:00:00", "2026-06-01 10:00:00"),
        ("2026-06-01T10:00:00", "2026-06-01 10:00:00"),
        ("2026-06-01T10:00", "2026-06-01 10:00:00"),
    ],
)
@pytest.mark.parametrize("zoned", [False, True])
async def test_times_without_an_offset_are_portal_time_as_is(
    mail: MailClient,
    msk_mail: MailClient,
    mail_emulator: MailEmulator,
    start: Any,
    wire: str,
    zoned: bool,
) -> None:
    client = msk_mail if zoned else mail
    got = await event(client, mail_emulator, start, "2026-06-01 11:00:00")
    assert got == (wire, "2026-06-01 11:00:00")


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2026, 6, 1, 10, 0, tzinfo=UTC), "2026-06-01 14:00:00"),
        ("2026-06-01 10:00:00", "2026-06-01T11:00:00+03:00"),
    ],
)
async def test_an_offset_without_a_portal_timezone_is_refused(
    mail: MailClient, mail_emulator: MailEmulator, start: Any, end: Any
) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="portal_timezone"):
        await mail.messages.create_calendar_event(1001, date_from=start, date_to=end)
    assert sent(mail_emulator) == []


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-06-01 11:00:00", "2026-06-01 10:59:59"),
        (datetime(2026, 6, 2), datetime(2026, 6, 1, 23, 0)),
        # 07:30 UTC is 10:30 in Moscow: before the start once both are portal time.
        ("2026-06-01 11:00:00", datetime(2026, 6, 1, 7, 30, tzinfo=UTC)),
    ],
)
async def test_an_end_before_the_start_is_refused(
    msk_mail: MailClient, mail_emulator: MailEmulator, start: Any, end: Any
) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="before date_from"):
        await msk_mail.messages.create_calendar_event(1001, date_from=start, date_to=end)
    assert sent(mail_emulator) == []


async def test_an_event_may_end_when_it_starts(
    msk_mail: MailClient, mail_emulator: MailEmulator
) -> None:
    got = await event(msk_mail, mail_emulator, "2026-06-01 10:00:00", "2026-06-01 10:00:00")
    assert got == ("2026-06-01 10:00:00", "2026-06-01 10:00:00")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2026-06-01", "time of day"),
        ("tomorrow", "YYYY-MM-DD"),
        ("2026-02-30 10:00:00", "YYYY-MM-DD"),
        (datetime(2026, 6, 1).date(), "datetime or"),
        (1767261600, "datetime or"),
    ],
)
async def test_bad_calendar_times_are_refused(
    msk_mail: MailClient, mail_emulator: MailEmulator, value: Any, fragment: str
) -> None:
    with pytest.raises(errors.InvalidArgumentError, match=fragment):
        await msk_mail.messages.create_calendar_event(
            1001, date_from=value, date_to="2026-06-02 10:00:00"
        )
    assert sent(mail_emulator) == []


@pytest.mark.parametrize("zone", ["Mars/Olympus", "europe/moscow", "", "../etc/passwd", 3, LONE])
def test_unknown_portal_timezone_is_a_configuration_error(zone: Any) -> None:
    with pytest.raises(errors.ConfigurationError, match="portal_timezone"):
        MailClient("vibe_api_" + "x" * 20, portal_timezone=zone)


# --------------------------------------------------------------------- 12. move ids
NOT_A_COLLECTION = "list, tuple or set"
BAD_MOVE_IDS: dict[str, tuple[Any, str]] = {
    "dict": ({1001: "a", 1002: "b"}, NOT_A_COLLECTION),  # used to move its keys
    "str": ("1001", NOT_A_COLLECTION),
    "bytes": (b"\x01", NOT_A_COLLECTION),
    "int": (1001, NOT_A_COLLECTION),
    "iterator": (iter([1001]), NOT_A_COLLECTION),
    "generator": ((x for x in [1001]), NOT_A_COLLECTION),
    "one too many": ([1001] * (MAX_MOVE_IDS + 1), f"at most {MAX_MOVE_IDS}"),
    "huge range": (range(1, 10**9), f"at most {MAX_MOVE_IDS}"),  # used to be listed whole
    "str id": ([1001, "1002"], r"message_ids\[1\]"),
    "bool id": ([1001, True], r"message_ids\[1\]"),
}


@pytest.mark.parametrize(("ids", "fragment"), BAD_MOVE_IDS.values(), ids=BAD_MOVE_IDS.keys())
async def test_move_takes_a_bounded_collection_of_ids(
    mail: MailClient, mail_emulator: MailEmulator, ids: Any, fragment: str
) -> None:
    with pytest.raises(errors.InvalidArgumentError, match=fragment):
        await mail.messages.move(ids, action="spam")
    assert sent(mail_emulator) == []


@pytest.mark.parametrize("ids", [[1006, 1007], (1006, 1007), {1006, 1007}, frozenset({1008})])
async def test_move_accepts_lists_tuples_and_sets(
    mail: MailClient, mail_emulator: MailEmulator, ids: Any
) -> None:
    result = await mail.messages.move(ids, action="spam")
    assert sorted(mail_emulator.requests[-1].json["messageIds"]) == sorted(ids)
    assert result.moved_count == len(ids)


async def test_move_of_the_maximum_goes_out_in_one_call(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    ids = list(range(1001, 1001 + MAX_MOVE_IDS))
    with pytest.raises(errors.NotFoundError):  # the seed has fewer messages: the gateway says so
        await mail.messages.move(ids, action="delete")
    assert mail_emulator.requests[-1].json["messageIds"] == ids
