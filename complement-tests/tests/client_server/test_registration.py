"""Account registration (legacy API), registration tokens and shared-secret registration.

Spec: client-server-api "User-Interactive Authentication API", "Token-authenticated
registration", POST /register, GET /register/available,
GET /register/m.login.registration_token/validity.
Shared-secret registration is the Synapse-compatible admin API
(/_synapse/admin/v1/register), which Roost also implements.
"""

import uuid

import pytest

from ct import (
    DEFAULT_PASSWORD,
    assert_error,
    assert_error_status,
    assert_status,
    assert_uia_401,
    flow_stage_sets,
    is_valid_new_user_id,
    server_name_of,
    unique_localpart,
)

VALIDITY = "/_matrix/client/v1/register/m.login.registration_token/validity"


def _available(server, localpart):
    return server.get("register/available", params={"username": localpart})


def _assert_available(server, localpart):
    body = assert_status(_available(server, localpart), 200)
    assert body == {"available": True} or body.get("available") is True, body


def _assert_taken(server, localpart):
    assert_error(_available(server, localpart), 400, "M_USER_IN_USE")


# --------------------------------------------------------------------------
# Open server: m.login.dummy
# --------------------------------------------------------------------------


def test_register_dummy_flow_full_uia(open_server):
    name = unique_localpart()
    body = {"username": name, "password": DEFAULT_PASSWORD}

    # Stage 0: no auth -> 401 with flows and a session; nothing registered yet.
    uia = assert_uia_401(open_server.post("register", json=body))
    assert ["m.login.dummy"] in flow_stage_sets(uia), uia["flows"]
    assert isinstance(uia.get("session"), str) and uia["session"], uia
    assert "errcode" not in uia, uia
    _assert_available(open_server, name)

    # Stage 1: dummy auth with the session -> registered and logged in.
    resp = open_server.post(
        "register", json={**body, "auth": {"type": "m.login.dummy", "session": uia["session"]}}
    )
    data = assert_status(resp, 200)
    assert is_valid_new_user_id(data["user_id"]), data
    # SHOULD be based on the requested username (valid names need no mapping).
    assert data["user_id"].startswith(f"@{name}:"), data
    assert isinstance(data.get("access_token"), str) and data["access_token"], data
    assert isinstance(data.get("device_id"), str) and data["device_id"], data

    who = assert_status(
        open_server.get("account/whoami", access_token=data["access_token"]), 200
    )
    assert who["user_id"] == data["user_id"], who
    assert who["device_id"] == data["device_id"], who
    _assert_taken(open_server, name)


def test_register_401_shape(open_server):
    uia = assert_uia_401(
        open_server.post("register", json={"username": unique_localpart(), "password": "x" * 12})
    )
    assert isinstance(uia["flows"], list) and uia["flows"], uia
    # `params` and `session` are optional in the schema but, if present, typed.
    assert isinstance(uia.get("params", {}), dict), uia
    assert "completed" not in uia or uia["completed"] == [], uia


def test_register_dummy_twice_same_session_is_not_two_accounts(open_server):
    """Retrying a completed UIA session returns the result or a 401, never a new user."""
    name = unique_localpart()
    body = {"username": name, "password": DEFAULT_PASSWORD}
    uia = assert_uia_401(open_server.post("register", json=body))
    auth = {"type": "m.login.dummy", "session": uia["session"]}
    first = assert_status(open_server.post("register", json={**body, "auth": auth}), 200)
    again = open_server.post("register", json={**body, "auth": auth})
    if again.status_code == 200:
        assert again.json()["user_id"] == first["user_id"], again.text
    else:
        # A 401 with UIA state, or a 400 (e.g. M_USER_IN_USE / unknown session).
        assert again.status_code in (400, 401), again.text
        assert isinstance(again.json().get("errcode", ""), str), again.text


def test_register_with_device_id_and_display_name(open_server):
    name = unique_localpart()
    resp = open_server.register_raw(
        name,
        device_id="CTDEVICE1",
        extra={"initial_device_display_name": "CT test phone"},
    )
    data = assert_status(resp, 200)
    assert data["device_id"] == "CTDEVICE1", data
    dev = assert_status(
        open_server.get("devices/CTDEVICE1", access_token=data["access_token"]), 200
    )
    assert dev["device_id"] == "CTDEVICE1", dev
    assert dev.get("display_name") == "CT test phone", dev


