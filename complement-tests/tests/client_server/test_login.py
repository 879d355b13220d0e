"""Login (legacy API), refresh tokens and m.login.token.

Spec: client-server-api "Login", "Refreshing access tokens", GET/POST /login,
POST /refresh, POST /login/get_token, "m.get_login_token capability".
"""

import uuid

import pytest

from ct import (
    CLIENT_V1,
    assert_error,
    assert_error_status,
    assert_status,
    assert_uia_401,
    flow_stage_sets,
)

# Errcodes a server may use for a syntactically bad /login body. The spec's
# own example for /login 400 is M_UNKNOWN ("Bad login type."), so it is allowed.
BAD_LOGIN_CODES = ("M_BAD_JSON", "M_MISSING_PARAM", "M_INVALID_PARAM", "M_UNKNOWN")


def _pw_body(user_ident, password, **extra):
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_ident},
        "password": password,
        **extra,
    }


def _check_login_ok(server, resp, user):
    data = assert_status(resp, 200)
    assert data["user_id"] == user.user_id, data
    assert isinstance(data.get("access_token"), str) and data["access_token"], data
    assert isinstance(data.get("device_id"), str) and data["device_id"], data
    assert data["access_token"] != user.access_token, "login must issue a new access token"
    who = assert_status(server.get("account/whoami", access_token=data["access_token"]), 200)
    assert who["user_id"] == user.user_id and who["device_id"] == data["device_id"], who
    return data


def test_get_login_flows(server):
    body = assert_status(server.get("login"), 200)
    flows = body.get("flows")
    assert isinstance(flows, list) and flows, body
    for flow in flows:
        assert isinstance(flow, dict) and isinstance(flow.get("type"), str), flow
        if "get_login_token" in flow:
            assert isinstance(flow["get_login_token"], bool), flow
    assert "m.login.password" in [f["type"] for f in flows], flows


def test_login_with_localpart_identifier(server, user):
    _check_login_ok(server, server.login_raw(_pw_body(user.localpart, user.password)), user)


def test_login_with_full_mxid_identifier(server, user):
    _check_login_ok(server, server.login_raw(_pw_body(user.user_id, user.password)), user)


def test_login_with_legacy_user_field(server, user):
    resp = server.login_raw({"type": "m.login.password", "user": user.localpart, "password": user.password})
    _check_login_ok(server, resp, user)


def test_login_with_legacy_user_field_full_mxid(server, user):
    resp = server.login_raw({"type": "m.login.password", "user": user.user_id, "password": user.password})
    _check_login_ok(server, resp, user)


def test_login_creates_distinct_devices(server, user):
    a = user.login_again()
    b = user.login_again()
    assert len({user.device_id, a.device_id, b.device_id}) == 3
    devices = assert_status(user.get("devices"), 200)["devices"]
    ids = {d["device_id"] for d in devices}
    assert {user.device_id, a.device_id, b.device_id} <= ids, ids


def test_login_wrong_password(server, user):
    resp = server.login_raw(_pw_body(user.user_id, user.password + "-wrong"))
    assert_error(resp, 403, "M_FORBIDDEN")


def test_login_unknown_user(server, user):
    resp = server.login_raw(_pw_body(f"ct_nobody_{uuid.uuid4().hex[:10]}", "whatever-123"))
    assert_error(resp, 403, "M_FORBIDDEN")


def test_login_unknown_user_full_mxid(server, user):
    resp = server.login_raw(_pw_body(f"@ct_nobody_{uuid.uuid4().hex[:10]}:{user.server_name}", "x"))
    assert_error(resp, 403, "M_FORBIDDEN")


@pytest.mark.parametrize(
    "missing",
    ["password", "identifier", "type"],
)
def test_login_missing_fields(server, user, missing):
    body = _pw_body(user.user_id, user.password)
    del body[missing]
    resp = server.login_raw(body)
    assert_error(resp, 400, BAD_LOGIN_CODES)


def test_login_unknown_login_type(server, user):
    body = _pw_body(user.user_id, user.password)
    body["type"] = "org.example.ct.bogus"
    assert_error(server.login_raw(body), 400, BAD_LOGIN_CODES)


