//! The WebSocket protocol (RFC 6455) as a server speaks it: the opening handshake, reading a
//! client's frames, and server frames as bytes.
//!
//! Roost frames its own messages instead of handing them to a WebSocket library's stream, so
//! that one sync response shared by thousands of connections is framed once (a server's
//! frames are never masked: the bytes on the wire are the same for every connection) and can
//! be written to a socket by whichever thread has it at hand (`api/client/websocket/`), not
//! only by the task that owns a stream object. No extensions (compression) and no
//! subprotocols are negotiated.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, Bytes, BytesMut};

/// Opcodes (RFC 6455 §5.2).
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
const FIN: u8 = 0x80;

/// Close codes (RFC 6455 §7.4.1) for what a client may get wrong.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_INVALID_DATA: u16 = 1007;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// The `Sec-WebSocket-Accept` answer to an upgrade request, or why it is refused (as plain
/// HTTP, before any WebSocket exists).
pub fn check_upgrade(
    method: &Method,
    headers: &HeaderMap,
) -> Result<HeaderValue, (StatusCode, &'static str)> {
    let refuse = |status: StatusCode, why: &'static str| Err((status, why));
    if method != Method::GET {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "a WebSocket upgrade is a GET",
        );
    }
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "expected Connection: upgrade and Upgrade: websocket",
        );
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "only WebSocket version 13 is spoken",
        );
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return refuse(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing");
    };
    Ok(HeaderValue::from_str(&accept_key(key.as_bytes())).expect("base64 is a valid header value"))
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455 §4.2.2 item 5.4):
/// base64 of the SHA-1 of the key followed by the protocol's fixed GUID.
fn accept_key(key: &[u8]) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut sha1 = sha1::Sha1::new();
    sha1.update(key);
    sha1.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

/// The `101 Switching Protocols` answer to an upgrade request `check_upgrade` accepted.
pub fn switching_protocols(accept: HeaderValue) -> Response {
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// Room left in front of a text frame's payload for its header (at most 10 bytes).
const HEADROOM: usize = 10;

/// A buffer to write a text frame's payload into; [`finish_text_frame`] puts the header in
/// front without moving the payload.
pub fn start_text_frame(capacity: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADROOM + capacity);
    buf.resize(HEADROOM, 0);
    buf
}

/// The frame whose payload was written after [`start_text_frame`]'s headroom, and the length of
/// its header (the payload is `frame[header..]`).
pub fn finish_text_frame(mut buf: Vec<u8>) -> (Bytes, usize) {
    let header = header(FIN | TEXT, buf.len() - HEADROOM);
    let start = HEADROOM - header.len();
    buf[start..HEADROOM].copy_from_slice(&header);
    (Bytes::from(buf).slice(start..), header.len())
}

fn header(first: u8, len: usize) -> Vec<u8> {
    let mut header = Vec::with_capacity(HEADROOM);
    header.push(first);
    match len {
        0..=125 => header.push(len as u8),
        126..=0xFFFF => {
            header.push(126);
            header.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            header.push(127);
            header.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    header
}

fn control(opcode: u8, payload: &[u8]) -> Bytes {
    let payload = &payload[..payload.len().min(125)];
    let mut frame = header(FIN | opcode, payload.len());
    frame.extend_from_slice(payload);
    frame.into()
}

pub fn ping_frame() -> Bytes {
    control(PING, &[])
}

pub fn pong_frame(payload: &[u8]) -> Bytes {
    control(PONG, payload)
}

/// A close frame with a code and a reason (cut to fit a control frame).
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut payload = code.to_be_bytes().to_vec();
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    control(CLOSE, &payload)
}

/// A message from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Text(String),
    Binary,
    Ping(Bytes),
    Pong,
    /// The client closes, with its code if it gave one.
    Close(Option<u16>),
}

/// The client broke the protocol: close with this code.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation {
    pub code: u16,
    pub reason: &'static str,
}

fn violation(code: u16, reason: &'static str) -> Violation {
    Violation { code, reason }
}

/// Client frames in, whole messages out: unmasking, reassembling fragmented messages (control
/// frames may come between the fragments), and the limits.
pub struct FrameReader {
    /// Bytes read from the socket and not yet parsed.
    pub buf: BytesMut,
    /// The fragments so far of a message in several frames (text or not).
    partial: Option<(bool, Vec<u8>)>,
    max_message: usize,
}