def test_register_inhibit_login(open_server):
    name = unique_localpart()
    resp = open_server.register_raw(name, extra={"inhibit_login": True})
    data = assert_status(resp, 200)
    assert data["user_id"].startswith("@"), data
    assert "access_token" not in data, data
    assert "device_id" not in data, data
    assert "refresh_token" not in data, data
    _assert_taken(open_server, name)
    # The account exists and can log in with its password.
    user = open_server.login(data["user_id"], DEFAULT_PASSWORD)
    assert user.user_id == data["user_id"]


def test_register_without_username_generates_one(open_server):
    resp = open_server.register_raw(None)
    data = assert_status(resp, 200)
    assert is_valid_new_user_id(data["user_id"]), data


def test_register_available_true_for_unused_name(open_server):
    _assert_available(open_server, unique_localpart())


def test_register_available_false_for_taken_name(open_server, user):
    assert_error(_available(open_server, user.localpart), 400, "M_USER_IN_USE")


def test_register_available_missing_param(open_server):
    assert_error(open_server.get("register/available"), 400, ("M_MISSING_PARAM", "M_INVALID_PARAM"))


def test_register_taken_name_rejected_before_uia(open_server, user):
    # "Homeservers MUST perform the relevant checks and return these codes
    # before performing User-Interactive Authentication".
    resp = open_server.post("register", json={"username": user.localpart, "password": "pw-12345678"})
    assert_error(resp, 400, "M_USER_IN_USE")


def test_register_taken_name_rejected_with_auth(open_server, user):
    resp = open_server.register_raw(user.localpart, "another-Password-1")
    assert_error(resp, 400, "M_USER_IN_USE")
    # The original account still has its own password.
    open_server.login(user.user_id, user.password)


def _too_long_localpart(server_name: str) -> str:
    # "@" + localpart + ":" + server_name must exceed 255 bytes.
    return "a" * (256 - len(server_name) - 2 + 1)


INVALID_NAMES = {
    "uppercase": lambda sn: "CT_Upper" + uuid.uuid4().hex[:6],
    "space": lambda sn: "ct with space " + uuid.uuid4().hex[:6],
    "at_sign": lambda sn: "ct@" + uuid.uuid4().hex[:6],
    "colon": lambda sn: "ct:" + uuid.uuid4().hex[:6],
    "too_long": _too_long_localpart,
}


@pytest.mark.parametrize("kind", sorted(INVALID_NAMES))
def test_register_invalid_username(open_server, user, kind):
    """Invalid localparts are rejected with M_INVALID_USERNAME...

    ...or, as the spec also allows, mapped "in a logical manner" onto a valid
    user ID. Either way no invalid user ID may ever be created.
    """
    name = INVALID_NAMES[kind](user.server_name)
    resp = open_server.register_raw(name, "pw-" + uuid.uuid4().hex)
    if resp.status_code == 200:
        uid = resp.json()["user_id"]
        assert is_valid_new_user_id(uid), f"server created invalid user ID {uid!r}"
        assert server_name_of(uid) == user.server_name, uid
    else:
        assert_error(resp, 400, "M_INVALID_USERNAME")


@pytest.mark.parametrize("kind", sorted(INVALID_NAMES))
def test_register_available_invalid_username(open_server, user, kind):
    name = INVALID_NAMES[kind](user.server_name)
    resp = _available(open_server, name)
    if resp.status_code == 200:
        # Only acceptable if the server maps such names onto valid IDs.
        assert resp.json().get("available") is True, resp.text
    else:
        assert_error(resp, 400, "M_INVALID_USERNAME")


def test_register_with_unknown_uia_session(open_server):
    """An unknown session ID never completes registration.

    The spec does not pin the response: a 401 with UIA state (the stage was not
    completed) or a 400 error are both reasonable (Synapse: 400 M_UNKNOWN).
    """
    name = unique_localpart()
    resp = open_server.post(
        "register",
        json={
            "username": name,
            "password": DEFAULT_PASSWORD,
            "auth": {"type": "m.login.dummy", "session": "ct-no-such-session-" + uuid.uuid4().hex},
        },
    )
    assert resp.status_code in (400, 401), resp.text
    body = resp.json()
    if resp.status_code == 401:
        assert_uia_401(resp)
    else:
        assert isinstance(body.get("errcode"), str), body
    _assert_available(open_server, name)


def test_register_unknown_auth_type_fails(open_server):
    name = unique_localpart()
    body = {"username": name, "password": DEFAULT_PASSWORD}
    uia = assert_uia_401(open_server.post("register", json=body))
    resp = open_server.post(
        "register",
        json={**body, "auth": {"type": "org.example.ct.bogus", "session": uia["session"]}},
    )
    assert resp.status_code in (400, 401), resp.text
    if resp.status_code == 401:
        assert_uia_401(resp)
    else:
        assert_error_status(resp, 400)
    _assert_available(open_server, name)