def test_login_unknown_identifier_type(server, user):
    body = _pw_body(user.user_id, user.password)
    body["identifier"]["type"] = "org.example.ct.bogus"
    assert_error(server.login_raw(body), 400, BAD_LOGIN_CODES)


def test_login_with_device_id_reuses_device(server, user):
    dev = "CTDEV" + uuid.uuid4().hex[:6].upper()
    first = user.login_again(device_id=dev, initial_device_display_name="First name")
    assert first.device_id == dev
    second = user.login_again(device_id=dev, initial_device_display_name="Second name")
    assert second.device_id == dev
    # initial_device_display_name is ignored for a known device.
    info = assert_status(user.get(f"devices/{dev}"), 200)
    assert info["device_id"] == dev and info.get("display_name") == "First name", info
    # Still one device with that ID.
    devices = assert_status(user.get("devices"), 200)["devices"]
    assert [d["device_id"] for d in devices].count(dev) == 1, devices
    assert_status(second.whoami(), 200)


def test_login_initial_device_display_name(server, user):
    u2 = user.login_again(initial_device_display_name="CT Laptop")
    info = assert_status(user.get(f"devices/{u2.device_id}"), 200)
    assert info.get("display_name") == "CT Laptop", info


def test_login_response_shape(server, user):
    data = assert_status(server.login_raw(_pw_body(user.localpart, user.password)), 200)
    for key in ("user_id", "access_token", "device_id"):
        assert isinstance(data.get(key), str) and data[key], data
    if "expires_in_ms" in data:
        assert isinstance(data["expires_in_ms"], int) and data["expires_in_ms"] > 0, data
    if "well_known" in data:
        assert isinstance(data["well_known"]["m.homeserver"]["base_url"], str), data


# --------------------------------------------------------------------------
# Refresh tokens
# --------------------------------------------------------------------------


def _login_with_refresh(server, user):
    data = assert_status(server.login_raw(_pw_body(user.user_id, user.password, refresh_token=True)), 200)
    if "refresh_token" not in data:
        pytest.skip("server does not issue refresh tokens (allowed by the spec)")
    assert isinstance(data["refresh_token"], str) and data["refresh_token"], data
    assert isinstance(data.get("expires_in_ms"), int) and data["expires_in_ms"] > 0, data
    return data


def test_login_refresh_token_issued(server, user):
    data = _login_with_refresh(server, user)
    assert data["refresh_token"] != data["access_token"]
    assert_status(server.get("account/whoami", access_token=data["access_token"]), 200)


def test_refresh_rotates_tokens(server, user):
    data = _login_with_refresh(server, user)
    resp = server.post("refresh", json={"refresh_token": data["refresh_token"]})
    new = assert_status(resp, 200)
    assert isinstance(new.get("access_token"), str) and new["access_token"], new
    assert new["access_token"] != data["access_token"], new
    if "expires_in_ms" in new:
        assert isinstance(new["expires_in_ms"], int) and new["expires_in_ms"] > 0, new
    who = assert_status(server.get("account/whoami", access_token=new["access_token"]), 200)
    # The new tokens are bound to the same device.
    assert who["user_id"] == user.user_id and who["device_id"] == data["device_id"], who

    if "refresh_token" not in new:
        return  # the old refresh token may be re-used
    assert new["refresh_token"] != data["refresh_token"], new
    # Now that the new access token was used, the old refresh token is revoked.
    # Spec: 401 M_UNKNOWN_TOKEN; Synapse answers 403 M_FORBIDDEN (see README).
    resp = server.post("refresh", json={"refresh_token": data["refresh_token"]})
    body = assert_error_status(resp, (401, 403))
    assert (resp.status_code, body["errcode"]) in (
        (401, "M_UNKNOWN_TOKEN"),
        (403, "M_FORBIDDEN"),
    ), body
    # ...while the new refresh token works.
    assert_status(server.post("refresh", json={"refresh_token": new["refresh_token"]}), 200)


