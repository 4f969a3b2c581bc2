"""Happy paths and validation of the 17 routes, with exact payload shapes."""

from __future__ import annotations

import re

import pytest

SUMMARY_KEYS = {
    "id",
    "mailboxId",
    "mailboxEmail",
    "subject",
    "from",
    "to",
    "cc",
    "date",
    "isSeen",
    "hasAttachments",
    "folder",
    "url",
    "bindings",
}
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+03:00$")
BITRIX_DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
SEND = {
    "from": "Sales Team <sales@emulator.bitrix24.test>",
    "to": ["olga@example.com"],
    "subject": "Hello",
    "body": "<p>Hi</p>",
}


def assert_invalid(reply, field=None):
    assert reply.status == 400, reply.text
    assert reply.error["code"] == "INVALID_PARAMS"
    assert reply.error["message"]
    if field is not None:
        assert reply.error["validation"][0]["field"] == field


# ----------------------------------------------------------------- mailboxes
async def test_list_mailboxes(api):
    reply = await api.get("/mail/mailboxes")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert [m["id"] for m in reply.data] == [1, 2, 3]
    for mailbox in reply.data:
        assert set(mailbox) == {"id", "name", "email", "senderName"}
    assert reply.body["meta"] == {"total": 3, "hasMore": False}


async def test_list_mailboxes_filters_and_paging(api):
    assert [m["id"] for m in (await api.get("/mail/mailboxes", name="supp")).data] == [2]
    assert [m["id"] for m in (await api.get("/mail/mailboxes", email="IVAN@")).data] == [3]
    page = await api.get("/mail/mailboxes", limit=2, offset=1)
    assert [m["id"] for m in page.data] == [2, 3]
    page = await api.get("/mail/mailboxes", limit=2)
    assert page.body["meta"] == {"total": 3, "hasMore": True}
    assert_invalid(await api.get("/mail/mailboxes", limit=0), "limit")
    assert_invalid(await api.get("/mail/mailboxes", offset=-1), "offset")


async def test_get_mailbox(api):
    reply = await api.get("/mail/mailboxes/2")
    assert reply.status == 200
    assert reply.data == {
        "item": {
            "id": 2,
            "name": "Support",
            "email": "support@emulator.bitrix24.test",
            "senderName": "Support Desk",
        }
    }


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "01", "1.5", "1e3"])
async def test_path_ids_must_be_positive_integers(api, bad):
    assert_invalid(await api.get(f"/mail/mailboxes/{bad}"))
    assert_invalid(await api.get(f"/mail/messages/{bad}"))
    assert_invalid(await api.post(f"/mail/messages/{bad}/task", {}))


async def test_unknown_ids_are_entity_not_found(api):
    for path in ("/mail/mailboxes/99", "/mail/mailboxes/99/senders", "/mail/messages/99999"):
        reply = await api.get(path)
        assert reply.status == 404
        assert reply.error["code"] == "ENTITY_NOT_FOUND"
    reply = await api.get("/mail/messages", mailboxId=99)
    assert (reply.status, reply.error["code"]) == (404, "ENTITY_NOT_FOUND")


async def test_senders(api):
    reply = await api.get("/mail/mailboxes/1/senders")
    assert reply.status == 200
    items = reply.data["items"]
    assert items[0] == {
        "email": "sales@emulator.bitrix24.test",
        "name": "Sales Team",
        "sender": "Sales Team <sales@emulator.bitrix24.test>",
    }
    assert all(s["sender"] == f"{s['name']} <{s['email']}>" for s in items)


# ----------------------------------------------------------------- messages: list
async def test_list_messages_default_page(api, mail_emulator):
    reply = await api.get("/mail/messages", mailboxId=1)
    assert reply.status == 200
    items = reply.data["items"]
    total = mail_emulator.state.mailbox_count(1)
    assert len(items) == min(25, total)
    assert reply.body["meta"] == {"total": total, "hasMore": total > 25}
    for item in items:
        assert set(item) == SUMMARY_KEYS
        assert item["mailboxId"] == 1
        assert item["mailboxEmail"] == "sales@emulator.bitrix24.test"
        assert ISO_WITH_OFFSET.match(item["date"])
        assert item["cc"] is None or isinstance(item["cc"], str)
        assert item["url"].endswith(f"/{item['id']}")
    dates = [item["date"] for item in items]
    assert dates == sorted(dates, reverse=True)


