"""Send-to-device messaging: PUT /sendToDevice/{eventType}/{txnId} and the
`to_device` section of /sync.

Spec: client-server-api module "Send-to-Device messaging" (to_device.yaml,
"Server behaviour" and "Extensions to /sync"), and "Transaction identifiers".
"""

import uuid

from ct import assert_error, assert_status, new_txn_id, q
from ct.sync import NO_PRESENCE, Syncer, long_poll_for, sync, to_device

EVENT_TYPE = "org.example.ct.to_device"


def send_to_device(sender, messages, event_type=EVENT_TYPE, txn_id=None):
    path = f"sendToDevice/{q(event_type)}/{q(txn_id or new_txn_id())}"
    return sender.put(path, json={"messages": messages})


def marked(body, marker):
    """The to-device events in this response whose content carries `marker`."""
    return [e for e in to_device(body) if e.get("content", {}).get("marker") == marker]


def fresh_marker():
    return uuid.uuid4().hex


def test_delivered_with_sender_type_and_content(user, user2):
    syncer = Syncer(user, filter=NO_PRESENCE)
    syncer.initial()
    marker = fresh_marker()
    content = {"marker": marker, "nested": {"a": [1, 2]}}
    resp = send_to_device(user2, {user.user_id: {user.device_id: content}})
    assert assert_status(resp, 200) == {}
    events = syncer.until(lambda b: marked(b, marker), what="the to-device message")
    assert len(events) == 1, events
    assert events[0]["sender"] == user2.user_id, events
    assert events[0]["type"] == EVENT_TYPE, events
    assert events[0]["content"] == content, events


def test_long_poll_wakes_on_to_device(user, user2):
    syncer = Syncer(user, filter=NO_PRESENCE)
    syncer.initial()
    marker = fresh_marker()
    poll = long_poll_for(syncer, lambda b: marked(b, marker), what="the to-device message")
    assert_status(send_to_device(user2, {user.user_id: {user.device_id: {"marker": marker}}}), 200)
    assert poll.result()
    assert poll.elapsed < 10


def test_delivered_until_the_client_syncs_past_it(user, user2):
    """Messages are deleted once the client syncs with the `next_batch` of the
    response that carried them; until then, the old `since` returns them again."""
    t0 = sync(user, filter=NO_PRESENCE)["next_batch"]
    marker = fresh_marker()
    assert_status(send_to_device(user2, {user.user_id: {user.device_id: {"marker": marker}}}), 200)

    first = sync(user, since=t0, filter=NO_PRESENCE)
    assert len(marked(first, marker)) == 1, to_device(first)
    t1 = first["next_batch"]
    # Not acknowledged yet: the same `since` again still carries it (a retry).
    retry = sync(user, since=t0, filter=NO_PRESENCE, timeout=1)
    assert len(marked(retry, marker)) == 1, to_device(retry)
    # Syncing from the new token acknowledges it; it does not come again.
    after = sync(user, since=t1, filter=NO_PRESENCE)
    assert marked(after, marker) == []
    # A later message still comes, once, and the acknowledged one does not.
    marker2 = fresh_marker()
    assert_status(send_to_device(user2, {user.user_id: {user.device_id: {"marker": marker2}}}), 200)
    syncer = Syncer(user, filter=NO_PRESENCE)
    syncer.since = after["next_batch"]
    seen = syncer.collect(lambda b: marked(b, marker2), what="the second message")
    assert sum(len(marked(b, marker2)) for b in seen) == 1
    assert not any(marked(b, marker) for b in seen)


def test_messages_arrive_in_order(user, user2):
    syncer = Syncer(user, filter=NO_PRESENCE)
    syncer.initial()
    marker = fresh_marker()
    for i in range(5):
        msg = {user.user_id: {user.device_id: {"marker": marker, "i": i}}}
        assert_status(send_to_device(user2, msg), 200)
    got = []
    syncer.until(
        lambda b: got.extend(e["content"]["i"] for e in marked(b, marker)) or len(got) >= 5,
        what="five to-device messages",
    )
    assert got == [0, 1, 2, 3, 4]