impl FrameReader {
    pub fn new(max_message: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            partial: None,
            max_message,
        }
    }

    /// The next whole message in the bytes read so far, if there is one yet.
    pub fn next_message(&mut self) -> Result<Option<Incoming>, Violation> {
        loop {
            let Some((first, payload)) = self.next_frame()? else {
                return Ok(None);
            };
            let fin = first & FIN != 0;
            match first & 0x0F {
                opcode @ (TEXT | BINARY) => {
                    if self.partial.is_some() {
                        return Err(violation(
                            CLOSE_PROTOCOL_ERROR,
                            "a new message before the last one ended",
                        ));
                    }
                    if fin {
                        return message(opcode == TEXT, payload.to_vec()).map(Some);
                    }
                    self.partial = Some((opcode == TEXT, payload.to_vec()));
                }
                CONTINUATION => {
                    let Some((_, parts)) = self.partial.as_mut() else {
                        return Err(violation(
                            CLOSE_PROTOCOL_ERROR,
                            "a continuation of no message",
                        ));
                    };
                    if parts.len() + payload.len() > self.max_message {
                        return Err(violation(CLOSE_TOO_BIG, "message too big"));
                    }
                    parts.extend_from_slice(&payload);
                    if fin {
                        let (text, parts) = self.partial.take().expect("checked above");
                        return message(text, parts).map(Some);
                    }
                }
                opcode @ (CLOSE | PING | PONG) => {
                    if !fin || payload.len() > 125 {
                        return Err(violation(
                            CLOSE_PROTOCOL_ERROR,
                            "a fragmented or long control frame",
                        ));
                    }
                    return Ok(Some(match opcode {
                        PING => Incoming::Ping(payload),
                        PONG => Incoming::Pong,
                        _ => Incoming::Close(
                            (payload.len() >= 2)
                                .then(|| u16::from_be_bytes([payload[0], payload[1]])),
                        ),
                    }));
                }
                _ => return Err(violation(CLOSE_PROTOCOL_ERROR, "unknown opcode")),
            }
        }
    }

    /// One whole frame's first byte and unmasked payload, if all of it has been read.
    fn next_frame(&mut self) -> Result<Option<(u8, Bytes)>, Violation> {
        let buf = &self.buf[..];
        if buf.len() < 2 {
            return Ok(None);
        }
        let (first, second) = (buf[0], buf[1]);
        if first & 0x70 != 0 {
            return Err(violation(
                CLOSE_PROTOCOL_ERROR,
                "reserved bits set (no extension was negotiated)",
            ));
        }
        if second & 0x80 == 0 {
            return Err(violation(
                CLOSE_PROTOCOL_ERROR,
                "a client's frames must be masked",
            ));
        }
        let (len, at) = match second & 0x7F {
            126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
            127 if buf.len() >= 10 => (
                u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes")),
                10,
            ),
            126 | 127 => return Ok(None),
            n => (u64::from(n), 2),
        };
        // Checked before waiting for the payload: nothing this large is ever buffered.
        if len > self.max_message as u64 {
            return Err(violation(CLOSE_TOO_BIG, "message too big"));
        }
        let (len, have) = (len as usize, buf.len());
        if have < at + 4 + len {
            self.buf.reserve(at + 4 + len - have);
            return Ok(None);
        }
        let mask: [u8; 4] = self.buf[at..at + 4].try_into().expect("4 bytes");
        self.buf.advance(at + 4);
        let mut payload = self.buf.split_to(len);
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
        Ok(Some((first, payload.freeze())))
    }
}

