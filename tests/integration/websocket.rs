//! The WebSocket sync transport: ordered delivery, resume after a dropped connection with
//! nothing lost or doubled, auth failures, the ack (slow consumer) policy, logout closing.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::harness::{Server, unique};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const PATH: &str = "/_matrix/client/unstable/org.roost.ws/sync";
/// How many responses the server sends ahead of the client's acks (docs/websocket.md).
const WINDOW: usize = 32;

async fn connect(
    server: &Server,
    token: Option<&str>,
    since: Option<&str>,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let mut url = format!("{}{PATH}", server.base.replacen("http", "ws", 1));
    if let Some(since) = since {
        url.push_str(&format!("?since={since}"));
    }
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

/// The next `sync` message (pings are answered by the library).
async fn next_sync(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message in time");
        match message.expect("socket open").expect("no error") {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(value["type"], "sync");
                return value["body"].clone();
            }
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => continue,
        }
    }
}

/// The code of the close frame the server sends next (within 5 s), or none if the socket just
/// ends.
async fn close_code(socket: &mut Socket) -> Option<u16> {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("closed promptly")
}

async fn ack(socket: &mut Socket, body: &Value) {
    let ack = json!({ "type": "ack", "next_batch": body["next_batch"] }).to_string();
    socket.send(Message::Text(ack.into())).await.unwrap();
}

fn messages(body: &Value, room: &str) -> Vec<String> {
    body["rooms"]["join"][room]["timeline"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].as_str().unwrap().to_owned())
        .collect()
}

async fn setup(server: &Server) -> (String, String, String) {
    let (_, sender, _) = server.register(&unique("wss"), "pw").await;
    let (_, reader, _) = server.register(&unique("wsr"), "pw").await;
    let (_, body) = server
        .request(
            Method::POST,
            "/_matrix/client/v3/createRoom",
            Some(&sender),
            Some(json!({"preset": "public_chat"})),
        )
        .await;
    let room = body["room_id"].as_str().unwrap().to_owned();
    assert_eq!(server.join(&reader, &room).await, StatusCode::OK);
    (sender, reader, room)
}

