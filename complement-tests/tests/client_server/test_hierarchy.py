"""Spaces: GET /_matrix/client/v1/rooms/{roomId}/hierarchy.

Spec: client-server-api "Spaces" (modules/spaces.md, space_hierarchy.yaml,
m.space.child).
"""

import pytest

from ct import CLIENT_V1, assert_error, assert_status, room_path


def hierarchy(user, space, **params):
    body = assert_status(user.get(CLIENT_V1 + "/" + room_path(space, "hierarchy"), params=params), 200)
    assert isinstance(body.get("rooms"), list), body
    return body


def names(body):
    return [r.get("name") for r in body["rooms"]]


@pytest.fixture
def space_tree(user):
    """Space -> A (suggested), B, Sub (a space) -> C. All public."""
    sn = user.server_name
    space = user.create_room(preset="public_chat", name="Space", creation_content={"type": "m.space"})
    a = user.create_room(preset="public_chat", name="A", topic="room a")
    b = user.create_room(preset="public_chat", name="B")
    sub = user.create_room(preset="public_chat", name="Sub", creation_content={"type": "m.space"})
    c = user.create_room(preset="public_chat", name="C")
    user.send_state(space, "m.space.child", {"via": [sn], "suggested": True}, a)
    user.send_state(space, "m.space.child", {"via": [sn]}, b)
    user.send_state(space, "m.space.child", {"via": [sn]}, sub)
    user.send_state(sub, "m.space.child", {"via": [sn]}, c)
    return {"space": space, "A": a, "B": b, "Sub": sub, "C": c}


def test_full_hierarchy(user, space_tree):
    body = hierarchy(user, space_tree["space"])
    rooms = {r["room_id"]: r for r in body["rooms"]}
    assert set(rooms) == {space_tree[k] for k in ("space", "A", "B", "Sub", "C")}
    # The requested space comes first.
    assert body["rooms"][0]["room_id"] == space_tree["space"]
    assert "next_batch" not in body

    top = rooms[space_tree["space"]]
    assert top["room_type"] == "m.space" and top["name"] == "Space"
    assert top["num_joined_members"] == 1
    assert top["world_readable"] is False and top["guest_can_join"] is False
    children = {c["state_key"]: c for c in top["children_state"]}
    assert set(children) == {space_tree["A"], space_tree["B"], space_tree["Sub"]}
    for child in children.values():
        assert child["type"] == "m.space.child", child
        assert isinstance(child["origin_server_ts"], int), child
        assert child["content"]["via"] == [user.server_name], child
    assert children[space_tree["A"]]["content"]["suggested"] is True

    a = rooms[space_tree["A"]]
    assert a["name"] == "A" and a["topic"] == "room a" and a["children_state"] == [] and "room_type" not in a
    assert a.get("join_rule", "public") == "public"
    assert {c["state_key"] for c in rooms[space_tree["Sub"]]["children_state"]} == {space_tree["C"]}


def test_max_depth(user, space_tree):
    assert names(hierarchy(user, space_tree["space"], max_depth=0)) == ["Space"]
    assert sorted(names(hierarchy(user, space_tree["space"], max_depth=1))) == ["A", "B", "Space", "Sub"]
    assert sorted(names(hierarchy(user, space_tree["space"], max_depth=2))) == ["A", "B", "C", "Space", "Sub"]


def test_suggested_only(user, space_tree):
    body = hierarchy(user, space_tree["space"], suggested_only="true")
    assert [r["room_id"] for r in body["rooms"]] == [space_tree["space"], space_tree["A"]]


def test_limit_and_from_pagination(user, space_tree):
    seen, token, pages = [], None, 0
    while True:
        body = hierarchy(user, space_tree["space"], limit=2, **({"from": token} if token else {}))
        assert 0 < len(body["rooms"]) <= 2, body
        seen += [r["room_id"] for r in body["rooms"]]
        pages += 1
        token = body.get("next_batch")
        if not token:
            break
        assert pages < 10
    assert pages == 3
    assert len(seen) == len(set(seen)) == 5
    assert seen[0] == space_tree["space"]


def test_child_removed_by_empty_content(user, space_tree):
    # An m.space.child without a valid `via` is not a child.
    user.send_state(space_tree["space"], "m.space.child", {}, space_tree["B"])
    assert sorted(names(hierarchy(user, space_tree["space"], max_depth=1))) == ["A", "Space", "Sub"]


def test_public_space_visible_to_non_member(user2, space_tree):
    # user2 is not in any of these rooms, but they are all public (joinable).
    body = hierarchy(user2, space_tree["space"])
    assert sorted(names(body)) == ["A", "B", "C", "Space", "Sub"]


def test_private_child_hidden_from_non_member(user, user2, space_tree):
    private = user.create_room(preset="private_chat", name="Private")
    user.send_state(space_tree["space"], "m.space.child", {"via": [user.server_name]}, private)
    assert "Private" in names(hierarchy(user, space_tree["space"], max_depth=1))
    # Not joined and not allowed to join: not returned to user2.
    assert "Private" not in names(hierarchy(user2, space_tree["space"], max_depth=1))


def test_private_space_non_member(user, user2):
    space = user.create_room(preset="private_chat", creation_content={"type": "m.space"})
    resp = user2.get(CLIENT_V1 + "/" + room_path(space, "hierarchy"))
    assert_error(resp, 403, "M_FORBIDDEN")


def test_unknown_from_token(user, space_tree):
    resp = user.get(CLIENT_V1 + "/" + room_path(space_tree["space"], "hierarchy"), params={"from": "ct-bogus"})
    assert_error(resp, 400, "M_INVALID_PARAM")


def test_negative_max_depth(user, space_tree):
    resp = user.get(CLIENT_V1 + "/" + room_path(space_tree["space"], "hierarchy"), params={"max_depth": -1})
    assert_error(resp, 400, "M_INVALID_PARAM")