async def test_list_messages_seeded_variety(api):
    items = (await api.get("/mail/messages", mailboxId=1, limit=200)).data["items"]
    assert any(not i["isSeen"] for i in items)
    assert any(i["hasAttachments"] for i in items)
    assert {"INBOX", "Sent"} <= {i["folder"] for i in items}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "mailboxId"),
        ({"mailboxId": ""}, "mailboxId"),
        ({"mailboxId": "0"}, "mailboxId"),
        ({"mailboxId": "x"}, "mailboxId"),
        ({"mailboxId": "1", "limit": "0"}, "limit"),
        ({"mailboxId": "1", "limit": "ten"}, "limit"),
        ({"mailboxId": "1", "offset": "-5"}, "offset"),
        ({"mailboxId": "1", "isSeen": "yes"}, "isSeen"),
        ({"mailboxId": "1", "hasAttachments": "1"}, "hasAttachments"),
        ({"mailboxId": "1", "dateFrom": "yesterday"}, "dateFrom"),
        ({"mailboxId": "1", "dateTo": "2026-13-01"}, "dateTo"),
    ],
)
async def test_list_messages_validation(api, params, field):
    assert_invalid(await api.get("/mail/messages", **params), field)


async def test_list_messages_filters(api, mail_emulator):
    state = mail_emulator.state
    mine = [m for m in state.messages.values() if m["mailboxId"] == 1]

    unseen = (await api.get("/mail/messages", mailboxId=1, isSeen="false", limit=200)).data
    assert {i["id"] for i in unseen["items"]} == {m["id"] for m in mine if not m["isSeen"]}
    attached = await api.get("/mail/messages", mailboxId=1, hasAttachments="true", limit=200)
    assert {i["id"] for i in attached.data["items"]} == {
        m["id"] for m in mine if m["hasAttachments"]
    }
    assert attached.body["meta"]["total"] == len(attached.data["items"])
    sent = await api.get("/mail/messages", mailboxId=1, folder="Sent", limit=200)
    assert sent.data["items"]
    assert {i["folder"] for i in sent.data["items"]} == {"Sent"}

    target = mine[3]
    found = await api.get("/mail/messages", mailboxId=1, searchQuery=f"Message #{target['id']}.")
    assert [i["id"] for i in found.data["items"]] == [target["id"]]  # matched in the body
    by_subject = await api.get("/mail/messages", mailboxId=1, searchQuery="re: ", limit=200)
    assert all(i["subject"].startswith("Re: ") for i in by_subject.data["items"])

    middle = sorted(m["date"] for m in mine)[len(mine) // 2]
    newer = await api.get("/mail/messages", mailboxId=1, dateFrom=middle.isoformat(), limit=200)
    older = await api.get("/mail/messages", mailboxId=1, dateTo=middle.isoformat(), limit=200)
    assert len(newer.data["items"]) + len(older.data["items"]) == len(mine) + 1
    naive = await api.get("/mail/messages", mailboxId=1, dateFrom="2026-05-25T09:00:00", limit=200)
    assert all(i["date"] >= "2026-05-25T09:00:00+03:00" for i in naive.data["items"])


async def test_list_messages_limit_is_capped_at_200(make_api, mail_emulator_factory):
    emulator = mail_emulator_factory(messages=600)
    reply = await make_api(emulator).get("/mail/messages", mailboxId=1, limit=500)
    assert reply.status == 200
    assert len(reply.data["items"]) == 200
    assert reply.body["meta"]["hasMore"] is True


@pytest.mark.parametrize("filters", [{}, {"isSeen": "true"}, {"folder": "INBOX"}])
async def test_paging_covers_every_message_once(make_api, mail_emulator_factory, filters):
    emulator = mail_emulator_factory(messages=300, seed=7)
    api = make_api(emulator)
    seen: list[int] = []
    offset = 0
    while True:
        reply = await api.get("/mail/messages", mailboxId=1, limit=17, offset=offset, **filters)
        items = reply.data["items"]
        seen.extend(i["id"] for i in items)
        offset += len(items)
        assert reply.body["meta"]["hasMore"] is (offset < reply.body["meta"]["total"])
        if not reply.body["meta"]["hasMore"]:
            assert len(items) <= 17
            break
        assert len(items) == 17
    expected = [
        m
        for m in emulator.state.messages.values()
        if m["mailboxId"] == 1
        and (not filters.get("isSeen") or m["isSeen"])
        and (not filters.get("folder") or m["folder"] == "INBOX")
    ]
    assert len(seen) == len(set(seen)) == len(expected)
    dates = [emulator.state.messages[i]["date"] for i in seen]
    assert dates == sorted(dates, reverse=True)
    past_end = await api.get("/mail/messages", mailboxId=1, offset=10_000, **filters)
    assert past_end.data["items"] == []
    assert past_end.body["meta"]["hasMore"] is False


# ----------------------------------------------------------------- messages: get, thread
async def test_get_message(api, mail_emulator):
    reply = await api.get("/mail/messages/1001")
    assert reply.status == 200
    item = reply.data["item"]
    assert set(item) == SUMMARY_KEYS | {"body"}
    assert item["id"] == 1001
    assert item["body"] == mail_emulator.state.message_body(mail_emulator.state.messages[1001])
    assert item["body"]


async def test_thread(api, mail_emulator):
    state = mail_emulator.state
    thread_ids = next(ids for ids in state.threads.values() if len(ids) >= 3)
    reply = await api.get(f"/mail/messages/{thread_ids[-1]}/thread")
    assert reply.status == 200
    items = reply.data
    assert isinstance(items, list)
    assert [i["id"] for i in items] == thread_ids
    for item in items:
        assert set(item) == {"id", "subject", "from", "to", "cc", "date", "body"}
        assert BITRIX_DATE.match(item["date"])
    assert items[1]["subject"] == "Re: " + items[0]["subject"]
    limited = await api.get(f"/mail/messages/{thread_ids[0]}/thread", limit=2)
    assert [i["id"] for i in limited.data] == thread_ids[:2]
    assert_invalid(await api.get(f"/mail/messages/{thread_ids[0]}/thread", limit=0), "limit")
    assert (await api.get("/mail/messages/99999/thread")).status == 404


# ----------------------------------------------------------------- send, reply, forward
async def test_send(api, mail_emulator):
    state = mail_emulator.state
    before = state.mailbox_count(1)
    reply = await api.post("/mail/messages", {**SEND, "cc": ["c@example.com"], "bcc": []})
    assert reply.status == 200
    assert reply.data == {"success": True, "to": ["olga@example.com"]}
    assert state.mailbox_count(1) == before + 1
    [entry] = state.sent
    assert entry["kind"] == "send"
    assert entry["request"]["subject"] == "Hello"
    created = state.messages[entry["messageId"]]
    assert (created["folder"], created["to"], created["cc"]) == (
        "Sent",
        "olga@example.com",
        "c@example.com",
    )
    newest = (await api.get("/mail/messages", mailboxId=1, limit=1)).data["items"][0]
    assert newest["id"] == entry["messageId"]
    assert newest["subject"] == "Hello"


async def test_send_from_another_mailbox_sender(api, mail_emulator):
    body = {**SEND, "from": "Ivan S. <i.smirnov@emulator.bitrix24.test>"}
    assert (await api.post("/mail/messages", body)).status == 200
    created = mail_emulator.state.messages[mail_emulator.state.sent[0]["messageId"]]
    assert created["mailboxId"] == 3


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"from": None}, "from"),
        ({"from": 5}, "from"),
        ({"from": " "}, "from"),
        ({"to": None}, "to"),
        ({"to": "olga@example.com"}, "to"),
        ({"to": []}, "to"),
        ({"to": [1]}, "to"),
        ({"subject": None}, "subject"),
        ({"subject": 3}, "subject"),
        ({"body": None}, "body"),
        ({"body": ["x"]}, "body"),
        ({"cc": "a@example.com"}, "cc"),
        ({"bcc": [None]}, "bcc"),
    ],
)
async def test_send_validation(api, mail_emulator, change, field):
    body = {k: v for k, v in {**SEND, **change}.items() if v is not None}
    assert_invalid(await api.post("/mail/messages", body), field)
    assert mail_emulator.state.sent == []


