"""Issue 14, input items 9-12: text the wire cannot carry, header-breaking characters,
calendar times with offsets, and the ids of a move are refused before anything is sent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

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
    assert "surrogate" in err and "Traceback" not in err
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
