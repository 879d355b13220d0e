"""Logout: POST /logout and POST /logout/all.

Spec: client-server-api "Login" (logout endpoints), "Using access tokens".
"""

from ct import assert_error, assert_status


def test_logout_invalidates_token(user):
    other = user.login_again()
    assert_status(user.post("logout", json={}), 200)
    assert_error(user.whoami(), 401, "M_UNKNOWN_TOKEN")
    # Only that token/device is affected.
    who = assert_status(other.whoami(), 200)
    assert who["device_id"] == other.device_id


def test_logout_deletes_device(user):
    other = user.login_again()
    assert_status(other.post("logout", json={}), 200)
    ids = [d["device_id"] for d in assert_status(user.get("devices"), 200)["devices"]]
    assert other.device_id not in ids, ids
    assert user.device_id in ids, ids
    assert_error(user.get(f"devices/{other.device_id}"), 404, "M_NOT_FOUND")


def test_logout_twice(user):
    assert_status(user.post("logout", json={}), 200)
    assert_error(user.post("logout", json={}), 401, "M_UNKNOWN_TOKEN")


def test_logout_without_token(server):
    assert_error(server.post("logout", json={}), 401, "M_MISSING_TOKEN")


def test_logout_with_bogus_token(server):
    assert_error(server.post("logout", json={}, access_token="ct-bogus-token"), 401, "M_UNKNOWN_TOKEN")


def test_logout_all_kills_all_devices(user):
    others = [user.login_again(), user.login_again()]
    assert_status(others[0].post("logout/all", json={}), 200)
    for u in [user, *others]:
        assert_error(u.whoami(), 401, "M_UNKNOWN_TOKEN")
    # The account itself survives; a new login sees only the new device.
    fresh = user.login_again()
    ids = [d["device_id"] for d in assert_status(fresh.get("devices"), 200)["devices"]]
    assert ids == [fresh.device_id], ids


def test_logout_all_does_not_affect_other_users(user, user2):
    assert_status(user.post("logout/all", json={}), 200)
    assert_status(user2.whoami(), 200)


def test_logout_all_without_token(server):
    assert_error(server.post("logout/all", json={}), 401, "M_MISSING_TOKEN")


def test_password_still_works_after_logout(server, user):
    assert_status(user.post("logout", json={}), 200)
    again = user.login_again()
    assert_status(again.whoami(), 200)
