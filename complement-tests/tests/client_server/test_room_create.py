"""Room creation: POST /createRoom.

Spec: client-server-api "Creation" (create_room.yaml), room versions 1-12
(content/rooms/), m.room.* state event schemas.
"""

import uuid

import pytest

from ct import assert_error, assert_status, q, room_path

ALL_ROOM_VERSIONS = [str(v) for v in range(1, 13)]

PRESETS = {
    # preset: (join_rule, history_visibility, guest_access)
    "private_chat": ("invite", "shared", "can_join"),
    "trusted_private_chat": ("invite", "shared", "can_join"),
    "public_chat": ("public", "shared", "forbidden"),
}

# Wrong JSON types: the spec says M_BAD_JSON, Synapse answers some with M_UNKNOWN
# (README, Known differences).
BAD_TYPE_CODES = ("M_BAD_JSON", "M_INVALID_PARAM", "M_UNKNOWN")


def state_map(user, room_id):
    return {(e["type"], e["state_key"]): e["content"] for e in user.room_state(room_id)}


def create_event(user, room_id):
    """The m.room.create event itself (oldest event of the room)."""
    chunk = user.messages(room_id, dir="f", limit=1)["chunk"]
    assert chunk and chunk[0]["type"] == "m.room.create", chunk
    return chunk[0]


def local_alias(user, localpart):
    return f"#{localpart}:{user.server_name}"


def assert_no_rooms(user):
    body = assert_status(user.get("joined_rooms"), 200)
    assert body["joined_rooms"] == [], body


# -- presets -----------------------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_sets_join_rules_history_and_guest_access(user, preset):
    room = user.create_room(preset=preset)
    st = state_map(user, room)
    join_rule, history, guest = PRESETS[preset]
    assert st[("m.room.join_rules", "")]["join_rule"] == join_rule
    assert st[("m.room.history_visibility", "")]["history_visibility"] == history
    if guest == "forbidden":
        # An absent m.room.guest_access event means "forbidden" (event schema).
        assert st.get(("m.room.guest_access", ""), {"guest_access": "forbidden"}) == {
            "guest_access": "forbidden"
        }, st
    else:
        assert st[("m.room.guest_access", "")]["guest_access"] == guest
    assert st[("m.room.member", user.user_id)]["membership"] == "join"
    assert ("m.room.create", "") in st and ("m.room.power_levels", "") in st


def test_visibility_public_without_preset_means_public_chat(user):
    room = user.create_room(visibility="public")
    assert user.get_state(room, "m.room.join_rules")["join_rule"] == "public"


def test_no_preset_and_no_visibility_means_private_chat(user):
    room = user.create_room()
    assert user.get_state(room, "m.room.join_rules")["join_rule"] == "invite"
    assert user.get_state(room, "m.room.history_visibility")["history_visibility"] == "shared"


@pytest.mark.parametrize("version", ["11", "12"])
def test_default_power_levels(user, version):
    room = user.create_room(preset="private_chat", room_version=version)
    pl = user.get_state(room, "m.room.power_levels")
    users = pl.get("users", {})
    state_default = pl.get("state_default", 50)
    if version == "12":
        # Creators have infinite power and cannot be listed in `users`.
        assert user.user_id not in users, pl
        # The tombstone level MUST be explicitly higher than state_default.
        assert pl["events"]["m.room.tombstone"] > state_default, pl
    else:
        assert users.get(user.user_id) == 100, pl
    # The creator can send state and moderate.
    user.send_state(room, "m.room.name", {"name": "creator can"})
    user.send_state(room, "m.room.power_levels", pl)


@pytest.mark.parametrize("version", ["11", "12"])
def test_trusted_private_chat_invitees_get_creator_power(open_server, user, version):
    invitee = open_server.register()
    other = open_server.register()
    room = user.create_room(preset="trusted_private_chat", invite=[invitee.user_id], room_version=version)
    pl = user.get_state(room, "m.room.power_levels")
    users = pl.get("users", {})
    if version == "12":
        # v12: invitees SHOULD become additional creators (and so can't be in `users`).
        create = user.get_state(room, "m.room.create")
        assert invitee.user_id in create.get("additional_creators", []), create
        assert invitee.user_id not in users, pl
    else:
        assert users.get(invitee.user_id) == users.get(user.user_id) == 100, pl
    # Not an invitee: nothing special.
    assert other.user_id not in users, pl


def test_private_chat_invitees_are_not_promoted(open_server, user):
    invitee = open_server.register()
    room = user.create_room(preset="private_chat", invite=[invitee.user_id], room_version="11")
    pl = user.get_state(room, "m.room.power_levels")
    assert pl.get("users", {}).get(invitee.user_id, pl.get("users_default", 0)) < 100, pl


