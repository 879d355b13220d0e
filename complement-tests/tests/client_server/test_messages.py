"""Timeline pagination: GET /rooms/{id}/messages.

Spec: client-server-api "Syncing" / "Getting events for a room"
(message_pagination.yaml), RoomEventFilter (filter.yaml) and
"Lazy-loading room members".
"""

import pytest

from ct import assert_error, assert_status, room_path

# An unparseable `from` token: the spec lists no 400 for /messages; M_INVALID_PARAM
# is the natural code, Synapse says M_UNKNOWN (README, Known differences).
BAD_TOKEN_CODES = ("M_INVALID_PARAM", "M_UNKNOWN")


def bodies(chunk):
    return [e["content"].get("body") for e in chunk if e["type"] == "m.room.message"]


@pytest.fixture
def room_with_messages(user, user2):
    """A public room where `user` and `user2` alternately sent m0..m9."""
    room = user.create_room(preset="public_chat")
    user2.join(room)
    ids = []
    for i in range(10):
        sender = user if i % 2 == 0 else user2
        ids.append(sender.send_message(room, f"m{i}"))
    return room, ids


def test_backwards_is_reverse_chronological(user, room_with_messages):
    room, ids = room_with_messages
    page = user.messages(room, dir="b", limit=5)
    assert [e["event_id"] for e in page["chunk"]] == ids[::-1][:5]
    assert isinstance(page["start"], str) and isinstance(page["end"], str), page
    for ev in page["chunk"]:
        assert ev["room_id"] == room and ev["event_id"].startswith("$"), ev
        assert isinstance(ev["origin_server_ts"], int) and isinstance(ev["sender"], str), ev


def test_forwards_is_chronological(user, room_with_messages):
    room, ids = room_with_messages
    # Without `from`, dir=f starts at the beginning of the room.
    page = user.messages(room, dir="f", limit=3)
    assert page["chunk"][0]["type"] == "m.room.create"
    timestamps = [e["origin_server_ts"] for e in page["chunk"]]
    assert timestamps == sorted(timestamps)
    collected = []
    token = page["end"]
    while token:
        page = user.messages(room, dir="f", limit=4, **{"from": token})
        collected += [e["event_id"] for e in page["chunk"] if e["type"] == "m.room.message"]
        token = page.get("end") if page["chunk"] else None
    assert collected == ids


def test_start_is_the_given_from(user, room_with_messages):
    room, _ = room_with_messages
    first = user.messages(room, dir="b", limit=3)
    second = user.messages(room, dir="b", limit=3, **{"from": first["end"]})
    assert second["start"] == first["end"]


def test_limit(user, room_with_messages):
    room, ids = room_with_messages
    for limit in (1, 2, 7):
        page = user.messages(room, dir="b", limit=limit)
        assert len(page["chunk"]) == limit
    assert [e["event_id"] for e in user.messages(room, dir="b", limit=1)["chunk"]] == [ids[-1]]


def test_paginate_backwards_to_the_start(user, room_with_messages):
    room, ids = room_with_messages
    seen = []
    token = None
    for _ in range(50):
        page = user.messages(room, dir="b", limit=4, **({"from": token} if token else {}))
        seen += page["chunk"]
        if "end" not in page:
            break
        token = page["end"]
    else:
        raise AssertionError("pagination never ended (no page without `end`)")
    event_ids = [e["event_id"] for e in seen]
    assert len(event_ids) == len(set(event_ids)), "an event was returned twice"
    assert [e for e in event_ids if e in ids] == ids[::-1]
    # The room's first event comes last; nothing is older.
    assert seen[-1]["type"] == "m.room.create", seen[-1]
    timestamps = [e["origin_server_ts"] for e in seen]
    assert timestamps == sorted(timestamps, reverse=True)


def test_back_then_forward_from_the_same_token(user, room_with_messages):
    room, ids = room_with_messages
    newest = user.messages(room, dir="b", limit=4)
    assert [e["event_id"] for e in newest["chunk"]] == ids[::-1][:4]
    # Going forwards from the end of that page returns the same events, oldest first.
    forward = user.messages(room, dir="f", limit=4, **{"from": newest["end"]})
    assert [e["event_id"] for e in forward["chunk"]] == ids[-4:]


def test_to_token_bounds_the_page(user, room_with_messages):
    room, ids = room_with_messages
    first = user.messages(room, dir="b", limit=3)
    second = user.messages(room, dir="b", limit=3, **{"from": first["end"]})
    # From the newest event back to the end of the second page: six events, no more.
    bounded = user.messages(room, dir="b", limit=100, **{"from": first["start"], "to": second["end"]})
    assert [e["event_id"] for e in bounded["chunk"]] == ids[::-1][:6]


