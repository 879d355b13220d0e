"""Room membership: join, invite, leave, kick, ban, unban, forget, knock,
restricted joins, /joined_rooms, /members, /joined_members.

Spec: client-server-api "Room membership" (joining.yaml, inviting.yaml,
leaving.yaml, kicking.yaml, banning.yaml, knocking.yaml, list_joined_rooms.yaml,
rooms.yaml members endpoints), room versions 7 (knock) and 8+ (restricted).
"""

import uuid

import pytest

from ct import assert_error, assert_status, q, room_path

# Joining, knocking or being invited while banned: the spec's example errcode is
# M_FORBIDDEN, Synapse says M_BAD_STATE (README, Known differences).
BANNED_CODES = ("M_FORBIDDEN", "M_BAD_STATE")


def joined_rooms(user):
    body = assert_status(user.get("joined_rooms"), 200)
    assert isinstance(body.get("joined_rooms"), list), body
    return body["joined_rooms"]


def members(viewer, room_id, **params):
    body = assert_status(viewer.get(room_path(room_id, "members"), params=params), 200)
    assert isinstance(body.get("chunk"), list), body
    for ev in body["chunk"]:
        assert ev["type"] == "m.room.member" and ev["room_id"] == room_id, ev
    return {ev["state_key"]: ev["content"]["membership"] for ev in body["chunk"]}


# -- joining -----------------------------------------------------------------------------


def test_join_public_room_by_id(user, user2):
    room = user.create_room(preset="public_chat")
    assert user2.join(room) == room
    assert user.membership_of(room, user2.user_id) == "join"
    assert room in joined_rooms(user2)


def test_join_public_room_via_rooms_join(user, user2):
    room = user.create_room(preset="public_chat")
    body = assert_status(user2.post(room_path(room, "join"), json={}), 200)
    assert body["room_id"] == room
    assert user.membership_of(room, user2.user_id) == "join"


def test_join_public_room_by_alias(user, user2):
    localpart = "ct" + uuid.uuid4().hex[:10]
    room = user.create_room(preset="public_chat", room_alias_name=localpart)
    assert user2.join(f"#{localpart}:{user.server_name}") == room
    assert user.membership_of(room, user2.user_id) == "join"


def test_join_unknown_alias(user):
    resp = user.post(f"join/{q('#ct' + uuid.uuid4().hex[:10] + ':' + user.server_name)}", json={})
    assert_error(resp, 404, "M_NOT_FOUND")


def test_join_is_idempotent(user, user2):
    room = user.create_room(preset="public_chat")
    user2.join(room)
    assert user2.join(room) == room
    assert user.membership_of(room, user2.user_id) == "join"


def test_join_with_reason(user, user2):
    room = user.create_room(preset="public_chat")
    user2.join(room, reason="hello there")
    member = user.get_state(room, "m.room.member", user2.user_id)
    assert member["membership"] == "join" and member.get("reason") == "hello there", member


def test_invite_then_join(user, user2):
    room = user.create_room(preset="private_chat")
    user.invite(room, user2.user_id, reason="come in")
    member = user.get_state(room, "m.room.member", user2.user_id)
    assert member["membership"] == "invite" and member.get("reason") == "come in", member
    assert room not in joined_rooms(user2)
    assert user2.join(room) == room
    assert user.membership_of(room, user2.user_id) == "join"
    assert room in joined_rooms(user2)


def test_invitee_can_reject_by_leaving(user, user2):
    room = user.create_room(preset="private_chat")
    user.invite(room, user2.user_id)
    user2.leave(room)
    assert user.membership_of(room, user2.user_id) == "leave"
    # The invite is gone: joining is refused again.
    assert_error(user2.post(room_path(room, "join"), json={}), 403, "M_FORBIDDEN")


# -- leaving and forgetting --------------------------------------------------------------


def test_leave(user, user2):
    room = user.create_room(preset="public_chat")
    user2.join(room)
    user2.leave(room, reason="bye")
    member = user.get_state(room, "m.room.member", user2.user_id)
    assert member["membership"] == "leave" and member.get("reason") == "bye", member
    assert room not in joined_rooms(user2)
    # Left users can't send any more.
    resp = user2.put(room_path(room, "send", "m.room.message", "t1"), json={"msgtype": "m.text", "body": "x"})
    assert_error(resp, 403, "M_FORBIDDEN")