def test_refresh_old_token_still_valid_until_new_one_used(server, user):
    data = _login_with_refresh(server, user)
    first = assert_status(server.post("refresh", json={"refresh_token": data["refresh_token"]}), 200)
    if "refresh_token" not in first:
        pytest.skip("server keeps the refresh token")
    # The new tokens haven't been used yet, so repeating the refresh works.
    second = assert_status(server.post("refresh", json={"refresh_token": data["refresh_token"]}), 200)
    assert_status(server.get("account/whoami", access_token=second["access_token"]), 200)


def test_refresh_unknown_token(server):
    resp = server.post("refresh", json={"refresh_token": "ct-bogus-" + uuid.uuid4().hex})
    assert_error(resp, 401, "M_UNKNOWN_TOKEN")


def test_refresh_missing_token(server):
    assert_error(server.post("refresh", json={}), 400, ("M_MISSING_PARAM", "M_BAD_JSON"))


def test_refresh_token_is_not_an_access_token(server, user):
    data = _login_with_refresh(server, user)
    resp = server.get("account/whoami", access_token=data["refresh_token"])
    assert_error(resp, 401, "M_UNKNOWN_TOKEN")


def test_access_token_is_not_a_refresh_token(server, user):
    data = _login_with_refresh(server, user)
    resp = server.post("refresh", json={"refresh_token": data["access_token"]})
    assert_error(resp, 401, "M_UNKNOWN_TOKEN")


def test_logout_invalidates_refresh_token(server, user):
    data = _login_with_refresh(server, user)
    assert_status(server.post("logout", json={}, access_token=data["access_token"]), 200)
    resp = server.post("refresh", json={"refresh_token": data["refresh_token"]})
    assert_error(resp, 401, "M_UNKNOWN_TOKEN")


# --------------------------------------------------------------------------
# m.login.token via POST /login/get_token
# --------------------------------------------------------------------------

GET_TOKEN = CLIENT_V1 + "/login/get_token"


def _require_get_login_token(user):
    caps = assert_status(user.get("capabilities"), 200)["capabilities"]
    if not caps.get("m.get_login_token", {}).get("enabled"):
        pytest.skip("m.get_login_token capability not enabled")


def test_get_login_token_advertised_in_login_flows(server, user):
    _require_get_login_token(user)
    flows = assert_status(server.get("login"), 200)["flows"]
    token_flows = [f for f in flows if f["type"] == "m.login.token"]
    assert token_flows and token_flows[0].get("get_login_token") is True, flows


def test_get_login_token_requires_uia(server, user):
    _require_get_login_token(user)
    uia = assert_uia_401(user.post(GET_TOKEN, json={}))
    assert any("m.login.password" in f for f in flow_stage_sets(uia)), uia


def test_get_login_token_requires_access_token(server):
    assert_error(server.post(GET_TOKEN, json={}), 401, "M_MISSING_TOKEN")


def test_login_token_single_use(server, user):
    _require_get_login_token(user)
    resp = user.uia_request("POST", GET_TOKEN)
    data = assert_status(resp, 200)
    assert isinstance(data.get("login_token"), str) and data["login_token"], data
    assert isinstance(data.get("expires_in_ms"), int) and data["expires_in_ms"] > 0, data

    first = server.login_raw({"type": "m.login.token", "token": data["login_token"]})
    got = assert_status(first, 200)
    assert got["user_id"] == user.user_id, got
    assert got["device_id"] != user.device_id, got
    assert_status(server.get("account/whoami", access_token=got["access_token"]), 200)

    again = server.login_raw({"type": "m.login.token", "token": data["login_token"]})
    assert_error(again, 403, "M_FORBIDDEN")


def test_get_login_token_wrong_password(server, user):
    _require_get_login_token(user)
    uia = assert_uia_401(user.post(GET_TOKEN, json={}))
    resp = user.post(GET_TOKEN, json={"auth": user.password_auth(uia.get("session"), "wrong-password")})
    state = assert_uia_401(resp)
    assert state.get("errcode") == "M_FORBIDDEN", state


def test_login_with_bogus_login_token(server):
    flows = assert_status(server.get("login"), 200)["flows"]
    if "m.login.token" not in [f["type"] for f in flows]:
        pytest.skip("server does not offer m.login.token")
    resp = server.login_raw({"type": "m.login.token", "token": "ct-bogus-" + uuid.uuid4().hex})
    assert_error(resp, 403, "M_FORBIDDEN")
