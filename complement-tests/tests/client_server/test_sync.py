"""GET /sync: initial and incremental sync, long-polling, limited timelines,
room sections (join, invite, leave, knock), account data and request errors.

Spec: client-server-api "Syncing" (sync.yaml, timeline_batch.yaml), "Lazy-loading
room members" (for the room summary, see below), "Client Config" (account data).

Filters are covered in test_sync_filters.py, typing/receipts/read markers in
test_sync_ephemeral.py, presence in test_presence.py and send-to-device in
test_to_device.py.
"""

import time

import pytest

from ct import assert_error, assert_status, q
from ct.sync import (
    NO_PRESENCE,
    Syncer,
    account_data_content,
    bodies,
    long_poll_for,
    of_type,
    room,
    room_account_data_content,
    section,
    state,
    state_key_map,
    sync,
    sync_raw,
    timeline,
    timeline_ids,
)

# A timeline limit big enough for a whole freshly created room.
WHOLE_ROOM = {"room": {"timeline": {"limit": 50}}}

# An unparseable `since`: the spec lists no error for /sync; M_INVALID_PARAM is the
# natural code, Synapse says M_UNKNOWN (Synapse difference).
BAD_TOKEN_CODES = ("M_INVALID_PARAM", "M_UNKNOWN")


def assert_state_matches(user, room_id, state_events, timeline_events):
    """`state` (state at the start of the timeline) followed by the timeline's state
    events must end up at the room's current state (GET /rooms/{id}/state)."""
    current = state_key_map(user.room_state(room_id))
    derived = state_key_map(list(state_events) + list(timeline_events))
    assert set(derived) == set(current), (
        f"state+timeline keys {sorted(derived)} != current state keys {sorted(current)}"
    )
    for key, ev in current.items():
        assert derived[key]["event_id"] == ev["event_id"], (key, derived[key], ev)


def assert_client_event(ev, room_id=None):
    assert isinstance(ev.get("event_id"), str) and ev["event_id"].startswith("$"), ev
    assert isinstance(ev.get("type"), str) and ev["type"], ev
    assert isinstance(ev.get("sender"), str) and ev["sender"].startswith("@"), ev
    assert isinstance(ev.get("origin_server_ts"), int), ev
    assert isinstance(ev.get("content"), dict), ev
    if room_id is not None and "room_id" in ev:
        assert ev["room_id"] == room_id, ev


def assert_stripped_state(events):
    """Stripped state (invite_state / knock_state): only sender, type, state_key and
    content, and (since v1.16) always the m.room.create event."""
    assert isinstance(events, list) and events, events
    for ev in events:
        assert set(ev) <= {"sender", "type", "state_key", "content"}, ev
        assert isinstance(ev["type"], str) and isinstance(ev["state_key"], str), ev
        assert isinstance(ev["content"], dict) and ev["sender"].startswith("@"), ev
    assert [e for e in events if e["type"] == "m.room.create"], "no m.room.create in stripped state"


# -- initial sync ------------------------------------------------------------------------


def test_initial_sync_has_joined_room_with_whole_timeline(user):
    room_id = user.create_room(preset="private_chat", name="Sync room", topic="t")
    ids = [user.send_message(room_id, f"m{i}") for i in range(3)]

    body = sync(user, filter=WHOLE_ROOM)
    joined = room(body, room_id)
    assert joined is not None, f"room missing from rooms.join: {body.get('rooms')}"
    assert room_id not in section(body, "invite") and room_id not in section(body, "leave")
    events = timeline(body, room_id)
    for ev in events:
        assert_client_event(ev, room_id)
    # Chronological, starting at the room's creation, ending with our messages.
    assert events[0]["type"] == "m.room.create", [e["type"] for e in events]
    assert [e["event_id"] for e in events][-3:] == ids
    assert bodies(events) == ["m0", "m1", "m2"]
    assert of_type(events, "m.room.name")[0]["content"]["name"] == "Sync room"
    # Everything fitted: not limited, and the state before the timeline is empty
    # (the whole state is in the timeline).
    assert joined["timeline"].get("limited", False) is False, joined["timeline"]
    assert state(body, room_id) == [], state(body, room_id)
    assert_state_matches(user, room_id, [], events)


