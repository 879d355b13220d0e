"""Profiles: GET/PUT/DELETE /profile/{userId}[/{keyName}].

Spec: client-server-api "Profiles", "m.profile_fields capability" (v1.16 custom fields).
"""

import uuid

import pytest

from ct import assert_error, assert_error_status, assert_status, q


def _field(user, key, target=None):
    return f"profile/{q(target or user.user_id)}/{key}"


def _set(user, key, value, target=None):
    return user.put(_field(user, key, target), json={key: value})


def _nobody(user):
    return f"@ct_nobody_{uuid.uuid4().hex[:10]}:{user.server_name}"


def test_set_and_get_displayname(user):
    assert_status(_set(user, "displayname", "CT Alice ☕"), 200)
    body = assert_status(user.get(_field(user, "displayname")), 200)
    assert body == {"displayname": "CT Alice ☕"}, body


def test_set_and_get_avatar_url(user):
    mxc = f"mxc://{user.server_name}/ct{uuid.uuid4().hex[:12]}"
    assert_status(_set(user, "avatar_url", mxc), 200)
    body = assert_status(user.get(_field(user, "avatar_url")), 200)
    assert body == {"avatar_url": mxc}, body


def test_get_whole_profile(user):
    mxc = f"mxc://{user.server_name}/ct{uuid.uuid4().hex[:12]}"
    assert_status(_set(user, "displayname", "CT Whole"), 200)
    assert_status(_set(user, "avatar_url", mxc), 200)
    body = assert_status(user.get(f"profile/{q(user.user_id)}"), 200)
    assert body.get("displayname") == "CT Whole", body
    assert body.get("avatar_url") == mxc, body


def test_displayname_overwrite(user):
    assert_status(_set(user, "displayname", "first"), 200)
    assert_status(_set(user, "displayname", "second"), 200)
    assert assert_status(user.get(_field(user, "displayname")), 200) == {"displayname": "second"}


def test_other_users_profile_readable_or_forbidden(user, user2):
    """Users sharing no room: the server MAY refuse with 403 M_FORBIDDEN."""
    assert_status(_set(user2, "displayname", "CT Bob"), 200)
    resp = user.get(f"profile/{q(user2.user_id)}")
    if resp.status_code == 403:
        assert_error(resp, 403, "M_FORBIDDEN")
    else:
        assert assert_status(resp, 200).get("displayname") == "CT Bob"
    resp = user.get(_field(user, "displayname", user2.user_id))
    if resp.status_code == 403:
        assert_error(resp, 403, "M_FORBIDDEN")
    else:
        assert assert_status(resp, 200) == {"displayname": "CT Bob"}


def test_profile_of_user_in_public_room_is_readable(user, user2):
    """Users joined to a public room MUST have their profile visible."""
    resp = user2.post("createRoom", json={"preset": "public_chat"})
    if resp.status_code == 404:
        pytest.skip("createRoom not implemented")
    assert_status(resp, 200)
    assert_status(_set(user2, "displayname", "CT Public Bob"), 200)
    body = assert_status(user.get(f"profile/{q(user2.user_id)}"), 200)
    assert body.get("displayname") == "CT Public Bob", body
    body = assert_status(user.get(_field(user, "displayname", user2.user_id)), 200)
    assert body == {"displayname": "CT Public Bob"}, body


def test_unknown_user_profile_field(user):
    # "When the requested user does not exist, homeservers MAY choose whether
    # to respond with 403 or 404."
    resp = user.get(_field(user, "displayname", _nobody(user)))
    if resp.status_code == 403:
        assert_error(resp, 403, "M_FORBIDDEN")
    else:
        assert_error(resp, 404, "M_NOT_FOUND")


def test_unknown_user_whole_profile(user):
    resp = user.get(f"profile/{q(_nobody(user))}")
    # Synapse answers 404 M_UNKNOWN here (spec example: M_NOT_FOUND), so only
    # the status is checked -- see README "Known differences".
    body = assert_error_status(resp, (403, 404))
    if resp.status_code == 403:
        assert body["errcode"] == "M_FORBIDDEN", body


def test_cannot_set_other_users_displayname(user, user2):
    assert_status(_set(user2, "displayname", "CT Original"), 200)
    resp = _set(user, "displayname", "CT Hijacked", target=user2.user_id)
    # Spec: 403 M_FORBIDDEN; Synapse uses status 400 with M_FORBIDDEN (README).
    assert_error(resp, (400, 403), "M_FORBIDDEN")
    body = assert_status(user2.get(_field(user2, "displayname")), 200)
    assert body == {"displayname": "CT Original"}, body


def test_cannot_set_other_users_avatar(user, user2):
    resp = _set(user, "avatar_url", f"mxc://{user.server_name}/evil", target=user2.user_id)
    assert_error(resp, (400, 403), "M_FORBIDDEN")


def test_set_profile_requires_auth(server, user):
    resp = server.put(_field(user, "displayname"), json={"displayname": "anon"})
    assert_error(resp, 401, "M_MISSING_TOKEN")


