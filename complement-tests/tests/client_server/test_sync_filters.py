"""Filters applied to GET /sync: inline JSON and uploaded filter IDs, timeline and
state filters, room filters, lazy-loading members, include_leave, account data.

Spec: client-server-api "Filtering" (filter.yaml, sync_filter.yaml,
room_event_filter.yaml, event_filter.yaml), "Lazy-loading room members", and
the `filter` parameter of /sync (sync.yaml).

Every sync here is an initial sync with its own filter, or follows a fresh
token, so Synapse's /sync response cache (ct/sync.py) never answers them.
"""

import json

from ct import assert_error, assert_status, q
from ct.sync import (
    NO_PRESENCE,
    Syncer,
    account_data,
    bodies,
    room,
    room_account_data,
    section,
    state,
    sync,
    sync_raw,
    timeline,
    timeline_ids,
)


def upload_filter(user, body):
    data = assert_status(user.post(f"user/{q(user.user_id)}/filter", json=body), 200)
    assert isinstance(data.get("filter_id"), str) and data["filter_id"], data
    return data["filter_id"]


def members_in(events):
    return {e["state_key"] for e in events if e["type"] == "m.room.member"}


# -- inline vs uploaded ---------------------------------------------------------------------


def test_inline_and_uploaded_filter_agree(user):
    room_id = user.create_room(preset="private_chat")
    ids = [user.send_message(room_id, f"m{i}") for i in range(4)]
    body = {"room": {"timeline": {"limit": 2}}}
    fid = upload_filter(user, body)

    by_id = sync(user, filter=fid)
    inline = sync(user, filter=json.dumps(body))
    for resp in (by_id, inline):
        assert timeline_ids(resp, room_id) == ids[-2:]
        assert room(resp, room_id)["timeline"].get("limited") is True


def test_timeline_limit(user):
    room_id = user.create_room(preset="private_chat")
    ids = [user.send_message(room_id, f"m{i}") for i in range(6)]
    for limit in (1, 4):
        resp = sync(user, filter={"room": {"timeline": {"limit": limit}}})
        assert timeline_ids(resp, room_id) == ids[-limit:], limit


def test_timeline_limit_applies_to_incremental_sync(user):
    room_id = user.create_room(preset="private_chat")
    syncer = Syncer(user, filter={"room": {"timeline": {"limit": 2}}, **NO_PRESENCE})
    syncer.initial()
    ids = [user.send_message(room_id, f"m{i}") for i in range(5)]
    resp = syncer.next()
    assert timeline_ids(resp, room_id) == ids[-2:]
    assert room(resp, room_id)["timeline"].get("limited") is True


# -- event filters on the timeline -------------------------------------------------------------


def test_timeline_types(user):
    room_id = user.create_room(preset="private_chat")
    user.send_event(room_id, "org.example.ct.a", {"n": 1})
    user.send_message(room_id, "text")
    user.send_event(room_id, "org.example.ct.b", {"n": 2})
    user.send_event(room_id, "org.example.other", {"n": 3})

    only_msgs = sync(user, filter={"room": {"timeline": {"types": ["m.room.message"]}}})
    assert {e["type"] for e in timeline(only_msgs, room_id)} == {"m.room.message"}
    assert bodies(timeline(only_msgs, room_id)) == ["text"]

    # "*" is a wildcard for any sequence of characters.
    wild = sync(user, filter={"room": {"timeline": {"types": ["org.example.ct.*"]}}})
    assert [e["type"] for e in timeline(wild, room_id)] == ["org.example.ct.a", "org.example.ct.b"]


def test_timeline_not_types(user):
    room_id = user.create_room(preset="private_chat")
    user.send_message(room_id, "text")
    user.send_event(room_id, "org.example.ct.a", {"n": 1})

    resp = sync(
        user, filter={"room": {"timeline": {"limit": 50, "not_types": ["m.room.message", "m.room.member"]}}}
    )
    types = [e["type"] for e in timeline(resp, room_id)]
    assert "org.example.ct.a" in types and "m.room.create" in types, types
    assert "m.room.message" not in types and "m.room.member" not in types, types

    # not_types wins over types.
    both = sync(
        user,
        filter={"room": {"timeline": {"types": ["org.example.*"], "not_types": ["org.example.ct.a"]}}},
    )
    assert timeline(both, room_id) == []


