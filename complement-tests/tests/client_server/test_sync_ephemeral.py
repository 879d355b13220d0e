"""Ephemeral room data in /sync: typing notifications, receipts, read markers.

Spec: client-server-api modules "Typing Notifications" (typing.yaml, m.typing),
"Receipts" (receipts.yaml, m.receipt, private and threaded receipts) and
"Read and unread markers" (read_markers.yaml, m.fully_read).
"""

import pytest

from ct import assert_error, assert_status, q, room_path
from ct.sync import (
    NO_PRESENCE,
    Syncer,
    ephemeral,
    long_poll_for,
    of_type,
    receipts,
    room_account_data_content,
    timeline,
    typing_user_ids,
)


@pytest.fixture
def shared_room(user, user2):
    """A public room with `user` (creator) and `user2` joined, and one message."""
    room_id = user.create_room(preset="public_chat")
    user2.join(room_id)
    event_id = user.send_message(room_id, "read me")
    return room_id, event_id


def set_typing(who, room_id, typing=True, timeout=30000, target=None):
    body = {"typing": typing}
    if typing:
        body["timeout"] = timeout
    return who.put(room_path(room_id, "typing", target or who.user_id), json=body)


def send_receipt(who, room_id, event_id, receipt_type="m.read", body=None):
    return who.post(room_path(room_id, "receipt", receipt_type, event_id), json=body or {})


def receipt_of(body, room_id, event_id, receipt_type, user_id):
    """The receipt data for (event, type, user) in this response, or None."""
    for ev, rtype, uid, data in receipts(body, room_id):
        if (ev, rtype, uid) == (event_id, receipt_type, user_id):
            return data
    return None


# -- typing ---------------------------------------------------------------------------------


def test_typing_seen_by_other_member_then_stopped(user, user2, shared_room):
    room_id, _ = shared_room
    syncer = Syncer(user, filter=NO_PRESENCE)
    syncer.initial()

    assert assert_status(set_typing(user2, room_id), 200) == {}
    syncer.until(
        lambda b: user2.user_id in (typing_user_ids(b, room_id) or []), what="user2 typing"
    )
    assert_status(set_typing(user2, room_id, typing=False), 200)
    # m.typing replaces the whole list: once user2 stops, a list without them comes.
    syncer.until(
        lambda b: (ids := typing_user_ids(b, room_id)) is not None and user2.user_id not in ids,
        what="user2 no longer typing",
    )


def test_typing_event_shape(user, user2, shared_room):
    room_id, _ = shared_room
    syncer = Syncer(user, filter=NO_PRESENCE)
    syncer.initial()
    assert_status(set_typing(user2, room_id), 200)

    def typing_event(b):
        found = of_type(ephemeral(b, room_id), "m.typing")
        return found and user2.user_id in found[-1]["content"].get("user_ids", []) and (found[-1], b)

    ev, body = syncer.until(typing_event, what="m.typing")
    assert ev["content"]["user_ids"] == [user2.user_id], ev
    # Ephemeral: no event ID, no state key, and not part of the timeline.
    assert "event_id" not in ev and "state_key" not in ev, ev
    assert not of_type(timeline(body, room_id), "m.typing"), timeline(body, room_id)


def test_typing_times_out(user, user2, shared_room):
    room_id, _ = shared_room
    syncer = Syncer(user, filter=NO_PRESENCE)
    syncer.initial()
    assert_status(set_typing(user2, room_id, timeout=1000), 200)
    syncer.until(lambda b: user2.user_id in (typing_user_ids(b, room_id) or []), what="typing")
    # Nobody says "stopped": the 1 s timeout does it (Synapse checks every few seconds).
    syncer.until(
        lambda b: (ids := typing_user_ids(b, room_id)) is not None and user2.user_id not in ids,
        timeout=20,
        what="typing to expire",
    )


def test_long_poll_wakes_on_typing(user, user2, shared_room):
    room_id, _ = shared_room
    syncer = Syncer(user, filter=NO_PRESENCE)
    syncer.initial()
    poll = long_poll_for(
        syncer, lambda b: user2.user_id in (typing_user_ids(b, room_id) or []), what="typing"
    )
    assert_status(set_typing(user2, room_id), 200)
    assert poll.result()
    assert poll.elapsed < 10


def test_cannot_set_typing_for_another_user(user, user2, shared_room):
    room_id, _ = shared_room
    # Synapse answers 400 M_FORBIDDEN rather than 403 (Synapse difference).
    assert_error(set_typing(user, room_id, target=user2.user_id), (400, 403), "M_FORBIDDEN")


# -- receipts -------------------------------------------------------------------------------


def test_read_receipt_seen_by_other_member(user, user2, shared_room):
    room_id, event_id = shared_room
    syncer = Syncer(user, filter=NO_PRESENCE)
    syncer.initial()
    assert assert_status(send_receipt(user2, room_id, event_id), 200) == {}
    data = syncer.until(
        lambda b: receipt_of(b, room_id, event_id, "m.read", user2.user_id), what="m.read receipt"
    )
    assert isinstance(data.get("ts"), int), data
    assert "thread_id" not in data, f"unthreaded receipt got a thread_id: {data}"


def test_long_poll_wakes_on_receipt(user, user2, shared_room):
    room_id, event_id = shared_room
    syncer = Syncer(user, filter=NO_PRESENCE)
    syncer.initial()
    poll = long_poll_for(
        syncer, lambda b: receipt_of(b, room_id, event_id, "m.read", user2.user_id), what="receipt"
    )
    assert_status(send_receipt(user2, room_id, event_id), 200)
    assert poll.result()
    assert poll.elapsed < 10


