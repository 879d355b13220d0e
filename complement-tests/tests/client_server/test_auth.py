"""Access-token authentication and /account/whoami.

Spec: client-server-api "Using access tokens", GET /account/whoami.
(Access tokens in the query string are no longer supported by the spec, so
the suite deliberately does not test them either way.)
"""

import pytest

from ct import assert_error, assert_status

AUTHED_GETS = ["account/whoami", "devices", "devices/CTSOMEDEVICE", "capabilities"]


@pytest.mark.parametrize("path", AUTHED_GETS)
def test_missing_token(server, path):
    assert_error(server.get(path), 401, "M_MISSING_TOKEN")


@pytest.mark.parametrize("path", AUTHED_GETS)
def test_unknown_token(server, path):
    resp = server.get(path, access_token="ct_definitely_not_a_token")
    body = assert_error(resp, 401, "M_UNKNOWN_TOKEN")
    if "soft_logout" in body:
        assert isinstance(body["soft_logout"], bool), body


def test_non_bearer_authorization_header(server):
    resp = server.get("account/whoami", headers={"Authorization": "Basic Y3Q6Y3Q="})
    assert_error(resp, 401, ("M_MISSING_TOKEN", "M_UNKNOWN_TOKEN"))


def test_token_from_other_server_rejected(open_server, token_server):
    """Two independent servers: a token of one means nothing to the other."""
    other = token_server.register()
    resp = open_server.get("account/whoami", access_token=other.access_token)
    assert_error(resp, 401, "M_UNKNOWN_TOKEN")


def test_whoami(user):
    body = assert_status(user.whoami(), 200)
    assert body["user_id"] == user.user_id, body
    assert body["device_id"] == user.device_id, body
    # is_guest: absent or false for a normal user.
    assert body.get("is_guest", False) is False, body


def test_whoami_user_id_shape(user):
    body = assert_status(user.whoami(), 200)
    localpart, server_name = body["user_id"][1:].split(":", 1)
    assert body["user_id"].startswith("@") and localpart and server_name, body
    assert localpart == user.localpart, body


def test_each_device_has_own_token(user):
    other = user.login_again()
    a = assert_status(user.whoami(), 200)
    b = assert_status(other.whoami(), 200)
    assert a["user_id"] == b["user_id"]
    assert a["device_id"] != b["device_id"]
