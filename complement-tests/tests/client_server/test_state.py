"""Room state: GET /rooms/{id}/state, GET/PUT /rooms/{id}/state/{type}/{stateKey}.

Spec: client-server-api "Getting events for a room" / "Sending events to a room"
(room_state.yaml, rooms.yaml), power levels ("Permissions", m.room.power_levels)
and the room version auth rules (content/rooms/).
"""

import pytest

from ct import assert_error, assert_error_status, assert_status, room_path

CLIENT_EVENT_KEYS = ("content", "event_id", "origin_server_ts", "room_id", "sender", "type")


def set_power(user, room_id, **changes):
    """Modify the room's power levels as `user`; `users` entries are merged."""
    pl = user.get_state(room_id, "m.room.power_levels")
    users = dict(pl.get("users", {}))
    users.update(changes.pop("users", {}))
    events = dict(pl.get("events", {}))
    events.update(changes.pop("events", {}))
    pl.update(changes, users=users, events=events)
    user.send_state(room_id, "m.room.power_levels", pl)
    return pl


def test_get_all_state(user):
    room = user.create_room(preset="public_chat", name="State room")
    events = user.room_state(room)
    for ev in events:
        for key in CLIENT_EVENT_KEYS:
            assert key in ev, (key, ev)
        assert isinstance(ev.get("state_key"), str), ev
        assert ev["room_id"] == room and ev["event_id"].startswith("$"), ev
    keys = {(e["type"], e["state_key"]) for e in events}
    for want in [
        ("m.room.create", ""),
        ("m.room.member", user.user_id),
        ("m.room.power_levels", ""),
        ("m.room.join_rules", ""),
        ("m.room.history_visibility", ""),
        ("m.room.name", ""),
    ]:
        assert want in keys, (want, keys)
    # Current state: one event per (type, state_key).
    assert len(keys) == len(events), events


def test_get_one_state_event(user):
    room = user.create_room(name="One")
    assert user.get_state(room, "m.room.name") == {"name": "One"}
    create = user.get_state(room, "m.room.create")
    assert isinstance(create.get("room_version"), str), create
    member = user.get_state(room, "m.room.member", user.user_id)
    assert member["membership"] == "join", member


def test_empty_state_key_trailing_slash_optional(user):
    room = user.create_room(name="Slash")
    with_slash = assert_status(user.get(room_path(room, "state", "m.room.name", "")), 200)
    without = assert_status(user.get(room_path(room, "state", "m.room.name")), 200)
    assert with_slash == without == {"name": "Slash"}
    # Same for PUT.
    user.put(room_path(room, "state", "m.room.topic"), json={"topic": "no slash"})
    assert user.get_state(room, "m.room.topic")["topic"] == "no slash"


def test_unknown_state(user):
    room = user.create_room()
    assert_error(user.get(room_path(room, "state", "org.example.ct.none", "")), 404, "M_NOT_FOUND")
    assert_error(user.get(room_path(room, "state", "m.room.name", "")), 404, "M_NOT_FOUND")
    # Known type, unknown state key.
    assert_error(
        user.get(room_path(room, "state", "m.room.member", "@nobody:example.org")), 404, "M_NOT_FOUND"
    )


def test_put_state_returns_event_id(user):
    room = user.create_room()
    event_id = user.send_state(room, "org.example.ct.thing", {"a": 1}, "key")
    assert event_id.startswith("$"), event_id
    ev = user.get_event(room, event_id)
    assert ev["type"] == "org.example.ct.thing" and ev["state_key"] == "key", ev
    assert ev["content"] == {"a": 1} and ev["sender"] == user.user_id, ev


def test_custom_state_types(user):
    room = user.create_room()
    user.send_state(room, "org.example.ct.thing", {"v": "empty"})
    user.send_state(room, "org.example.ct.thing", {"v": 1}, "a")
    user.send_state(room, "org.example.ct.thing", {"v": 2}, "b")
    user.send_state(room, "org.example.ct.thing", {"v": 3, "nested": {"x": [1, None]}}, "a")  # replaces
    assert user.get_state(room, "org.example.ct.thing") == {"v": "empty"}
    assert user.get_state(room, "org.example.ct.thing", "a") == {"v": 3, "nested": {"x": [1, None]}}
    assert user.get_state(room, "org.example.ct.thing", "b") == {"v": 2}
    mine = {
        e["state_key"]: e["content"] for e in user.room_state(room) if e["type"] == "org.example.ct.thing"
    }
    assert mine == {"": {"v": "empty"}, "a": {"v": 3, "nested": {"x": [1, None]}}, "b": {"v": 2}}


def test_state_key_with_special_characters(user):
    room = user.create_room()
    key = "a/b c?d#e%f ✓"
    user.send_state(room, "org.example.ct.thing", {"k": key}, key)
    assert user.get_state(room, "org.example.ct.thing", key) == {"k": key}


def test_state_key_of_another_user_forbidden(user, user2):
    room = user.create_room(preset="public_chat")
    user2.join(room)
    # State keys starting with "@" must be the sender's own user ID (auth rules).
    resp = user.put(room_path(room, "state", "org.example.ct.thing", user2.user_id), json={"a": 1})
    assert_error(resp, 403, "M_FORBIDDEN")
    user.send_state(room, "org.example.ct.thing", {"a": 1}, user.user_id)


def test_post_to_state_path_unsupported(user):
    room = user.create_room()
    resp = user.post(room_path(room, "state", "org.example.ct.thing", "k"), json={"a": 1})
    assert_error(resp, 405, "M_UNRECOGNIZED")