# -- visibility --------------------------------------------------------------------------


@pytest.mark.parametrize("visibility", ["public", "private"])
def test_visibility_sets_directory_entry(user, visibility):
    room = user.create_room(preset="public_chat", visibility=visibility)
    body = assert_status(user.get(f"directory/list/room/{q(room)}"), 200)
    assert body == {"visibility": visibility}


def test_visibility_defaults_to_private(user):
    room = user.create_room(preset="public_chat")
    body = assert_status(user.get(f"directory/list/room/{q(room)}"), 200)
    assert body["visibility"] == "private"


# -- name, topic, alias ------------------------------------------------------------------


def test_name_and_topic(user):
    room = user.create_room(name="Room ✓ name", topic="All about tests")
    assert user.get_state(room, "m.room.name")["name"] == "Room ✓ name"
    topic = user.get_state(room, "m.room.topic")
    assert topic["topic"] == "All about tests"
    # v1.15 m.topic: if present, a text/plain representation of the same text.
    if "m.topic" in topic:
        texts = topic["m.topic"]["m.text"]
        plain = [t for t in texts if t.get("mimetype", "text/plain") == "text/plain"]
        assert plain and plain[0]["body"] == "All about tests", topic


def test_room_alias_name_creates_alias_and_canonical_alias(user):
    localpart = "ct" + uuid.uuid4().hex[:10]
    room = user.create_room(room_alias_name=localpart)
    alias = local_alias(user, localpart)
    body = assert_status(user.get(f"directory/room/{q(alias)}"), 200)
    assert body["room_id"] == room
    assert isinstance(body["servers"], list) and body["servers"], body
    assert user.get_state(room, "m.room.canonical_alias")["alias"] == alias


def test_room_alias_name_taken(user, user2):
    localpart = "ct" + uuid.uuid4().hex[:10]
    first = user.create_room(room_alias_name=localpart)
    assert_error(user2.post("createRoom", json={"room_alias_name": localpart}), 400, "M_ROOM_IN_USE")
    body = assert_status(user.get(f"directory/room/{q(local_alias(user, localpart))}"), 200)
    assert body["room_id"] == first
    assert_no_rooms(user2)


# -- invite, is_direct -------------------------------------------------------------------


def test_invite_list(open_server, user):
    a, b = open_server.register(), open_server.register()
    room = user.create_room(preset="private_chat", invite=[a.user_id, b.user_id])
    members = assert_status(user.get(room_path(room, "members")), 200)["chunk"]
    by_user = {e["state_key"]: e["content"]["membership"] for e in members}
    assert by_user == {user.user_id: "join", a.user_id: "invite", b.user_id: "invite"}
    # The invite is usable.
    assert a.join(room) == room


def test_is_direct_flags_invite(user, user2):
    room = user.create_room(preset="trusted_private_chat", invite=[user2.user_id], is_direct=True)
    member = user.get_state(room, "m.room.member", user2.user_id)
    assert member["membership"] == "invite" and member.get("is_direct") is True, member


def test_without_is_direct_invite_is_not_direct(user, user2):
    room = user.create_room(preset="private_chat", invite=[user2.user_id])
    member = user.get_state(room, "m.room.member", user2.user_id)
    assert member["membership"] == "invite" and not member.get("is_direct"), member


# -- initial_state, power_level_content_override, creation_content -------------------------


def test_initial_state(user):
    room = user.create_room(
        preset="private_chat",
        name="from name",
        initial_state=[
            {"type": "m.room.name", "content": {"name": "from initial_state"}},
            {"type": "org.example.ct.custom", "state_key": "k1", "content": {"v": 1}},
            {"type": "org.example.ct.custom", "content": {"v": "empty key"}},
            # Takes precedence over the preset.
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}},
        ],
    )
    assert user.get_state(room, "org.example.ct.custom", "k1") == {"v": 1}
    assert user.get_state(room, "org.example.ct.custom") == {"v": "empty key"}
    assert user.get_state(room, "m.room.history_visibility")["history_visibility"] == "joined"
    # `name` overrides an m.room.name in initial_state.
    assert user.get_state(room, "m.room.name")["name"] == "from name"


@pytest.mark.parametrize("version", ["11", "12"])
def test_power_level_content_override(user, user2, version):
    users = {user2.user_id: 42}
    if version != "12":
        users[user.user_id] = 100
    room = user.create_room(
        room_version=version,
        power_level_content_override={"events_default": 20, "users": users, "events": {"org.example.ct": 7}},
    )
    pl = user.get_state(room, "m.room.power_levels")
    assert pl["events_default"] == 20
    assert pl["users"] == users
    assert pl["events"]["org.example.ct"] == 7
    # Keys that were not overridden keep their generated defaults.
    assert isinstance(pl.get("ban", 50), int) and isinstance(pl.get("state_default", 50), int), pl