def test_register_guest(open_server):
    resp = open_server.post("register", params={"kind": "guest"}, json={})
    if resp.status_code == 403:
        # Guest registration is optional; 403 says this kind isn't allowed.
        body = resp.json()
        assert isinstance(body.get("errcode"), str), body
        pytest.skip(f"guest registration disabled: {body.get('errcode')} {body.get('error')}")
    data = assert_status(resp, 200)
    assert data["user_id"].startswith("@"), data
    assert isinstance(data.get("access_token"), str), data
    assert isinstance(data.get("device_id"), str), data
    who = assert_status(open_server.get("account/whoami", access_token=data["access_token"]), 200)
    assert who["user_id"] == data["user_id"], who
    assert who.get("is_guest") is True, who


def test_register_guest_ignores_username(open_server):
    name = unique_localpart()
    resp = open_server.post(
        "register", params={"kind": "guest"}, json={"username": name, "password": "pw-123456789"}
    )
    if resp.status_code == 403:
        pytest.skip("guest registration disabled")
    data = assert_status(resp, 200)
    # All parameters but initial_device_display_name MUST be ignored.
    assert not data["user_id"].startswith(f"@{name}:"), data
    _assert_available(open_server, name)


# --------------------------------------------------------------------------
# Token server: m.login.registration_token
# --------------------------------------------------------------------------


def test_token_server_flows_require_registration_token(token_server):
    uia = token_server.register_flows()
    flows = flow_stage_sets(uia)
    assert any("m.login.registration_token" in f for f in flows), flows
    # Registration on this server requires a token: no flow may skip it.
    assert all("m.login.registration_token" in f for f in flows), flows


def test_token_server_dummy_alone_does_not_register(token_server):
    name = unique_localpart()
    body = {"username": name, "password": DEFAULT_PASSWORD}
    uia = assert_uia_401(token_server.post("register", json=body))
    resp = token_server.post(
        "register", json={**body, "auth": {"type": "m.login.dummy", "session": uia["session"]}}
    )
    assert resp.status_code in (400, 401), resp.text
    if resp.status_code == 401:
        state = assert_uia_401(resp)
        assert "m.login.registration_token" not in state.get("completed", []), state
    _assert_available(token_server, name)


def test_token_server_wrong_token_rejected(token_server):
    name = unique_localpart()
    body = {"username": name, "password": DEFAULT_PASSWORD}
    uia = assert_uia_401(token_server.post("register", json=body))
    resp = token_server.post(
        "register",
        json={
            **body,
            "auth": {
                "type": "m.login.registration_token",
                "token": "ctwrong" + uuid.uuid4().hex[:8],
                "session": uia["session"],
            },
        },
    )
    # A failed stage: 401 with the UIA state plus errcode/error, stage not completed.
    state = assert_uia_401(resp)
    assert state.get("errcode") in ("M_UNAUTHORIZED", "M_FORBIDDEN"), state
    assert "m.login.registration_token" not in state.get("completed", []), state
    _assert_available(token_server, name)


def test_token_server_good_token_registers(token_server):
    token = token_server.new_token(uses_allowed=1)
    name = unique_localpart()
    user = token_server.register(name, token=token)
    assert user.user_id.startswith(f"@{name}:"), user.user_id
    who = assert_status(user.whoami(), 200)
    assert who["user_id"] == user.user_id
    _assert_taken(token_server, name)


def test_token_server_custom_token_string(token_server):
    token = "ct" + uuid.uuid4().hex[:12]
    created = token_server.new_token(uses_allowed=None, token=token)
    assert created == token
    body = assert_status(token_server.get(VALIDITY, params={"token": token}), 200)
    assert body == {"valid": True}, body
    token_server.register(token=token)


def test_registration_token_validity(token_server):
    token = token_server.new_token(uses_allowed=5)
    body = assert_status(token_server.get(VALIDITY, params={"token": token}), 200)
    assert body["valid"] is True, body
    body = assert_status(
        token_server.get(VALIDITY, params={"token": "ctnope" + uuid.uuid4().hex[:8]}), 200
    )
    assert body["valid"] is False, body


def test_registration_token_validity_missing_token(token_server):
    assert_error(token_server.get(VALIDITY), 400, ("M_MISSING_PARAM", "M_INVALID_PARAM"))


