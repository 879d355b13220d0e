"""Sending events: PUT /rooms/{id}/send/{eventType}/{txnId}.

Spec: client-server-api "Sending events to a room" (room_send.yaml),
"Transaction identifiers", "Size limits", m.room.message msgtypes (m.audio) and
the voice-message extensions used by clients (MSC1767 audio, MSC3245 voice).
"""

import threading

import requests

from ct import assert_error, assert_status, new_txn_id, room_path


def bodies_in_room(user, room_id):
    """All m.room.message bodies in the room, oldest first."""
    chunk = user.messages(room_id, dir="f", limit=200)["chunk"]
    return [e["content"].get("body") for e in chunk if e["type"] == "m.room.message"]


def test_send_returns_event_id(user):
    room = user.create_room()
    resp = user.put(room_path(room, "send", "m.room.message", new_txn_id()), json={"msgtype": "m.text", "body": "hi"})
    body = assert_status(resp, 200)
    assert isinstance(body.get("event_id"), str) and body["event_id"].startswith("$"), body
    ev = user.get_event(room, body["event_id"])
    assert ev["type"] == "m.room.message" and ev["sender"] == user.user_id, ev
    assert ev["content"] == {"msgtype": "m.text", "body": "hi"}
    assert "state_key" not in ev, ev


def test_custom_event_type_roundtrip(user):
    room = user.create_room()
    content = {"n": 1, "s": "✓", "list": [1, {"x": None}], "f": True}
    event_id = user.send_event(room, "org.example.ct.custom", content)
    ev = user.get_event(room, event_id)
    assert ev["type"] == "org.example.ct.custom" and ev["content"] == content, ev


def test_same_txn_id_is_idempotent(user):
    room = user.create_room()
    first = user.send_event(room, "m.room.message", {"msgtype": "m.text", "body": "once"}, "ct-txn-1")
    again = user.send_event(room, "m.room.message", {"msgtype": "m.text", "body": "once"}, "ct-txn-1")
    assert first == again
    assert bodies_in_room(user, room) == ["once"]


def test_same_txn_id_different_content_still_returns_first_event(user):
    room = user.create_room()
    first = user.send_event(room, "m.room.message", {"msgtype": "m.text", "body": "first"}, "ct-txn-2")
    again = user.send_event(room, "m.room.message", {"msgtype": "m.text", "body": "second"}, "ct-txn-2")
    assert first == again
    assert bodies_in_room(user, room) == ["first"]


def test_concurrent_same_txn_id(user):
    room = user.create_room()
    url = user.server.url(room_path(room, "send", "m.room.message", "ct-concurrent"))
    barrier = threading.Barrier(10)
    results: list = [None] * 10

    def worker(i):
        with requests.Session() as sess:
            barrier.wait(timeout=30)
            results[i] = sess.put(
                url,
                json={"msgtype": "m.text", "body": "concurrent"},
                headers={"Authorization": f"Bearer {user.access_token}"},
                timeout=60,
            )

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    ids = set()
    for resp in results:
        assert resp is not None, "a request did not finish"
        ids.add(assert_status(resp, 200)["event_id"])
    assert len(ids) == 1, ids
    assert bodies_in_room(user, room) == ["concurrent"]


def test_same_txn_id_different_device_is_a_new_event(user):
    room = user.create_room()
    other_device = user.login_again()
    a = user.send_event(room, "m.room.message", {"msgtype": "m.text", "body": "a"}, "ct-shared-txn")
    b = other_device.send_event(room, "m.room.message", {"msgtype": "m.text", "body": "b"}, "ct-shared-txn")
    assert a != b
    assert bodies_in_room(user, room) == ["a", "b"]


def test_same_txn_id_different_room_is_a_new_event(user):
    room1, room2 = user.create_room(), user.create_room()
    a = user.send_event(room1, "m.room.message", {"msgtype": "m.text", "body": "a"}, "ct-room-txn")
    b = user.send_event(room2, "m.room.message", {"msgtype": "m.text", "body": "b"}, "ct-room-txn")
    assert a != b
    assert bodies_in_room(user, room2) == ["b"]