async fn send(server: &Server, token: &str, room: &str, body: &str) {
    let path = format!(
        "/_matrix/client/v3/rooms/{room}/send/m.room.message/{}",
        unique("t")
    );
    let (status, res) = server
        .request(
            Method::PUT,
            &path,
            Some(token),
            Some(json!({"msgtype": "m.text", "body": body})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
}

/// A fresh server, a sender's and a reader's tokens, the room both are in, and the reader's
/// socket past its initial sync (also returned), which is acknowledged.
async fn connected() -> (Server, String, String, String, Socket, Value) {
    let server = Server::start().await;
    let (sender, reader, room) = setup(&server).await;
    let mut socket = connect(&server, Some(&reader), None).await.unwrap();
    let initial = next_sync(&mut socket).await;
    ack(&mut socket, &initial).await;
    (server, sender, reader, room, socket, initial)
}

#[tokio::test]
async fn delivers_in_order_and_resumes_without_loss_or_doubles() {
    let (server, sender, reader, room, mut socket, initial) = connected().await;
    assert!(
        initial["rooms"]["join"][&room].is_object(),
        "initial sync carries the room"
    );

    let mut received = Vec::new();
    let mut last_acked = initial["next_batch"].as_str().unwrap().to_owned();
    for i in 0..5 {
        send(&server, &sender, &room, &format!("m{i}")).await;
        let body = next_sync(&mut socket).await;
        received.extend(messages(&body, &room));
        ack(&mut socket, &body).await;
        last_acked = body["next_batch"].as_str().unwrap().to_owned();
    }
    assert_eq!(received, ["m0", "m1", "m2", "m3", "m4"]);

    // The connection drops; meanwhile more is sent; resuming from the last ack gets exactly that.
    drop(socket);
    for i in 5..8 {
        send(&server, &sender, &room, &format!("m{i}")).await;
    }
    let mut socket = connect(&server, Some(&reader), Some(&last_acked))
        .await
        .unwrap();
    let resumed = read_messages(&mut socket, &room, 3).await;
    assert_eq!(resumed, ["m5", "m6", "m7"], "nothing lost, nothing twice");
}

/// Asserts that no `sync` message arrives for a while (the window is full).
async fn assert_quiet(socket: &mut Socket, why: &str) {
    let quiet = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            if let Some(Ok(Message::Text(t))) = socket.next().await {
                return t;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "{why}: {quiet:?}");
}

#[tokio::test]
async fn up_to_a_window_of_responses_go_unacknowledged_and_one_ack_covers_earlier_ones() {
    let (server, sender, reader, room, mut socket, _) = connected().await;
    let mut unacked = Vec::new();
    for i in 0..WINDOW {
        send(&server, &sender, &room, &format!("m{i}")).await;
        let body = next_sync(&mut socket).await;
        assert_eq!(
            messages(&body, &room),
            [format!("m{i}")],
            "each picks up after the last sent"
        );
        unacked.push(body);
    }
    // The window is full: nothing more is sent however much arrives.
    send(&server, &sender, &room, "beyond").await;
    assert_quiet(&mut socket, "nothing may be sent with the window full").await;
    // One ack of the second response acknowledges the first two: room for more.
    ack(&mut socket, &unacked[1]).await;
    let body = next_sync(&mut socket).await;
    assert_eq!(messages(&body, &room), ["beyond"]);
    // An ack of a response already acknowledged is a protocol error.
    ack(&mut socket, &unacked[0]).await;
    let closed = close_code(&mut socket).await;
    assert_eq!(closed, Some(4002));
    // Resuming from the last response the client processed, acked or not, gets what followed.
    // (A few responses back, so that what followed fits one timeline.)
    let processed = WINDOW - 4;
    let mut socket = connect(
        &server,
        Some(&reader),
        unacked[processed]["next_batch"].as_str(),
    )
    .await
    .unwrap();
    let mut expected: Vec<String> = (processed + 1..WINDOW).map(|i| format!("m{i}")).collect();
    expected.push("beyond".into());
    let resumed = read_messages(&mut socket, &room, expected.len()).await;
    assert_eq!(resumed, expected);
}

#[tokio::test]
async fn to_device_messages_stay_until_acknowledged() {
    let server = Server::start().await;
    let (_, sender, _) = server.register(&unique("wtds"), "pw").await;
    let (reader_id, reader, reader_device) = server.register(&unique("wtdr"), "pw").await;
    let to_device = |body: &Value| -> Vec<String> {
        body["to_device"]["events"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["content"]["n"].as_str().unwrap().to_owned())
            .collect()
    };
    let send_to_device = |n: &'static str| {
        let path = format!("/_matrix/client/v3/sendToDevice/m.test/{}", unique("td"));
        let body = json!({ "messages": { &reader_id: { &reader_device: { "n": n } } } });
        let (server, sender) = (&server, &sender);
        async move {
            let (status, res) = server
                .request(Method::PUT, &path, Some(sender), Some(body))
                .await;
            assert_eq!(status, StatusCode::OK, "{res}");
        }
    };
    let mut socket = connect(&server, Some(&reader), None).await.unwrap();
    let initial = next_sync(&mut socket).await;
    ack(&mut socket, &initial).await;
    send_to_device("first").await;
    let first = next_sync(&mut socket).await;
    assert_eq!(to_device(&first), ["first"]);
    // Unacknowledged: the next response doesn't repeat it, but the server keeps it.
    send_to_device("second").await;
    let second = next_sync(&mut socket).await;
    assert_eq!(to_device(&second), ["second"]);
    drop(socket);
    // Resuming from the last acked token gets both again (neither was acknowledged).
    let mut socket = connect(&server, Some(&reader), initial["next_batch"].as_str())
        .await
        .unwrap();
    let mut again = Vec::new();
    while again.len() < 2 {
        let body = next_sync(&mut socket).await;
        again.extend(to_device(&body));
        ack(&mut socket, &body).await;
    }
    assert_eq!(again, ["first", "second"]);
    // Acknowledged, they are deleted when the next response for the device is made: a
    // connection from before them finds only what came after.
    send_to_device("third").await;
    let body = next_sync(&mut socket).await;
    assert_eq!(to_device(&body), ["third"]);
    drop(socket);
    let mut socket = connect(&server, Some(&reader), initial["next_batch"].as_str())
        .await
        .unwrap();
    let body = next_sync(&mut socket).await;
    assert_eq!(
        to_device(&body),
        ["third"],
        "acknowledged messages were deleted"
    );
}

#[tokio::test]
async fn bad_tokens_are_refused_and_auth_can_come_in_the_first_message() {
    let server = Server::start().await;
    let (_, reader, room) = setup(&server).await;
    let refused = connect(&server, Some("syt_bogus"), None).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected HTTP 401 before the upgrade: {other:?}"),
    }
    // Browsers can't set headers: the token may be the first message instead.
    let mut socket = connect(&server, None, None).await.unwrap();
    let auth = json!({ "type": "auth", "access_token": reader }).to_string();
    socket.send(Message::Text(auth.into())).await.unwrap();
    let body = next_sync(&mut socket).await;
    assert!(body["rooms"]["join"][&room].is_object());
    // A wrong token in the first message closes the socket with 4001.
    let mut socket = connect(&server, None, None).await.unwrap();
    let auth = json!({ "type": "auth", "access_token": "nope" }).to_string();
    socket.send(Message::Text(auth.into())).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .unwrap();
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 4001),
        other => panic!("expected close 4001: {other:?}"),
    }
}

