"""Password management: POST /account/password.

Spec: client-server-api "Password management", "m.change_password capability".
"""

import pytest

from ct import assert_error, assert_status, assert_uia_401, flow_stage_sets

NEW_PASSWORD = "Brand-New-Passw0rd!"


@pytest.fixture(autouse=True)
def _skip_if_disabled(user):
    caps = assert_status(user.get("capabilities"), 200)["capabilities"]
    if caps.get("m.change_password", {}).get("enabled", True) is False:
        pytest.skip("m.change_password disabled")


def _login_status(server, user_id, password):
    return server.login_raw(
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user_id},
            "password": password,
        }
    )


def test_change_password_requires_uia(user):
    uia = assert_uia_401(user.post("account/password", json={"new_password": NEW_PASSWORD}))
    assert ["m.login.password"] in flow_stage_sets(uia), uia
    # Not changed.
    assert_status(_login_status(user.server, user.user_id, user.password), 200)


def test_change_password_wrong_current_password(user):
    uia = assert_uia_401(user.post("account/password", json={"new_password": NEW_PASSWORD}))
    resp = user.post(
        "account/password",
        json={"new_password": NEW_PASSWORD, "auth": user.password_auth(uia.get("session"), "wrong-pw")},
    )
    state = assert_uia_401(resp)
    assert state.get("errcode") == "M_FORBIDDEN", state
    assert_status(_login_status(user.server, user.user_id, user.password), 200)
    assert_error(_login_status(user.server, user.user_id, NEW_PASSWORD), 403, "M_FORBIDDEN")


def test_change_password(user):
    old = user.password
    resp = user.uia_request("POST", "account/password", {"new_password": NEW_PASSWORD})
    assert_status(resp, 200)
    assert_error(_login_status(user.server, user.user_id, old), 403, "M_FORBIDDEN")
    data = assert_status(_login_status(user.server, user.user_id, NEW_PASSWORD), 200)
    assert data["user_id"] == user.user_id
    # The token used for the request SHOULD NOT be revoked.
    assert_status(user.whoami(), 200)


def test_change_password_logs_out_other_devices_by_default(user):
    other = user.login_again()
    resp = user.uia_request("POST", "account/password", {"new_password": NEW_PASSWORD})
    assert_status(resp, 200)
    assert_error(other.whoami(), 401, "M_UNKNOWN_TOKEN")
    assert_status(user.whoami(), 200)
    ids = [d["device_id"] for d in assert_status(user.get("devices"), 200)["devices"]]
    assert ids == [user.device_id], ids


def test_change_password_logout_devices_true(user):
    other = user.login_again()
    resp = user.uia_request(
        "POST", "account/password", {"new_password": NEW_PASSWORD, "logout_devices": True}
    )
    assert_status(resp, 200)
    assert_error(other.whoami(), 401, "M_UNKNOWN_TOKEN")
    assert_status(user.whoami(), 200)


def test_change_password_logout_devices_false(user):
    other = user.login_again()
    resp = user.uia_request(
        "POST", "account/password", {"new_password": NEW_PASSWORD, "logout_devices": False}
    )
    assert_status(resp, 200)
    assert_status(other.whoami(), 200)
    assert_status(user.whoami(), 200)
    assert_status(_login_status(user.server, user.user_id, NEW_PASSWORD), 200)


def test_change_password_uia_with_old_password_after_change_fails(user):
    assert_status(user.uia_request("POST", "account/password", {"new_password": NEW_PASSWORD}), 200)
    # UIA now needs the new password.
    resp = user.uia_request("POST", "account/password", {"new_password": "Third-Passw0rd!"})
    state = assert_uia_401(resp)
    assert state.get("errcode") == "M_FORBIDDEN", state
    user.password = NEW_PASSWORD
    assert_status(user.uia_request("POST", "account/password", {"new_password": "Third-Passw0rd!"}), 200)


def test_change_password_without_access_token_needs_uia(server):
    # The flows may differ without a token, but it is still UIA-protected.
    resp = server.post("account/password", json={"new_password": NEW_PASSWORD})
    assert_uia_401(resp)
