"""Device management: GET/PUT/DELETE /devices/{deviceId}, GET /devices, POST /delete_devices.

Spec: client-server-api "Device management".
"""

from ct import (
    assert_error,
    assert_status,
    assert_uia_401,
    flow_stage_sets,
)


def _device_ids(user):
    body = assert_status(user.get("devices"), 200)
    assert isinstance(body.get("devices"), list), body
    return [d["device_id"] for d in body["devices"]]


def _check_device_shape(dev):
    assert isinstance(dev, dict) and isinstance(dev.get("device_id"), str), dev
    # Optional fields: typed when present (null tolerated for "not set").
    if dev.get("display_name") is not None:
        assert isinstance(dev["display_name"], str), dev
    if dev.get("last_seen_ip") is not None:
        assert isinstance(dev["last_seen_ip"], str), dev
    if dev.get("last_seen_ts") is not None:
        assert isinstance(dev["last_seen_ts"], int), dev


def test_list_devices(user):
    other = user.login_again(initial_device_display_name="CT second")
    body = assert_status(user.get("devices"), 200)
    for dev in body["devices"]:
        _check_device_shape(dev)
    by_id = {d["device_id"]: d for d in body["devices"]}
    assert set(by_id) == {user.device_id, other.device_id}, by_id
    assert by_id[other.device_id].get("display_name") == "CT second", by_id


def test_devices_are_per_user(user, user2):
    assert user2.device_id not in _device_ids(user)
    assert user.device_id not in _device_ids(user2)


def test_get_device(user):
    dev = assert_status(user.get(f"devices/{user.device_id}"), 200)
    _check_device_shape(dev)
    assert dev["device_id"] == user.device_id


def test_get_unknown_device(user):
    assert_error(user.get("devices/CTNOSUCHDEVICE"), 404, "M_NOT_FOUND")


def test_get_other_users_device(user, user2):
    assert_error(user.get(f"devices/{user2.device_id}"), 404, "M_NOT_FOUND")


def test_update_device_display_name(user):
    resp = user.put(f"devices/{user.device_id}", json={"display_name": "CT renamed ✓"})
    assert_status(resp, 200)
    dev = assert_status(user.get(f"devices/{user.device_id}"), 200)
    assert dev.get("display_name") == "CT renamed ✓", dev
    listed = {d["device_id"]: d for d in assert_status(user.get("devices"), 200)["devices"]}
    assert listed[user.device_id].get("display_name") == "CT renamed ✓", listed


def test_update_device_without_display_name_keeps_it(user):
    assert_status(user.put(f"devices/{user.device_id}", json={"display_name": "Keep me"}), 200)
    assert_status(user.put(f"devices/{user.device_id}", json={}), 200)
    dev = assert_status(user.get(f"devices/{user.device_id}"), 200)
    assert dev.get("display_name") == "Keep me", dev


def test_update_unknown_device(user):
    # Creating devices through this endpoint is reserved to application services.
    resp = user.put("devices/CTNOSUCHDEVICE", json={"display_name": "x"})
    assert_error(resp, 404, "M_NOT_FOUND")
    assert "CTNOSUCHDEVICE" not in _device_ids(user)


def test_update_other_users_device(user, user2):
    assert_status(user2.put(f"devices/{user2.device_id}", json={"display_name": "mine"}), 200)
    resp = user.put(f"devices/{user2.device_id}", json={"display_name": "hijacked"})
    assert_error(resp, 404, "M_NOT_FOUND")
    dev = assert_status(user2.get(f"devices/{user2.device_id}"), 200)
    assert dev.get("display_name") == "mine", dev


def test_delete_device_requires_uia(user):
    other = user.login_again()
    uia = assert_uia_401(user.delete(f"devices/{other.device_id}", json={}))
    assert ["m.login.password"] in flow_stage_sets(uia), uia
    # Nothing happened yet.
    assert_status(other.whoami(), 200)
    assert other.device_id in _device_ids(user)


def test_delete_device_wrong_password(user):
    other = user.login_again()
    uia = assert_uia_401(user.delete(f"devices/{other.device_id}", json={}))
    resp = user.delete(
        f"devices/{other.device_id}",
        json={"auth": user.password_auth(uia.get("session"), "not-the-password")},
    )
    state = assert_uia_401(resp)
    assert state.get("errcode") == "M_FORBIDDEN", state
    assert_status(other.whoami(), 200)


def test_delete_device(user):
    other = user.login_again()
    assert_status(user.uia_request("DELETE", f"devices/{other.device_id}"), 200)
    # Deleting a device invalidates its access token...
    assert_error(other.whoami(), 401, "M_UNKNOWN_TOKEN")
    # ...and removes it.
    assert_error(user.get(f"devices/{other.device_id}"), 404, "M_NOT_FOUND")
    assert other.device_id not in _device_ids(user)
    assert_status(user.whoami(), 200)


def test_delete_own_current_device(user):
    keep = user.login_again()
    assert_status(user.uia_request("DELETE", f"devices/{user.device_id}"), 200)
    assert_error(user.whoami(), 401, "M_UNKNOWN_TOKEN")
    assert _device_ids(keep) == [keep.device_id]


def test_delete_unknown_device_is_ok(user):
    # "The device was successfully removed, or had been removed previously."
    assert_status(user.uia_request("DELETE", "devices/CTNOSUCHDEVICE"), 200)


def test_delete_other_users_device_does_nothing(user, user2):
    resp = user.uia_request("DELETE", f"devices/{user2.device_id}")
    assert resp.status_code in (200, 404), resp.text
    if resp.status_code == 404:
        assert_error(resp, 404, "M_NOT_FOUND")
    assert_status(user2.whoami(), 200)
    assert user2.device_id in _device_ids(user2)


def test_delete_devices_requires_uia(user):
    a = user.login_again()
    uia = assert_uia_401(user.post("delete_devices", json={"devices": [a.device_id]}))
    assert ["m.login.password"] in flow_stage_sets(uia), uia
    assert_status(a.whoami(), 200)


def test_delete_devices(user):
    a = user.login_again()
    b = user.login_again()
    keep = user.login_again()
    resp = user.uia_request("POST", "delete_devices", {"devices": [a.device_id, b.device_id]})
    assert_status(resp, 200)
    assert_error(a.whoami(), 401, "M_UNKNOWN_TOKEN")
    assert_error(b.whoami(), 401, "M_UNKNOWN_TOKEN")
    assert_status(user.whoami(), 200)
    assert_status(keep.whoami(), 200)
    assert sorted(_device_ids(user)) == sorted([user.device_id, keep.device_id])


def test_delete_devices_with_unknown_ids(user):
    a = user.login_again()
    resp = user.uia_request("POST", "delete_devices", {"devices": [a.device_id, "CTNOSUCHDEVICE"]})
    assert_status(resp, 200)
    assert_error(a.whoami(), 401, "M_UNKNOWN_TOKEN")


def test_delete_devices_missing_devices(user):
    # Validation may happen before or after UIA; uia_request handles both.
    resp = user.uia_request("POST", "delete_devices", {})
    assert_error(resp, 400, ("M_MISSING_PARAM", "M_BAD_JSON"))


def test_device_endpoints_need_auth(server):
    assert_error(server.get("devices"), 401, "M_MISSING_TOKEN")
    assert_error(server.put("devices/X", json={}), 401, "M_MISSING_TOKEN")
    assert_error(server.request("DELETE", "devices/X", json={}), 401, "M_MISSING_TOKEN")
    assert_error(server.post("delete_devices", json={"devices": []}), 401, "M_MISSING_TOKEN")