def test_private_receipt_only_seen_by_its_sender(user, user2, shared_room):
    room_id, event_id = shared_room
    other = Syncer(user, filter=NO_PRESENCE)
    other.initial()
    own = Syncer(user2, filter=NO_PRESENCE)
    own.initial()

    assert_status(send_receipt(user2, room_id, event_id, "m.read.private"), 200)
    own.until(
        lambda b: receipt_of(b, room_id, event_id, "m.read.private", user2.user_id),
        what="own private receipt",
    )
    # A public receipt afterwards: once `user` sees it, they have been sent
    # everything before it, and the private one was not among it.
    later = user.send_message(room_id, "later")
    assert_status(send_receipt(user2, room_id, later), 200)
    seen = other.collect(
        lambda b: receipt_of(b, room_id, later, "m.read", user2.user_id), what="public receipt"
    )
    for body in seen:
        assert not [r for r in receipts(body, room_id) if r[1] == "m.read.private"], receipts(body, room_id)


def test_threaded_receipts(user, user2, shared_room):
    room_id, event_id = shared_room
    root = user.send_message(room_id, "thread root")
    reply = user.send_event(
        room_id,
        "m.room.message",
        {"msgtype": "m.text", "body": "in thread", "m.relates_to": {"rel_type": "m.thread", "event_id": root}},
    )
    syncer = Syncer(user, filter=NO_PRESENCE)
    syncer.initial()

    assert_status(send_receipt(user2, room_id, event_id, body={"thread_id": "main"}), 200)
    data = syncer.until(
        lambda b: receipt_of(b, room_id, event_id, "m.read", user2.user_id), what="main receipt"
    )
    assert data.get("thread_id") == "main", data

    assert_status(send_receipt(user2, room_id, reply, body={"thread_id": root}), 200)
    data = syncer.until(
        lambda b: receipt_of(b, room_id, reply, "m.read", user2.user_id), what="thread receipt"
    )
    assert data.get("thread_id") == root, data


@pytest.mark.parametrize("thread_id", ["", 5])
def test_invalid_thread_id(user2, shared_room, thread_id):
    room_id, event_id = shared_room
    assert_error(
        send_receipt(user2, room_id, event_id, body={"thread_id": thread_id}), 400, "M_INVALID_PARAM"
    )


def test_thread_id_not_related_to_event(user, user2, shared_room):
    room_id, event_id = shared_room
    root = user.send_message(room_id, "unrelated root")
    assert_error(
        send_receipt(user2, room_id, event_id, body={"thread_id": root}), 400, "M_INVALID_PARAM"
    )


def test_thread_id_with_fully_read_rejected(user2, shared_room):
    room_id, event_id = shared_room
    assert_error(
        send_receipt(user2, room_id, event_id, "m.fully_read", body={"thread_id": "main"}),
        400,
        "M_INVALID_PARAM",
    )


def test_unknown_receipt_type_rejected(user2, shared_room):
    room_id, event_id = shared_room
    # Not in the enum: 400. Synapse says M_UNKNOWN (Synapse difference).
    assert_error(
        send_receipt(user2, room_id, event_id, "org.example.seen"),
        400,
        ("M_INVALID_PARAM", "M_BAD_JSON", "M_UNKNOWN"),
    )


# -- read markers ---------------------------------------------------------------------------


def test_read_markers_set_fully_read_and_receipt(user, user2, shared_room):
    room_id, event_id = shared_room
    own = Syncer(user2, filter=NO_PRESENCE)
    own.initial()
    other = Syncer(user, filter=NO_PRESENCE)
    other.initial()

    resp = user2.post(
        room_path(room_id, "read_markers"), json={"m.fully_read": event_id, "m.read": event_id}
    )
    assert_status(resp, 200)
    own.until(
        lambda b: room_account_data_content(b, room_id, "m.fully_read") == {"event_id": event_id},
        what="m.fully_read in room account data",
    )
    other.until(
        lambda b: receipt_of(b, room_id, event_id, "m.read", user2.user_id), what="m.read via read_markers"
    )
    # Also readable as room account data.
    got = user2.get(f"user/{q(user2.user_id)}/rooms/{q(room_id)}/account_data/m.fully_read")
    assert assert_status(got, 200) == {"event_id": event_id}


def test_read_markers_private_receipt(user, user2, shared_room):
    room_id, event_id = shared_room
    own = Syncer(user2, filter=NO_PRESENCE)
    own.initial()
    assert_status(
        user2.post(room_path(room_id, "read_markers"), json={"m.read.private": event_id}), 200
    )
    own.until(
        lambda b: receipt_of(b, room_id, event_id, "m.read.private", user2.user_id),
        what="private receipt via read_markers",
    )


def test_fully_read_receipt_type_goes_to_account_data(user2, shared_room):
    room_id, event_id = shared_room
    own = Syncer(user2, filter=NO_PRESENCE)
    own.initial()
    assert_status(send_receipt(user2, room_id, event_id, "m.fully_read"), 200)
    seen = own.collect(
        lambda b: room_account_data_content(b, room_id, "m.fully_read") == {"event_id": event_id},
        what="m.fully_read",
    )
    # "m.fully_read does not appear under m.receipt".
    for body in seen:
        assert not [r for r in receipts(body, room_id) if r[1] == "m.fully_read"], receipts(body, room_id)
