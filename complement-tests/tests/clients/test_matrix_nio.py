"""A real client library against the server: matrix-nio (without e2e).

nio is strict about response shapes (it validates them with JSON schemas), so
this catches responses that are spec-shaped "enough" for our own helpers but
not for real clients, e.g. UIA 401s without `params`, or device entries
without the `display_name` / `last_seen_ip` / `last_seen_ts` keys.
"""

import asyncio
import uuid

import pytest

nio = pytest.importorskip("nio")

from ct import DEFAULT_PASSWORD, assert_status, flow_stage_sets, unique_localpart  # noqa: E402


def _ok(resp, cls):
    assert isinstance(resp, cls), f"expected {cls.__name__}, got {type(resp).__name__}: {resp}"
    return resp


async def _nio_lifecycle(base_url: str) -> None:
    username = unique_localpart("ct_nio_")
    reg_client = nio.AsyncClient(base_url)
    try:
        # nio registers with {"auth": {"type": "m.login.dummy"}} and no session.
        reg = _ok(await reg_client.register(username, DEFAULT_PASSWORD, device_name="nio register"), nio.RegisterResponse)
        assert reg.user_id.startswith(f"@{username}:"), reg.user_id
        assert reg.access_token and reg.device_id
    finally:
        await reg_client.close()

    client = nio.AsyncClient(base_url, user=reg.user_id)
    try:
        login = _ok(await client.login(DEFAULT_PASSWORD, device_name="nio ct device"), nio.LoginResponse)
        assert login.user_id == reg.user_id
        assert login.device_id and login.device_id != reg.device_id
        assert client.access_token == login.access_token

        who = _ok(await client.whoami(), nio.WhoamiResponse)
        assert who.user_id == reg.user_id and who.device_id == login.device_id

        name = f"CT nio {uuid.uuid4().hex[:6]} ✓"
        _ok(await client.set_displayname(name), nio.ProfileSetDisplayNameResponse)
        got = _ok(await client.get_displayname(), nio.ProfileGetDisplayNameResponse)
        assert got.displayname == name, got

        devs = _ok(await client.devices(), nio.DevicesResponse)
        by_id = {d.id: d for d in devs.devices}
        assert set(by_id) == {reg.device_id, login.device_id}, by_id
        assert by_id[login.device_id].display_name == "nio ct device", by_id

        _ok(await client.logout(), nio.LogoutResponse)
    finally:
        await client.close()

    # The logged-out token is dead.
    check = nio.AsyncClient(base_url, user=reg.user_id)
    try:
        check.access_token = login.access_token
        check.user_id = reg.user_id
        check.device_id = login.device_id
        err = await check.whoami()
        assert isinstance(err, nio.WhoamiError), err
        assert err.status_code == "M_UNKNOWN_TOKEN", err
    finally:
        await check.close()


def test_matrix_nio_register_login_profile_devices_logout(open_server):
    asyncio.run(_nio_lifecycle(open_server.base_url))


async def _nio_token_registration(base_url: str, token: str) -> str:
    username = unique_localpart("ct_nio_")
    client = nio.AsyncClient(base_url)
    try:
        reg = _ok(
            await client.register_with_token(username, DEFAULT_PASSWORD, token, device_name="nio tok"),
            nio.RegisterResponse,
        )
        assert reg.user_id.startswith(f"@{username}:"), reg.user_id
        who = _ok(await client.whoami(), nio.WhoamiResponse)
        assert who.user_id == reg.user_id
        return reg.user_id
    finally:
        await client.close()


def test_matrix_nio_register_with_token(token_server):
    flows = flow_stage_sets(token_server.register_flows())
    # nio's register_with_token() expects a token stage followed by a dummy stage.
    if ["m.login.registration_token", "m.login.dummy"] not in flows:
        pytest.skip(f"nio's token flow needs [registration_token, dummy]; server offers {flows}")
    token = token_server.new_token(uses_allowed=1)
    user_id = asyncio.run(_nio_token_registration(token_server.base_url, token))
    assert_status(
        token_server.get("register/available", params={"username": user_id[1:].split(":")[0]}), 400
    )
