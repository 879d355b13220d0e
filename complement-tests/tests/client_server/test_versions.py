"""Server discovery, API versions and capabilities negotiation.

Spec: client-server-api "Server Discovery", "API Versions", "Capabilities negotiation".
"""

import re

import pytest

from ct import assert_error, assert_status

VERSION_RE = re.compile(r"^(v\d+\.\d+|r\d+\.\d+\.\d+)$")


def _check_versions_body(body):
    assert isinstance(body, dict), body
    versions = body.get("versions")
    assert isinstance(versions, list) and versions, body
    for v in versions:
        assert isinstance(v, str) and VERSION_RE.match(v), f"bad version string {v!r}"
    if "unstable_features" in body:
        feats = body["unstable_features"]
        assert isinstance(feats, dict), body
        for name, enabled in feats.items():
            assert isinstance(name, str) and name, body
            assert isinstance(enabled, bool), f"unstable feature {name} is not a bool"


def test_versions_unauthenticated(server):
    resp = server.get("/_matrix/client/versions")
    body = assert_status(resp, 200)
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
    _check_versions_body(body)
    # A current server speaks at least one v1.x version of the spec.
    assert any(v.startswith("v1.") for v in body["versions"]), body["versions"]


def test_versions_authenticated(user):
    # The endpoint may behave differently with auth (v1.10) but must still work.
    _check_versions_body(assert_status(user.get("/_matrix/client/versions"), 200))


def test_versions_with_invalid_token_does_not_crash(server):
    # /versions does not require auth; a bogus token must either be ignored
    # or rejected with the standard M_UNKNOWN_TOKEN error -- never a 5xx.
    resp = server.get("/_matrix/client/versions", access_token="ct-not-a-real-token")
    if resp.status_code == 200:
        _check_versions_body(resp.json())
    else:
        assert_error(resp, 401, "M_UNKNOWN_TOKEN")


def test_well_known_client_shape_when_served(server):
    # The homeserver is not required to serve .well-known itself (404 means
    # "no discovery information"); when it does, the body must have the shape.
    resp = server.get("/.well-known/matrix/client")
    assert resp.status_code in (200, 404), resp.text
    if resp.status_code == 200:
        body = resp.json()
        assert isinstance(body, dict), body
        hs = body.get("m.homeserver")
        assert isinstance(hs, dict) and isinstance(hs.get("base_url"), str), body
        if "m.identity_server" in body:
            assert isinstance(body["m.identity_server"].get("base_url"), str), body


def test_capabilities_requires_auth(server):
    assert_error(server.get("capabilities"), 401, "M_MISSING_TOKEN")


def _capabilities(user):
    body = assert_status(user.get("capabilities"), 200)
    assert isinstance(body, dict) and isinstance(body.get("capabilities"), dict), body
    return body["capabilities"]


def test_capabilities_change_password(user):
    caps = _capabilities(user)
    # If absent, clients assume password changes are possible; if present it
    # has a single boolean `enabled` flag.
    if "m.change_password" in caps:
        assert isinstance(caps["m.change_password"].get("enabled"), bool), caps


def test_capabilities_room_versions(user):
    caps = _capabilities(user)
    if "m.room_versions" not in caps:
        # Optional: clients then assume room version "1" only.
        pytest.skip("m.room_versions not advertised")
    rv = caps["m.room_versions"]
    assert isinstance(rv.get("default"), str) and rv["default"], rv
    available = rv.get("available")
    assert isinstance(available, dict) and available, rv
    for version, stability in available.items():
        assert isinstance(version, str) and version, rv
        assert stability in ("stable", "unstable"), f"{version}: {stability!r}"
    # The default is the version used for new rooms, so it must be supported.
    assert rv["default"] in available, rv


def test_capabilities_boolean_capabilities_shape(user):
    caps = _capabilities(user)
    for name in (
        "m.change_password",
        "m.set_displayname",
        "m.set_avatar_url",
        "m.3pid_changes",
        "m.get_login_token",
        "m.forget_forced_upon_leave",
    ):
        if name in caps:
            assert isinstance(caps[name], dict), f"{name}: {caps[name]!r}"
            assert isinstance(caps[name].get("enabled"), bool), f"{name}: {caps[name]!r}"


def test_capabilities_profile_fields_shape(user):
    caps = _capabilities(user)
    pf = caps.get("m.profile_fields")
    if pf is None:
        return
    assert isinstance(pf, dict) and isinstance(pf.get("enabled"), bool), pf
    for key in ("allowed", "disallowed"):
        if key in pf:
            assert isinstance(pf[key], list), pf
            assert all(isinstance(f, str) for f in pf[key]), pf
    # Backwards compatibility: a server that forbids displayname / avatar_url
    # through m.profile_fields MUST also say so in the deprecated capabilities.
    def forbidden(field):
        if not pf["enabled"]:
            return True
        if "allowed" in pf:
            return field not in pf["allowed"]
        return field in pf.get("disallowed", [])

    for field, legacy in (("displayname", "m.set_displayname"), ("avatar_url", "m.set_avatar_url")):
        if forbidden(field):
            assert caps.get(legacy, {}).get("enabled") is False, (
                f"{field} forbidden by m.profile_fields but {legacy} is {caps.get(legacy)!r}"
            )
