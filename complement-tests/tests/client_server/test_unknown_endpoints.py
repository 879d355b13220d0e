"""Unknown endpoints, wrong methods and CORS.

Spec: client-server-api "Common error codes" (M_UNRECOGNIZED: 404 for an
unknown endpoint, 405 for a known endpoint with the wrong method) and
"Web Browser Clients" (CORS, OPTIONS).
"""

import pytest

from ct import assert_error, assert_status


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/_matrix/client/v3/ct_no_such_endpoint"),
        ("POST", "/_matrix/client/v3/ct/no/such/thing"),
        ("PUT", "/_matrix/client/v3/ct_nope/x"),
        ("DELETE", "/_matrix/client/v3/ct_nope"),
        ("GET", "/_matrix/client/v99/versions"),
        ("GET", "/_matrix/client/ct_unknown_version/whatever"),
        ("POST", "/_matrix/client/v3/login/ct_nope"),
    ],
)
def test_unknown_endpoint(server, method, path):
    assert_error(server.request(method, path, json={}), 404, "M_UNRECOGNIZED")


def test_unknown_endpoint_authenticated(user):
    assert_error(user.get("/_matrix/client/v3/ct_no_such_endpoint"), 404, "M_UNRECOGNIZED")


@pytest.mark.parametrize(
    "method,path",
    [
        ("PUT", "/_matrix/client/versions"),
        ("POST", "/_matrix/client/versions"),
        ("DELETE", "/_matrix/client/v3/login"),
        ("PUT", "/_matrix/client/v3/login"),
        ("GET", "/_matrix/client/v3/logout"),
        ("GET", "/_matrix/client/v3/register"),
        ("PUT", "/_matrix/client/v3/account/whoami"),
        ("POST", "/_matrix/client/v3/capabilities"),
        ("GET", "/_matrix/client/v3/account/password"),
    ],
)
def test_wrong_method(user, method, path):
    assert_error(user.request(method, path, json={}), 405, "M_UNRECOGNIZED")


def test_wrong_method_does_not_act(user):
    # A GET on /logout must not log anybody out.
    assert_error(user.get("logout"), 405, "M_UNRECOGNIZED")
    assert_status(user.whoami(), 200)


def _check_cors_headers(resp, method=None):
    h = {k.lower(): v for k, v in resp.headers.items()}
    assert "access-control-allow-origin" in h, f"no CORS headers: {dict(resp.headers)}"
    assert h["access-control-allow-origin"] in ("*", "https://ct.example.org"), h
    if method is not None:
        methods = [m.strip().upper() for m in h.get("access-control-allow-methods", "").split(",")]
        assert method in methods or "*" in methods, h
        allowed = [x.strip().lower() for x in h.get("access-control-allow-headers", "").split(",")]
        for needed in ("authorization", "content-type"):
            assert needed in allowed or "*" in allowed, h


PREFLIGHT = {
    "Origin": "https://ct.example.org",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


@pytest.mark.parametrize("path", ["login", "account/whoami", "register", "/_matrix/client/versions"])
def test_cors_preflight(server, path):
    resp = server.request("OPTIONS", path, headers=PREFLIGHT)
    assert resp.status_code in (200, 204), f"{resp.status_code} {resp.text}"
    _check_cors_headers(resp, "POST")


def test_cors_preflight_on_parametrised_path(user):
    resp = user.server.request("OPTIONS", f"devices/{user.device_id}", headers={**PREFLIGHT, "Access-Control-Request-Method": "PUT"})
    assert resp.status_code in (200, 204), resp.text
    _check_cors_headers(resp, "PUT")


def test_options_does_not_run_endpoint_logic(user):
    # "the server MUST NOT perform any logic defined for the endpoints when
    # approached with an OPTIONS request."
    resp = user.request("OPTIONS", "logout", headers=PREFLIGHT)
    assert resp.status_code in (200, 204), resp.text
    assert_status(user.whoami(), 200)


def test_cors_headers_on_normal_responses(server, user):
    _check_cors_headers(server.get("/_matrix/client/versions", headers={"Origin": "https://ct.example.org"}))
    _check_cors_headers(user.get("account/whoami", headers={"Origin": "https://ct.example.org"}))


def test_cors_headers_on_error_responses(server):
    _check_cors_headers(server.get("account/whoami", headers={"Origin": "https://ct.example.org"}))
    _check_cors_headers(server.get("/_matrix/client/v3/ct_no_such_endpoint", headers={"Origin": "https://ct.example.org"}))