fn message(text: bool, payload: Vec<u8>) -> Result<Incoming, Violation> {
    if !text {
        return Ok(Incoming::Binary);
    }
    String::from_utf8(payload)
        .map(Incoming::Text)
        .map_err(|_| violation(CLOSE_INVALID_DATA, "a text message that isn't UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_is_rfc_6455s_example() {
        // RFC 6455 §1.3: the sample nonce and the answer a server must give.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    /// A client frame: masked, as clients must.
    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut frame = header(first, payload.len());
        frame[1] |= 0x80;
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    fn read_all(bytes: &[u8]) -> Vec<Result<Incoming, Violation>> {
        let mut reader = FrameReader::new(1024);
        let mut out = Vec::new();
        // Byte by byte: every frame boundary and partial header is seen.
        for byte in bytes {
            reader.buf.extend_from_slice(&[*byte]);
            loop {
                match reader.next_message() {
                    Ok(Some(m)) => out.push(Ok(m)),
                    Ok(None) => break,
                    Err(v) => {
                        out.push(Err(v));
                        return out;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn masked_messages_are_read_whole_across_fragments_with_control_frames_between() {
        let mut bytes = client_frame(FIN | TEXT, b"hello");
        bytes.extend(client_frame(TEXT, "h\u{e9}".as_bytes()));
        bytes.extend(client_frame(FIN | PING, b"p"));
        bytes.extend(client_frame(CONTINUATION, b"ll"));
        bytes.extend(client_frame(FIN | CONTINUATION, b"o"));
        bytes.extend(client_frame(FIN | BINARY, &[0, 1]));
        bytes.extend(client_frame(FIN | TEXT, &[b'x'; 300]));
        bytes.extend(client_frame(FIN | PONG, b""));
        bytes.extend(client_frame(FIN | CLOSE, &1000u16.to_be_bytes()));
        let messages: Vec<_> = read_all(&bytes).into_iter().map(Result::unwrap).collect();
        assert_eq!(
            messages,
            vec![
                Incoming::Text("hello".into()),
                Incoming::Ping(Bytes::from_static(b"p")),
                Incoming::Text("h\u{e9}llo".into()),
                Incoming::Binary,
                Incoming::Text("x".repeat(300)),
                Incoming::Pong,
                Incoming::Close(Some(1000)),
            ]
        );
    }

    #[test]
    fn protocol_violations_get_their_close_codes() {
        let unmasked = [FIN | TEXT, 1, b'a'];
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (unmasked.to_vec(), CLOSE_PROTOCOL_ERROR),
            (client_frame(FIN | TEXT | 0x40, b"a"), CLOSE_PROTOCOL_ERROR),
            (client_frame(FIN | 0x3, b"a"), CLOSE_PROTOCOL_ERROR),
            (client_frame(FIN | CONTINUATION, b"a"), CLOSE_PROTOCOL_ERROR),
            (client_frame(PING, b"a"), CLOSE_PROTOCOL_ERROR),
            (client_frame(FIN | TEXT, &[0xff, 0xfe]), CLOSE_INVALID_DATA),
            (client_frame(FIN | TEXT, &[b'a'; 1025]), CLOSE_TOO_BIG),
            (
                [
                    client_frame(TEXT, &[b'a'; 1000]),
                    client_frame(FIN | CONTINUATION, &[b'a'; 100]),
                ]
                .concat(),
                CLOSE_TOO_BIG,
            ),
            (
                [client_frame(TEXT, b"a"), client_frame(FIN | TEXT, b"b")].concat(),
                CLOSE_PROTOCOL_ERROR,
            ),
        ];
        for (bytes, code) in cases {
            let got = read_all(&bytes);
            assert!(
                matches!(got.last(), Some(Err(v)) if v.code == code),
                "{bytes:?}: {got:?}"
            );
        }
    }

    #[test]
    fn a_too_long_frame_is_refused_from_its_header_alone() {
        let mut reader = FrameReader::new(1024);
        reader.buf.extend_from_slice(&[FIN | TEXT, 0x80 | 127]);
        reader.buf.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(reader.next_message().unwrap_err().code, CLOSE_TOO_BIG);
    }

    #[test]
    fn server_frames_have_the_shortest_header_for_their_length() {
        for (len, header_len) in [(0, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
            let mut buf = start_text_frame(len);
            buf.extend(std::iter::repeat_n(b'a', len));
            let (frame, got) = finish_text_frame(buf);
            assert_eq!(got, header_len);
            assert_eq!(frame.len(), header_len + len);
            assert_eq!(frame[0], FIN | TEXT);
            // Read back by tungstenite's own parser.
            let mut cursor = std::io::Cursor::new(&frame[..]);
            let (parsed, parsed_len) =
                tungstenite::protocol::frame::FrameHeader::parse(&mut cursor)
                    .unwrap()
                    .unwrap();
            assert!(parsed.is_final && parsed.mask.is_none());
            assert_eq!(parsed_len, len as u64);
        }
        let close = close_frame(4001, &"\u{e9}".repeat(100));
        assert!(close.len() <= 127 && std::str::from_utf8(&close[4..]).is_ok());
    }
}
