"""Event context and single events: GET /rooms/{id}/context/{eventId},
GET /rooms/{id}/event/{eventId}.

Spec: client-server-api "Event context" (event_context.yaml) and "Getting events
for a room" (rooms.yaml).
"""

import json

import pytest

from ct import assert_error, assert_status, room_path


@pytest.fixture
def room_with_messages(user):
    room = user.create_room(preset="public_chat", name="Context")
    ids = [user.send_message(room, f"c{i}") for i in range(7)]
    return room, ids


def context(user, room, event_id, **params):
    if isinstance(params.get("filter"), dict):
        params["filter"] = json.dumps(params["filter"])
    return assert_status(user.get(room_path(room, "context", event_id), params=params), 200)


def test_context_shape_and_limit(user, room_with_messages):
    room, ids = room_with_messages
    body = context(user, room, ids[3], limit=4)
    assert body["event"]["event_id"] == ids[3]
    assert body["event"]["content"] == {"msgtype": "m.text", "body": "c3"}
    # `limit` is shared between events_before and events_after.
    before = [e["event_id"] for e in body["events_before"]]
    after = [e["event_id"] for e in body["events_after"]]
    assert len(before) + len(after) <= 4
    # events_before is reverse-chronological, events_after chronological, both adjacent.
    assert before == ids[3 - len(before):3][::-1]
    assert after == ids[4:4 + len(after)]
    assert before and after, body
    assert isinstance(body["start"], str) and isinstance(body["end"], str), body


def test_context_state(user, room_with_messages):
    room, ids = room_with_messages
    body = context(user, room, ids[6], limit=2)
    state = {(e["type"], e["state_key"]): e["content"] for e in body["state"]}
    assert state[("m.room.name", "")] == {"name": "Context"}
    assert ("m.room.create", "") in state and ("m.room.power_levels", "") in state


def test_context_tokens_continue_pagination(user, room_with_messages):
    room, ids = room_with_messages
    body = context(user, room, ids[3], limit=2)
    shown = {e["event_id"] for e in body["events_before"] + body["events_after"]} | {ids[3]}
    older = user.messages(room, dir="b", limit=50, **{"from": body["start"]})["chunk"]
    newer = user.messages(room, dir="f", limit=50, **{"from": body["end"]})["chunk"]
    older_ids = [e["event_id"] for e in older]
    newer_ids = [e["event_id"] for e in newer]
    assert not shown & set(older_ids) and not shown & set(newer_ids)
    assert [i for i in ids if i in older_ids] == [i for i in ids if i not in shown and ids.index(i) < 3]
    assert [i for i in ids if i in newer_ids] == [i for i in ids if i not in shown and ids.index(i) > 3]


def test_context_limit_zero(user, room_with_messages):
    room, ids = room_with_messages
    body = context(user, room, ids[3], limit=0)
    assert body["event"]["event_id"] == ids[3]
    assert body["events_before"] == [] and body["events_after"] == []


def test_context_filter(user, user2, room_with_messages):
    room, ids = room_with_messages
    user2.join(room)
    other = user2.send_message(room, "other sender")
    body = context(user, room, ids[6], limit=10, filter={"senders": [user2.user_id]})
    assert body["event"]["event_id"] == ids[6]
    assert [e["event_id"] for e in body["events_after"] if e["type"] == "m.room.message"] == [other]
    for ev in body["events_before"] + body["events_after"]:
        assert ev["sender"] == user2.user_id, ev


def test_context_unknown_event(user):
    room = user.create_room()
    assert_error(user.get(room_path(room, "context", "$ctnosuchevent")), 404, "M_NOT_FOUND")


def test_context_non_member(user, user2, room_with_messages):
    room, ids = room_with_messages
    # event_context.yaml lists no error responses: 403 (Synapse) or 404 like /event.
    assert_error(user2.get(room_path(room, "context", ids[0])), (403, 404), ("M_FORBIDDEN", "M_NOT_FOUND"))


# -- /event ------------------------------------------------------------------------------


def test_get_event(user, user2, room_with_messages):
    room, ids = room_with_messages
    user2.join(room)
    ev = user2.get_event(room, ids[2])
    assert ev["event_id"] == ids[2] and ev["room_id"] == room and ev["type"] == "m.room.message"
    assert ev["sender"] == user.user_id and ev["content"] == {"msgtype": "m.text", "body": "c2"}
    assert isinstance(ev["origin_server_ts"], int)


def test_get_state_event_by_id(user):
    room = user.create_room(name="By id")
    event_id = user.send_state(room, "m.room.topic", {"topic": "t"})
    ev = user.get_event(room, event_id)
    assert ev["type"] == "m.room.topic" and ev["state_key"] == "" and ev["content"] == {"topic": "t"}


def test_get_unknown_event(user):
    room = user.create_room()
    assert_error(user.get(room_path(room, "event", "$ctnosuchevent")), 404, "M_NOT_FOUND")


def test_get_event_from_wrong_room(user, room_with_messages):
    room, ids = room_with_messages
    other = user.create_room()
    assert_error(user.get(room_path(other, "event", ids[0])), 404, "M_NOT_FOUND")


def test_get_event_non_member(user, user2, room_with_messages):
    room, ids = room_with_messages
    # "The event was not found or you do not have permission to read this event."
    assert_error(user2.get(room_path(room, "event", ids[0])), 404, "M_NOT_FOUND")
