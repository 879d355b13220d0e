"""Account deactivation: POST /account/deactivate.

Spec: client-server-api "Account deactivation".
"""

from ct import assert_error, assert_status, assert_uia_401, flow_stage_sets


def test_deactivate_requires_uia(user):
    uia = assert_uia_401(user.post("account/deactivate", json={}))
    assert ["m.login.password"] in flow_stage_sets(uia), uia
    assert_status(user.whoami(), 200)


def test_deactivate_wrong_password(user):
    uia = assert_uia_401(user.post("account/deactivate", json={}))
    resp = user.post(
        "account/deactivate", json={"auth": user.password_auth(uia.get("session"), "wrong-password")}
    )
    state = assert_uia_401(resp)
    assert state.get("errcode") == "M_FORBIDDEN", state
    assert_status(user.whoami(), 200)


def test_deactivate(server, user):
    other = user.login_again()
    resp = user.uia_request("POST", "account/deactivate", {})
    body = assert_status(resp, 200)
    assert body.get("id_server_unbind_result") in ("success", "no-support"), body

    # All tokens are gone...
    assert_error(user.whoami(), 401, "M_UNKNOWN_TOKEN")
    assert_error(other.whoami(), 401, "M_UNKNOWN_TOKEN")
    # ...the password no longer logs in...
    resp = server.login_raw(
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user.user_id},
            "password": user.password,
        }
    )
    assert_error(resp, 403, ("M_USER_DEACTIVATED", "M_FORBIDDEN"))
    # ...and the user ID can never be registered again.
    assert_error(
        server.get("register/available", params={"username": user.localpart}), 400, "M_USER_IN_USE"
    )
    assert_error(server.register_raw(user.localpart), 400, "M_USER_IN_USE")


def test_deactivate_does_not_affect_other_users(user, user2):
    assert_status(user.uia_request("POST", "account/deactivate", {}), 200)
    assert_status(user2.whoami(), 200)


def test_deactivate_without_access_token(server):
    # The spec lets this endpoint be used without an access token (UIA alone,
    # with flows that may differ); Synapse requires a token. Either way: 401.
    resp = server.post("account/deactivate", json={})
    if "flows" in resp.json():
        assert_uia_401(resp)
    else:
        assert_error(resp, 401, "M_MISSING_TOKEN")