async def test_non_json_bodies_are_rejected(api, mail_emulator):
    headers = {"Content-Type": "application/json"}
    assert_invalid(await api.request("POST", "/mail/messages", data="{nope", headers=headers))
    assert_invalid(await api.post("/mail/messages", [SEND]))
    assert_invalid(await api.request("POST", "/mail/messages/1001/task", data="x=1"))
    assert mail_emulator.state.side_effects() == []


async def test_reply(api, mail_emulator):
    state = mail_emulator.state
    thread = list(state.threads[state.messages[1001]["threadId"]])
    body = {**SEND, "subject": "Re: hi", "replyToMessageId": 1001}
    reply = await api.post("/mail/messages/1001/reply", body)
    assert reply.status == 200
    assert reply.data == {"success": True, "to": ["olga@example.com"]}
    [entry] = state.sent
    assert (entry["kind"], entry["sourceMessageId"]) == ("reply", 1001)
    assert state.messages[entry["messageId"]]["folder"] == "Sent"
    thread_reply = await api.get("/mail/messages/1001/thread")
    assert [i["id"] for i in thread_reply.data] == [*thread, entry["messageId"]]


async def test_reply_validation(api, mail_emulator):
    assert_invalid(await api.post("/mail/messages/1001/reply", SEND), "replyToMessageId")
    mismatch = {**SEND, "replyToMessageId": 1002}
    assert_invalid(await api.post("/mail/messages/1001/reply", mismatch), "replyToMessageId")
    unknown = {**SEND, "replyToMessageId": 99999}
    assert (await api.post("/mail/messages/99999/reply", unknown)).status == 404
    assert mail_emulator.state.sent == []


