//! A minimal HTTP/1.1 keep-alive client for the long-poll receivers.
//!
//! A receiver sends one request at a time on its own connection and reads one response, so
//! all it needs is: write a preformatted GET, read the head (parsed by `httparse`), read a
//! `Content-Length` or chunked body into a buffer kept across requests. In session 3 reqwest's
//! pool, header maps and body streams cost the load generator as much CPU per response as the
//! server spent producing it, on the same two cores: the measurement was bounded by the tool.
//! Plain `http://` only; other URLs keep using reqwest.

use std::io;
use std::ops::Range;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::arrival::ArrivalStream;

/// Response heads are small; a longer one means something other than a homeserver answered.
const MAX_HEAD: usize = 64 * 1024;
/// Response bodies this big are not sync responses of a fan-out run.
const MAX_BODY: usize = 256 * 1024 * 1024;

pub struct RawConn {
    stream: ArrivalStream,
    /// Bytes read from the socket: the head, then the body (or raw chunks).
    buf: Vec<u8>,
    /// A chunked body, decoded.
    chunked: Vec<u8>,
    /// The server asked to close after this response (`Connection: close`).
    closing: bool,
}

/// What a response was: its status and where its body is (see [`RawConn::body`]).
pub struct Response {
    pub status: u16,
    body: Body,
}

enum Body {
    InBuf(Range<usize>),
    Chunked,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl RawConn {
    /// Connect to `host:port`.
    pub async fn connect(addr: &str) -> io::Result<Self> {
        let stream = ArrivalStream::connect(addr).await?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            chunked: Vec::new(),
            closing: false,
        })
    }

    /// When the last bytes read arrived (`CLOCK_REALTIME` ns): after a roundtrip, when the
    /// response was complete.
    pub fn arrived_ns(&self) -> Option<u64> {
        self.stream.arrived_ns()
    }

    /// Whether the connection can carry another request.
    pub fn reusable(&self) -> bool {
        !self.closing
    }

    /// Send `request` (a complete HTTP/1.1 request) and read its response.
    pub async fn roundtrip(&mut self, request: &[u8]) -> io::Result<Response> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let (status, head_len, length) = loop {
            self.fill().await?;
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response
                .parse(&self.buf)
                .map_err(|e| invalid(e.to_string()))?
            {
                httparse::Status::Partial if self.buf.len() > MAX_HEAD => {
                    return Err(invalid("response head too long"));
                }
                httparse::Status::Partial => continue,
                httparse::Status::Complete(head_len) => {
                    let mut length = None;
                    for h in response.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            let n = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .ok_or_else(|| invalid("bad content-length"))?;
                            length = Some(n);
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                            && h.value.eq_ignore_ascii_case(b"chunked")
                        {
                            length = None;
                        } else if h.name.eq_ignore_ascii_case("connection")
                            && h.value.eq_ignore_ascii_case(b"close")
                        {
                            self.closing = true;
                        }
                    }
                    break (response.code.unwrap_or(0), head_len, length);
                }
            }
        };
        let body = match length {
            Some(n) if n > MAX_BODY => return Err(invalid("response body too big")),
            Some(n) => {
                while self.buf.len() < head_len + n {
                    self.fill().await?;
                }
                Body::InBuf(head_len..head_len + n)
            }
            None => {
                self.read_chunked(head_len).await?;
                Body::Chunked
            }
        };
        Ok(Response { status, body })
    }

    /// The body of `response`, the last one [`Self::roundtrip`] read.
    pub fn body(&self, response: &Response) -> &[u8] {
        match &response.body {
            Body::InBuf(range) => &self.buf[range.clone()],
            Body::Chunked => &self.chunked,
        }
    }

    /// Read more from the socket into `buf`; end of stream is an error (a response is due).
    async fn fill(&mut self) -> io::Result<()> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-response",
            ));
        }
        Ok(())
    }

    /// Decode a chunked body that starts at `buf[start..]` into `chunked`.
    async fn read_chunked(&mut self, start: usize) -> io::Result<()> {
        self.chunked.clear();
        let mut at = start;
        loop {
            // chunk-size [; extensions] CRLF
            let line_end = loop {
                if let Some(i) = self.buf[at..].windows(2).position(|w| w == b"\r\n") {
                    break at + i;
                }
                if self.buf.len() - at > MAX_HEAD {
                    return Err(invalid("chunk size line too long"));
                }
                self.fill().await?;
            };
            let line = std::str::from_utf8(&self.buf[at..line_end])
                .map_err(|_| invalid("bad chunk size"))?;
            let hex = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(hex, 16).map_err(|_| invalid("bad chunk size"))?;
            if self.chunked.len() + size > MAX_BODY {
                return Err(invalid("response body too big"));
            }
            at = line_end + 2;
            if size == 0 {
                // Trailers (none expected), then the final CRLF.
                loop {
                    if let Some(i) = self.buf[at..].windows(2).position(|w| w == b"\r\n") {
                        if i == 0 {
                            return Ok(());
                        }
                        at += i + 2;
                        continue;
                    }
                    self.fill().await?;
                }
            }
            while self.buf.len() < at + size + 2 {
                self.fill().await?;
            }
            self.chunked.extend_from_slice(&self.buf[at..at + size]);
            at += size + 2;
        }
    }
}

/// `host:port` of a plain `http://` URL, or `None` for any other URL.
pub fn http_authority(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    if authority.is_empty() {
        return None;
    }
    Some(if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    })
}

/// A GET request with a bearer token, ready to write.
pub fn get_request(authority: &str, path_and_query: &str, token: &str) -> Vec<u8> {
    format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\
         Accept: application/json\r\n\r\n"
    )
    .into_bytes()
}
