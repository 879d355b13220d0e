"""Room upgrades: POST /rooms/{roomId}/upgrade.

Spec: client-server-api "Room Upgrades" (modules/room_upgrades.md,
room_upgrades.yaml), m.room.tombstone, m.room.create `predecessor`.
"""

import uuid

import pytest

from ct import assert_error, assert_status, q, room_path


def upgrade(user, room, version, **extra):
    body = assert_status(user.post(room_path(room, "upgrade"), json={"new_version": version, **extra}), 200)
    assert isinstance(body.get("replacement_room"), str) and body["replacement_room"].startswith("!"), body
    assert body["replacement_room"] != room
    return body["replacement_room"]


@pytest.mark.parametrize("old,new", [("10", "11"), ("11", "12")])
def test_upgrade(user, old, new):
    room = user.create_room(preset="public_chat", room_version=old, name="Upgrade me", topic="t")
    new_room = upgrade(user, room, new)

    tombstone = user.get_state(room, "m.room.tombstone")
    assert tombstone["replacement_room"] == new_room, tombstone
    assert isinstance(tombstone.get("body", ""), str)

    create = user.get_state(new_room, "m.room.create")
    assert create["room_version"] == new
    assert create["predecessor"]["room_id"] == room, create
    if "event_id" in create["predecessor"]:  # MAY be omitted when upgrading to v12+
        assert create["predecessor"]["event_id"].startswith("$"), create
    if new == "12":
        assert ":" not in new_room
    # The upgrading user is in the new room and can use it.
    assert user.membership_of(new_room) == "join"
    user.send_message(new_room, "in the new room")


def test_upgrade_copies_type_and_recommended_state(user):
    space = user.create_room(
        preset="public_chat", room_version="10", name="A space", creation_content={"type": "m.space"}
    )
    new_room = upgrade(user, space, "11")
    assert user.get_state(new_room, "m.room.create")["type"] == "m.space"
    # Transferred state is an implementation detail, but the spec recommends these.
    assert user.get_state(new_room, "m.room.name") == {"name": "A space"}
    assert user.get_state(new_room, "m.room.join_rules")["join_rule"] == "public"


def test_upgrade_without_type_has_no_type(user):
    room = user.create_room(room_version="10")
    new_room = upgrade(user, room, "11")
    assert "type" not in user.get_state(new_room, "m.room.create")


def test_upgrade_moves_local_aliases(user):
    localpart = "ct" + uuid.uuid4().hex[:10]
    room = user.create_room(preset="public_chat", room_version="10", room_alias_name=localpart)
    new_room = upgrade(user, room, "11")
    alias = f"#{localpart}:{user.server_name}"
    assert assert_status(user.get(f"directory/room/{q(alias)}"), 200)["room_id"] == new_room


def test_other_members_can_follow(user, user2):
    room = user.create_room(preset="public_chat", room_version="10")
    user2.join(room)
    new_room = upgrade(user, room, "11")
    # user2 sees the tombstone and can join the (public) replacement room.
    assert user2.get_state(room, "m.room.tombstone")["replacement_room"] == new_room
    assert user2.join(new_room) == new_room


def test_upgrade_without_power(user, user2):
    room = user.create_room(preset="public_chat", room_version="10")
    user2.join(room)
    assert_error(user2.post(room_path(room, "upgrade"), json={"new_version": "11"}), 403, "M_FORBIDDEN")
    assert_error(user.get(room_path(room, "state", "m.room.tombstone", "")), 404, "M_NOT_FOUND")


def test_upgrade_by_non_member(user, user2):
    room = user.create_room(preset="public_chat", room_version="10")
    assert_error(user2.post(room_path(room, "upgrade"), json={"new_version": "11"}), 403, "M_FORBIDDEN")


def test_upgrade_unknown_version(user):
    room = user.create_room(room_version="10")
    resp = user.post(room_path(room, "upgrade"), json={"new_version": "ct-no-such-version"})
    assert_error(resp, 400, "M_UNSUPPORTED_ROOM_VERSION")
    assert_error(user.get(room_path(room, "state", "m.room.tombstone", "")), 404, "M_NOT_FOUND")


def test_upgrade_missing_new_version(user):
    room = user.create_room(room_version="10")
    resp = user.post(room_path(room, "upgrade"), json={})
    assert_error(resp, 400, ("M_BAD_JSON", "M_MISSING_PARAM", "M_INVALID_PARAM"))