async def test_forward(api, mail_emulator):
    body = {**SEND, "subject": "Fwd: x", "forwardMessageId": 1002}
    reply = await api.post("/mail/messages/1002/forward", body)
    assert reply.status == 200
    assert reply.data == {"success": True, "to": ["olga@example.com"]}
    assert mail_emulator.state.sent[0]["kind"] == "forward"
    assert_invalid(await api.post("/mail/messages/1002/forward", SEND), "forwardMessageId")
    wrong = {**SEND, "forwardMessageId": "1003"}
    assert_invalid(await api.post("/mail/messages/1002/forward", wrong), "forwardMessageId")


# ----------------------------------------------------------------- move
def _inbox_ids(state, mailbox_id, count):
    ids = [
        i for i in state.mailbox_message_ids(mailbox_id) if state.messages[i]["folder"] == "INBOX"
    ]
    return ids[:count]


@pytest.mark.parametrize(
    ("action", "folder", "target"),
    [("move", "Archive", "Archive"), ("spam", None, "Spam"), ("delete", None, "Trash")],
)
async def test_move(api, mail_emulator, action, folder, target):
    state = mail_emulator.state
    ids = _inbox_ids(state, 1, 2)
    body = {"messageIds": ids, "action": action}
    if folder:
        body["folder"] = folder
    reply = await api.post("/mail/messages/move", body)
    assert reply.status == 200
    assert reply.data == {"success": True, "movedCount": 2, "action": action}
    assert {state.messages[i]["folder"] for i in ids} == {target}
    [entry] = state.moves
    assert (entry["kind"], entry["messageIds"], entry["folder"]) == ("move", ids, target)
    listed = await api.get("/mail/messages", mailboxId=1, folder=target, limit=200)
    assert set(ids) <= {i["id"] for i in listed.data["items"]}