#[tokio::test]
async fn a_bad_set_presence_is_refused_before_the_upgrade() {
    let server = Server::start().await;
    let (_, reader, _) = setup(&server).await;
    let url = format!(
        "{}{PATH}?set_presence=asleep",
        server.base.replacen("http", "ws", 1)
    );
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {reader}").parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400)
        }
        other => panic!("expected HTTP 400 before the upgrade: {other:?}"),
    }
}

#[tokio::test]
async fn logout_closes_the_socket() {
    let (server, _, reader, _, mut socket, _) = connected().await;
    let (status, _) = server
        .request(
            Method::POST,
            "/_matrix/client/v3/logout",
            Some(&reader),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let closed = close_code(&mut socket).await;
    assert_eq!(closed, Some(4001));
}

/// A client only ever sends small auth and ack messages: a huge one closes the socket with
/// 1009 (message too big) instead of being buffered.
#[tokio::test]
async fn an_oversized_client_message_closes_the_socket() {
    let server = Server::start().await;
    let (_, reader, _) = setup(&server).await;
    let mut socket = connect(&server, Some(&reader), None).await.unwrap();
    let initial = next_sync(&mut socket).await;
    let huge = json!({ "type": "ack", "next_batch": "x".repeat(256 * 1024) }).to_string();
    // The server may close while the frame is still being written: a send error is fine.
    let _ = socket.send(Message::Text(huge.into())).await;
    let closed = close_code(&mut socket).await;
    assert_eq!(closed, Some(1009), "{initial}");
}

/// Messages read in order until `n` have come, acknowledging each response.
async fn read_messages(socket: &mut Socket, room: &str, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        let body = next_sync(socket).await;
        got.extend(messages(&body, room));
        ack(socket, &body).await;
    }
    got
}

