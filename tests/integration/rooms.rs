//! Rooms: total order under concurrent senders, idempotent concurrent retries, and rooms
//! surviving a crash.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Server, unique};

async fn create_room(server: &Server, token: &str, body: Value) -> String {
    let (status, res) = server
        .request(
            Method::POST,
            "/_matrix/client/v3/createRoom",
            Some(token),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    res["room_id"].as_str().unwrap().to_owned()
}

async fn all_messages(server: &Server, token: &str, room: &str) -> Vec<Value> {
    let path = format!("/_matrix/client/v3/rooms/{room}/messages?dir=f&limit=1000");
    let (status, res) = server.request(Method::GET, &path, Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    res["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .cloned()
        .collect()
}

#[tokio::test]
async fn concurrent_senders_get_one_total_order_with_each_senders_order_kept() {
    let server = Server::start().await;
    let (_, alice, _) = server.register(&unique("alice"), "pw").await;
    let (bob_id, bob, _) = server.register(&unique("bob"), "pw").await;
    let room = create_room(&server, &alice, json!({"preset": "public_chat"})).await;
    let (status, _) = server
        .request(
            Method::POST,
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&bob),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let per_sender = 30;
    let send_all = |token: String, who: &'static str| {
        let server = &server;
        let room = room.clone();
        async move {
            for i in 0..per_sender {
                let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/{who}{i}");
                let body = json!({"msgtype": "m.text", "body": format!("{who} {i}")});
                let (status, res) = server
                    .request(Method::PUT, &path, Some(&token), Some(body))
                    .await;
                assert_eq!(status, StatusCode::OK, "{res}");
            }
        }
    };
    tokio::join!(send_all(alice.clone(), "a"), send_all(bob.clone(), "b"));

    let events = all_messages(&server, &alice, &room).await;
    assert_eq!(events.len(), 2 * per_sender, "every message stored once");
    let ids: HashSet<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), events.len());
    for who in ["a", "b"] {
        let order: Vec<usize> = events
            .iter()
            .filter_map(|e| {
                e["content"]["body"]
                    .as_str()?
                    .strip_prefix(&format!("{who} "))?
                    .parse()
                    .ok()
            })
            .collect();
        assert_eq!(
            order,
            (0..per_sender).collect::<Vec<_>>(),
            "{who}'s messages keep their order"
        );
    }
    // Both readers see the same order.
    let bobs_view = all_messages(&server, &bob, &room).await;
    assert_eq!(
        bobs_view,
        events
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e["unsigned"] = bobs_view
                    .iter()
                    .find(|b| b["event_id"] == e["event_id"])
                    .unwrap()["unsigned"]
                    .clone();
                e
            })
            .collect::<Vec<_>>()
    );
    let _ = bob_id;
}

#[tokio::test]
async fn concurrent_retries_of_one_txn_store_one_event() {
    let server = Server::start().await;
    let (_, token, _) = server.register(&unique("txn"), "pw").await;
    let room = create_room(&server, &token, json!({})).await;
    let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/same-txn");
    let attempts = (0..10).map(|_| {
        server.request(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"msgtype": "m.text", "body": "once"})),
        )
    });
    let results = futures_util::future::join_all(attempts).await;
    let ids: HashSet<String> = results
        .iter()
        .map(|(status, res)| {
            assert_eq!(*status, StatusCode::OK, "{res}");
            res["event_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every retry answers the same event id");
    assert_eq!(
        all_messages(&server, &token, &room).await.len(),
        1,
        "stored once"
    );
}

#[tokio::test]
async fn rooms_and_their_state_survive_a_crash_and_keep_growing() {
    let server = Server::start().await;
    let (_, token, _) = server.register(&unique("durable"), "pw").await;
    let room = create_room(
        &server,
        &token,
        json!({"name": "Before", "room_version": "12"}),
    )
    .await;
    for i in 0..5 {
        let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/pre{i}");
        server
            .request(
                Method::PUT,
                &path,
                Some(&token),
                Some(json!({"msgtype": "m.text", "body": i.to_string()})),
            )
            .await;
    }
    let (dir, tmp) = server.crash().await;
    let server = Server::start_in(&dir, &[]).await;

    let (status, name) = server
        .request(
            Method::GET,
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.name/"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{name}");
    assert_eq!(name["name"], "Before");
    // The room keeps working: new state and messages append after the old ones.
    let path = format!("/_matrix/client/v3/rooms/{room}/state/m.room.name/");
    let (status, _) = server
        .request(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"name": "After"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/post");
    server
        .request(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"msgtype": "m.text", "body": "5"})),
        )
        .await;
    let bodies: Vec<String> = all_messages(&server, &token, &room)
        .await
        .iter()
        .map(|e| e["content"]["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies, ["0", "1", "2", "3", "4", "5"]);
    drop(tmp);
}

#[tokio::test]
async fn oversized_and_malformed_events_are_refused_and_change_nothing() {
    let server = Server::start_with(&[("ROOST_LIMITS__MAX_REQUEST_BYTES", "200000")]).await;
    let (_, token, _) = server.register(&unique("big"), "pw").await;
    let room = create_room(&server, &token, json!({})).await;
    let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/huge");
    let res = server
        .request(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"msgtype": "m.text", "body": "x".repeat(70_000)})),
        )
        .await;
    crate::harness::assert_error(&res, StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
    let path = format!("/_matrix/client/v3/rooms/{room}/state/m.room.name/");
    let res = server
        .request(Method::PUT, &path, Some(&token), Some(json!({"name": 5})))
        .await;
    crate::harness::assert_error(&res, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    let res = server
        .request(
            Method::PUT,
            "/_matrix/client/v3/rooms/not-a-room/send/m.room.message/t",
            Some(&token),
            Some(json!({})),
        )
        .await;
    crate::harness::assert_error(&res, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let res = server
        .request(
            Method::PUT,
            "/_matrix/client/v3/rooms/!nope:localhost/send/m.room.message/t",
            Some(&token),
            Some(json!({})),
        )
        .await;
    crate::harness::assert_error(&res, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert!(
        all_messages(&server, &token, &room).await.is_empty(),
        "nothing refused was stored"
    );
}
