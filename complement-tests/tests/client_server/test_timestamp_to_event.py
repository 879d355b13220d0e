"""GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event (v1.6).

Spec: client-server-api room_event_by_timestamp.yaml.
"""

import pytest

from ct import CLIENT_V1, assert_error, assert_status, room_path


def path(room):
    return CLIENT_V1 + "/" + room_path(room, "timestamp_to_event")


def lookup(user, room, ts, direction):
    return user.get(path(room), params={"ts": ts, "dir": direction})


@pytest.fixture
def timeline(user):
    """A room with three messages and their (event_id, origin_server_ts), oldest first."""
    room = user.create_room()
    events = []
    for i in range(3):
        event_id = user.send_message(room, f"t{i}")
        events.append((event_id, user.get_event(room, event_id)["origin_server_ts"]))
    all_events = user.messages(room, dir="f", limit=100)["chunk"]
    return room, events, [(e["event_id"], e["origin_server_ts"]) for e in all_events]


def closest(all_events, ts, direction):
    if direction == "f":
        cands = [e for e in all_events if e[1] >= ts]
        return min(c[1] for c in cands) if cands else None
    cands = [e for e in all_events if e[1] <= ts]
    return max(c[1] for c in cands) if cands else None


@pytest.mark.parametrize("direction", ["f", "b"])
def test_exact_timestamp(user, timeline, direction):
    room, events, _ = timeline
    event_id, ts = events[1]
    body = assert_status(lookup(user, room, ts, direction), 200)
    assert body["origin_server_ts"] == ts, body
    if sum(1 for _, t in events if t == ts) == 1:
        assert body["event_id"] == event_id, body


@pytest.mark.parametrize("direction", ["f", "b"])
def test_between_events(user, timeline, direction):
    room, events, all_events = timeline
    (_, t0), (_, t1) = events[0], events[1]
    ts = t0 + 1 if direction == "f" else t1 - 1
    body = assert_status(lookup(user, room, ts, direction), 200)
    # The closest event in that direction.
    assert body["origin_server_ts"] == closest(all_events, ts, direction), (body, all_events)
    assert body["event_id"] in {e for e, _ in all_events}
    if direction == "f":
        assert body["origin_server_ts"] >= ts
    else:
        assert body["origin_server_ts"] <= ts


def test_after_the_last_event(user, timeline):
    room, events, _ = timeline
    last_id, last_ts = events[-1]
    body = assert_status(lookup(user, room, last_ts + 3_600_000, "b"), 200)
    assert body["origin_server_ts"] == last_ts, body
    if sum(1 for _, t in events if t == last_ts) == 1:
        assert body["event_id"] == last_id, body
    assert_error(lookup(user, room, last_ts + 3_600_000, "f"), 404, "M_NOT_FOUND")


def test_before_the_first_event(user, timeline):
    room, _, all_events = timeline
    assert_error(lookup(user, room, 0, "b"), 404, "M_NOT_FOUND")
    body = assert_status(lookup(user, room, 0, "f"), 200)
    # The room's first event(s): m.room.create is the oldest.
    assert body["origin_server_ts"] == all_events[0][1], (body, all_events[0])


def test_bad_parameters(user, timeline):
    room, events, _ = timeline
    assert_error(user.get(path(room), params={"ts": "soon", "dir": "f"}), 400, "M_INVALID_PARAM")
    assert_error(user.get(path(room), params={"ts": events[0][1], "dir": "sideways"}), 400, "M_INVALID_PARAM")
    assert_error(
        user.get(path(room), params={"dir": "f"}), 400, ("M_MISSING_PARAM", "M_INVALID_PARAM", "M_BAD_JSON")
    )


def test_non_member(user2, timeline):
    room, events, _ = timeline
    # The endpoint lists no 403; Synapse answers 403 M_FORBIDDEN, and a 404 would
    # not leak anything either. Never an event ID.
    assert_error(lookup(user2, room, events[0][1], "f"), (403, 404), ("M_FORBIDDEN", "M_NOT_FOUND"))
