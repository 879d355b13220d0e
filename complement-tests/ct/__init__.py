"""Helpers for the Roost black-box conformance suite."""

from ct.client import (  # noqa: F401
    CLIENT_V1,
    CLIENT_V3,
    DEFAULT_PASSWORD,
    Server,
    User,
    assert_error,
    assert_error_status,
    assert_status,
    assert_uia_401,
    describe,
    flow_stage_sets,
    is_valid_new_user_id,
    json_or_none,
    new_txn_id,
    poll_until,
    q,
    room_path,
    server_name_of,
    shared_secret_mac,
    unique_localpart,
)