def test_more_messages_than_one_response_holds_all_arrive_once(user, user2):
    """Servers may spread a large backlog over several responses (Synapse sends 100 per
    response), but moving `since` forward must never drop one that was not yet delivered."""
    syncer = Syncer(user, filter=NO_PRESENCE)
    syncer.initial()
    marker = fresh_marker()
    n = 130
    for i in range(n):
        msg = {user.user_id: {user.device_id: {"marker": marker, "i": i}}}
        assert_status(send_to_device(user2, msg), 200)
    got = []
    syncer.until(
        lambda b: got.extend(e["content"]["i"] for e in marked(b, marker)) or len(got) >= n,
        what=f"{n} to-device messages",
    )
    # One more round from the final token: nothing comes twice.
    marker2 = fresh_marker()
    assert_status(send_to_device(user2, {user.user_id: {user.device_id: {"marker": marker2}}}), 200)
    syncer.until(
        lambda b: got.extend(e["content"]["i"] for e in marked(b, marker)) or marked(b, marker2),
        what="a later message",
    )
    assert got == list(range(n))


def test_same_txn_id_delivers_once(user, user2):
    syncer = Syncer(user, filter=NO_PRESENCE)
    syncer.initial()
    marker, done = fresh_marker(), fresh_marker()
    txn = new_txn_id()
    msg = {user.user_id: {user.device_id: {"marker": marker}}}
    assert assert_status(send_to_device(user2, msg, txn_id=txn), 200) == {}
    assert assert_status(send_to_device(user2, msg, txn_id=txn), 200) == {}
    # A later message marks the end: in-order delivery means a duplicate would
    # have come before it.
    assert_status(send_to_device(user2, {user.user_id: {user.device_id: {"marker": done}}}), 200)
    seen = syncer.collect(lambda b: marked(b, done), what="the closing message")
    assert sum(len(marked(b, marker)) for b in seen) == 1, [to_device(b) for b in seen]


def test_txn_id_is_scoped_to_the_sending_device(user, user2):
    """The same txnId from two devices of the sender is two requests."""
    user2b = user2.login_again()
    syncer = Syncer(user, filter=NO_PRESENCE)
    syncer.initial()
    marker = fresh_marker()
    txn = new_txn_id()
    for sender, n in ((user2, 1), (user2b, 2)):
        msg = {user.user_id: {user.device_id: {"marker": marker, "n": n}}}
        assert_status(send_to_device(sender, msg, txn_id=txn), 200)
    got = []
    syncer.until(
        lambda b: got.extend(e["content"]["n"] for e in marked(b, marker)) or len(got) >= 2,
        what="both messages",
    )
    assert sorted(got) == [1, 2]


def test_wildcard_reaches_all_devices(user, user2):
    second = user.login_again()
    syncers = [Syncer(user, filter=NO_PRESENCE), Syncer(second, filter=NO_PRESENCE)]
    for s in syncers:
        s.initial()
    marker = fresh_marker()
    assert_status(send_to_device(user2, {user.user_id: {"*": {"marker": marker}}}), 200)
    for s in syncers:
        events = s.until(lambda b: marked(b, marker), what=f"the message on {s.user.device_id}")
        assert len(events) == 1 and events[0]["sender"] == user2.user_id, events


def test_addressed_device_only(user, user2):
    second = user.login_again()
    other = Syncer(second, filter=NO_PRESENCE)
    other.initial()
    target = Syncer(user, filter=NO_PRESENCE)
    target.initial()
    marker, done = fresh_marker(), fresh_marker()
    assert_status(send_to_device(user2, {user.user_id: {user.device_id: {"marker": marker}}}), 200)
    target.until(lambda b: marked(b, marker), what="the message on the addressed device")
    # Then one for the other device: when it arrives, the first would have too.
    assert_status(send_to_device(user2, {user.user_id: {second.device_id: {"marker": done}}}), 200)
    seen = other.collect(lambda b: marked(b, done), what="the message on the other device")
    assert not any(marked(b, marker) for b in seen), [to_device(b) for b in seen]


def test_several_recipients_in_one_request(user, user2, open_server):
    user3 = open_server.register()
    syncers = [Syncer(user, filter=NO_PRESENCE), Syncer(user3, filter=NO_PRESENCE)]
    for s in syncers:
        s.initial()
    marker = fresh_marker()
    messages = {
        user.user_id: {user.device_id: {"marker": marker, "to": "user"}},
        user3.user_id: {"*": {"marker": marker, "to": "user3"}},
    }
    assert_status(send_to_device(user2, messages), 200)
    for s, to in zip(syncers, ("user", "user3")):
        events = s.until(lambda b: marked(b, marker), what=f"the message for {to}")
        assert [e["content"]["to"] for e in events] == [to], events


def test_missing_messages_rejected(user):
    resp = user.put(f"sendToDevice/{q(EVENT_TYPE)}/{new_txn_id()}", json={})
    # `messages` is required. Synapse: M_MISSING_PARAM; M_BAD_JSON also fits.
    assert_error(resp, 400, ("M_BAD_JSON", "M_MISSING_PARAM"))