def test_state_body_must_be_json_object(user):
    room = user.create_room()
    resp = user.put(
        room_path(room, "state", "org.example.ct.thing", "k"),
        data="[1, 2]",
        headers={"Content-Type": "application/json"},
    )
    assert_error(resp, 400, ("M_BAD_JSON", "M_NOT_JSON"))
    assert_error(user.get(room_path(room, "state", "org.example.ct.thing", "k")), 404, "M_NOT_FOUND")


# -- power levels --------------------------------------------------------------------------


def test_below_state_default_cannot_set_state(user, user2):
    room = user.create_room(preset="public_chat", name="Original")
    user2.join(room)
    resp = user2.put(room_path(room, "state", "org.example.ct.thing", ""), json={"a": 1})
    assert_error(resp, 403, "M_FORBIDDEN")
    resp = user2.put(room_path(room, "state", "m.room.name", ""), json={"name": "Hijacked"})
    assert_error(resp, 403, "M_FORBIDDEN")
    assert user.get_state(room, "m.room.name") == {"name": "Original"}
    assert_error(user.get(room_path(room, "state", "org.example.ct.thing", "")), 404, "M_NOT_FOUND")


def test_state_default_and_events_levels_apply(user, user2):
    room = user.create_room(preset="public_chat", room_version="11")
    user2.join(room)
    set_power(user, room, users={user2.user_id: 10}, state_default=10, events={"m.room.topic": 20})
    # Allowed by state_default...
    user2.send_state(room, "org.example.ct.thing", {"ok": True})
    # ...but m.room.topic has its own, higher level.
    resp = user2.put(room_path(room, "state", "m.room.topic", ""), json={"topic": "no"})
    assert_error(resp, 403, "M_FORBIDDEN")


def test_cannot_raise_own_power_above_own_level(open_server, user, user2):
    room = user.create_room(preset="public_chat", room_version="11")
    third = open_server.register()
    user2.join(room)
    third.join(room)
    pl = set_power(user, room, users={user2.user_id: 50}, events={"m.room.power_levels": 50})
    # Raising oneself above one's own level is refused.
    raised = {**pl, "users": {**pl["users"], user2.user_id: 100}}
    assert_error(user2.put(room_path(room, "state", "m.room.power_levels", ""), json=raised), 403, "M_FORBIDDEN")
    # So is demoting someone with a higher level.
    demoted = {**pl, "users": {**pl["users"], user.user_id: 0}}
    assert_error(user2.put(room_path(room, "state", "m.room.power_levels", ""), json=demoted), 403, "M_FORBIDDEN")
    assert user.get_state(room, "m.room.power_levels")["users"] == pl["users"]
    # Granting up to one's own level is allowed.
    ok = {**pl, "users": {**pl["users"], third.user_id: 50}}
    user2.send_state(room, "m.room.power_levels", ok)
    assert user.get_state(room, "m.room.power_levels")["users"][third.user_id] == 50


def test_v12_creator_cannot_be_listed_in_users(user):
    room = user.create_room(room_version="12")
    pl = user.get_state(room, "m.room.power_levels")
    bad = {**pl, "users": {**pl.get("users", {}), user.user_id: 100}}
    resp = user.put(room_path(room, "state", "m.room.power_levels", ""), json=bad)
    # Rejected by the v12 auth rules; the spec gives no status or errcode for that.
    assert_error_status(resp, (400, 403))
    assert user.get_state(room, "m.room.power_levels") == pl


@pytest.mark.parametrize("version", ["10", "11", "12"])
def test_power_levels_with_non_integer_rejected(user, version):
    room = user.create_room(room_version=version)
    before = user.get_state(room, "m.room.power_levels")
    bad = {**before, "ban": "50"}
    resp = user.put(room_path(room, "state", "m.room.power_levels", ""), json=bad)
    # Auth rules (v10+): non-integer levels are rejected; no status or errcode given.
    assert_error_status(resp, (400, 403))
    assert user.get_state(room, "m.room.power_levels") == before


def test_name_with_wrong_type_is_never_stored_mangled(user):
    # The spec doesn't say whether servers validate m.room.name content. Either it
    # is rejected (Synapse: 400), or it is stored exactly as sent.
    room = user.create_room(name="Good")
    resp = user.put(room_path(room, "state", "m.room.name", ""), json={"name": 5})
    if resp.status_code == 200:
        assert user.get_state(room, "m.room.name") == {"name": 5}
    else:
        assert_error(resp, 400, ("M_BAD_JSON", "M_INVALID_PARAM", "M_UNKNOWN"))
        assert user.get_state(room, "m.room.name") == {"name": "Good"}


# -- non-members ---------------------------------------------------------------------------


def test_non_member_cannot_read_state(user, user2):
    room = user.create_room(preset="public_chat", name="Secret-ish")
    assert_error(user2.get(room_path(room, "state")), 403, "M_FORBIDDEN")
    assert_error(user2.get(room_path(room, "state", "m.room.name", "")), 403, "M_FORBIDDEN")


def test_non_member_cannot_set_state(user, user2):
    room = user.create_room(preset="public_chat")
    resp = user2.put(room_path(room, "state", "org.example.ct.thing", ""), json={"a": 1})
    assert_error(resp, 403, "M_FORBIDDEN")


def test_former_member_reads_state_as_of_leaving(user, user2):
    room = user.create_room(preset="public_chat", name="Before")
    user2.join(room)
    user2.leave(room)
    user.send_state(room, "m.room.name", {"name": "After"})
    # Spec: former members get the state as it was when they left.
    assert user2.get_state(room, "m.room.name") == {"name": "Before"}
    names = [e for e in assert_status(user2.get(room_path(room, "state")), 200) if e["type"] == "m.room.name"]
    assert [e["content"] for e in names] == [{"name": "Before"}]
