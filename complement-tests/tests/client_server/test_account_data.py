"""Client config (account data): global and per-room.

Spec: client-server-api modules "Client Config", "Read markers" (server-managed
m.fully_read) and "Push rules" (server-managed m.push_rules).
"""

import uuid

import pytest

from ct import assert_error, assert_status, poll_until, q


def _global(user, typ, target=None):
    return f"user/{q(target or user.user_id)}/account_data/{q(typ)}"


def _room(user, room_id, typ, target=None):
    return f"user/{q(target or user.user_id)}/rooms/{q(room_id)}/account_data/{q(typ)}"


def _room_id(user):
    # A syntactically valid room ID on the user's server; the API does not
    # require the room to exist.
    return f"!ct{uuid.uuid4().hex[:16]}:{user.server_name}"


def test_global_roundtrip(user):
    content = {"ct": True, "nested": {"list": [1, "two", None]}, "n": 3}
    assert_status(user.put(_global(user, "org.example.ct.config"), json=content), 200)
    assert assert_status(user.get(_global(user, "org.example.ct.config")), 200) == content


def test_global_overwrite_replaces(user):
    assert_status(user.put(_global(user, "org.example.ct.o"), json={"a": 1, "b": 2}), 200)
    assert_status(user.put(_global(user, "org.example.ct.o"), json={"c": 3}), 200)
    assert assert_status(user.get(_global(user, "org.example.ct.o")), 200) == {"c": 3}


def test_global_empty_object(user):
    assert_status(user.put(_global(user, "org.example.ct.empty"), json={}), 200)
    assert assert_status(user.get(_global(user, "org.example.ct.empty")), 200) == {}


def test_room_roundtrip(user):
    room = _room_id(user)
    content = {"room": "specific", "v": 1}
    assert_status(user.put(_room(user, room, "org.example.ct.r"), json=content), 200)
    assert assert_status(user.get(_room(user, room, "org.example.ct.r")), 200) == content


def test_room_and_global_are_separate(user):
    room = _room_id(user)
    assert_status(user.put(_global(user, "org.example.ct.sep"), json={"scope": "global"}), 200)
    # No inheritance: the room-level value is missing.
    assert_error(user.get(_room(user, room, "org.example.ct.sep")), 404, "M_NOT_FOUND")
    assert_status(user.put(_room(user, room, "org.example.ct.sep"), json={"scope": "room"}), 200)
    assert assert_status(user.get(_global(user, "org.example.ct.sep")), 200) == {"scope": "global"}
    assert assert_status(user.get(_room(user, room, "org.example.ct.sep")), 200) == {"scope": "room"}


def test_room_data_is_per_room(user):
    a, b = _room_id(user), _room_id(user)
    assert_status(user.put(_room(user, a, "org.example.ct.pr"), json={"room": "a"}), 200)
    assert_error(user.get(_room(user, b, "org.example.ct.pr")), 404, "M_NOT_FOUND")


def test_unknown_global_type(user):
    assert_error(user.get(_global(user, "org.example.ct.never")), 404, "M_NOT_FOUND")


def test_unknown_room_type(user):
    assert_error(user.get(_room(user, _room_id(user), "org.example.ct.never")), 404, "M_NOT_FOUND")


def test_account_data_is_per_user(user, user2):
    assert_status(user.put(_global(user, "org.example.ct.mine"), json={"owner": 1}), 200)
    assert_error(user2.get(_global(user2, "org.example.ct.mine")), 404, "M_NOT_FOUND")


def test_other_users_global_forbidden(user, user2):
    assert_status(user2.put(_global(user2, "org.example.ct.secret"), json={"s": 1}), 200)
    assert_error(user.get(_global(user, "org.example.ct.secret", user2.user_id)), 403, "M_FORBIDDEN")
    resp = user.put(_global(user, "org.example.ct.secret", user2.user_id), json={"s": "evil"})
    assert_error(resp, 403, "M_FORBIDDEN")
    assert assert_status(user2.get(_global(user2, "org.example.ct.secret")), 200) == {"s": 1}


def test_other_users_room_forbidden(user, user2):
    room = _room_id(user)
    assert_status(user2.put(_room(user2, room, "org.example.ct.secret"), json={"s": 1}), 200)
    assert_error(user.get(_room(user, room, "org.example.ct.secret", user2.user_id)), 403, "M_FORBIDDEN")
    resp = user.put(_room(user, room, "org.example.ct.secret", user2.user_id), json={"s": 2})
    assert_error(resp, 403, "M_FORBIDDEN")


@pytest.mark.parametrize("bad_room", ["notaroom", "@ct_user:example.org", "#alias:example.org"])
def test_invalid_room_id(user, bad_room):
    assert_error(user.put(_room(user, bad_room, "org.example.ct.r"), json={"a": 1}), 400, "M_INVALID_PARAM")
    assert_error(user.get(_room(user, bad_room, "org.example.ct.r")), 400, "M_INVALID_PARAM")


@pytest.mark.parametrize("typ", ["m.fully_read", "m.push_rules"])
def test_server_managed_global_types_rejected(user, typ):
    # "Servers MUST reject setting account data for event types that the
    # server manages by using a 405 error response" (errcode M_BAD_JSON).
    resp = user.put(_global(user, typ), json={"event_id": "$ct:example.org", "global": {}})
    assert_error(resp, 405, "M_BAD_JSON")


@pytest.mark.parametrize("typ", ["m.fully_read", "m.push_rules"])
def test_server_managed_room_types_rejected(user, typ):
    resp = user.put(_room(user, _room_id(user), typ), json={"event_id": "$ct:example.org"})
    assert_error(resp, 405, "M_BAD_JSON")


def test_non_object_content_rejected(user):
    assert_status(user.put(_global(user, "org.example.ct.keep"), json={"k": 1}), 200)
    resp = user.put(_global(user, "org.example.ct.keep"), json=["not", "an", "object"])
    assert_error(resp, 400, ("M_BAD_JSON", "M_NOT_JSON"))
    resp = user.put(_global(user, "org.example.ct.keep"), data="not json at all")
    assert_error(resp, 400, "M_NOT_JSON")
    # Failed writes change nothing.
    assert assert_status(user.get(_global(user, "org.example.ct.keep")), 200) == {"k": 1}


def test_account_data_requires_auth(server, user):
    assert_error(server.get(_global(user, "org.example.ct.x")), 401, "M_MISSING_TOKEN")
    assert_error(server.put(_global(user, "org.example.ct.x"), json={}), 401, "M_MISSING_TOKEN")


def test_global_account_data_in_sync(user):
    """Global account data is delivered in the top-level account_data of /sync."""
    content = {"ct_sync": uuid.uuid4().hex}
    assert_status(user.put(_global(user, "org.example.ct.sync"), json=content), 200)

    def synced():
        resp = user.get("sync", params={"timeout": "0"})
        if resp.status_code == 404:
            pytest.skip("/sync not implemented")
        body = assert_status(resp, 200)
        events = body.get("account_data", {}).get("events", [])
        for ev in events:
            if ev.get("type") == "org.example.ct.sync":
                return ev
        return None

    ev = poll_until(synced, timeout=10, what="account data in /sync")
    assert ev["content"] == content, ev
