"""Redactions: PUT /rooms/{id}/redact/{eventId}/{txnId}.

Spec: client-server-api "Redactions" (redaction.yaml, m.room.redaction) and the
per-version redaction algorithms (content/rooms/v*.md): each keeps only a few
content keys per event type; v8 adds join rule `allow`, v9
`join_authorised_via_users_server`, v11 `invite` in power levels, all of
m.room.create and `redacts` of m.room.redaction.
"""

import pytest

from ct import assert_error, assert_status, new_txn_id, room_path


def redact(user, room, event_id, txn_id=None, **body):
    resp = user.put(room_path(room, "redact", event_id, txn_id or new_txn_id()), json=body)
    data = assert_status(resp, 200)
    assert isinstance(data.get("event_id"), str) and data["event_id"].startswith("$"), data
    return data["event_id"]


def redacts_of(redaction: dict):
    """The redacted event ID of an m.room.redaction: `content.redacts` (v11+) or top-level."""
    return redaction.get("content", {}).get("redacts", redaction.get("redacts"))


def assert_redacted_because(ev, redaction_id, target_id, reason=None):
    because = ev.get("unsigned", {}).get("redacted_because")
    assert isinstance(because, dict), ev
    assert because["type"] == "m.room.redaction" and because["event_id"] == redaction_id, because
    assert redacts_of(because) == target_id, because
    if reason is not None:
        assert because["content"].get("reason") == reason, because


@pytest.mark.parametrize("version", ["10", "11"])
def test_redacted_message_loses_content(user, user2, version):
    room = user.create_room(preset="public_chat", room_version=version)
    user2.join(room)
    target = user.send_message(room, "secret", format="org.matrix.custom.html", formatted_body="<b>secret</b>")
    redaction = redact(user, room, target, reason="oops")
    for viewer in (user, user2):
        ev = viewer.get_event(room, target)
        # m.room.message keeps no content keys in any room version.
        assert ev["content"] == {}, ev
        assert ev["type"] == "m.room.message" and ev["sender"] == user.user_id, ev
        assert_redacted_because(ev, redaction, target, reason="oops")
    # /messages serves the redacted form too, and the redaction itself.
    chunk = user2.messages(room, dir="b", limit=5)["chunk"]
    by_id = {e["event_id"]: e for e in chunk}
    assert by_id[target]["content"] == {}, by_id[target]
    assert redacts_of(by_id[redaction]) == target, by_id[redaction]
    assert by_id[redaction]["content"].get("reason") == "oops"


def test_redaction_event_format_v11(user):
    room = user.create_room(room_version="11")
    target = user.send_message(room, "x")
    redaction = redact(user, room, target)
    ev = user.get_event(room, redaction)
    # Room v11 moved `redacts` into content.
    assert ev["type"] == "m.room.redaction" and ev["content"]["redacts"] == target, ev


def test_redact_is_idempotent_per_txn_id(user):
    room = user.create_room()
    target = user.send_message(room, "x")
    first = redact(user, room, target, "ct-redact-txn", reason="r")
    again = redact(user, room, target, "ct-redact-txn", reason="r")
    assert first == again
    chunk = user.messages(room, dir="b", limit=20)["chunk"]
    assert [e["event_id"] for e in chunk if e["type"] == "m.room.redaction"] == [first]


def test_redact_own_event_without_redact_power(user, user2):
    room = user.create_room(preset="public_chat")
    user2.join(room)
    mine = user2.send_message(room, "my own")
    redaction = redact(user2, room, mine)
    assert_redacted_because(user.get_event(room, mine), redaction, mine)


def test_redact_other_users_event_without_power(user, user2):
    room = user.create_room(preset="public_chat")
    user2.join(room)
    target = user.send_message(room, "not yours")
    resp = user2.put(room_path(room, "redact", target, new_txn_id()), json={})
    assert_error(resp, 403, "M_FORBIDDEN")
    ev = user.get_event(room, target)
    assert ev["content"]["body"] == "not yours"
    assert "redacted_because" not in ev.get("unsigned", {}), ev


def test_moderator_redacts_other_users_event(user, user2):
    room = user.create_room(preset="public_chat")
    user2.join(room)
    target = user2.send_message(room, "spam")
    redaction = redact(user, room, target)
    ev = user2.get_event(room, target)
    assert ev["content"] == {}
    assert_redacted_because(ev, redaction, target)


def test_non_member_cannot_redact(user, user2):
    room = user.create_room(preset="public_chat")
    target = user.send_message(room, "x")
    assert_error(user2.put(room_path(room, "redact", target, new_txn_id()), json={}), 403, "M_FORBIDDEN")


@pytest.mark.parametrize("version", ["10", "11"])
def test_redacted_member_event_keeps_membership(user, user2, version):
    room = user.create_room(preset="public_chat", room_version=version)
    user2.join(room)
    member_id = user2.send_state(
        room, "m.room.member", {"membership": "join", "displayname": "Shown name"}, user2.user_id
    )
    redact(user, room, member_id)
    ev = user.get_event(room, member_id)
    assert ev["content"] == {"membership": "join"}, ev
    # Current state is the redacted event.
    assert user.get_state(room, "m.room.member", user2.user_id) == {"membership": "join"}


@pytest.mark.parametrize("version,keeps_invite", [("10", False), ("11", True)])
def test_redacted_power_levels_per_room_version(user, version, keeps_invite):
    room = user.create_room(room_version=version)
    pl = user.get_state(room, "m.room.power_levels")
    pl = {**pl, "invite": 7, "org.example.ct.extra": 1}
    pl_id = user.send_state(room, "m.room.power_levels", pl)
    redact(user, room, pl_id)
    content = user.get_event(room, pl_id)["content"]
    assert "org.example.ct.extra" not in content, content
    for key in ("ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"):
        assert content.get(key) == pl.get(key), (key, content)
    if keeps_invite:
        assert content.get("invite") == 7, content
    else:
        assert "invite" not in content, content


@pytest.mark.parametrize("version,keeps_allow", [("7", False), ("8", True), ("9", True)])
def test_redacted_join_rules_allow_per_room_version(user, version, keeps_allow):
    space = user.create_room(preset="public_chat")
    room = user.create_room(room_version=version)
    # `allow` only means something for "restricted" (v8+), but the redaction
    # algorithm of v8+ keeps it whatever the join rule.
    rules = {
        "join_rule": "invite",
        "allow": [{"type": "m.room_membership", "room_id": space}],
        "org.example.ct.extra": True,
    }
    rules_id = user.send_state(room, "m.room.join_rules", rules)
    redact(user, room, rules_id)
    content = user.get_event(room, rules_id)["content"]
    expected = {"join_rule": "invite"}
    if keeps_allow:
        expected["allow"] = rules["allow"]
    assert content == expected, content


@pytest.mark.parametrize("version,kept", [("10", {}), ("11", None)])
def test_redacted_redaction_per_room_version(user, version, kept):
    room = user.create_room(room_version=version)
    target = user.send_message(room, "x")
    first = redact(user, room, target, reason="first")
    redact(user, room, first)
    content = user.get_event(room, first)["content"]
    if kept is None:
        # v11 keeps `redacts` in the content of a redacted m.room.redaction.
        assert content == {"redacts": target}, content
    else:
        assert content == kept, content


def test_redacted_custom_state_event(user):
    room = user.create_room()
    state_id = user.send_state(room, "org.example.ct.thing", {"a": 1}, "k")
    redact(user, room, state_id)
    assert user.get_state(room, "org.example.ct.thing", "k") == {}
    ev = user.get_event(room, state_id)
    assert ev["content"] == {} and ev["state_key"] == "k", ev