def test_creation_content(user):
    room = user.create_room(
        room_version="10",
        creation_content={
            "m.federate": False,
            "type": "m.space",
            "org.example.ct": "kept",
            # Overwritten by the server.
            "creator": "@someone:else.example",
            "room_version": "3",
        },
    )
    create = user.get_state(room, "m.room.create")
    assert create["m.federate"] is False
    assert create["type"] == "m.space"
    assert create["org.example.ct"] == "kept"
    assert create["room_version"] == "10"
    assert create["creator"] == user.user_id


# -- room versions ----------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_ROOM_VERSIONS)
def test_room_version(user, version):
    room = user.create_room(room_version=version)
    create = user.get_state(room, "m.room.create")
    assert create["room_version"] == version
    ev = create_event(user, room)
    assert ev["sender"] == user.user_id
    if int(version) <= 10:
        assert create["creator"] == user.user_id
    if version == "12":
        # v12 room IDs are the create event's ID with the `!` sigil: no server part.
        assert ":" not in room, room
        assert ev["event_id"] == "$" + room[1:], (room, ev["event_id"])
    else:
        assert room.split(":", 1)[1] == user.server_name, room
    # Usable: the creator can talk in it.
    user.send_message(room, f"hello v{version}")


def test_default_room_version_matches_capabilities(user):
    caps = assert_status(user.get("capabilities"), 200)["capabilities"]
    default = caps["m.room_versions"]["default"]
    room = user.create_room()
    assert user.get_state(room, "m.room.create")["room_version"] == default


def test_unknown_room_version(user):
    resp = user.post("createRoom", json={"room_version": "ct-no-such-version"})
    assert_error(resp, 400, "M_UNSUPPORTED_ROOM_VERSION")
    assert_no_rooms(user)


# -- bad input ---------------------------------------------------------------------------


def test_invalid_preset(user):
    resp = user.post("createRoom", json={"preset": "ct_no_such_preset"})
    assert_error(resp, 400, ("M_BAD_JSON", "M_INVALID_PARAM"))
    assert_no_rooms(user)


@pytest.mark.parametrize(
    "body",
    [{"room_version": 12}, {"invite": "@not:a.list"}],
    ids=["room_version-int", "invite-string"],
)
def test_wrong_types(user, body):
    assert_error(user.post("createRoom", json=body), 400, BAD_TYPE_CODES)
    assert_no_rooms(user)


@pytest.mark.parametrize("body", [{"name": 5}, {"topic": ["x"]}], ids=["name-int", "topic-list"])
def test_wrong_types_name_topic(user, body):
    # Synapse answers 400 but has already created (and joined) the room, so the
    # "no side effects" check is left out here (README, Known differences).
    assert_error(user.post("createRoom", json=body), 400, BAD_TYPE_CODES)


@pytest.mark.parametrize("invitee", ["not-a-user-id", "@", "#alias:example.org"])
def test_invalid_invitee(user, invitee):
    assert_error(user.post("createRoom", json={"invite": [invitee]}), 400, BAD_TYPE_CODES)
    assert_no_rooms(user)


def test_room_alias_name_with_colon_rejected(user):
    # room_alias_name is a localpart; the server name is added by the server.
    resp = user.post("createRoom", json={"room_alias_name": f"ct{uuid.uuid4().hex[:6]}:example.org"})
    assert_error(resp, 400, ("M_INVALID_PARAM", "M_BAD_JSON", "M_UNKNOWN"))
    assert_no_rooms(user)


def test_create_room_requires_auth(open_server):
    assert_error(open_server.post("createRoom", json={}), 401, "M_MISSING_TOKEN")


@pytest.mark.parametrize("version", ["11", "12"])
def test_identical_concurrent_creates_make_distinct_rooms(user, version):
    """From v12 a room id is the hash of its create event, and identical requests by one user
    in the same millisecond build identical create events: each request must still get a room
    of its own."""
    from concurrent.futures import ThreadPoolExecutor

    body = {"room_version": version, "preset": "private_chat"}
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: user.post("createRoom", json=body), range(8)))
    room_ids = [assert_status(r, 200)["room_id"] for r in responses]
    assert len(set(room_ids)) == len(room_ids), room_ids
    joined = set(assert_status(user.get("joined_rooms"), 200)["joined_rooms"])
    assert set(room_ids) <= joined
    for room_id in room_ids:
        creates = [e for e in user.room_state(room_id) if e["type"] == "m.room.create"]
        assert len(creates) == 1, creates
