"""Malformed requests: not JSON, wrong JSON types, missing fields.

Spec: client-server-api "Standard error response" / "Common error codes"
(M_NOT_JSON, M_BAD_JSON, M_MISSING_PARAM, M_INVALID_PARAM). A malformed
request must get a 4xx error and must not change anything.
"""

import json

import pytest

from ct import DEFAULT_PASSWORD, assert_error, assert_status, q, unique_localpart

NOT_JSON_BODIES = {
    "garbage": b"{this is not json",
    "truncated": b'{"type": "m.login.password"',
    "invalid_utf8": b"\xff\xfe\xfd",
    "empty": b"",
}

# Errcodes for "valid JSON, but of the wrong type".
WRONG_TYPE = ("M_BAD_JSON", "M_INVALID_PARAM")
MISSING = ("M_MISSING_PARAM", "M_BAD_JSON")


def _unauth_endpoints():
    return [("POST", "login"), ("POST", "register"), ("POST", "refresh")]


def _auth_endpoints(user):
    return [
        ("PUT", f"profile/{q(user.user_id)}/displayname"),
        ("PUT", f"user/{q(user.user_id)}/account_data/org.example.ct.bad"),
        ("POST", f"user/{q(user.user_id)}/filter"),
        ("PUT", f"devices/{q(user.device_id)}"),
        ("POST", "account/deactivate"),
    ]


@pytest.mark.parametrize("kind", sorted(NOT_JSON_BODIES))
@pytest.mark.parametrize("method,path", _unauth_endpoints())
def test_not_json_unauthenticated(server, method, path, kind):
    resp = server.request(
        method, path, data=NOT_JSON_BODIES[kind], headers={"Content-Type": "application/json"}
    )
    assert_error(resp, 400, "M_NOT_JSON")


@pytest.mark.parametrize("kind", ["garbage", "truncated", "invalid_utf8"])
def test_not_json_authenticated(user, kind):
    for method, path in _auth_endpoints(user):
        resp = user.request(
            method, path, data=NOT_JSON_BODIES[kind], headers={"Content-Type": "application/json"}
        )
        assert_error(resp, 400, "M_NOT_JSON")
    # Nothing happened: the account is still active.
    assert_status(user.whoami(), 200)


@pytest.mark.parametrize("body", [[], ["a"], "string", 42, None, True], ids=repr)
@pytest.mark.parametrize("path", ["login", "register"])
def test_json_not_an_object(server, path, body):
    resp = server.post(path, data=json.dumps(body), headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "M_BAD_JSON")


def test_json_not_an_object_authenticated(user):
    for method, path in _auth_endpoints(user):
        if path == "account/deactivate":
            continue
        resp = user.request(method, path, json=[1, 2, 3])
        assert_error(resp, 400, "M_BAD_JSON")


@pytest.mark.parametrize(
    "body",
    [
        {"type": 5, "identifier": {"type": "m.id.user", "user": "x"}, "password": "x"},
        {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "x"}, "password": 12345},
        {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "x"}, "password": {"p": 1}},
        {"type": "m.login.password", "user": "x", "password": ["x"]},
    ],
    ids=["type_int", "password_int", "password_object", "password_list"],
)
def test_login_wrong_types(server, body):
    assert_error(server.login_raw(body), 400, WRONG_TYPE)


def test_login_identifier_missing_type(server):
    body = {"type": "m.login.password", "identifier": {"user": "x"}, "password": "x"}
    resp = server.login_raw(body)
    # Missing required key inside the identifier object.
    assert_error(resp, 400, ("M_MISSING_PARAM", "M_BAD_JSON", "M_INVALID_PARAM", "M_UNKNOWN"))


def test_device_display_name_wrong_type(user):
    assert_status(user.put(f"devices/{user.device_id}", json={"display_name": "CT good"}), 200)
    resp = user.put(f"devices/{user.device_id}", json={"display_name": 5})
    assert_error(resp, 400, WRONG_TYPE)
    dev = assert_status(user.get(f"devices/{user.device_id}"), 200)
    assert dev.get("display_name") == "CT good", dev


def test_change_password_wrong_type(user):
    resp = user.uia_request("POST", "account/password", {"new_password": 5})
    assert_error(resp, 400, WRONG_TYPE)
    # The old password still works.
    assert_status(
        user.server.login_raw(
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user.user_id},
                "password": user.password,
            }
        ),
        200,
    )