def test_timeline_senders_and_not_senders(user, user2):
    room_id = user.create_room(preset="public_chat")
    user2.join(room_id)
    for i in range(3):
        user.send_message(room_id, f"u{i}")
        user2.send_message(room_id, f"v{i}")

    only2 = sync(user, filter={"room": {"timeline": {"limit": 50, "senders": [user2.user_id]}}})
    events = timeline(only2, room_id)
    assert {e["sender"] for e in events} == {user2.user_id}, events
    assert bodies(events) == ["v0", "v1", "v2"]

    not2 = sync(user, filter={"room": {"timeline": {"limit": 50, "not_senders": [user2.user_id]}}})
    events = timeline(not2, room_id)
    assert {e["sender"] for e in events} == {user.user_id}, events
    assert bodies(events) == ["u0", "u1", "u2"]


# -- room filters -----------------------------------------------------------------------------


def test_rooms_and_not_rooms(user):
    # Room version 10: in v12 rooms Synapse lets the m.room.create event (which has
    # no room_id there) through `not_rooms`, so the excluded room still shows up
    # (Synapse difference).
    a = user.create_room(preset="private_chat", room_version="10")
    b = user.create_room(preset="private_chat", room_version="10")

    only_a = sync(user, filter={"room": {"rooms": [a]}})
    assert a in section(only_a, "join") and b not in section(only_a, "join")

    not_a = sync(user, filter={"room": {"not_rooms": [a]}})
    assert a not in section(not_a, "join") and b in section(not_a, "join")

    # not_rooms wins over rooms.
    neither = sync(user, filter={"room": {"rooms": [a, b], "not_rooms": [a]}})
    assert set(section(neither, "join")) & {a, b} == {b}


def test_rooms_filter_applies_to_incremental_sync(user):
    a = user.create_room(preset="private_chat")
    b = user.create_room(preset="private_chat")
    syncer = Syncer(user, filter={"room": {"rooms": [b]}, **NO_PRESENCE})
    syncer.initial()
    user.send_message(a, "in a")
    in_b = user.send_message(b, "in b")
    resp = syncer.until(lambda r: in_b in timeline_ids(r, b) and r, what="the message in b")
    assert a not in section(resp, "join")


def test_state_types(user):
    room_id = user.create_room(preset="private_chat", name="Filtered", topic="topic")
    user.send_message(room_id, "push the state out of the timeline")
    resp = sync(
        user,
        filter={"room": {"timeline": {"limit": 1}, "state": {"types": ["m.room.name", "m.room.topic"]}}},
    )
    types = sorted(e["type"] for e in state(resp, room_id))
    assert types == ["m.room.name", "m.room.topic"], types
    assert bodies(timeline(resp, room_id)) == ["push the state out of the timeline"]

    no_members = sync(user, filter={"room": {"timeline": {"limit": 1}, "state": {"not_types": ["m.room.member"]}}})
    types = {e["type"] for e in state(no_members, room_id)}
    assert "m.room.member" not in types and "m.room.create" in types, types


def test_lazy_load_members(open_server):
    """With lazy_load_members, `state` carries the member events of the timeline's
    senders (and of the summary's heroes, which the spec also requires), not
    everybody's."""
    users = [open_server.register() for _ in range(7)]
    me, sender, others = users[0], users[1], users[2:]
    room_id = me.create_room(preset="public_chat", name="Lazy")
    for u in [sender, *others]:
        u.join(room_id)
    last_joiner = others[-1]
    sender.send_message(room_id, "first")
    sender.send_message(room_id, "second")

    lazy = sync(me, filter={"room": {"timeline": {"limit": 2}, "state": {"lazy_load_members": True}}})
    assert bodies(timeline(lazy, room_id)) == ["first", "second"]
    members = members_in(state(lazy, room_id))
    heroes = set((room(lazy, room_id).get("summary") or {}).get("m.heroes") or [])
    assert sender.user_id in members, members
    extra = members - {sender.user_id, me.user_id} - heroes
    assert not extra, f"member events for non-senders in lazy-loaded state: {extra}"
    # Heroes are the first 5 members: the 7th member to join is neither hero nor sender.
    assert last_joiner.user_id not in members or last_joiner.user_id in heroes, members

    # Without lazy-loading, every member is there.
    full = sync(me, filter={"room": {"timeline": {"limit": 2}}})
    assert members_in(state(full, room_id)) == {u.user_id for u in users}