async def test_move_validation(api, mail_emulator):
    state = mail_emulator.state
    ids = _inbox_ids(state, 1, 2)
    cases = [
        ({"action": "spam"}, "messageIds"),
        ({"messageIds": [], "action": "spam"}, "messageIds"),
        ({"messageIds": [0], "action": "spam"}, "messageIds"),
        ({"messageIds": ["1001"], "action": "spam"}, "messageIds"),
        ({"messageIds": [True], "action": "spam"}, "messageIds"),
        ({"messageIds": ids}, "action"),
        ({"messageIds": ids, "action": "archive"}, "action"),
        ({"messageIds": ids, "action": "move"}, "folder"),
        ({"messageIds": ids, "action": "move", "folder": ""}, "folder"),
        ({"messageIds": [ids[0], _inbox_ids(state, 2, 1)[0]], "action": "spam"}, "messageIds"),
    ]
    sent_id = next(i for i in state.mailbox_message_ids(1) if state.messages[i]["folder"] == "Sent")
    cases.append(({"messageIds": [ids[0], sent_id], "action": "spam"}, "messageIds"))
    for body, field in cases:
        assert_invalid(await api.post("/mail/messages/move", body), field)
    unknown = await api.post("/mail/messages/move", {"messageIds": [99999], "action": "spam"})
    assert (unknown.status, unknown.error["code"]) == (404, "ENTITY_NOT_FOUND")
    assert state.moves == []
    assert {state.messages[i]["folder"] for i in ids} == {"INBOX"}


async def test_move_is_not_an_id(api):
    # GET on "move" falls on the {id} route and fails id validation, like the gateway.
    assert_invalid(await api.get("/mail/messages/move"))


# ----------------------------------------------------------------- objects from a message
async def test_create_task(api, mail_emulator):
    state = mail_emulator.state
    first = await api.post("/mail/messages/1001/task", {"messageId": 1001, "responsibleId": 1})
    second = await api.post("/mail/messages/1001/task", {"title": "Call back"})
    assert first.status == second.status == 200
    assert first.data == {"success": True, "taskId": 501, "messageId": 1001}
    assert second.data["taskId"] == 502
    assert [t["title"] for t in state.tasks] == [state.messages[1001]["subject"], "Call back"]
    message = (await api.get("/mail/messages/1001")).data["item"]
    assert message["bindings"] == [{"type": "task", "id": 501}, {"type": "task", "id": 502}]
    assert_invalid(await api.post("/mail/messages/1001/task", {"messageId": 1002}), "messageId")
    bad_responsible = {"responsibleId": "boss"}
    assert_invalid(await api.post("/mail/messages/1001/task", bad_responsible), "responsibleId")
    assert (await api.post("/mail/messages/99999/task", {})).status == 404
    assert len(state.tasks) == 2


async def test_create_calendar_event(api, mail_emulator):
    state = mail_emulator.state
    body = {"dateFrom": "2026-06-01 10:00:00", "dateTo": "2026-06-01 11:00:00"}
    reply = await api.post("/mail/messages/1001/calendar-event", {**body, "messageId": 1001})
    assert reply.status == 200
    assert reply.data == {"success": True, "eventId": 701, "messageId": 1001}
    assert state.events[0]["name"] == state.messages[1001]["subject"]
    assert state.messages[1001]["bindings"] == [{"type": "calendar_event", "id": 701}]
    bad = [
        ({"dateTo": body["dateTo"]}, "dateFrom"),
        ({"dateFrom": body["dateFrom"]}, "dateTo"),
        ({**body, "dateFrom": "2026-06-01T10:00:00+03:00"}, "dateFrom"),
        ({**body, "dateTo": "2026-02-30 10:00:00"}, "dateTo"),
        ({**body, "dateTo": "2026-06-01 09:00:00"}, "dateTo"),
    ]
    for case, field in bad:
        assert_invalid(await api.post("/mail/messages/1001/calendar-event", case), field)
    assert len(state.events) == 1