/// Most responses under fan-out are written by the wake-up itself, not the connection's task;
/// several sockets reading one room each get every message once, in order, whoever wrote it.
#[tokio::test]
async fn several_sockets_each_get_every_message_of_a_burst_once_in_order() {
    let server = Server::start().await;
    let (sender, reader, room) = setup(&server).await;
    let mut readers = vec![reader];
    for _ in 0..3 {
        let (_, token, _) = server.register(&unique("wsm"), "pw").await;
        assert_eq!(server.join(&token, &room).await, StatusCode::OK);
        readers.push(token);
    }
    let mut sockets = Vec::new();
    for token in &readers {
        let mut socket = connect(&server, Some(token), None).await.unwrap();
        let initial = next_sync(&mut socket).await;
        ack(&mut socket, &initial).await;
        sockets.push(socket);
    }
    let sent: Vec<String> = (0..40).map(|i| format!("b{i}")).collect();
    let readers = sockets.into_iter().map(|mut socket| {
        let room = room.clone();
        tokio::spawn(async move { read_messages(&mut socket, &room, 40).await })
    });
    let readers: Vec<_> = readers.collect();
    for body in &sent {
        send(&server, &sender, &room, body).await;
    }
    for reader in readers {
        assert_eq!(reader.await.unwrap(), sent);
    }
}

/// A client that doesn't read fills its socket: what the kernel can't take waits, in order,
/// for the client to read on (and the window still bounds how much is made).
#[tokio::test]
async fn a_client_that_reads_slowly_gets_every_message_once_in_order() {
    let server = Server::start().await;
    let (sender, reader, room) = setup(&server).await;
    // A small receive buffer, so that the server's writes fill it at once.
    let addr = server.base.trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let stream = tcp.connect(addr.parse().unwrap()).await.unwrap();
    // Room in every timeline for all that accumulates while the client doesn't read.
    let filter = "%7B%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22%3A50%7D%7D%7D";
    let mut request = format!("ws://{addr}{PATH}?filter={filter}")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {reader}").parse().unwrap());
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (mut socket, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    let initial = next_sync(&mut socket).await;
    ack(&mut socket, &initial).await;
    // Each message alone is larger than the client's buffer, and all of them more than the
    // kernel buffers on both sides.
    let sent: Vec<String> = (0..24)
        .map(|i| format!("{i}{}", "x".repeat(60_000)))
        .collect();
    for body in &sent {
        send(&server, &sender, &room, body).await;
    }
    assert_eq!(read_messages(&mut socket, &room, sent.len()).await, sent);
}

/// The server answers a client's ping with its payload, and takes an ack sent in fragments.
#[tokio::test]
async fn pings_are_answered_and_a_fragmented_ack_is_taken() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let server = Server::start().await;
    let (sender, reader, room) = setup(&server).await;
    let mut socket = connect(&server, Some(&reader), None).await.unwrap();
    let initial = next_sync(&mut socket).await;
    socket
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Ok(Message::Pong(payload))) = socket.next().await {
                return payload;
            }
        }
    })
    .await
    .expect("a pong");
    assert_eq!(&pong[..], b"are you there");
    // The ack of the initial sync, in two frames.
    let ack = json!({ "type": "ack", "next_batch": initial["next_batch"] }).to_string();
    let (first, rest) = ack.split_at(10);
    for (part, opcode, fin) in [
        (first, OpCode::Data(Data::Text), false),
        (rest, OpCode::Data(Data::Continue), true),
    ] {
        let frame = Frame::message(part.as_bytes().to_vec(), opcode, fin);
        socket.send(Message::Frame(frame)).await.unwrap();
    }
    // Taken: the window has room for a whole window more without another ack (an ack the server
    // didn't take would have closed the socket, or left room for one fewer).
    let mut got = Vec::new();
    for i in 0..WINDOW {
        send(&server, &sender, &room, &format!("f{i}")).await;
        while got.len() <= i {
            got.extend(messages(&next_sync(&mut socket).await, &room));
        }
    }
    assert_eq!(
        got,
        (0..WINDOW).map(|i| format!("f{i}")).collect::<Vec<_>>()
    );
}
