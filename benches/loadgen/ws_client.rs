//! A lean WebSocket client for the receivers of `fanout-ws`.
//!
//! Ten thousand receivers share the server's two cores, so what each costs per message is
//! taken from the server being measured. A general WebSocket library's stream (buffers,
//! message assembly, its own UTF-8 check) was about a third of the load generator's CPU; the
//! receivers need only this: the opening handshake, then (in `ws_loop.rs`) the server's
//! unfragmented frames read and masked frames for acks and pongs written.

use std::io;

use bytes::{Buf as _, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::arrival::ArrivalStream;

pub struct WsClient {
    stream: ArrivalStream,
    buf: BytesMut,
    /// xorshift state for the masking keys clients must use.
    mask: u32,
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

impl WsClient {
    /// Connect to `authority` and upgrade `path` (with its query), with a bearer token.
    pub async fn connect(authority: &str, path: &str, token: &str, seed: u32) -> io::Result<Self> {
        let mut stream = ArrivalStream::connect(authority).await?;
        let key_bytes: [u8; 16] =
            std::array::from_fn(|i| (seed.rotate_left(i as u32) ^ i as u32) as u8);
        let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key_bytes);
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
             Authorization: Bearer {token}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut buf = BytesMut::with_capacity(4096);
        let end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if buf.len() > 16 * 1024 || stream.read_buf(&mut buf).await? == 0 {
                return Err(bad("no upgrade response"));
            }
        };
        let head = std::str::from_utf8(&buf[..end]).map_err(|_| bad("response head"))?;
        let status = head.split(' ').nth(1).unwrap_or("");
        if status != "101" {
            return Err(bad(&format!(
                "upgrade refused: {}",
                head.lines().next().unwrap_or("")
            )));
        }
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        if !head.lines().any(|l| {
            l.to_ascii_lowercase().starts_with("sec-websocket-accept:") && l.ends_with(&accept)
        }) {
            return Err(bad("wrong Sec-WebSocket-Accept"));
        }
        buf.advance(end);
        Ok(Self {
            stream,
            buf,
            mask: seed | 1,
        })
    }

    /// The upgraded socket (non-blocking, receive stamps on), the bytes read past the
    /// handshake, and the masking state, for `ws_loop.rs`.
    pub fn into_parts(self) -> io::Result<(std::net::TcpStream, Vec<u8>, u32)> {
        Ok((self.stream.into_std()?, self.buf.to_vec(), self.mask))
    }
}

/// A server frame's first byte, where its payload starts and its length, once its header is
/// in `b`.
pub fn frame_header(b: &[u8]) -> io::Result<Option<(u8, usize, usize)>> {
    if b.len() < 2 {
        return Ok(None);
    }
    if b[0] & 0x80 == 0 {
        return Err(bad("fragmented server frames are not expected"));
    }
    if b[1] & 0x80 != 0 {
        return Err(bad("a server's frames are not masked"));
    }
    Ok(match b[1] & 0x7F {
        126 if b.len() >= 4 => Some((b[0], 4, u16::from_be_bytes([b[2], b[3]]) as usize)),
        127 if b.len() >= 10 => Some((
            b[0],
            10,
            u64::from_be_bytes(b[2..10].try_into().expect("8 bytes")) as usize,
        )),
        126 | 127 => None,
        n => Some((b[0], 2, n as usize)),
    })
}

/// A client frame (clients mask theirs), with the next key of the xorshift state `mask`.
pub fn masked_frame(mask: &mut u32, opcode: u8, payload: &[u8]) -> Vec<u8> {
    *mask ^= *mask << 13;
    *mask ^= *mask >> 17;
    *mask ^= *mask << 5;
    let key = mask.to_be_bytes();
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}