def test_new_events_after_a_token(user, room_with_messages):
    room, _ = room_with_messages
    token = user.messages(room, dir="b", limit=1)["start"]
    later = user.send_message(room, "later")
    page = user.messages(room, dir="f", limit=10, **{"from": token})
    assert [e["event_id"] for e in page["chunk"]] == [later]


# -- filters -----------------------------------------------------------------------------


def test_filter_types_and_not_types(user, room_with_messages):
    room, _ = room_with_messages
    only_members = user.messages(room, dir="b", limit=50, filter={"types": ["m.room.member"]})["chunk"]
    assert only_members and all(e["type"] == "m.room.member" for e in only_members)
    wildcard = user.messages(room, dir="b", limit=50, filter={"types": ["m.room.mem*"]})["chunk"]
    assert [e["event_id"] for e in wildcard] == [e["event_id"] for e in only_members]
    no_messages = user.messages(room, dir="b", limit=50, filter={"not_types": ["m.room.message"]})["chunk"]
    assert no_messages and all(e["type"] != "m.room.message" for e in no_messages)
    # not_types wins over types.
    both = user.messages(
        room, dir="b", limit=50, filter={"types": ["m.room.message"], "not_types": ["m.room.message"]}
    )["chunk"]
    assert both == []


def test_filter_senders_and_not_senders(user, user2, room_with_messages):
    room, _ = room_with_messages
    msgs = {"types": ["m.room.message"]}
    from_2 = user.messages(room, dir="b", limit=50, filter={**msgs, "senders": [user2.user_id]})["chunk"]
    assert bodies(from_2) == ["m9", "m7", "m5", "m3", "m1"]
    not_2 = user.messages(room, dir="b", limit=50, filter={**msgs, "not_senders": [user2.user_id]})["chunk"]
    assert bodies(not_2) == ["m8", "m6", "m4", "m2", "m0"]
    assert {e["sender"] for e in not_2} == {user.user_id}


def test_filter_contains_url(user):
    room = user.create_room()
    with_url = user.send_event(
        room,
        "m.room.message",
        {"msgtype": "m.image", "body": "pic.png", "url": "mxc://example.org/ctPicture"},
    )
    without_url = user.send_message(room, "plain")
    yes = user.messages(room, dir="b", limit=50, filter={"contains_url": True})["chunk"]
    assert [e["event_id"] for e in yes] == [with_url]
    no = user.messages(room, dir="b", limit=50, filter={"contains_url": False, "types": ["m.room.message"]})["chunk"]
    assert [e["event_id"] for e in no] == [without_url]


# The filter's own `limit` is not tested: Synapse ignores it on /messages
# (README, Known differences).


def test_lazy_load_members(open_server, user, user2, room_with_messages):
    room, _ = room_with_messages
    lurker = open_server.register()
    lurker.join(room)
    user.send_message(room, "m10")
    page = user.messages(
        room, dir="b", limit=2, filter={"lazy_load_members": True, "types": ["m.room.message"]}
    )
    senders = {e["sender"] for e in page["chunk"]}
    assert senders == {user.user_id, user2.user_id}, page["chunk"]
    state = page.get("state", [])
    assert all(e["type"] == "m.room.member" for e in state), state
    members = {e["state_key"] for e in state}
    # Membership events for the senders, and only for them.
    assert members == senders, state
    for ev in state:
        assert ev["content"]["membership"] == "join", ev


# -- errors ------------------------------------------------------------------------------


def test_bad_from_token(user):
    room = user.create_room()
    resp = user.get(room_path(room, "messages"), params={"dir": "b", "from": "ct-not-a-token"})
    assert_error(resp, 400, BAD_TOKEN_CODES)


def test_bad_dir(user):
    room = user.create_room()
    assert_error(user.get(room_path(room, "messages"), params={"dir": "sideways"}), 400, "M_INVALID_PARAM")


def test_bad_limit(user):
    room = user.create_room()
    resp = user.get(room_path(room, "messages"), params={"dir": "b", "limit": "ten"})
    assert_error(resp, 400, ("M_INVALID_PARAM", "M_BAD_JSON"))


def test_non_member_forbidden(user, user2):
    room = user.create_room(preset="public_chat")
    user.send_message(room, "members only")
    assert_error(user2.get(room_path(room, "messages"), params={"dir": "b"}), 403, "M_FORBIDDEN")


def test_messages_requires_auth(open_server, user):
    room = user.create_room()
    assert_error(open_server.get(room_path(room, "messages"), params={"dir": "b"}), 401, "M_MISSING_TOKEN")


def test_former_member_sees_history_up_to_leaving(user, user2):
    room = user.create_room(preset="public_chat")
    user2.join(room)
    user.send_message(room, "while joined")
    user2.leave(room)
    user.send_message(room, "after leaving")
    chunk = assert_status(user2.get(room_path(room, "messages"), params={"dir": "b", "limit": 50}), 200)["chunk"]
    assert "while joined" in bodies(chunk)
    assert "after leaving" not in bodies(chunk)
