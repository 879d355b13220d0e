"""Fixtures for the Roost black-box conformance suite.

The servers under test are given by environment variables (run.sh sets them):

  ROOST_CT_OPEN_URL       base URL of a server with open registration (m.login.dummy)
  ROOST_CT_TOKEN_URL      base URL of a server whose registration needs a registration token
  ROOST_CT_SHARED_SECRET  registration shared secret of both servers
"""

from __future__ import annotations

import os
import uuid

import pytest

from ct.client import Server, User, assert_status


def _env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(
            f"{name} is not set: run the suite through complement-tests/run.sh, "
            "or export ROOST_CT_OPEN_URL, ROOST_CT_TOKEN_URL and ROOST_CT_SHARED_SECRET",
            pytrace=False,
        )
    return value


@pytest.fixture(scope="session")
def shared_secret() -> str:
    return _env("ROOST_CT_SHARED_SECRET")


@pytest.fixture(scope="session")
def open_server(shared_secret: str) -> Server:
    """The server with open (m.login.dummy) registration."""
    return Server(_env("ROOST_CT_OPEN_URL"), shared_secret, name="open")


@pytest.fixture(scope="session")
def server(open_server: Server) -> Server:
    """Default server for tests that don't care about the registration mode."""
    return open_server


@pytest.fixture(scope="session")
def token_server(shared_secret: str) -> Server:
    """The server whose registration requires m.login.registration_token.

    Its `token_factory` mints a fresh single-use token through the
    Synapse-compatible admin API, using an admin made with the shared secret.
    """
    srv = Server(_env("ROOST_CT_TOKEN_URL"), shared_secret, name="token")
    admin_holder: dict[str, User] = {}

    def admin() -> User:
        if "admin" not in admin_holder:
            admin_holder["admin"] = srv.admin_register(shared_secret, admin=True)
        return admin_holder["admin"]

    def new_token(uses_allowed: int | None = 1, token: str | None = None) -> str:
        body: dict = {}
        if uses_allowed is not None:
            body["uses_allowed"] = uses_allowed
        if token is not None:
            body["token"] = token
        resp = admin().post("/_synapse/admin/v1/registration_tokens/new", json=body)
        data = assert_status(resp, 200)
        assert isinstance(data.get("token"), str) and data["token"], data
        return data["token"]

    srv.token_factory = new_token  # type: ignore[assignment]
    srv.admin = admin  # type: ignore[attr-defined]
    srv.new_token = new_token  # type: ignore[attr-defined]
    return srv


@pytest.fixture
def user(open_server: Server) -> User:
    """A freshly registered user on the open server."""
    return open_server.register()


@pytest.fixture
def user2(open_server: Server) -> User:
    """A second, unrelated, freshly registered user on the open server."""
    return open_server.register()


@pytest.fixture
def fresh_id() -> str:
    return uuid.uuid4().hex[:10]