def test_registration_token_uses_allowed_is_honoured(token_server):
    token = token_server.new_token(uses_allowed=1)
    token_server.register(token=token)
    body = assert_status(token_server.get(VALIDITY, params={"token": token}), 200)
    assert body["valid"] is False, f"used-up token still valid: {body}"

    name = unique_localpart()
    b = {"username": name, "password": DEFAULT_PASSWORD}
    uia = assert_uia_401(token_server.post("register", json=b))
    resp = token_server.post(
        "register",
        json={
            **b,
            "auth": {"type": "m.login.registration_token", "token": token, "session": uia["session"]},
        },
    )
    state = assert_uia_401(resp)
    assert state.get("errcode") in ("M_UNAUTHORIZED", "M_FORBIDDEN"), state
    _assert_available(token_server, name)


def test_registration_token_two_uses(token_server):
    token = token_server.new_token(uses_allowed=2)
    token_server.register(token=token)
    body = assert_status(token_server.get(VALIDITY, params={"token": token}), 200)
    assert body["valid"] is True, body
    token_server.register(token=token)
    body = assert_status(token_server.get(VALIDITY, params={"token": token}), 200)
    assert body["valid"] is False, body


def test_token_server_register_available_needs_no_token(token_server):
    _assert_available(token_server, unique_localpart())


# --------------------------------------------------------------------------
# Shared-secret (admin) registration: /_synapse/admin/v1/register
# --------------------------------------------------------------------------


def test_shared_secret_nonce_flow(open_server, shared_secret):
    name = unique_localpart("ct_ss_")
    resp = open_server.admin_register_raw(name, DEFAULT_PASSWORD, admin=False, shared_secret=shared_secret)
    data = assert_status(resp, 200)
    assert data["user_id"].startswith(f"@{name}:"), data
    assert isinstance(data.get("access_token"), str), data
    who = assert_status(open_server.get("account/whoami", access_token=data["access_token"]), 200)
    assert who["user_id"] == data["user_id"], who
    # The account is an ordinary password account.
    open_server.login(name, DEFAULT_PASSWORD)


def test_shared_secret_works_on_token_server(token_server, shared_secret):
    # Shared-secret registration bypasses the registration-token requirement.
    admin = token_server.admin_register(shared_secret, admin=False)
    assert_status(admin.whoami(), 200)


def test_shared_secret_nonce_is_fresh(open_server):
    a = open_server.get_register_nonce()
    b = open_server.get_register_nonce()
    assert a != b


def test_shared_secret_bad_mac_rejected(open_server):
    name = unique_localpart("ct_ss_")
    nonce = open_server.get_register_nonce()
    resp = open_server.admin_register_raw(name, nonce=nonce, mac="00" * 20)
    # Spec-less Synapse admin API; Synapse answers 403 M_UNKNOWN ("HMAC incorrect").
    body = assert_error_status(resp, 403)
    assert body["errcode"] in ("M_FORBIDDEN", "M_UNKNOWN"), body
    _assert_available(open_server, name)


def test_shared_secret_wrong_secret_rejected(open_server):
    name = unique_localpart("ct_ss_")
    resp = open_server.admin_register_raw(name, shared_secret="not-the-secret-" + uuid.uuid4().hex)
    body = assert_error_status(resp, 403)
    assert body["errcode"] in ("M_FORBIDDEN", "M_UNKNOWN"), body
    _assert_available(open_server, name)


def test_shared_secret_nonce_cannot_be_reused(open_server):
    nonce = open_server.get_register_nonce()
    first = unique_localpart("ct_ss_")
    assert_status(open_server.admin_register_raw(first, nonce=nonce), 200)
    second = unique_localpart("ct_ss_")
    resp = open_server.admin_register_raw(second, nonce=nonce)
    assert_error_status(resp, (400, 403))
    _assert_available(open_server, second)


def test_shared_secret_unknown_nonce_rejected(open_server):
    name = unique_localpart("ct_ss_")
    resp = open_server.admin_register_raw(name, nonce="ct-unknown-nonce-" + uuid.uuid4().hex)
    assert_error_status(resp, (400, 403))
    _assert_available(open_server, name)


def test_shared_secret_taken_name(open_server, user):
    resp = open_server.admin_register_raw(user.localpart)
    assert_error(resp, 400, "M_USER_IN_USE")


def test_shared_secret_invalid_name(open_server):
    resp = open_server.admin_register_raw("CT Bad Name")
    assert_error(resp, 400, "M_INVALID_USERNAME")


def test_non_admin_cannot_create_registration_tokens(token_server, shared_secret):
    normal = token_server.admin_register(shared_secret, admin=False)
    resp = normal.post("/_synapse/admin/v1/registration_tokens/new", json={"uses_allowed": 1})
    assert_error(resp, 403, "M_FORBIDDEN")
