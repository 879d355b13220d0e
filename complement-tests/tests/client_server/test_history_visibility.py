"""History visibility: which earlier events a later joiner can read.

Spec: client-server-api "Room History Visibility" (modules/history_visibility.md)
and "Room Previews" (modules/room_previews.md).

For each setting, `user` sends one message before inviting `user2`, one while
user2 is invited, and one after user2 joined. The rules:
  world_readable: everything;  shared: everything (user2 joined later);
  invited: from the invite on;  joined: from the join on.
"""

import pytest

from ct import assert_error, assert_status, room_path

VISIBLE = {
    # setting: which of (before invite, while invited, after join) user2 may read
    "world_readable": (True, True, True),
    "shared": (True, True, True),
    "invited": (False, True, True),
    "joined": (False, False, True),
}


def room_with(user, setting):
    return user.create_room(
        preset="private_chat",
        initial_state=[{"type": "m.room.history_visibility", "content": {"history_visibility": setting}}],
    )


@pytest.mark.parametrize("setting", sorted(VISIBLE))
def test_later_joiner_sees(user, user2, setting):
    room = room_with(user, setting)
    before = user.send_message(room, "before invite")
    user.invite(room, user2.user_id)
    during = user.send_message(room, "while invited")
    user2.join(room)
    after = user.send_message(room, "after join")

    expected = VISIBLE[setting]
    chunk = user2.messages(room, dir="b", limit=100)["chunk"]
    seen = {e["event_id"] for e in chunk}
    for event_id, visible in zip((before, during, after), expected):
        assert (event_id in seen) is visible, (setting, event_id, visible, [e["type"] for e in chunk])
        resp = user2.get(room_path(room, "event", event_id))
        if visible:
            assert assert_status(resp, 200)["event_id"] == event_id
        else:
            assert_error(resp, 404, "M_NOT_FOUND")
    # The member events of user2 itself are always visible to user2.
    own = [e for e in chunk if e["type"] == "m.room.member" and e["state_key"] == user2.user_id]
    assert {e["content"]["membership"] for e in own} >= {"join"}, own


# While only invited (not joined): rule 3 ("shared") needs a join, rule 4 lets
# invitees read "invited" events sent since the invite.
VISIBLE_TO_INVITEE = {
    "world_readable": (True, True),
    "shared": (False, False),
    "invited": (False, True),
    "joined": (False, False),
}


@pytest.mark.parametrize("setting", sorted(VISIBLE_TO_INVITEE))
def test_invitee_sees_via_event(user, user2, setting):
    room = room_with(user, setting)
    before = user.send_message(room, "before invite")
    user.invite(room, user2.user_id)
    during = user.send_message(room, "while invited")
    for event_id, visible in zip((before, during), VISIBLE_TO_INVITEE[setting]):
        resp = user2.get(room_path(room, "event", event_id))
        if visible:
            assert assert_status(resp, 200)["event_id"] == event_id
        else:
            assert_error(resp, 404, "M_NOT_FOUND")


@pytest.mark.parametrize("setting", sorted(VISIBLE))
def test_creator_sees_everything(user, user2, setting):
    room = room_with(user, setting)
    before = user.send_message(room, "before")
    user.invite(room, user2.user_id)
    user2.join(room)
    reply = user2.send_message(room, "reply")
    ids = {e["event_id"] for e in user.messages(room, dir="b", limit=100)["chunk"]}
    assert {before, reply} <= ids


def test_change_of_visibility_applies_to_later_events(user, user2):
    room = room_with(user, "shared")
    shared_msg = user.send_message(room, "shared era")
    user.send_state(room, "m.room.history_visibility", {"history_visibility": "joined"})
    joined_msg = user.send_message(room, "joined era")
    user.invite(room, user2.user_id)
    user2.join(room)
    seen = {e["event_id"] for e in user2.messages(room, dir="b", limit=100)["chunk"]}
    # Rules apply according to the state at each event.
    assert shared_msg in seen
    assert joined_msg not in seen


@pytest.mark.parametrize("setting", ["shared", "invited", "joined"])
def test_non_member_cannot_read(user, user2, setting):
    room = room_with(user, setting)
    event_id = user.send_message(room, "members only")
    assert_error(user2.get(room_path(room, "messages"), params={"dir": "b"}), 403, "M_FORBIDDEN")
    assert_error(user2.get(room_path(room, "event", event_id)), 404, "M_NOT_FOUND")


def test_non_member_world_readable(user, user2):
    room = room_with(user, "world_readable")
    event_id = user.send_message(room, "for everyone")
    # Reading without joining is the optional Room Previews module: a server may
    # refuse (403), but if it answers, it serves world_readable events.
    resp = user2.get(room_path(room, "messages"), params={"dir": "b", "limit": 50})
    if resp.status_code == 403:
        assert_error(resp, 403, "M_FORBIDDEN")
    else:
        chunk = assert_status(resp, 200)["chunk"]
        assert event_id in [e["event_id"] for e in chunk]
    resp = user2.get(room_path(room, "event", event_id))
    if resp.status_code == 200:
        assert resp.json()["content"]["body"] == "for everyone"
    else:
        assert_error(resp, (403, 404), ("M_FORBIDDEN", "M_NOT_FOUND"))


def test_world_readable_only_for_world_readable_events(user, user2):
    room = room_with(user, "joined")
    hidden = user.send_message(room, "joined-only era")
    user.send_state(room, "m.room.history_visibility", {"history_visibility": "world_readable"})
    public = user.send_message(room, "public era")
    resp = user2.get(room_path(room, "messages"), params={"dir": "b", "limit": 50})
    if resp.status_code == 403:
        assert_error(resp, 403, "M_FORBIDDEN")
        return
    ids = [e["event_id"] for e in assert_status(resp, 200)["chunk"]]
    # Peeking servers only return events whose state had world_readable.
    assert public in ids and hidden not in ids