def test_lazy_load_members_incremental(open_server):
    """In incremental syncs too, lazy loading brings the member event of a timeline
    sender the client hasn't been sent; with include_redundant_members, every
    timeline sender's member event comes each time."""
    me, early, *fillers, late = (open_server.register() for _ in range(7))
    room_id = me.create_room(preset="public_chat")
    # Heroes are the first 5 members after `me`: `late` joins after them, so the summary
    # doesn't bring its member event either.
    for u in [early, *fillers, late]:
        u.join(room_id)
    early.send_message(room_id, "before")
    lazy = {"room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": True}}, **NO_PRESENCE}
    syncer = Syncer(me, filter=lazy)
    first = syncer.initial()
    assert bodies(timeline(first, room_id)) == ["before"]
    assert late.user_id not in members_in(state(first, room_id))

    # `late` joined before the window the client saw: its first message brings its member event.
    late.send_message(room_id, "hello")
    body = syncer.until(lambda b: "hello" in bodies(timeline(b, room_id)) and b, what="hello")
    members = {e["state_key"]: e for e in state(body, room_id) if e["type"] == "m.room.member"}
    assert late.user_id in members, state(body, room_id)
    assert members[late.user_id]["content"]["membership"] == "join"

    redundant = {
        "room": {
            "timeline": {"limit": 1},
            "state": {"lazy_load_members": True, "include_redundant_members": True},
        },
        **NO_PRESENCE,
    }
    again = Syncer(me, filter=redundant)
    again.initial()
    early.send_message(room_id, "one")
    body = again.until(lambda b: "one" in bodies(timeline(b, room_id)) and b, what="one")
    assert early.user_id in members_in(state(body, room_id))
    early.send_message(room_id, "two")
    body = again.until(lambda b: "two" in bodies(timeline(b, room_id)) and b, what="two")
    assert early.user_id in members_in(state(body, room_id)), "redundant members are sent again"


def test_include_leave(user, user2):
    room_id = user.create_room(preset="public_chat")
    user2.join(room_id)
    user2.leave(room_id)

    plain = sync(user2)
    assert room_id not in section(plain, "leave")
    assert room_id not in section(plain, "join")

    with_leave = sync(user2, filter={"room": {"include_leave": True}})
    left = room(with_leave, room_id, "leave")
    assert left is not None, with_leave.get("rooms")
    events = left["timeline"]["events"] + (left.get("state") or {}).get("events", [])
    mine = [e for e in events if e["type"] == "m.room.member" and e["state_key"] == user2.user_id]
    assert any(e["content"]["membership"] == "leave" for e in mine), mine


# -- account data ------------------------------------------------------------------------------


def test_account_data_types(user):
    uid = q(user.user_id)
    for t in ("org.example.ct.a", "org.example.ct.b"):
        assert_status(user.put(f"user/{uid}/account_data/{t}", json={"t": t}), 200)

    only_a = sync(user, filter={"account_data": {"types": ["org.example.ct.a"]}})
    assert [e["type"] for e in account_data(only_a)] == ["org.example.ct.a"]

    not_a = sync(user, filter={"account_data": {"not_types": ["org.example.ct.a"]}})
    types = [e["type"] for e in account_data(not_a)]
    assert "org.example.ct.b" in types and "org.example.ct.a" not in types, types


def test_room_account_data_types(user):
    room_id = user.create_room(preset="private_chat")
    uid = q(user.user_id)
    for t in ("org.example.ct.a", "org.example.ct.b"):
        assert_status(
            user.put(f"user/{uid}/rooms/{q(room_id)}/account_data/{t}", json={"t": t}), 200
        )
    resp = sync(user, filter={"room": {"account_data": {"types": ["org.example.ct.b"]}}})
    assert [e["type"] for e in room_account_data(resp, room_id)] == ["org.example.ct.b"]


# -- errors -----------------------------------------------------------------------------------


def test_filter_that_is_not_json(user):
    # Starts with "{" so it is inline JSON, but does not parse.
    assert_error(sync_raw(user, filter="{not json"), 400, ("M_NOT_JSON", "M_BAD_JSON"))


def test_invalid_filter_contents(user):
    # Well-formed JSON, invalid filter. Synapse answers M_UNKNOWN (README, Known
    # differences: invalid filter contents).
    assert_error(
        sync_raw(user, filter={"room": {"rooms": "!notalist:example.org"}}),
        400,
        ("M_BAD_JSON", "M_INVALID_PARAM", "M_UNKNOWN"),
    )


def test_unknown_filter_id(user):
    # The spec lists no error; Synapse says 400 M_INVALID_PARAM ("No such filter").
    upload_filter(user, {"room": {"timeline": {"limit": 1}}})
    for fid in ("999999", "nosuchfilter"):
        assert_error(sync_raw(user, filter=fid), 400, ("M_INVALID_PARAM", "M_NOT_FOUND"))


def test_other_users_filter_id_not_usable(user, user2):
    # Filter IDs belong to their user: user2's filter is not user's.
    fid = upload_filter(user2, {"room": {"timeline": {"limit": 1}}})
    resp = sync_raw(user, filter=fid)
    if resp.status_code == 200:
        # Only acceptable if user happens to own a filter with the same ID: user has
        # none, so that cannot be.
        raise AssertionError(f"user could sync with another user's filter {fid!r}: {resp.text[:300]}")
    assert_error(resp, 400, ("M_INVALID_PARAM", "M_NOT_FOUND"))
