"""Helpers for /sync tests: requests, response accessors, and waiting on the stream.

Spec: client-server-api "Syncing" (sync.yaml) and the modules that extend /sync
(typing, receipts, read markers, presence, send-to-device, account data).

Waiting never sleeps: `Syncer.until` long-polls `/sync?since=...&timeout=...`
until a predicate holds or a deadline passes.

Response caching: Synapse caches a /sync response for two minutes, keyed by
(user, device, since, filter, timeout, full_state). Repeating an identical
*initial* sync (no `since`) in one test therefore returns the first snapshot
again. Tests do one initial sync per device and filter; for a second fresh
snapshot use another device (`User.login_again`) or another filter. Long-polls
that time out empty are not cached, so `Syncer.until` is safe.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

import requests

from ct.client import CLIENT_V3, User, assert_status, describe

# Seconds the HTTP client waits beyond the long-poll timeout before giving up.
HTTP_SLACK = 20.0
# Longest single long-poll inside `Syncer.until` (ms); the deadline bounds the total.
MAX_POLL_MS = 5000

# A filter that hides presence, so another user's presence changes don't end a
# long-poll early (irrelevant to most tests, and noisy with presence enabled).
NO_PRESENCE: dict = {"presence": {"not_types": ["*"]}}


def encode_filter(filt: Any) -> str | None:
    """A filter for the `filter` query parameter: JSON objects are encoded inline;
    strings (filter IDs, or deliberately raw JSON) pass through."""
    if filt is None or isinstance(filt, str):
        return filt
    return json.dumps(filt, separators=(",", ":"))


def sync_raw(
    user: User,
    *,
    since: str | None = None,
    filter: Any = None,
    timeout: int | str | None = None,
    full_state: bool | None = None,
    set_presence: str | None = None,
    session: requests.Session | None = None,
    extra: dict | None = None,
) -> requests.Response:
    """GET /sync with the given parameters (any status)."""
    params: dict[str, Any] = {}
    if since is not None:
        params["since"] = since
    if filter is not None:
        params["filter"] = encode_filter(filter)
    if timeout is not None:
        params["timeout"] = str(timeout)
    if full_state is not None:
        params["full_state"] = "true" if full_state else "false"
    if set_presence is not None:
        params["set_presence"] = set_presence
    params.update(extra or {})
    wait = 0.0
    if isinstance(timeout, int) and 0 < timeout < 120_000:
        wait = timeout / 1000
    http_timeout = wait + HTTP_SLACK
    if session is None:
        return user.get("sync", params=params, timeout=http_timeout)
    return session.get(
        user.server.base_url + CLIENT_V3 + "/sync",
        params=params,
        headers={"Authorization": f"Bearer {user.access_token}"},
        timeout=http_timeout,
        allow_redirects=False,
    )


def sync(user: User, **kw: Any) -> dict:
    """GET /sync, asserting 200 and a `next_batch` token; returns the body."""
    resp = sync_raw(user, **kw)
    body = assert_status(resp, 200)
    assert isinstance(body, dict), describe(resp)
    assert isinstance(body.get("next_batch"), str) and body["next_batch"], (
        f"/sync response without next_batch; {describe(resp)}"
    )
    return body


# -- accessors (absent sections read as empty) ------------------------------------------


def section(body: dict, kind: str) -> dict:
    """rooms.{join,invite,leave,knock}: room ID -> room object."""
    rooms = body.get("rooms") or {}
    value = rooms.get(kind) or {}
    assert isinstance(value, dict), f"rooms.{kind} is not an object: {value!r}"
    return value


def room(body: dict, room_id: str, kind: str = "join") -> dict | None:
    return section(body, kind).get(room_id)


def _events(obj: dict | None, key: str) -> list[dict]:
    if not obj:
        return []
    batch = obj.get(key) or {}
    events = batch.get("events") or []
    assert isinstance(events, list), f"{key}.events is not a list: {batch!r}"
    return events


def timeline(body: dict, room_id: str, kind: str = "join") -> list[dict]:
    return _events(room(body, room_id, kind), "timeline")


def timeline_ids(body: dict, room_id: str, kind: str = "join") -> list[str]:
    return [e["event_id"] for e in timeline(body, room_id, kind)]


def state(body: dict, room_id: str, kind: str = "join") -> list[dict]:
    return _events(room(body, room_id, kind), "state")


def ephemeral(body: dict, room_id: str) -> list[dict]:
    return _events(room(body, room_id, "join"), "ephemeral")


def room_account_data(body: dict, room_id: str, kind: str = "join") -> list[dict]:
    return _events(room(body, room_id, kind), "account_data")


def account_data(body: dict) -> list[dict]:
    return _events(body, "account_data")


def presence(body: dict) -> list[dict]:
    return _events(body, "presence")


def to_device(body: dict) -> list[dict]:
    return _events(body, "to_device")


def of_type(events: list[dict], event_type: str) -> list[dict]:
    return [e for e in events if e.get("type") == event_type]


def bodies(events: list[dict]) -> list[str]:
    """Message bodies of the m.room.message events, in order."""
    return [e["content"].get("body") for e in of_type(events, "m.room.message")]


def state_key_map(events: list[dict]) -> dict[tuple[str, str], dict]:
    """(type, state_key) -> event, for the state events in `events` (later ones win)."""
    return {(e["type"], e["state_key"]): e for e in events if "state_key" in e}


def typing_user_ids(body: dict, room_id: str) -> list[str] | None:
    """user_ids of the last m.typing event for the room, or None if there is none."""
    found = of_type(ephemeral(body, room_id), "m.typing")
    if not found:
        return None
    ids = found[-1]["content"].get("user_ids")
    assert isinstance(ids, list), found[-1]
    return ids


def receipts(body: dict, room_id: str) -> list[tuple[str, str, str, dict]]:
    """Flattened m.receipt content: (event_id, receipt_type, user_id, data) tuples."""
    out = []
    for ev in of_type(ephemeral(body, room_id), "m.receipt"):
        for event_id, by_type in ev["content"].items():
            for receipt_type, by_user in by_type.items():
                for user_id, data in by_user.items():
                    out.append((event_id, receipt_type, user_id, data))
    return out


def room_account_data_content(body: dict, room_id: str, event_type: str) -> dict | None:
    found = of_type(room_account_data(body, room_id), event_type)
    return found[-1]["content"] if found else None


def account_data_content(body: dict, event_type: str) -> dict | None:
    found = of_type(account_data(body), event_type)
    return found[-1]["content"] if found else None


# -- following a sync stream ---------------------------------------------------------------


class Syncer:
    """One device's position in its sync stream (its `next_batch`).

    Each Syncer has its own HTTP session, so it can run in a background thread
    while the test sends requests from the main thread.
    """

    def __init__(self, user: User, filter: Any = None):
        self.user = user
        self.filter = filter
        self.since: str | None = None
        self.session = requests.Session()

    def sync(self, **kw: Any) -> dict:
        kw.setdefault("filter", self.filter)
        kw.setdefault("session", self.session)
        return sync(self.user, **kw)

    def initial(self, **kw: Any) -> dict:
        """An initial sync (no `since`); remembers its next_batch."""
        body = self.sync(**kw)
        self.since = body["next_batch"]
        return body

    def next(self, timeout: int = 0, **kw: Any) -> dict:
        """An incremental sync from the remembered token; advances it."""
        assert self.since is not None, "call initial() first"
        body = self.sync(since=self.since, timeout=timeout, **kw)
        self.since = body["next_batch"]
        return body

    def until(
        self,
        pred: Callable[[dict], Any],
        *,
        timeout: float = 10.0,
        what: str = "a matching /sync response",
    ) -> Any:
        """Long-poll incremental syncs until pred(body) is truthy; return that value.

        Fails if the deadline passes. Each long-poll waits at most the time left
        (capped at MAX_POLL_MS), so a server that doesn't wake up on new data
        makes this fail rather than pass slowly."""
        if self.since is None:
            self.initial()
        deadline = time.monotonic() + timeout
        last: dict | None = None
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}; last response={last!r}"
                )
            last = self.next(timeout=min(left_ms, MAX_POLL_MS))
            got = pred(last)
            if got:
                return got

    def collect(self, pred: Callable[[dict], Any], **kw: Any) -> list[dict]:
        """Like `until`, but returns every response body seen (the last one matched)."""
        seen: list[dict] = []

        def check(body: dict) -> Any:
            seen.append(body)
            return pred(body)

        self.until(check, **kw)
        return seen


class Background:
    """Run fn(*args) in a daemon thread; `result()` joins and returns or re-raises."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kw: Any):
        self._value: Any = None
        self._error: BaseException | None = None
        self.started = time.monotonic()
        self.finished: float | None = None

        def run() -> None:
            try:
                self._value = fn(*args, **kw)
            except BaseException as e:  # noqa: BLE001 - re-raised in result()
                self._error = e
            finally:
                self.finished = time.monotonic()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def result(self, timeout: float = 60.0) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"background call still running after {timeout}s"
        if self._error is not None:
            raise self._error
        return self._value

    @property
    def elapsed(self) -> float:
        assert self.finished is not None
        return self.finished - self.started


def long_poll_for(
    syncer: Syncer,
    pred: Callable[[dict], Any],
    *,
    timeout: float = 10.0,
    what: str = "a matching /sync response",
) -> Background:
    """Start `syncer.until(pred)` in the background (the caller then triggers the
    event and calls `.result()`). The syncer must already have a `since` token."""
    assert syncer.since is not None, "do an initial sync first"
    return Background(syncer.until, pred, timeout=timeout, what=what)
