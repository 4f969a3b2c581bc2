"""Seeded and new message ids grow with the dates, as Bitrix24's auto-increment ids do."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise

import pytest

from bitrix_mail_async.testing import PortalState
from bitrix_mail_async.testing.seed import FIRST_MESSAGE_ID, MSK, SEED_NEWEST

SENDER = "Sales Team <sales@emulator.bitrix24.test>"


@pytest.mark.parametrize(("seed", "count"), [(0, 60), (7, 500)])
def test_seeded_ids_grow_with_dates(seed, count):
    state = PortalState(messages=count, seed=seed)
    ids = sorted(state.messages)
    assert ids == list(range(FIRST_MESSAGE_ID, FIRST_MESSAGE_ID + count))
    dates = [state.messages[i]["date"] for i in ids]
    assert all(earlier < later for earlier, later in pairwise(dates))
    assert dates[-1] == SEED_NEWEST
    # Threads too: numbered from the oldest, each stored oldest first.
    assert state.messages[FIRST_MESSAGE_ID]["threadId"] == 1
    firsts = [state.threads[t][0] for t in sorted(state.threads)]
    assert firsts == sorted(firsts)
    for thread in state.threads.values():
        assert thread == sorted(thread)
        assert all(state.messages[i]["subject"].startswith("Re: ") for i in thread[1:])


def test_seeding_stays_deterministic():
    one, two = PortalState(messages=200, seed=3), PortalState(messages=200, seed=3)
    assert one.messages == two.messages
    assert one.threads == two.threads
    assert PortalState(messages=200, seed=4).messages != one.messages


def test_new_messages_get_the_next_id_and_the_portal_now():
    now = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=MSK)
    state = PortalState(messages=30, now=lambda: now)
    added = state.add_message(subject="fresh")
    assert added["id"] == FIRST_MESSAGE_ID + 30
    assert added["date"] == now.replace(microsecond=0)
    now -= timedelta(days=30)  # a clock behind the newest message never dates one older
    again = state.add_message(subject="later")
    assert again["id"] > added["id"] and again["date"] == added["date"]


def test_default_portal_clock_starts_after_the_seed():
    state = PortalState(messages=10)
    added = state.add_message()
    assert SEED_NEWEST < added["date"] < SEED_NEWEST + timedelta(days=1)


async def test_sent_message_is_the_newest(api, mail_emulator):
    state = mail_emulator.state
    before = max(state.messages)
    body = {"from": SENDER, "to": ["bob@example.com"], "subject": "Hi", "body": "."}
    assert (await api.post("/mail/messages", body)).status == 200
    sent_id = state.sent[-1]["messageId"]
    assert sent_id == before + 1
    assert state.messages[sent_id]["date"] >= max(m["date"] for m in state.messages.values())
    items = (await api.get("/mail/messages", mailboxId=1, limit=1)).data["items"]
    assert items[0]["id"] == sent_id
