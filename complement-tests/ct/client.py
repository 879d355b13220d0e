"""A deliberately small Matrix client-server API helper for black-box tests.

Everything goes over plain HTTP with `requests`; nothing here knows which
homeserver implementation is on the other end.
"""

from __future__ import annotations

import hashlib
import hmac
import json as json_module
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import requests

CLIENT_V3 = "/_matrix/client/v3"
CLIENT_V1 = "/_matrix/client/v1"
DEFAULT_PASSWORD = "Correct-Horse-Battery-5taple!"
TIMEOUT = 30


def unique_localpart(prefix: str = "ct_") -> str:
    """A fresh, valid, lowercase localpart so tests never collide."""
    return prefix + uuid.uuid4().hex[:10]


def q(segment: str) -> str:
    """Percent-encode one path segment (user IDs, room IDs, event types...)."""
    return urllib.parse.quote(segment, safe="")


def room_path(room_id: str, *parts: str) -> str:
    """Relative /v3 path "rooms/{roomId}/part/part..." with every segment percent-encoded.

    Empty parts are kept (a trailing "/" for an empty state key)."""
    return "rooms/" + "/".join(q(p) for p in (room_id, *parts))


def new_txn_id() -> str:
    return "ct" + uuid.uuid4().hex


def server_name_of(user_id: str) -> str:
    """Server name of a user ID: everything after the first colon."""
    assert user_id.startswith("@") and ":" in user_id, user_id
    return user_id.split(":", 1)[1]