def test_initial_sync_limited_timeline(user):
    room_id = user.create_room(preset="private_chat")
    ids = [user.send_message(room_id, f"m{i}") for i in range(5)]

    body = sync(user, filter={"room": {"timeline": {"limit": 3}}})
    tl = room(body, room_id)["timeline"]
    assert [e["event_id"] for e in tl["events"]] == ids[-3:]
    assert tl.get("limited") is True, tl
    assert isinstance(tl.get("prev_batch"), str) and tl["prev_batch"], tl
    # `state` is the full state at the start of the timeline.
    st = state(body, room_id)
    keys = state_key_map(st)
    assert ("m.room.create", "") in keys and ("m.room.member", user.user_id) in keys, sorted(keys)
    assert_state_matches(user, room_id, st, tl["events"])
    # prev_batch continues backwards exactly where the timeline starts.
    page = user.messages(room_id, dir="b", limit=2, **{"from": tl["prev_batch"]})
    assert [e["event_id"] for e in page["chunk"]] == [ids[1], ids[0]]


def test_initial_sync_room_summary(user, user2, open_server):
    """m.heroes / m.joined_member_count / m.invited_member_count.

    The spec requires the counts on an initial sync. Synapse only computes the
    summary when lazy-loading members (Synapse difference), so this asks
    for lazy-loading."""
    user3 = open_server.register()
    room_id = user.create_room(preset="private_chat")  # no name, no alias
    user.invite(room_id, user2.user_id)
    user2.join(room_id)
    user.invite(room_id, user3.user_id)
    user.send_message(room_id, "hello")
    ll = {"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 5}}}

    syncer = Syncer(user, filter=ll)
    summary = room(syncer.initial(), room_id).get("summary") or {}
    assert summary.get("m.joined_member_count") == 2, summary
    assert summary.get("m.invited_member_count") == 1, summary
    heroes = summary.get("m.heroes")
    assert isinstance(heroes, list), summary
    assert user.user_id not in heroes, heroes
    # Fewer than 5 other members: all of them, and only joined/invited ones.
    assert set(heroes) == {user2.user_id, user3.user_id}, heroes

    user3.join(room_id)
    summary = syncer.until(
        lambda b: (room(b, room_id) or {}).get("summary", {}).get("m.joined_member_count") == 3
        and room(b, room_id)["summary"],
        what="joined_member_count 3",
    )
    assert summary.get("m.invited_member_count", 0) == 0, summary


def test_initial_sync_omits_rooms_never_joined(user, user2):
    room_id = user2.create_room(preset="public_chat")
    body = sync(user)
    for kind in ("join", "invite", "leave", "knock"):
        assert room_id not in section(body, kind), kind


# -- incremental sync --------------------------------------------------------------------


def test_incremental_sync_new_message_once(user, user2):
    room_id = user.create_room(preset="public_chat")
    user2.join(room_id)
    t0 = sync(user, filter=NO_PRESENCE)["next_batch"]
    m1 = user2.send_message(room_id, "first")

    first = sync(user, since=t0, filter=NO_PRESENCE, timeout=0)
    assert timeline_ids(first, room_id).count(m1) == 1, timeline(first, room_id)
    assert first["next_batch"] != t0
    # An incremental timeline without a gap: not limited.
    assert room(first, room_id)["timeline"].get("limited", False) is False

    # The same `since` again describes the same events.
    again = sync(user, since=t0, filter=NO_PRESENCE, timeout=1)
    assert timeline_ids(again, room_id) == timeline_ids(first, room_id)

    # From the new token, m1 is not repeated; the next message comes alone.
    syncer = Syncer(user, filter=NO_PRESENCE)
    syncer.since = first["next_batch"]
    quiet = syncer.next(timeout=0)
    assert m1 not in timeline_ids(quiet, room_id)
    m2 = user2.send_message(room_id, "second")
    seen = syncer.collect(lambda b: m2 in timeline_ids(b, room_id), what="m2")
    ids = [i for b in seen for i in timeline_ids(b, room_id)]
    assert ids.count(m2) == 1 and m1 not in ids, ids


def test_sync_echoes_transaction_id_only_to_the_sending_device(user, user2, open_server):
    """Many readers syncing the same window see the same event; only the sending
    device's copy carries `unsigned.transaction_id` (however the server shares
    work between readers)."""
    user3 = open_server.register()
    other_device = user.login_again()
    room_id = user.create_room(preset="public_chat")
    user2.join(room_id)
    user3.join(room_id)
    syncers = {name: Syncer(u, filter=NO_PRESENCE) for name, u in
               [("sender", user), ("other_device", other_device), ("user2", user2), ("user3", user3)]}
    for s in syncers.values():
        s.initial()
    event_id = user.send_event(room_id, "m.room.message", {"msgtype": "m.text", "body": "t"}, "ct-sync-echo")

    def the_event(syncer):
        return syncer.until(
            lambda b: next((e for e in timeline(b, room_id) if e["event_id"] == event_id), None),
            what="the sent event",
        )

    # Readers first, so a server that shares their window has made it before the sender syncs.
    for name in ("user2", "user3", "sender", "other_device"):
        unsigned = the_event(syncers[name]).get("unsigned") or {}
        if name == "sender":
            assert unsigned.get("transaction_id") == "ct-sync-echo", unsigned
        else:
            assert "transaction_id" not in unsigned, (name, unsigned)


def test_incremental_sync_has_no_state_without_gap(user, user2):
    room_id = user.create_room(preset="public_chat")
    filt = {"room": {"timeline": {"limit": 10}}, **NO_PRESENCE}
    syncer = Syncer(user, filter=filt)
    syncer.initial()
    user2.join(room_id)
    name_id = user.send_state(room_id, "m.room.name", {"name": "renamed"})
    body = syncer.next()
    # Both state changes fit the timeline; `state` is the delta up to the start of
    # the timeline, so it is empty ("empty unless the timeline was limited").
    tl = timeline(body, room_id)
    assert [e["event_id"] for e in tl][-1] == name_id, tl
    joins = [e for e in tl if e["type"] == "m.room.member" and e["state_key"] == user2.user_id]
    assert joins and joins[0]["content"]["membership"] == "join", tl
    assert room(body, room_id)["timeline"].get("limited", False) is False
    assert state(body, room_id) == [], state(body, room_id)


def test_incremental_sync_timeout_expires_with_empty_response(user):
    room_id = user.create_room(preset="private_chat")
    t0 = sync(user, filter=NO_PRESENCE)["next_batch"]
    started = time.monotonic()
    body = sync(user, since=t0, filter=NO_PRESENCE, timeout=1000)
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"a 1 s long-poll took {elapsed:.1f}s"
    assert timeline(body, room_id) == []


# -- long-polling wakes up ------------------------------------------------------------------


def test_long_poll_wakes_on_message(user, user2):
    room_id = user.create_room(preset="public_chat")
    user2.join(room_id)
    syncer = Syncer(user, filter=NO_PRESENCE)
    syncer.initial()
    poll = long_poll_for(
        syncer, lambda b: "wake up" in bodies(timeline(b, room_id)) and b, what="the message"
    )
    event_id = user2.send_message(room_id, "wake up")
    body = poll.result()
    ev = [e for e in timeline(body, room_id) if e["event_id"] == event_id]
    assert ev and ev[0]["sender"] == user2.user_id, timeline(body, room_id)
    assert poll.elapsed < 10


def test_long_poll_wakes_on_invite(user, user2):
    room_id = user.create_room(preset="private_chat", name="Invite me")
    syncer = Syncer(user2, filter=NO_PRESENCE)
    syncer.initial()
    poll = long_poll_for(syncer, lambda b: room(b, room_id, "invite"), what="the invite")
    user.invite(room_id, user2.user_id)
    invited = poll.result()
    assert poll.elapsed < 10
    events = invited["invite_state"]["events"]
    assert_stripped_state(events)
    # The spec doesn't spell it out, but clients learn who invited them from their
    # own invite member event in invite_state; Synapse includes it.
    mine = [e for e in events if e["type"] == "m.room.member" and e["state_key"] == user2.user_id]
    assert mine and mine[0]["content"]["membership"] == "invite", events
    assert mine[0]["sender"] == user.user_id, mine
    # An invite is not a join.
    assert room_id not in section(sync(user2, since=syncer.since, filter=NO_PRESENCE), "join")


# -- limited timelines and gaps --------------------------------------------------------------


def test_limited_gap_can_be_filled_with_messages(user):
    room_id = user.create_room(preset="private_chat", name="before")
    filt = {"room": {"timeline": {"limit": 3}}, **NO_PRESENCE}
    syncer = Syncer(user, filter=filt)
    since = syncer.initial()["next_batch"]

    # A room name change, then 7 messages: only the last 3 fit the timeline, so the
    # name change falls into the gap.
    name_id = user.send_state(room_id, "m.room.name", {"name": "after"})
    ids = [user.send_message(room_id, f"g{i}") for i in range(7)]

    body = syncer.next()
    tl = room(body, room_id)["timeline"]
    assert [e["event_id"] for e in tl["events"]] == ids[-3:]
    assert tl.get("limited") is True, tl
    assert isinstance(tl.get("prev_batch"), str) and tl["prev_batch"], tl
    # The state change hidden by the gap is in `state`.
    names = of_type(state(body, room_id), "m.room.name")
    assert [e["event_id"] for e in names] == [name_id], state(body, room_id)
    assert names[0]["content"]["name"] == "after"
    # Every entry of the delta is the room's current value (nothing else changed).
    current = state_key_map(user.room_state(room_id))
    for key, ev in state_key_map(state(body, room_id)).items():
        assert current[key]["event_id"] == ev["event_id"], (key, ev)

    gap = [name_id] + ids[:-3]
    # Backwards from prev_batch to the old `since`: exactly the gap, newest first.
    back = user.messages(room_id, dir="b", limit=50, **{"from": tl["prev_batch"], "to": since})
    assert [e["event_id"] for e in back["chunk"]] == gap[::-1]
    # Forwards from the old `since` to prev_batch (the spec's recipe): the same, in order.
    fwd = user.messages(room_id, dir="f", limit=50, **{"from": since, "to": tl["prev_batch"]})
    assert [e["event_id"] for e in fwd["chunk"]] == gap


def test_full_state_returns_all_state_immediately(user):
    room_id = user.create_room(preset="private_chat", name="full")
    syncer = Syncer(user, filter=NO_PRESENCE)
    syncer.initial()
    started = time.monotonic()
    # Nothing new since the token; full_state ignores the timeout.
    body = sync(user, since=syncer.since, full_state=True, timeout=20000, filter=NO_PRESENCE)
    assert time.monotonic() - started < 15, "full_state=true waited for the timeout"
    assert room(body, room_id) is not None, body.get("rooms")
    st = state(body, room_id)
    assert ("m.room.create", "") in state_key_map(st + timeline(body, room_id))
    assert_state_matches(user, room_id, st, timeline(body, room_id))


# -- leave, kick, ban, knock ------------------------------------------------------------------


@pytest.mark.parametrize("how", ["leave", "kick", "ban"])
def test_departure_appears_in_leave_section(user, user2, how):
    room_id = user.create_room(preset="public_chat")
    user2.join(room_id)
    syncer = Syncer(user2, filter=NO_PRESENCE)
    syncer.initial()
    if how == "leave":
        user2.leave(room_id)
    elif how == "kick":
        user.kick(room_id, user2.user_id, reason="out")
    else:
        user.ban(room_id, user2.user_id, reason="out")
    expected = "leave" if how != "ban" else "ban"

    left = syncer.until(lambda b: room(b, room_id, "leave"), what=f"rooms.leave after {how}")
    events = left["timeline"]["events"]
    mine = [e for e in events if e["type"] == "m.room.member" and e["state_key"] == user2.user_id]
    assert mine and mine[-1]["content"]["membership"] == expected, events
    assert mine[-1]["sender"] == (user2.user_id if how == "leave" else user.user_id), mine[-1]

    # Reported once; later activity in the room no longer reaches the departed user.
    later = user.send_message(room_id, "after you left")
    user.send_message(room_id, "x")
    body = syncer.next(timeout=0)
    assert room(body, room_id, "leave") is None, body.get("rooms")
    assert room(body, room_id, "join") is None
    assert later not in timeline_ids(body, room_id, "leave")


def test_knock_appears_in_knock_section(user, user2):
    room_id = user.create_room(
        room_version="10",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    syncer = Syncer(user2, filter=NO_PRESENCE)
    syncer.initial()
    assert_status(user2.post(f"knock/{q(room_id)}", json={"reason": "let me in"}), 200)
    knocked = syncer.until(lambda b: room(b, room_id, "knock"), what="rooms.knock")
    events = knocked["knock_state"]["events"]
    assert_stripped_state(events)
    mine = [e for e in events if e["type"] == "m.room.member" and e["state_key"] == user2.user_id]
    assert mine and mine[0]["content"]["membership"] == "knock", events
    assert room_id not in section(sync(user2, since=syncer.since, filter=NO_PRESENCE), "join")


# -- account data --------------------------------------------------------------------------


def test_account_data_in_initial_sync(user):
    room_id = user.create_room(preset="private_chat")
    uid = q(user.user_id)
    assert_status(user.put(f"user/{uid}/account_data/org.example.ct.global", json={"g": 1}), 200)
    assert_status(
        user.put(f"user/{uid}/rooms/{q(room_id)}/account_data/org.example.ct.room", json={"r": 2}),
        200,
    )
    body = sync(user)
    assert account_data_content(body, "org.example.ct.global") == {"g": 1}
    assert room_account_data_content(body, room_id, "org.example.ct.room") == {"r": 2}
    # Room account data stays in its room.
    assert account_data_content(body, "org.example.ct.room") is None


def test_account_data_incremental(user):
    room_id = user.create_room(preset="private_chat")
    uid = q(user.user_id)
    gpath = f"user/{uid}/account_data/org.example.ct.global"
    rpath = f"user/{uid}/rooms/{q(room_id)}/account_data/org.example.ct.room"
    syncer = Syncer(user, filter=NO_PRESENCE)
    syncer.initial()

    assert_status(user.put(gpath, json={"v": 1}), 200)
    syncer.until(lambda b: account_data_content(b, "org.example.ct.global") == {"v": 1}, what="v1")
    assert_status(user.put(gpath, json={"v": 2}), 200)
    syncer.until(lambda b: account_data_content(b, "org.example.ct.global") == {"v": 2}, what="v2")

    assert_status(user.put(rpath, json={"v": 1}), 200)
    syncer.until(
        lambda b: room_account_data_content(b, room_id, "org.example.ct.room") == {"v": 1}, what="room v1"
    )
    assert_status(user.put(rpath, json={"v": 2}), 200)
    syncer.until(
        lambda b: room_account_data_content(b, room_id, "org.example.ct.room") == {"v": 2}, what="room v2"
    )
    # Unchanged account data is not repeated.
    assert_status(user.put(gpath, json={"v": 3}), 200)
    body = syncer.until(lambda b: account_data_content(b, "org.example.ct.global") == {"v": 3} and b, what="v3")
    assert room_account_data_content(body, room_id, "org.example.ct.room") is None


# -- request errors and odd parameters ----------------------------------------------------------


def test_unparseable_since_is_400(user):
    for bad in ("not a token", "!!!"):
        assert_error(sync_raw(user, since=bad), 400, BAD_TOKEN_CODES)


def test_negative_timeout_does_not_hang(user):
    """A negative timeout: the spec gives no bound (plain integer), Synapse rejects it
    with 400 M_INVALID_PARAM (Synapse difference). Either way it must answer
    at once and not with a server error."""
    since = sync(user, filter=NO_PRESENCE)["next_batch"]
    started = time.monotonic()
    resp = sync_raw(user, since=since, timeout=-5000, filter=NO_PRESENCE)
    assert time.monotonic() - started < 10
    if resp.status_code == 200:
        assert isinstance(resp.json().get("next_batch"), str), resp.text
    else:
        assert_error(resp, 400, "M_INVALID_PARAM")


def test_huge_timeout_with_pending_data_returns_at_once(user):
    room_id = user.create_room(preset="private_chat")
    since = sync(user, filter=NO_PRESENCE)["next_batch"]
    event_id = user.send_message(room_id, "already here")
    started = time.monotonic()
    body = sync(user, since=since, timeout=2**40, filter=NO_PRESENCE)
    assert time.monotonic() - started < 10
    assert event_id in timeline_ids(body, room_id)


def test_sync_requires_access_token(open_server):
    assert_error(open_server.get("sync"), 401, "M_MISSING_TOKEN")

