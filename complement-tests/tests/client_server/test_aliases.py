"""Room aliases: PUT/GET/DELETE /directory/room/{roomAlias},
GET /rooms/{id}/aliases, m.room.canonical_alias validation.

Spec: client-server-api "Room aliases" (directory.yaml), room_state.yaml (PUT of
m.room.canonical_alias), m.room.canonical_alias schema.
"""

import uuid

import pytest

from ct import assert_error, assert_status, q, room_path


def new_alias(user, server_name=None):
    return f"#ct{uuid.uuid4().hex[:12]}:{server_name or user.server_name}"


def alias_path(alias):
    return f"directory/room/{q(alias)}"


def resolve(client, alias):
    return client.get(alias_path(alias))


def test_put_get_delete(user):
    room = user.create_room()
    alias = new_alias(user)
    assert assert_status(user.put(alias_path(alias), json={"room_id": room}), 200) == {}
    body = assert_status(resolve(user, alias), 200)
    assert body["room_id"] == room
    assert isinstance(body["servers"], list) and user.server_name in body["servers"], body
    assert assert_status(user.delete(alias_path(alias)), 200) == {}
    assert_error(resolve(user, alias), 404, "M_NOT_FOUND")


def test_resolve_without_auth(open_server, user):
    room = user.create_room()
    alias = new_alias(user)
    assert_status(user.put(alias_path(alias), json={"room_id": room}), 200)
    assert assert_status(resolve(open_server, alias), 200)["room_id"] == room


def test_resolve_by_non_member(user, user2):
    room = user.create_room(preset="private_chat")
    alias = new_alias(user)
    assert_status(user.put(alias_path(alias), json={"room_id": room}), 200)
    assert assert_status(resolve(user2, alias), 200)["room_id"] == room


def test_alias_already_taken(user, user2):
    room1, room2 = user.create_room(), user2.create_room()
    alias = new_alias(user)
    assert_status(user.put(alias_path(alias), json={"room_id": room1}), 200)
    # The spec's example errcode for 409 is M_UNKNOWN.
    assert_error(user2.put(alias_path(alias), json={"room_id": room2}), 409, "M_UNKNOWN")
    assert_error(user.put(alias_path(alias), json={"room_id": room1}), 409, "M_UNKNOWN")
    assert assert_status(resolve(user, alias), 200)["room_id"] == room1


def test_unknown_alias(user):
    assert_error(resolve(user, new_alias(user)), 404, "M_NOT_FOUND")
    assert_error(user.delete(alias_path(new_alias(user))), 404, "M_NOT_FOUND")


@pytest.mark.parametrize("alias", ["no-sigil:localhost", "#no-server-part", "!room:localhost"])
def test_malformed_alias(user, alias):
    room = user.create_room()
    assert_error(resolve(user, alias), 400, "M_INVALID_PARAM")
    assert_error(user.put(alias_path(alias), json={"room_id": room}), 400, "M_INVALID_PARAM")


def test_put_alias_requires_room_id(user):
    resp = user.put(alias_path(new_alias(user)), json={})
    assert_error(resp, 400, ("M_BAD_JSON", "M_MISSING_PARAM", "M_INVALID_PARAM"))


def test_room_aliases_list(user, user2):
    room = user.create_room(preset="public_chat")
    a1, a2 = new_alias(user), new_alias(user)
    for a in (a1, a2):
        assert_status(user.put(alias_path(a), json={"room_id": room}), 200)
    assert sorted(assert_status(user.get(room_path(room, "aliases")), 200)["aliases"]) == sorted([a1, a2])
    user2.join(room)
    assert sorted(assert_status(user2.get(room_path(room, "aliases")), 200)["aliases"]) == sorted([a1, a2])
    user.delete(alias_path(a1))
    assert assert_status(user.get(room_path(room, "aliases")), 200)["aliases"] == [a2]


def test_room_aliases_non_member(user, user2):
    room = user.create_room(preset="public_chat")
    assert_status(user.put(alias_path(new_alias(user)), json={"room_id": room}), 200)
    assert_error(user2.get(room_path(room, "aliases")), 403, "M_FORBIDDEN")


