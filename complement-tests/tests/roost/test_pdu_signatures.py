"""Roost's PDUs verified by an independent implementation (PyNaCl + canonicaljson + the
redaction algorithm written here from the spec), for every supported room version:

- the content hash (`hashes.sha256`),
- the server's ed25519 signature, against the key served at /_matrix/key/v2/server,
- the event id: for room versions 3+, the reference hash of the redacted event.

Roost-only: raw PDUs come from Roost's admin endpoint /_roost/admin/v1/events/{id}/pdu
(a client can't see signatures); against other servers the test is skipped.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import quote

import pytest
from canonicaljson import encode_canonical_json
from nacl.signing import VerifyKey

from ct.client import assert_status

VERSIONS = [str(v) for v in range(1, 13)]



def unpadded_b64decode(s: str) -> bytes:
    return base64.b64decode(s + "=" * (-len(s) % 4))


def b64(data: bytes, urlsafe: bool) -> str:
    enc = base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)
    return enc.decode().rstrip("=")


# --- redaction, per the spec's room version documents (content/rooms/v1.md .. v12.md) ---

TOP_LEVEL_V1 = {
    "event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures",
    "depth", "prev_events", "prev_state", "auth_events", "origin", "origin_server_ts", "membership",
}
TOP_LEVEL_V11 = TOP_LEVEL_V1 - {"origin", "membership", "prev_state"}


def content_keys(event_type: str, version: int) -> set[str] | None:
    """Content keys kept by redaction; None means keep all content."""
    if event_type == "m.room.member":
        keys = {"membership"}
        if version >= 9:
            keys.add("join_authorised_via_users_server")
        if version >= 11:
            keys.add("third_party_invite")
        return keys
    if event_type == "m.room.create":
        return None if version >= 11 else {"creator"}
    if event_type == "m.room.join_rules":
        return {"join_rule", "allow"} if version >= 8 else {"join_rule"}
    if event_type == "m.room.power_levels":
        keys = {"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"}
        if version >= 11:
            keys.add("invite")
        return keys
    if event_type == "m.room.aliases" and version <= 5:
        return {"aliases"}
    if event_type == "m.room.history_visibility":
        return {"history_visibility"}
    if event_type == "m.room.redaction" and version >= 11:
        return {"redacts"}
    return set()


def redact(event: dict, version: int) -> dict:
    allowed = TOP_LEVEL_V11 if version >= 11 else TOP_LEVEL_V1
    out = {k: v for k, v in event.items() if k in allowed}
    keep = content_keys(event["type"], version)
    content = event.get("content", {})
    if keep is None:
        out["content"] = dict(content)
    else:
        out["content"] = {k: v for k, v in content.items() if k in keep}
        if event["type"] == "m.room.member" and "third_party_invite" in out["content"]:
            signed = out["content"]["third_party_invite"].get("signed")
            out["content"]["third_party_invite"] = {"signed": signed} if signed is not None else {}
    return out


def content_hash(event: dict) -> str:
    stripped = {k: v for k, v in event.items() if k not in ("unsigned", "signatures", "hashes")}
    return b64(hashlib.sha256(encode_canonical_json(stripped)).digest(), urlsafe=False)


def reference_hash(event: dict, version: int) -> str:
    redacted = redact(event, version)
    redacted.pop("signatures", None)
    redacted.pop("unsigned", None)
    digest = hashlib.sha256(encode_canonical_json(redacted)).digest()
    return b64(digest, urlsafe=version >= 4)


@pytest.fixture(scope="module")
def admin(server, shared_secret):
    admin = server.admin_register(shared_secret, admin=True)
    probe = admin.get("/_roost/admin/v1/events/%24none/pdu")
    try:
        errcode = probe.json().get("errcode")
    except ValueError:
        errcode = None  # another server's plain-text 404
    if probe.status_code in (404, 405) and errcode != "M_NOT_FOUND":
        pytest.skip("the server has no Roost raw-PDU admin endpoint")
    return admin


@pytest.fixture(scope="module")
def server_keys(server):
    keys = assert_status(server.get("/_matrix/key/v2/server"), 200)
    server_name = keys["server_name"]
    verify_keys = {
        key_id: VerifyKey(unpadded_b64decode(k["key"])) for key_id, k in keys["verify_keys"].items()
    }
    # The key response is itself signed with the key it announces.
    signed = {k: v for k, v in keys.items() if k not in ("signatures", "unsigned")}
    for key_id, sig in keys["signatures"][server_name].items():
        verify_keys[key_id].verify(encode_canonical_json(signed), unpadded_b64decode(sig))
    assert keys["valid_until_ts"] > 0
    return server_name, verify_keys


@pytest.mark.parametrize("version", VERSIONS)
def test_pdus_hash_sign_and_id_verify_independently(admin, server_keys, version):
    server_name, verify_keys = server_keys
    room = assert_status(
        admin.post("createRoom", json={"room_version": version, "name": f"v{version}", "topic": "verify"}), 200
    )["room_id"]
    sent = assert_status(
        admin.put(f"rooms/{room}/send/m.room.message/verify{version}", json={"msgtype": "m.text", "body": "hi"}),
        200,
    )["event_id"]
    state = assert_status(admin.get(f"rooms/{room}/state"), 200)
    event_ids = [e["event_id"] for e in state] + [sent]
    v = int(version)
    for event_id in event_ids:
        body = assert_status(admin.get(f"/_roost/admin/v1/events/{quote(event_id, safe='')}/pdu"), 200)
        assert body["room_version"] == version
        pdu = body["pdu"]
        assert pdu["hashes"]["sha256"] == content_hash(pdu), f"content hash of {event_id}"

        redacted = redact(pdu, v)
        sigs = redacted.pop("signatures")[server_name]
        redacted.pop("unsigned", None)
        assert sigs, f"{event_id} carries no signature of {server_name}"
        for key_id, sig in sigs.items():
            verify_keys[key_id].verify(encode_canonical_json(redacted), unpadded_b64decode(sig))

        if v >= 3:
            assert event_id == "$" + reference_hash(pdu, v), f"event id of {pdu['type']}"
        else:
            assert pdu["event_id"] == event_id
        if v >= 12 and pdu["type"] == "m.room.create":
            assert "room_id" not in pdu and room == "!" + event_id[1:]


def test_a_tampered_pdu_fails_verification(admin, server_keys):
    """The verifier can fail: change one byte of content and the signature breaks."""
    server_name, verify_keys = server_keys
    room = assert_status(admin.post("createRoom", json={"room_version": "11"}), 200)["room_id"]
    create = assert_status(admin.get(f"rooms/{room}/state"), 200)[0]["event_id"]
    pdu = assert_status(admin.get(f"/_roost/admin/v1/events/{quote(create, safe='')}/pdu"), 200)["pdu"]
    pdu["content"]["room_version"] = "10"
    redacted = redact(pdu, 11)
    sigs = redacted.pop("signatures")[server_name]
    with pytest.raises(Exception):
        for key_id, sig in sigs.items():
            verify_keys[key_id].verify(encode_canonical_json(redacted), unpadded_b64decode(sig))