def test_set_displayname_missing_key(user):
    assert_status(_set(user, "displayname", "CT Before"), 200)
    resp = user.put(_field(user, "displayname"), json={})
    assert_error(resp, 400, ("M_MISSING_PARAM", "M_BAD_JSON"))
    assert assert_status(user.get(_field(user, "displayname")), 200) == {"displayname": "CT Before"}


def test_set_displayname_wrong_type(user):
    assert_status(_set(user, "displayname", "CT Before"), 200)
    resp = _set(user, "displayname", 42)
    assert_error(resp, 400, ("M_BAD_JSON", "M_INVALID_PARAM"))
    assert assert_status(user.get(_field(user, "displayname")), 200) == {"displayname": "CT Before"}


# --------------------------------------------------------------------------
# v1.16 extended profile fields
# --------------------------------------------------------------------------


@pytest.fixture
def profile_fields(user):
    caps = assert_status(user.get("capabilities"), 200)["capabilities"]
    pf = caps.get("m.profile_fields")
    if pf is None:
        pytest.skip("server does not advertise m.profile_fields")
    if not pf.get("enabled"):
        pytest.skip("m.profile_fields disabled")
    return pf


def _allowed(pf, key):
    if "allowed" in pf:
        return key in pf["allowed"]
    return key not in pf.get("disallowed", [])


def test_timezone_field_roundtrip(user, profile_fields):
    if not _allowed(profile_fields, "m.tz"):
        pytest.skip("m.tz not modifiable")
    assert_status(_set(user, "m.tz", "Europe/London"), 200)
    assert assert_status(user.get(_field(user, "m.tz")), 200) == {"m.tz": "Europe/London"}
    body = assert_status(user.get(f"profile/{q(user.user_id)}"), 200)
    assert body.get("m.tz") == "Europe/London", body


def test_custom_field_any_json(user, profile_fields):
    key = "org.example.ct_field"
    if not _allowed(profile_fields, key):
        pytest.skip(f"{key} not modifiable")
    value = {"nested": [1, 2, {"three": True}], "s": "x"}
    assert_status(_set(user, key, value), 200)
    assert assert_status(user.get(_field(user, key)), 200) == {key: value}
    body = assert_status(user.get(f"profile/{q(user.user_id)}"), 200)
    assert body.get(key) == value, body


def test_delete_custom_field(user, profile_fields):
    key = "org.example.ct_gone"
    if not _allowed(profile_fields, key):
        pytest.skip(f"{key} not modifiable")
    assert_status(_set(user, key, "bye"), 200)
    assert_status(user.delete(_field(user, key)), 200)
    assert_error(user.get(_field(user, key)), 404, "M_NOT_FOUND")
    body = assert_status(user.get(f"profile/{q(user.user_id)}"), 200)
    assert key not in body, body


def test_delete_absent_field_is_ok(user, profile_fields):
    # "The profile field was deleted or it doesn't exist."
    assert_status(user.delete(_field(user, "org.example.ct_never_set")), 200)


def test_custom_field_body_key_must_match(user, profile_fields):
    resp = user.put(_field(user, "org.example.ct_a"), json={"org.example.ct_b": 1})
    assert_error(resp, 400, ("M_MISSING_PARAM", "M_BAD_JSON"))
    assert_error(user.get(_field(user, "org.example.ct_a")), 404, "M_NOT_FOUND")


def test_custom_field_invalid_key_name(user, profile_fields):
    # Key names must follow the Common Namespaced Identifier Grammar.
    resp = user.put(_field(user, "Org.Example.BAD"), json={"Org.Example.BAD": 1})
    assert_error(resp, 400, ("M_INVALID_PARAM", "M_BAD_JSON"))


def test_custom_field_key_too_large(user, profile_fields):
    key = "org.example." + "k" * 260
    resp = user.put(_field(user, key), json={key: 1})
    assert_error(resp, 400, "M_KEY_TOO_LARGE")


def test_profile_too_large(user, profile_fields):
    key = "org.example.ct_big"
    resp = _set(user, key, "x" * (64 * 1024 + 1))
    assert_error(resp, 400, "M_PROFILE_TOO_LARGE")
    assert_error(user.get(_field(user, key)), 404, "M_NOT_FOUND")


def test_cannot_set_other_users_custom_field(user, user2, profile_fields):
    resp = _set(user, "org.example.ct_x", 1, target=user2.user_id)
    assert_error(resp, 403, "M_FORBIDDEN")


def test_cannot_delete_other_users_field(user, user2, profile_fields):
    assert_status(_set(user2, "org.example.ct_keep", 1), 200)
    resp = user.delete(_field(user, "org.example.ct_keep", user2.user_id))
    # Spec: 403 M_FORBIDDEN; Synapse uses 400 with M_FORBIDDEN (README).
    assert_error(resp, (400, 403), "M_FORBIDDEN")
    assert assert_status(user2.get(_field(user2, "org.example.ct_keep")), 200) == {
        "org.example.ct_keep": 1
    }


def test_unset_custom_field_is_not_found(user, profile_fields):
    # (Synapse answers 200 {} for an unset avatar_url, so the check uses a
    # custom field -- see README.)
    resp = user.get(_field(user, "org.example.ct_unset"))
    assert_error(resp, 404, "M_NOT_FOUND")
