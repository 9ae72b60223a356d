//! Just enough HTTP/1.1 for the proxy's client side: read one whole request
//! (head plus `Content-Length` body; pipelined bytes stay buffered for the
//! next one) and write a response, whole or deliberately truncated.

use httparse::Status;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024 * 1024;
const MAX_HEADERS: usize = 100;

/// A request read from a client.
#[derive(Debug)]
pub(super) struct Request {
    pub method: reqwest::Method,
    /// The request target as sent: path and query.
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Whether the client may send another request on this connection.
    pub keep_alive: bool,
    /// Where to forward it, when not the proxy's upstream (a per-user route).
    pub upstream: Option<String>,
}

impl Request {
    /// The first header with this (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// A response to write to a client.
#[derive(Debug)]
pub(super) struct Response {
    pub status: u16,
    /// Headers other than `content-length` and `connection`, which the
    /// writer sets.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response made by the proxy itself. It carries the permissive CORS
    /// header the real servers put on every answer, so a browser can read it.
    pub fn synthetic(status: u16, content_type: &str, body: &str) -> Response {
        Response {
            status,
            headers: vec![
                ("content-type".into(), content_type.as_bytes().to_vec()),
                ("access-control-allow-origin".into(), b"*".to_vec()),
            ],
            body: body.as_bytes().to_vec(),
        }
    }

    /// A plain-text [`Response::synthetic`].
    pub fn text(status: u16, body: &str) -> Response {
        Self::synthetic(status, "text/plain; charset=utf-8", body)
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub(super) enum ReadError {
    /// The client closed the connection between requests.
    Closed,
    /// The connection failed or closed mid-request.
    Broken,
    /// The request is malformed or unsupported; answer with this status.
    Bad(u16, &'static str),
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Broken
    }
}

struct Head {
    method: reqwest::Method,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    http10: bool,
}

/// Reads the next request; `buf` carries bytes read past the previous one.
pub(super) async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Request, ReadError> {
    let (head, head_len) = loop {
        if let Some(parsed) = parse_head(buf)? {
            break parsed;
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::Bad(431, "request head too large"));
        }
        if read_more(stream, buf).await? == 0 {
            return Err(if buf.is_empty() {
                ReadError::Closed
            } else {
                ReadError::Broken
            });
        }
    };
    buf.drain(..head_len);
    let request = Request {
        method: head.method,
        target: head.target,
        headers: head.headers,
        body: Vec::new(),
        keep_alive: false,
        upstream: None,
    };
    if request.header("transfer-encoding").is_some() {
        return Err(ReadError::Bad(
            501,
            "the erth test proxy needs a Content-Length body, not Transfer-Encoding",
        ));
    }
    let length = match request.header("content-length") {
        None => 0,
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or(ReadError::Bad(400, "invalid Content-Length"))?,
    };
    if length > MAX_BODY {
        return Err(ReadError::Bad(413, "request body too large"));
    }
    let expects_continue = request
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    if expects_continue && buf.len() < length {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    while buf.len() < length {
        if read_more(stream, buf).await? == 0 {
            return Err(ReadError::Broken);
        }
    }
    let connection = request
        .header("connection")
        .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase())
        .unwrap_or_default();
    let keep_alive = if head.http10 {
        connection.contains("keep-alive")
    } else {
        !connection.contains("close")
    };
    Ok(Request {
        body: buf.drain(..length).collect(),
        keep_alive,
        ..request
    })
}

fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, ReadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let len = match parsed.parse(buf) {
        Ok(Status::Complete(len)) => len,
        Ok(Status::Partial) => return Ok(None),
        Err(_) => return Err(ReadError::Bad(400, "malformed HTTP request")),
    };
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(ReadError::Bad(400, "malformed HTTP request"));
    };
    let Ok(method) = reqwest::Method::from_bytes(method.as_bytes()) else {
        return Err(ReadError::Bad(400, "invalid method"));
    };
    if !target.starts_with('/') {
        return Err(ReadError::Bad(400, "the request target must be a path"));
    }
    let head = Head {
        method,
        target: target.to_string(),
        headers: parsed
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
            .collect(),
        http10: version == 0,
    };
    Ok(Some((head, len)))
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Writes a whole response.
pub(super) async fn write_response(
    stream: &mut TcpStream,
    response: &Response,
    keep_alive: bool,
) -> io::Result<()> {
    let mut bytes = head(response, keep_alive);
    bytes.extend_from_slice(&response.body);
    stream.write_all(&bytes).await?;
    stream.flush().await
}

/// Writes a whole response, its body at `bytes_per_second` (in chunks of a
/// tenth of a second).
pub(super) async fn write_throttled(
    stream: &mut TcpStream,
    response: &Response,
    keep_alive: bool,
    bytes_per_second: u64,
) -> io::Result<()> {
    stream.write_all(&head(response, keep_alive)).await?;
    let chunk = (bytes_per_second / 10).max(1) as usize;
    for part in response.body.chunks(chunk) {
        stream.write_all(part).await?;
        stream.flush().await?;
        let ms = (part.len() as u64 * 1000).div_ceil(bytes_per_second);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    stream.flush().await
}

/// Writes the head with the true `Content-Length` but only the first half
/// of the body; the caller then closes the connection.
pub(super) async fn write_truncated(stream: &mut TcpStream, response: &Response) -> io::Result<()> {
    let mut bytes = head(response, false);
    bytes.extend_from_slice(&response.body[..response.body.len() / 2]);
    stream.write_all(&bytes).await?;
    stream.flush().await
}

fn head(response: &Response, keep_alive: bool) -> Vec<u8> {
    let reason = reqwest::StatusCode::from_u16(response.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", response.status).into_bytes();
    for (name, value) in &response.headers {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(format!("content-length: {}\r\n", response.body.len()).as_bytes());
    if !keep_alive {
        head.extend_from_slice(b"connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}