async def test_create_chat_is_idempotent_per_message(api, mail_emulator):
    first = await api.post("/mail/messages/1001/chat", {"messageId": 1001})
    again = await api.post("/mail/messages/1001/chat")
    other = await api.post("/mail/messages/1002/chat", {})
    assert first.data == {"success": True, "chatId": 901, "messageId": 1001, "existing": False}
    assert again.data == {"success": True, "chatId": 901, "messageId": 1001, "existing": True}
    assert other.data["chatId"] == 902
    assert other.data["existing"] is False
    assert mail_emulator.state.messages[1001]["bindings"] == [{"type": "chat", "id": 901}]


async def test_create_feed_post(api, mail_emulator):
    reply = await api.post("/mail/messages/1003/feed-post", {"title": "News"})
    assert reply.status == 200
    assert reply.data == {"success": True, "postId": 1101, "messageId": 1003}
    assert mail_emulator.state.feed_posts[0]["title"] == "News"


async def test_create_crm_activity_shapes(api, mail_emulator):
    reply = await api.post("/mail/messages/1001/crm-activity", {"messageId": 1001})
    assert reply.status == 200
    assert reply.body == {"success": True, "data": True}
    mail_emulator.state.options.crm_activity_shape = "object"
    reply = await api.post("/mail/messages/1002/crm-activity")
    assert reply.data == {"success": True, "activityId": 1302, "messageId": 1002}
    assert [a["activityId"] for a in mail_emulator.state.crm_activities] == [1301, 1302]


async def test_side_effects_in_order(api, mail_emulator):
    await api.post("/mail/messages", SEND)
    await api.post("/mail/messages/1001/task", {})
    await api.post("/mail/messages/move", {"messageIds": [1001], "action": "delete"})
    await api.post("/mail/messages/1001/chat", {})
    kinds = [e["kind"] for e in mail_emulator.state.side_effects()]
    assert kinds == ["send", "task", "move", "chat"]


# ----------------------------------------------------------------- recipients
async def test_contacts(api, mail_emulator):
    contacts = mail_emulator.state.contacts
    latest = await api.post("/mail/recipients/contacts", {})
    assert latest.status == 200
    items = latest.data["items"]
    assert len(items) == len(contacts) == 30
    assert items[0] == contacts[-1]
    assert set(items[0]) == {"id", "email", "name"}
    needle = contacts[0]["name"].split()[0]
    found = await api.post("/mail/recipients/contacts", {"query": needle.lower()})
    assert found.data["items"]
    assert all(needle.lower() in (c["name"] + c["email"]).lower() for c in found.data["items"])
    page = await api.post("/mail/recipients/contacts", {"limit": 5, "offset": 5})
    assert page.data["items"] == items[5:10]
    assert_invalid(await api.post("/mail/recipients/contacts", {"limit": 0}), "limit")
    assert_invalid(await api.post("/mail/recipients/contacts", {"query": 5}), "query")


async def test_employees(api, mail_emulator):
    reply = await api.post("/mail/recipients/employees", {"query": "olga"})
    assert reply.status == 200
    assert reply.data["items"]
    assert all("olga" in e["name"].lower() for e in reply.data["items"])
    assert len(mail_emulator.state.employees) == 20
    assert_invalid(await api.post("/mail/recipients/employees", {}), "query")
    assert_invalid(await api.post("/mail/recipients/employees", {"query": ""}), "query")


# ----------------------------------------------------------------- unknown routes
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/mail/unknown"),
        ("POST", "/mail/messages/1001/archive"),
        ("DELETE", "/mail/messages/1001"),
        ("GET", "/mail/messages/1001/task"),
        ("GET", "/mail"),
    ],
)
async def test_unknown_action_is_not_found(api, method, path):
    reply = await api.request(method, path)
    assert reply.status == 404
    assert reply.error["code"] == "NOT_FOUND"
