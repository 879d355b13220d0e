"""Presence: PUT/GET /presence/{userId}/status and m.presence in /sync.

Spec: client-server-api module "Presence" (presence.yaml, m.presence), and the
`set_presence` parameter and `presence` section of /sync (sync.yaml).

run.sh's Synapse config leaves presence at its default (enabled), so delivery
to users who share a room is asserted.
"""

from ct import assert_error, assert_status, poll_until, q
from ct.sync import Syncer, presence, sync


def put_presence(who, state, status_msg=None, target=None):
    body = {"presence": state}
    if status_msg is not None:
        body["status_msg"] = status_msg
    return who.put(f"presence/{q(target or who.user_id)}/status", json=body)


def get_presence(viewer, target):
    data = assert_status(viewer.get(f"presence/{q(target.user_id)}/status"), 200)
    assert data.get("presence") in ("online", "offline", "unavailable"), data
    if "last_active_ago" in data:
        assert isinstance(data["last_active_ago"], int) and data["last_active_ago"] >= 0, data
    if "currently_active" in data:
        assert isinstance(data["currently_active"], bool), data
    return data


def share_room(a, b):
    room_id = a.create_room(preset="public_chat")
    b.join(room_id)
    return room_id


def test_set_and_get_own_presence(user):
    assert assert_status(put_presence(user, "online", "in a meeting"), 200) == {}
    data = get_presence(user, user)
    assert data["presence"] == "online", data
    assert data.get("status_msg") == "in a meeting", data


def test_presence_visible_to_room_member(user, user2):
    share_room(user, user2)
    assert_status(put_presence(user, "online", "around"), 200)
    data = get_presence(user2, user)
    assert data["presence"] == "online" and data.get("status_msg") == "around", data


def test_presence_states(user, user2):
    share_room(user, user2)
    for state in ("unavailable", "offline", "online"):
        assert_status(put_presence(user, state, f"now {state}"), 200)
        data = get_presence(user2, user)
        assert data["presence"] == state, (state, data)
        assert data.get("status_msg") == f"now {state}", (state, data)


def test_presence_in_sync_of_room_member(user, user2):
    share_room(user, user2)
    syncer = Syncer(user2)
    syncer.initial()
    assert_status(put_presence(user, "online", "sync me"), 200)

    def mine(body):
        found = [e for e in presence(body) if e.get("sender") == user.user_id]
        return found and found[-1]["content"].get("status_msg") == "sync me" and found[-1]

    ev = syncer.until(mine, what="user's m.presence")
    assert ev["type"] == "m.presence", ev
    assert ev["content"]["presence"] == "online", ev
    if "last_active_ago" in ev["content"]:
        assert isinstance(ev["content"]["last_active_ago"], int), ev


def test_cannot_set_another_users_presence(user, user2):
    share_room(user, user2)
    assert_error(put_presence(user, "online", "impostor", target=user2.user_id), 403, "M_FORBIDDEN")
    assert get_presence(user2, user2).get("status_msg") != "impostor"


def test_invalid_presence_state_rejected(user):
    # Not in the enum: 400. Synapse says M_UNKNOWN (Synapse difference).
    assert_error(put_presence(user, "dancing"), 400, ("M_BAD_JSON", "M_INVALID_PARAM", "M_UNKNOWN"))


def test_sync_set_presence(user):
    """`set_presence=offline` doesn't mark the user online; without the parameter,
    syncing marks them online. (Checked on the user's own presence, before they
    do anything else that might count as activity.)"""
    sync(user, set_presence="offline")
    resp = user.get(f"presence/{q(user.user_id)}/status")
    if resp.status_code != 404:  # 404: "no presence state for this user" is fine too
        assert assert_status(resp, 200)["presence"] == "offline", resp.text
    # A fresh device, so the initial sync is not answered from a response cache.
    sync(user.login_again())
    poll_until(
        lambda: get_presence(user, user)["presence"] == "online",
        timeout=10,
        what="syncing to mark the user online",
    )