def test_forget_after_leave(user, user2):
    room = user.create_room(preset="public_chat")
    user.send_message(room, "history")
    user2.join(room)
    user2.leave(room)
    assert assert_status(user2.post(room_path(room, "forget"), json={}), 200) == {}
    # Forgotten: the history is no longer available to that user.
    assert_error(user2.get(room_path(room, "messages"), params={"dir": "b"}), 403, "M_FORBIDDEN")
    # Forgetting doesn't change membership seen by others, and the room can be rejoined.
    assert user.membership_of(room, user2.user_id) == "leave"
    assert user2.join(room) == room


def test_forget_while_joined(user):
    room = user.create_room()
    # The spec's example errcode is M_UNKNOWN.
    assert_error(user.post(room_path(room, "forget"), json={}), 400, "M_UNKNOWN")
    assert room in joined_rooms(user)


# -- kick --------------------------------------------------------------------------------


def test_kick_with_reason(user, user2):
    room = user.create_room(preset="public_chat")
    user2.join(room)
    user.kick(room, user2.user_id, reason="behave")
    member = user.get_state(room, "m.room.member", user2.user_id)
    assert member["membership"] == "leave" and member.get("reason") == "behave", member
    assert room not in joined_rooms(user2)
    # A kick is not a ban: the target can come back to a public room.
    assert user2.join(room) == room


def test_kick_without_power(open_server, user, user2):
    room = user.create_room(preset="public_chat")
    third = open_server.register()
    user2.join(room)
    third.join(room)
    assert_error(user2.post(room_path(room, "kick"), json={"user_id": third.user_id}), 403, "M_FORBIDDEN")
    assert_error(user2.post(room_path(room, "kick"), json={"user_id": user.user_id}), 403, "M_FORBIDDEN")
    assert user.membership_of(room, third.user_id) == "join"
    assert user.membership_of(room, user.user_id) == "join"


# -- ban / unban -------------------------------------------------------------------------


def test_ban_then_join_forbidden(user, user2):
    room = user.create_room(preset="public_chat")
    user2.join(room)
    user.ban(room, user2.user_id, reason="spam")
    member = user.get_state(room, "m.room.member", user2.user_id)
    assert member["membership"] == "ban" and member.get("reason") == "spam", member
    assert room not in joined_rooms(user2)
    assert_error(user2.post(f"join/{q(room)}", json={}), 403, BANNED_CODES)
    assert_error(user2.post(room_path(room, "join"), json={}), 403, BANNED_CODES)
    assert user.membership_of(room, user2.user_id) == "ban"


def test_ban_user_who_never_joined(user, user2):
    room = user.create_room(preset="public_chat")
    user.ban(room, user2.user_id)
    assert user.membership_of(room, user2.user_id) == "ban"
    assert_error(user2.post(room_path(room, "join"), json={}), 403, BANNED_CODES)


def test_unban_then_join(user, user2):
    room = user.create_room(preset="public_chat")
    user2.join(room)
    user.ban(room, user2.user_id)
    user.unban(room, user2.user_id, reason="second chance")
    member = user.get_state(room, "m.room.member", user2.user_id)
    assert member["membership"] == "leave", member
    assert user2.join(room) == room
    assert user.membership_of(room, user2.user_id) == "join"


def test_ban_without_power(open_server, user, user2):
    room = user.create_room(preset="public_chat")
    third = open_server.register()
    user2.join(room)
    third.join(room)
    assert_error(user2.post(room_path(room, "ban"), json={"user_id": third.user_id}), 403, "M_FORBIDDEN")
    assert user.membership_of(room, third.user_id) == "join"


def test_unban_without_power(open_server, user, user2):
    room = user.create_room(preset="public_chat")
    third = open_server.register()
    user2.join(room)
    user.ban(room, third.user_id)
    assert_error(user2.post(room_path(room, "unban"), json={"user_id": third.user_id}), 403, "M_FORBIDDEN")
    assert user.membership_of(room, third.user_id) == "ban"


# -- forbidden transitions -------------------------------------------------------------------


def test_join_invite_only_room_uninvited(user, user2):
    room = user.create_room(preset="private_chat")
    assert_error(user2.post(f"join/{q(room)}", json={}), 403, "M_FORBIDDEN")
    assert_error(user2.post(room_path(room, "join"), json={}), 403, "M_FORBIDDEN")
    assert room not in joined_rooms(user2)


def test_invite_by_non_member(open_server, user, user2):
    room = user.create_room(preset="public_chat")
    third = open_server.register()
    resp = user2.post(room_path(room, "invite"), json={"user_id": third.user_id})
    assert_error(resp, 403, "M_FORBIDDEN")
    assert user.membership_of(room, third.user_id) is None


