//! Sync under concurrency: many senders in several rooms while many clients long-poll; each
//! client sees every event of its rooms exactly once and in each room's order.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Server, unique};

/// A filter with a timeline limit large enough that no sync response is `limited`.
const NO_GAPS: &str = r#"{"room":{"timeline":{"limit":1000}}}"#;

async fn sync(server: &Server, token: &str, since: Option<&str>, timeout_ms: u64) -> Value {
    let mut path = format!(
        "/_matrix/client/v3/sync?timeout={timeout_ms}&filter={}",
        urlencode(NO_GAPS)
    );
    if let Some(since) = since {
        path.push_str(&format!("&since={since}"));
    }
    let (status, body) = server.request(Method::GET, &path, Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Message event ids per room seen by a syncer, from its first token until it has `want` per
/// room (or the deadline).
async fn follow(
    server: &Server,
    token: &str,
    rooms: &[String],
    want: usize,
) -> HashMap<String, Vec<String>> {
    let mut seen: HashMap<String, Vec<String>> =
        rooms.iter().map(|r| (r.clone(), Vec::new())).collect();
    // The initial sync counts too: sending has already begun, so it may carry messages.
    let mut since: Option<String> = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while since.is_none() || seen.values().any(|v| v.len() < want) {
        let counts: Vec<usize> = seen.values().map(Vec::len).collect();
        assert!(
            Instant::now() < deadline,
            "syncer saw only {counts:?} of {want} per room in time"
        );
        let body = sync(server, token, since.as_deref(), 5000).await;
        for (room_id, room) in body["rooms"]["join"].as_object().into_iter().flatten() {
            assert_eq!(
                room["timeline"]["limited"], false,
                "the filter allows no gaps"
            );
            for event in room["timeline"]["events"].as_array().unwrap() {
                if event["type"] == "m.room.message" {
                    seen.get_mut(room_id)
                        .unwrap()
                        .push(event["event_id"].as_str().unwrap().to_owned());
                }
            }
        }
        since = Some(body["next_batch"].as_str().unwrap().to_owned());
    }
    seen
}

#[tokio::test]
async fn every_syncer_sees_every_event_once_in_room_order() {
    let server = Server::start().await;
    let (rooms_n, senders_n, syncers_n, per_sender) = (3, 3, 6, 15);
    let (_, owner, _) = server.register(&unique("owner"), "pw").await;
    let mut rooms = Vec::new();
    for _ in 0..rooms_n {
        let (_, body) = server
            .request(
                Method::POST,
                "/_matrix/client/v3/createRoom",
                Some(&owner),
                Some(json!({"preset": "public_chat"})),
            )
            .await;
        rooms.push(body["room_id"].as_str().unwrap().to_owned());
    }
    let mut users = Vec::new();
    for i in 0..(senders_n + syncers_n) {
        let (_, token, _) = server.register(&unique(&format!("u{i}")), "pw").await;
        for room in &rooms {
            assert_eq!(server.join(&token, room).await, StatusCode::OK);
        }
        users.push(token);
    }
    let (senders, syncers) = users.split_at(senders_n);
    let want = senders_n * per_sender;

    let followers = syncers
        .iter()
        .map(|token| follow(&server, token, &rooms, want));
    let sends = senders.iter().enumerate().map(|(s, token)| {
        let server = &server;
        let rooms = rooms.clone();
        async move {
            for i in 0..per_sender {
                for room in &rooms {
                    let path =
                        format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/s{s}m{i}");
                    let (status, body) = server
                        .request(
                            Method::PUT,
                            &path,
                            Some(token),
                            Some(json!({"msgtype": "m.text", "body": format!("{s}/{i}")})),
                        )
                        .await;
                    assert_eq!(status, StatusCode::OK, "{body}");
                }
            }
        }
    });
    let (seen_by_all, _) = tokio::join!(
        futures_util::future::join_all(followers),
        futures_util::future::join_all(sends)
    );

    for room in &rooms {
        let path = format!("/_matrix/client/v3/rooms/{room}/messages?dir=f&limit=1000");
        let (_, body) = server.request(Method::GET, &path, Some(&owner), None).await;
        let order: Vec<String> = body["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "m.room.message")
            .map(|e| e["event_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(order.len(), want);
        for seen in &seen_by_all {
            assert_eq!(
                seen[room], order,
                "a syncer saw {room} differently from its stored order"
            );
        }
    }
}

#[tokio::test]
async fn use_state_after_gives_the_state_at_the_end_of_the_timeline() {
    let server = Server::start().await;
    let (_, token, _) = server.register(&unique("sa"), "pw").await;
    let (_, body) = server
        .request(
            Method::POST,
            "/_matrix/client/v3/createRoom",
            Some(&token),
            Some(json!({"name": "Before"})),
        )
        .await;
    let room = body["room_id"].as_str().unwrap().to_owned();
    let path = "/_matrix/client/v3/sync?use_state_after=true";
    let (_, initial) = server.request(Method::GET, path, Some(&token), None).await;
    let joined = &initial["rooms"]["join"][&room];
    assert!(joined.get("state").is_none(), "state is omitted: {joined}");
    let names: Vec<&Value> = joined["state_after"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.name")
        .collect();
    assert_eq!(
        names.len(),
        1,
        "the name is in state_after even though it is in the timeline too"
    );

    let since = initial["next_batch"].as_str().unwrap();
    let name_path = format!("/_matrix/client/v3/rooms/{room}/state/m.room.name/");
    server
        .request(
            Method::PUT,
            &name_path,
            Some(&token),
            Some(json!({"name": "After"})),
        )
        .await;
    let (_, incremental) = server
        .request(
            Method::GET,
            &format!("{path}&since={since}"),
            Some(&token),
            None,
        )
        .await;
    let joined = &incremental["rooms"]["join"][&room];
    let after: Vec<&Value> = joined["state_after"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(after.len(), 1, "only what changed: {joined}");
    assert_eq!(after[0]["content"]["name"], "After");
    // Without the parameter: `state` (empty here, the change is in the timeline) and no `state_after`.
    let (_, plain) = server
        .request(
            Method::GET,
            &format!("/_matrix/client/v3/sync?since={since}"),
            Some(&token),
            None,
        )
        .await;
    let joined = &plain["rooms"]["join"][&room];
    assert!(
        joined.get("state_after").is_none()
            && joined["state"]["events"].as_array().unwrap().is_empty(),
        "{joined}"
    );
}