def test_room_aliases_world_readable_room(user, user2):
    room = user.create_room(
        preset="public_chat",
        initial_state=[{"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}}],
    )
    alias = new_alias(user)
    assert_status(user.put(alias_path(alias), json={"room_id": room}), 200)
    assert assert_status(user2.get(room_path(room, "aliases")), 200)["aliases"] == [alias]


def test_delete_someone_elses_alias(open_server, user, user2):
    room = user.create_room(preset="public_chat")
    alias = new_alias(user)
    assert_status(user.put(alias_path(alias), json={"room_id": room}), 200)
    user2.join(room)
    # The spec leaves the access control to the server ("may"). If it refuses,
    # it's a 403 M_FORBIDDEN and the alias stays.
    resp = user2.delete(alias_path(alias))
    if resp.status_code == 200:
        assert_error(resolve(user, alias), 404, "M_NOT_FOUND")
    else:
        assert_error(resp, 403, "M_FORBIDDEN")
        assert assert_status(resolve(user, alias), 200)["room_id"] == room
    # A complete stranger: same rule.
    alias2 = new_alias(user)
    assert_status(user.put(alias_path(alias2), json={"room_id": room}), 200)
    stranger = open_server.register()
    resp = stranger.delete(alias_path(alias2))
    if resp.status_code != 200:
        assert_error(resp, 403, "M_FORBIDDEN")
        assert assert_status(resolve(user, alias2), 200)["room_id"] == room


def test_alias_creator_can_delete(user, user2):
    room = user.create_room(preset="public_chat")
    user2.join(room)
    alias = new_alias(user)
    assert_status(user2.put(alias_path(alias), json={"room_id": room}), 200)
    assert_status(user2.delete(alias_path(alias)), 200)
    assert_error(resolve(user, alias), 404, "M_NOT_FOUND")


# -- m.room.canonical_alias ------------------------------------------------------------


def canonical(user, room, content):
    return user.put(room_path(room, "state", "m.room.canonical_alias", ""), json=content)


def test_canonical_alias_pointing_to_room(user):
    room = user.create_room()
    alias, alt = new_alias(user), new_alias(user)
    for a in (alias, alt):
        assert_status(user.put(alias_path(a), json={"room_id": room}), 200)
    assert_status(canonical(user, room, {"alias": alias, "alt_aliases": [alt]}), 200)
    assert user.get_state(room, "m.room.canonical_alias") == {"alias": alias, "alt_aliases": [alt]}


def test_canonical_alias_not_pointing_to_room(user):
    room, other = user.create_room(), user.create_room()
    elsewhere = new_alias(user)
    assert_status(user.put(alias_path(elsewhere), json={"room_id": other}), 200)
    assert_error(canonical(user, room, {"alias": elsewhere}), 400, "M_BAD_ALIAS")
    # An alias that doesn't exist at all doesn't point to the room either.
    assert_error(canonical(user, room, {"alias": new_alias(user)}), 400, "M_BAD_ALIAS")
    assert_error(user.get(room_path(room, "state", "m.room.canonical_alias", "")), 404, "M_NOT_FOUND")


def test_canonical_alt_alias_not_pointing_to_room(user):
    room = user.create_room()
    alias = new_alias(user)
    assert_status(user.put(alias_path(alias), json={"room_id": room}), 200)
    assert_error(canonical(user, room, {"alias": alias, "alt_aliases": [new_alias(user)]}), 400, "M_BAD_ALIAS")


def test_canonical_alias_invalid_syntax(user):
    room = user.create_room()
    assert_error(canonical(user, room, {"alias": "not-an-alias"}), 400, "M_INVALID_PARAM")


def test_canonical_alias_removal_is_not_validated(user):
    room = user.create_room()
    alias = new_alias(user)
    assert_status(user.put(alias_path(alias), json={"room_id": room}), 200)
    assert_status(canonical(user, room, {"alias": alias}), 200)
    # Aliases already present are not re-validated: deleting the mapping and then
    # sending an event that keeps/drops it is fine.
    assert_status(user.delete(alias_path(alias)), 200)
    assert_status(canonical(user, room, {}), 200)
    assert user.get_state(room, "m.room.canonical_alias") == {}