def test_invite_without_power(open_server, user, user2):
    # public_chat leaves `invite` to the server; set it explicitly.
    room = user.create_room(preset="public_chat", power_level_content_override={"invite": 50})
    third = open_server.register()
    user2.join(room)
    resp = user2.post(room_path(room, "invite"), json={"user_id": third.user_id})
    assert_error(resp, 403, "M_FORBIDDEN")
    assert user.membership_of(room, third.user_id) is None


def test_invite_banned_user_forbidden(user, user2):
    room = user.create_room(preset="private_chat")
    user.ban(room, user2.user_id)
    assert_error(user.post(room_path(room, "invite"), json={"user_id": user2.user_id}), 403, BANNED_CODES)
    assert user.membership_of(room, user2.user_id) == "ban"


def test_membership_actions_require_user_id(user):
    room = user.create_room()
    for action in ("invite", "kick", "ban", "unban"):
        resp = user.post(room_path(room, action), json={})
        assert_error(resp, 400, ("M_BAD_JSON", "M_MISSING_PARAM", "M_INVALID_PARAM"))


# -- knocking (room versions 7+) ---------------------------------------------------------


def knock_room(user, version="7"):
    return user.create_room(
        room_version=version,
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )


@pytest.mark.parametrize("version", ["7", "12"])
def test_knock(user, user2, version):
    room = knock_room(user, version)
    body = assert_status(user2.post(f"knock/{q(room)}", json={"reason": "let me in"}), 200)
    assert body["room_id"] == room
    member = user.get_state(room, "m.room.member", user2.user_id)
    assert member["membership"] == "knock" and member.get("reason") == "let me in", member
    # Knocking is not joining.
    assert room not in joined_rooms(user2)
    # The knock can be accepted with an invite.
    user.invite(room, user2.user_id)
    assert user2.join(room) == room


def test_knock_can_be_withdrawn(user, user2):
    room = knock_room(user)
    assert_status(user2.post(f"knock/{q(room)}", json={}), 200)
    user2.leave(room)
    assert user.membership_of(room, user2.user_id) == "leave"


def test_knock_on_public_room_forbidden(user, user2):
    room = user.create_room(preset="public_chat", room_version="7")
    assert_error(user2.post(f"knock/{q(room)}", json={}), 403, "M_FORBIDDEN")
    assert user.membership_of(room, user2.user_id) is None


def test_knock_on_invite_only_room_forbidden(user, user2):
    room = user.create_room(preset="private_chat", room_version="7")
    assert_error(user2.post(f"knock/{q(room)}", json={}), 403, "M_FORBIDDEN")


def test_knock_when_banned_forbidden(user, user2):
    room = knock_room(user)
    user.ban(room, user2.user_id)
    assert_error(user2.post(f"knock/{q(room)}", json={}), 403, BANNED_CODES)
    assert user.membership_of(room, user2.user_id) == "ban"


# -- restricted joins (room versions 8+) ----------------------------------------------------


@pytest.mark.parametrize("version", ["8", "10", "12"])
def test_restricted_join(open_server, user, version):
    space = user.create_room(preset="public_chat", creation_content={"type": "m.space"})
    room = user.create_room(
        room_version=version,
        initial_state=[
            {
                "type": "m.room.join_rules",
                "content": {
                    "join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": space}],
                },
            }
        ],
    )
    insider, outsider = open_server.register(), open_server.register()
    insider.join(space)
    assert insider.join(room) == room
    member = user.get_state(room, "m.room.member", insider.user_id)
    assert member["membership"] == "join", member
    # The join is authorised by a local user who can invite (the creator here).
    assert member.get("join_authorised_via_users_server") == user.user_id, member

    assert_error(outsider.post(f"join/{q(room)}", json={}), 403, "M_FORBIDDEN")
    assert_error(outsider.post(room_path(room, "join"), json={}), 403, "M_FORBIDDEN")
    assert user.membership_of(room, outsider.user_id) is None
    # An invite still works for someone outside the allowed room.
    user.invite(room, outsider.user_id)
    assert outsider.join(room) == room


def test_restricted_join_after_leaving_allowed_room(open_server, user):
    space = user.create_room(preset="public_chat", creation_content={"type": "m.space"})
    room = user.create_room(
        room_version="10",
        initial_state=[
            {
                "type": "m.room.join_rules",
                "content": {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]},
            }
        ],
    )
    other = open_server.register()
    other.join(space)
    other.leave(space)
    assert_error(other.post(room_path(room, "join"), json={}), 403, "M_FORBIDDEN")