def test_transaction_id_only_echoed_to_sending_device(user, user2):
    room = user.create_room(preset="public_chat")
    user2.join(room)
    event_id = user.send_event(room, "m.room.message", {"msgtype": "m.text", "body": "t"}, "ct-echo-txn")
    assert user.get_event(room, event_id).get("unsigned", {}).get("transaction_id") == "ct-echo-txn"
    assert "transaction_id" not in user.login_again().get_event(room, event_id).get("unsigned", {})
    assert "transaction_id" not in user2.get_event(room, event_id).get("unsigned", {})


def test_non_member_cannot_send(user, user2):
    room = user.create_room(preset="public_chat")
    resp = user2.put(room_path(room, "send", "m.room.message", new_txn_id()), json={"msgtype": "m.text", "body": "x"})
    assert_error(resp, 403, "M_FORBIDDEN")
    assert bodies_in_room(user, room) == []


def test_send_to_unknown_room(user):
    room = f"!ctnosuchroom:{user.server_name}"
    resp = user.put(room_path(room, "send", "m.room.message", new_txn_id()), json={"msgtype": "m.text", "body": "x"})
    # Not a member of it (403), or unknown (404).
    assert_error(resp, (403, 404), ("M_FORBIDDEN", "M_NOT_FOUND"))


def test_events_default_power_enforced(user, user2):
    room = user.create_room(preset="public_chat", power_level_content_override={"events_default": 10})
    user2.join(room)
    resp = user2.put(room_path(room, "send", "m.room.message", new_txn_id()), json={"msgtype": "m.text", "body": "x"})
    assert_error(resp, 403, "M_FORBIDDEN")


def test_body_must_be_a_json_object(user):
    room = user.create_room()
    resp = user.put(
        room_path(room, "send", "m.room.message", new_txn_id()),
        data="[1, 2]",
        headers={"Content-Type": "application/json"},
    )
    assert_error(resp, 400, ("M_BAD_JSON", "M_NOT_JSON"))
    resp = user.put(
        room_path(room, "send", "m.room.message", new_txn_id()),
        data="{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_error(resp, 400, "M_NOT_JSON")
    assert bodies_in_room(user, room) == []


def test_oversized_event_rejected(user):
    room = user.create_room()
    # The content alone is above the 65536-byte PDU limit.
    resp = user.put(
        room_path(room, "send", "m.room.message", new_txn_id()),
        json={"msgtype": "m.text", "body": "x" * 70000},
    )
    assert_error(resp, 413, "M_TOO_LARGE")
    assert bodies_in_room(user, room) == []


def test_large_event_below_limit_accepted(user):
    room = user.create_room()
    body = "y" * 60000
    event_id = user.send_event(room, "m.room.message", {"msgtype": "m.text", "body": body})
    assert user.get_event(room, event_id)["content"]["body"] == body


def voice_note_content():
    return {
        "msgtype": "m.audio",
        "body": "Voice message",
        "url": "mxc://example.org/ctVoiceNote0001",
        "info": {"mimetype": "audio/ogg", "duration": 5321, "size": 20480},
        "org.matrix.msc1767.audio": {"duration": 5321, "waveform": [0, 64, 256, 1024, 512, 128, 16, 0]},
        "org.matrix.msc1767.text": "Voice message",
        "org.matrix.msc3245.voice": {},
    }


def test_voice_note_roundtrip(user, user2):
    room = user.create_room(preset="public_chat")
    user2.join(room)
    content = voice_note_content()
    event_id = user.send_event(room, "m.room.message", content)
    # Every field intact, for the sender and for another member, via /event and /messages.
    assert user.get_event(room, event_id)["content"] == content
    assert user2.get_event(room, event_id)["content"] == content
    chunk = user2.messages(room, dir="b", limit=5)["chunk"]
    mine = [e for e in chunk if e["event_id"] == event_id]
    assert len(mine) == 1 and mine[0]["content"] == content, chunk