def json_or_none(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def describe(resp: requests.Response) -> str:
    body = resp.text
    if len(body) > 800:
        body = body[:800] + "..."
    return f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {body}"


def assert_status(resp: requests.Response, status: int | tuple[int, ...]) -> Any:
    """Assert the HTTP status and return the decoded JSON body (or None)."""
    wanted = status if isinstance(status, tuple) else (status,)
    assert resp.status_code in wanted, f"expected HTTP {status}; {describe(resp)}"
    return json_or_none(resp)


def assert_error(
    resp: requests.Response,
    status: int | tuple[int, ...],
    errcode: str | tuple[str, ...],
) -> dict:
    """Assert a standard Matrix error response: status, errcode and `error` string."""
    wanted_status = status if isinstance(status, tuple) else (status,)
    wanted_code = errcode if isinstance(errcode, tuple) else (errcode,)
    body = json_or_none(resp)
    assert resp.status_code in wanted_status, (
        f"expected HTTP {status} {errcode}; {describe(resp)}"
    )
    assert isinstance(body, dict), f"error body is not a JSON object; {describe(resp)}"
    assert body.get("errcode") in wanted_code, (
        f"expected errcode {errcode}; {describe(resp)}"
    )
    assert isinstance(body.get("error", ""), str), describe(resp)
    return body


def assert_uia_401(resp: requests.Response) -> dict:
    """Assert a User-Interactive Authentication 401 response and return its body."""
    body = assert_status(resp, 401)
    assert isinstance(body, dict), describe(resp)
    flows = body.get("flows")
    assert isinstance(flows, list) and flows, f"401 without UIA flows; {describe(resp)}"
    for flow in flows:
        assert isinstance(flow, dict), describe(resp)
        stages = flow.get("stages")
        assert isinstance(stages, list) and stages, describe(resp)
        assert all(isinstance(s, str) for s in stages), describe(resp)
    if "params" in body:
        assert isinstance(body["params"], dict), describe(resp)
    if "session" in body:
        assert isinstance(body["session"], str) and body["session"], describe(resp)
    if "completed" in body:
        assert isinstance(body["completed"], list), describe(resp)
    return body


def flow_stage_sets(uia_body: dict) -> list[list[str]]:
    return [list(f["stages"]) for f in uia_body["flows"]]


def poll_until(
    fn: Callable[[], Any],
    *,
    timeout: float = 10.0,
    interval: float = 0.1,
    what: str = "condition",
) -> Any:
    """Call fn until it returns something truthy, or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last={last!r}")
        time.sleep(interval)


class Server:
    """One homeserver, addressed by its client-server API base URL."""

    def __init__(self, base_url: str, shared_secret: str | None = None, name: str = ""):
        self.base_url = base_url.rstrip("/")
        self.shared_secret = shared_secret
        self.name = name or self.base_url
        self.http = requests.Session()
        # Registration tokens: a callable that returns a fresh token (set by conftest
        # for servers that require one).
        self.token_factory: Callable[[], str] | None = None

    def __repr__(self) -> str:
        return f"Server({self.name})"

    # -- raw requests --------------------------------------------------------------
    def url(self, path: str) -> str:
        if path.startswith("http://") or path.startswith("https://"):
            return path
        if not path.startswith("/"):
            path = CLIENT_V3 + "/" + path
        return self.base_url + path

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        params: dict | None = None,
        headers: dict | None = None,
        access_token: str | None = None,
        **kw: Any,
    ) -> requests.Response:
        """Send a request. `path` is absolute ("/_matrix/...") or relative to /v3."""
        hdrs = dict(headers or {})
        if access_token is not None:
            hdrs["Authorization"] = f"Bearer {access_token}"
        kw.setdefault("timeout", TIMEOUT)
        kw.setdefault("allow_redirects", False)
        return self.http.request(
            method, self.url(path), json=json, data=data, params=params, headers=hdrs, **kw
        )

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PUT", path, **kw)

    # -- registration ----------------------------------------------------------------
    def register_flows(self, body: dict | None = None) -> dict:
        """POST /register without auth; returns the UIA 401 body."""
        body = dict(body or {})
        body.setdefault("username", unique_localpart())
        body.setdefault("password", DEFAULT_PASSWORD)
        return assert_uia_401(self.post("register", json=body))

    def _auth_for_stage(self, stage: str, session: str | None, token: str | None) -> dict:
        auth: dict = {"type": stage}
        if session is not None:
            auth["session"] = session
        if stage == "m.login.registration_token":
            if token is None:
                if self.token_factory is None:
                    raise AssertionError(
                        f"{self.name} wants a registration token but none is available"
                    )
                token = self.token_factory()
            auth["token"] = token
        elif stage != "m.login.dummy":
            raise AssertionError(f"cannot complete registration stage {stage}")
        return auth

    def register_raw(
        self,
        username: str | None = None,
        password: str | None = DEFAULT_PASSWORD,
        *,
        device_id: str | None = None,
        token: str | None = None,
        extra: dict | None = None,
    ) -> requests.Response:
        """Run the UIA registration dance; returns the final response (any status)."""
        body: dict = {}
        if username is not None:
            body["username"] = username
        if password is not None:
            body["password"] = password
        if device_id is not None:
            body["device_id"] = device_id
        body.update(extra or {})
        resp = self.post("register", json=body)
        if resp.status_code != 401:
            return resp
        uia = assert_uia_401(resp)
        # Prefer a flow we can complete: dummy and/or registration token only.
        doable = {"m.login.dummy", "m.login.registration_token"}
        flows = [f for f in flow_stage_sets(uia) if set(f) <= doable]
        assert flows, f"no completable registration flow in {uia['flows']}"
        flows.sort(key=len)
        session = uia.get("session")
        completed: list[str] = list(uia.get("completed", []))
        for stage in flows[0]:
            if stage in completed:
                continue
            resp = self.post(
                "register",
                json={**body, "auth": self._auth_for_stage(stage, session, token)},
            )
            if resp.status_code != 401:
                return resp
            uia = assert_uia_401(resp)
            assert "errcode" not in uia, f"stage {stage} failed: {describe(resp)}"
            completed = list(uia.get("completed", []))
            assert stage in completed, f"stage {stage} not completed: {describe(resp)}"
        return resp

    def register(
        self,
        username: str | None = None,
        password: str | None = None,
        device_id: str | None = None,
        **kw: Any,
    ) -> "User":
        """Register a new user (unique localpart by default) and return it logged in."""
        username = username or unique_localpart()
        password = password or DEFAULT_PASSWORD
        resp = self.register_raw(username, password, device_id=device_id, **kw)
        body = assert_status(resp, 200)
        assert isinstance(body.get("user_id"), str) and body["user_id"].startswith("@"), body
        assert isinstance(body.get("access_token"), str) and body["access_token"], body
        assert isinstance(body.get("device_id"), str) and body["device_id"], body
        return User(
            server=self,
            user_id=body["user_id"],
            device_id=body["device_id"],
            access_token=body["access_token"],
            password=password,
            localpart=username,
            refresh_token=body.get("refresh_token"),
        )

    def admin_register_raw(
        self,
        username: str,
        password: str = DEFAULT_PASSWORD,
        *,
        admin: bool = False,
        shared_secret: str | None = None,
        nonce: str | None = None,
        mac: str | None = None,
    ) -> requests.Response:
        """Synapse-compatible shared-secret registration (/_synapse/admin/v1/register)."""
        secret = shared_secret if shared_secret is not None else self.shared_secret
        assert secret is not None, "no shared secret configured"
        if nonce is None:
            nonce = self.get_register_nonce()
        if mac is None:
            mac = shared_secret_mac(secret, nonce, username, password, admin)
        return self.post(
            "/_synapse/admin/v1/register",
            json={
                "nonce": nonce,
                "username": username,
                "password": password,
                "admin": admin,
                "mac": mac,
            },
        )

    def get_register_nonce(self) -> str:
        body = assert_status(self.get("/_synapse/admin/v1/register"), 200)
        assert isinstance(body.get("nonce"), str) and body["nonce"], body
        return body["nonce"]

    def admin_register(
        self,
        shared_secret: str | None = None,
        username: str | None = None,
        admin: bool = True,
        password: str = DEFAULT_PASSWORD,
    ) -> "User":
        username = username or unique_localpart("ct_admin_")
        resp = self.admin_register_raw(
            username, password, admin=admin, shared_secret=shared_secret
        )
        body = assert_status(resp, 200)
        assert body["user_id"].startswith("@"), body
        return User(
            server=self,
            user_id=body["user_id"],
            device_id=body.get("device_id", ""),
            access_token=body["access_token"],
            password=password,
            localpart=username,
        )

    # -- login -------------------------------------------------------------------------
    def login_raw(self, body: dict) -> requests.Response:
        return self.post("login", json=body)

    def login(
        self,
        user: str,
        password: str = DEFAULT_PASSWORD,
        *,
        device_id: str | None = None,
        **extra: Any,
    ) -> "User":
        body: dict = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
        }
        if device_id is not None:
            body["device_id"] = device_id
        body.update(extra)
        data = assert_status(self.login_raw(body), 200)
        for k in ("user_id", "access_token", "device_id"):
            assert isinstance(data.get(k), str) and data[k], f"login response lacks {k}: {data}"
        return User(
            server=self,
            user_id=data["user_id"],
            device_id=data["device_id"],
            access_token=data["access_token"],
            password=password,
            localpart=data["user_id"][1:].split(":", 1)[0],
            refresh_token=data.get("refresh_token"),
        )


def shared_secret_mac(secret: str, nonce: str, username: str, password: str, admin: bool) -> str:
    mac = hmac.new(secret.encode("utf8"), digestmod=hashlib.sha1)
    mac.update(nonce.encode("utf8"))
    mac.update(b"\x00")
    mac.update(username.encode("utf8"))
    mac.update(b"\x00")
    mac.update(password.encode("utf8"))
    mac.update(b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    return mac.hexdigest()


@dataclass
class User:
    server: Server
    user_id: str
    device_id: str
    access_token: str
    password: str = DEFAULT_PASSWORD
    localpart: str = ""
    refresh_token: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def server_name(self) -> str:
        return server_name_of(self.user_id)

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("access_token", self.access_token)
        return self.server.request(method, path, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)

    def whoami(self) -> requests.Response:
        return self.get("account/whoami")

    def password_auth(self, session: str | None = None, password: str | None = None) -> dict:
        auth = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": self.user_id},
            "password": password if password is not None else self.password,
        }
        if session is not None:
            auth["session"] = session
        return auth

    def uia_request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        password: str | None = None,
    ) -> requests.Response:
        """Perform a UIA-protected request, completing an m.login.password stage."""
        body = dict(body or {})
        resp = self.request(method, path, json=body)
        if resp.status_code != 401:
            return resp
        uia = assert_uia_401(resp)
        stages = flow_stage_sets(uia)
        assert ["m.login.password"] in stages, f"no password-only flow in {stages}"
        body["auth"] = self.password_auth(uia.get("session"), password)
        return self.request(method, path, json=body)

    def login_again(self, **extra: Any) -> "User":
        """Log in as this user once more (a new device)."""
        return self.server.login(self.user_id, self.password, **extra)

    # -- rooms (thin wrappers; each asserts success and returns the useful part) --------
    def create_room(self, body: dict | None = None, **fields: Any) -> str:
        """POST /createRoom with `body` (plus keyword fields); returns the room ID."""
        data = assert_status(self.post("createRoom", json={**(body or {}), **fields}), 200)
        assert isinstance(data, dict) and isinstance(data.get("room_id"), str), data
        assert data["room_id"].startswith("!"), data
        return data["room_id"]

    def send_event(
        self, room_id: str, event_type: str, content: dict, txn_id: str | None = None
    ) -> str:
        """PUT /rooms/{id}/send/{type}/{txnId}; returns the event ID."""
        txn_id = txn_id or new_txn_id()
        resp = self.put(room_path(room_id, "send", event_type, txn_id), json=content)
        data = assert_status(resp, 200)
        assert isinstance(data, dict) and isinstance(data.get("event_id"), str), describe(resp)
        return data["event_id"]

    def send_message(self, room_id: str, body: str = "hello", **extra: Any) -> str:
        """Send an m.text m.room.message; returns the event ID."""
        return self.send_event(room_id, "m.room.message", {"msgtype": "m.text", "body": body, **extra})

    def send_state(self, room_id: str, event_type: str, content: dict, state_key: str = "") -> str:
        """PUT /rooms/{id}/state/{type}/{stateKey}; returns the event ID."""
        resp = self.put(room_path(room_id, "state", event_type, state_key), json=content)
        data = assert_status(resp, 200)
        assert isinstance(data, dict) and isinstance(data.get("event_id"), str), describe(resp)
        return data["event_id"]

    def get_state(self, room_id: str, event_type: str, state_key: str = "") -> dict:
        """GET /rooms/{id}/state/{type}/{stateKey} (the content)."""
        return assert_status(self.get(room_path(room_id, "state", event_type, state_key)), 200)

    def room_state(self, room_id: str) -> list[dict]:
        """GET /rooms/{id}/state (all current state events)."""
        data = assert_status(self.get(room_path(room_id, "state")), 200)
        assert isinstance(data, list), data
        return data

    def join(self, room_id_or_alias: str, **body: Any) -> str:
        """POST /join/{roomIdOrAlias}; returns the room ID."""
        data = assert_status(self.post(f"join/{q(room_id_or_alias)}", json=body), 200)
        assert isinstance(data, dict) and isinstance(data.get("room_id"), str), data
        return data["room_id"]

    def leave(self, room_id: str, **body: Any) -> None:
        assert_status(self.post(room_path(room_id, "leave"), json=body), 200)

    def invite(self, room_id: str, user_id: str, **body: Any) -> None:
        assert_status(self.post(room_path(room_id, "invite"), json={"user_id": user_id, **body}), 200)

    def kick(self, room_id: str, user_id: str, **body: Any) -> None:
        assert_status(self.post(room_path(room_id, "kick"), json={"user_id": user_id, **body}), 200)

    def ban(self, room_id: str, user_id: str, **body: Any) -> None:
        assert_status(self.post(room_path(room_id, "ban"), json={"user_id": user_id, **body}), 200)

    def unban(self, room_id: str, user_id: str, **body: Any) -> None:
        assert_status(self.post(room_path(room_id, "unban"), json={"user_id": user_id, **body}), 200)

    def membership_of(self, room_id: str, user_id: str | None = None) -> str | None:
        """The `membership` of user_id (default: self) in this user's view of the room
        (GET /rooms/{id}/state/m.room.member/{userId}); None if there is no member event."""
        resp = self.get(room_path(room_id, "state", "m.room.member", user_id or self.user_id))
        if resp.status_code == 404:
            return None
        return assert_status(resp, 200).get("membership")

    def messages(self, room_id: str, **params: Any) -> dict:
        """GET /rooms/{id}/messages; dict/list params (e.g. `filter`) are JSON-encoded."""
        enc = {
            k: (json_module.dumps(v) if isinstance(v, (dict, list)) else v)
            for k, v in params.items()
            if v is not None
        }
        data = assert_status(self.get(room_path(room_id, "messages"), params=enc), 200)
        assert isinstance(data, dict) and isinstance(data.get("chunk"), list), data
        return data

    def get_event(self, room_id: str, event_id: str) -> dict:
        """GET /rooms/{id}/event/{eventId}."""
        return assert_status(self.get(room_path(room_id, "event", event_id)), 200)


USER_LOCALPART_RE = r"[a-z0-9._=\-/+]+"


def is_valid_new_user_id(user_id: str) -> bool:
    """True if user_id follows the (non-historical) user ID grammar and size limit."""
    import re

    if not isinstance(user_id, str) or len(user_id.encode("utf8")) > 255:
        return False
    m = re.fullmatch(r"@(" + USER_LOCALPART_RE + r"):(.+)", user_id)
    return bool(m) and bool(m.group(2))


def assert_error_status(resp: requests.Response, status: int | tuple[int, ...]) -> dict:
    """Assert an error response with the given status and *some* errcode.

    Only for cases where the spec leaves the errcode open or where the reference
    implementation disagrees with the spec (see README, "Known differences").
    """
    wanted = status if isinstance(status, tuple) else (status,)
    body = json_or_none(resp)
    assert resp.status_code in wanted, f"expected HTTP {status}; {describe(resp)}"
    assert isinstance(body, dict), f"error body is not a JSON object; {describe(resp)}"
    assert isinstance(body.get("errcode"), str) and body["errcode"], describe(resp)
    return body