# -- /joined_rooms -----------------------------------------------------------------------


def test_joined_rooms(user, user2):
    assert joined_rooms(user2) == []
    a = user.create_room(preset="public_chat")
    b = user.create_room(preset="public_chat")
    c = user.create_room(preset="private_chat")
    user.invite(c, user2.user_id)
    user2.join(a)
    user2.join(b)
    assert sorted(joined_rooms(user2)) == sorted([a, b])  # invites are not joins
    user2.leave(a)
    assert joined_rooms(user2) == [b]
    assert sorted(joined_rooms(user)) == sorted([a, b, c])


def test_joined_rooms_requires_auth(open_server):
    assert_error(open_server.get("joined_rooms"), 401, "M_MISSING_TOKEN")


# -- /members ----------------------------------------------------------------------------


def test_members_and_filters(open_server, user):
    joiner, leaver, invitee, banned = (open_server.register() for _ in range(4))
    room = user.create_room(preset="public_chat")
    for u in (joiner, leaver, banned):
        u.join(room)
    leaver.leave(room)
    user.invite(room, invitee.user_id)
    user.ban(room, banned.user_id)

    everyone = {
        user.user_id: "join",
        joiner.user_id: "join",
        leaver.user_id: "leave",
        invitee.user_id: "invite",
        banned.user_id: "ban",
    }
    assert members(user, room) == everyone
    assert members(joiner, room) == everyone
    assert members(user, room, membership="join") == {k: v for k, v in everyone.items() if v == "join"}
    assert members(user, room, membership="invite") == {invitee.user_id: "invite"}
    assert members(user, room, membership="ban") == {banned.user_id: "ban"}
    assert members(user, room, not_membership="join") == {k: v for k, v in everyone.items() if v != "join"}
    assert members(user, room, not_membership="leave") == {k: v for k, v in everyone.items() if v != "leave"}


def test_members_at_token(open_server, user):
    early, late = open_server.register(), open_server.register()
    room = user.create_room(preset="public_chat")
    early.join(room)
    user.send_message(room, "checkpoint")
    page = user.messages(room, dir="b", limit=1)
    assert page["chunk"][0]["content"].get("body") == "checkpoint"
    token_then = page["start"]
    late.join(room)
    early.leave(room)

    assert members(user, room) == {user.user_id: "join", early.user_id: "leave", late.user_id: "join"}
    # `at`: the membership as it was at that point of the timeline.
    assert members(user, room, at=token_then) == {user.user_id: "join", early.user_id: "join"}
    assert members(user, room, at=token_then, membership="join") == {
        user.user_id: "join",
        early.user_id: "join",
    }
    # An `end` token from /messages works too: before `early` joined.
    before_join = user.messages(room, dir="f", limit=2)["end"]
    assert early.user_id not in members(user, room, at=before_join)


def test_members_non_member_forbidden(user, user2):
    room = user.create_room(preset="private_chat")
    assert_error(user2.get(room_path(room, "members")), 403, "M_FORBIDDEN")
    assert_error(user2.get(room_path(room, "joined_members")), 403, "M_FORBIDDEN")


# -- /joined_members ---------------------------------------------------------------------


def test_joined_members_shape(user, user2):
    assert_status(
        user2.put(f"profile/{q(user2.user_id)}/displayname", json={"displayname": "Second ✓"}), 200
    )
    assert_status(
        user2.put(f"profile/{q(user2.user_id)}/avatar_url", json={"avatar_url": "mxc://example.org/ctAvatar"}),
        200,
    )
    room = user.create_room(preset="public_chat")
    user2.join(room)
    body = assert_status(user.get(room_path(room, "joined_members")), 200)
    joined = body["joined"]
    assert set(joined) == {user.user_id, user2.user_id}, body
    assert joined[user2.user_id]["display_name"] == "Second ✓"
    assert joined[user2.user_id]["avatar_url"] == "mxc://example.org/ctAvatar"
    mine = joined[user.user_id]
    assert isinstance(mine.get("display_name"), str), mine
    # No avatar: the key is optional (Synapse sends null: README, Known differences).
    assert mine.get("avatar_url") is None, mine
    user2.leave(room)
    body = assert_status(user.get(room_path(room, "joined_members")), 200)
    assert set(body["joined"]) == {user.user_id}, body