def test_delete_devices_wrong_type(user):
    resp = user.uia_request("POST", "delete_devices", {"devices": user.device_id})
    assert_error(resp, 400, WRONG_TYPE)
    assert_status(user.whoami(), 200)


def test_refresh_token_wrong_type(server):
    assert_error(server.post("refresh", json={"refresh_token": 5}), 400, WRONG_TYPE)


def test_bad_displayname_put_changes_nothing(user):
    path = f"profile/{q(user.user_id)}/displayname"
    assert_status(user.put(path, json={"displayname": "CT Stable"}), 200)
    for bad in ({"displayname": 42}, {"displayname": ["x"]}, {"displayname": {"x": 1}}):
        assert_error(user.put(path, json=bad), 400, WRONG_TYPE)
    assert_error(user.put(path, json={}), 400, MISSING)
    assert_error(user.put(path, data="{nope"), 400, "M_NOT_JSON")
    assert assert_status(user.get(path), 200) == {"displayname": "CT Stable"}


def test_avatar_url_wrong_type(user):
    path = f"profile/{q(user.user_id)}/avatar_url"
    assert_error(user.put(path, json={"avatar_url": 5}), 400, WRONG_TYPE)


def test_missing_required_fields(user):
    assert_error(user.post("refresh", json={}), 400, MISSING)
    assert_error(user.uia_request("POST", "delete_devices", {}), 400, MISSING)
    assert_error(user.put(f"profile/{q(user.user_id)}/displayname", json={}), 400, MISSING)


def test_failed_registration_creates_nothing(server):
    name = unique_localpart()
    resp = server.post(
        "register",
        data=b'{"username": "' + name.encode() + b'", "password": ',
        headers={"Content-Type": "application/json"},
    )
    assert_error(resp, 400, "M_NOT_JSON")
    body = assert_status(server.get("register/available", params={"username": name}), 200)
    assert body.get("available") is True, body


# A small corpus of odd-but-valid JSON bodies: the server must answer each with
# a 4xx standard error (never 5xx, never success).
ODD_LOGIN_BODIES = [
    {},
    {"a": None},
    {"type": None},
    {"type": "m.login.password"},
    {"type": "m.login.password", "identifier": "a-string", "password": "x"},
    {"type": "m.login.password", "identifier": {"type": "m.id.user"}, "password": "x"},
    {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": ""}, "password": "x"},
    {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "@bad user:x"}, "password": "x"},
    {"type": "m.login.password", "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "nobody@example.org"}, "password": "x"},
    {"type": "m.login.token"},
    {"type": "m.login.token", "token": 5},
    {"type": "m.login.dummy"},
    {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "x" * 5000}, "password": "y" * 5000},
]


@pytest.mark.parametrize("body", ODD_LOGIN_BODIES, ids=[str(i) for i in range(len(ODD_LOGIN_BODIES))])
def test_odd_login_bodies_are_clean_4xx(server, body):
    resp = server.login_raw(body)
    assert 400 <= resp.status_code < 500, f"{resp.status_code} {resp.text}"
    data = resp.json()
    assert isinstance(data.get("errcode"), str) and data["errcode"].startswith("M_"), data


ODD_REGISTER_BODIES = [
    {"username": None, "password": DEFAULT_PASSWORD, "auth": {"type": "m.login.dummy"}},
    {"username": ["x"], "password": DEFAULT_PASSWORD, "auth": {"type": "m.login.dummy"}},
    {"username": "ct_ok", "password": None, "auth": {"type": "m.login.dummy"}},
    {"auth": "not-an-object"},
    {"auth": {"type": 5}},
    {"auth": {"session": 5, "type": "m.login.dummy"}},
    {"inhibit_login": "yes", "auth": {"type": "m.login.dummy"}},
    {"device_id": 5, "auth": {"type": "m.login.dummy"}},
]


@pytest.mark.parametrize("body", ODD_REGISTER_BODIES, ids=[str(i) for i in range(len(ODD_REGISTER_BODIES))])
def test_odd_register_bodies_never_5xx(server, body):
    resp = server.post("register", json=body)
    assert resp.status_code < 500, f"{resp.status_code} {resp.text}"
    if resp.status_code >= 400:
        data = resp.json()
        assert isinstance(data.get("errcode"), str) or "flows" in data, data
