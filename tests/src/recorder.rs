//! [`Recorder`]: a tiny HTTP/1.1 server on 127.0.0.1 that records every
//! request it reads (method, path, headers, body) and answers each with one
//! scripted [`Answer`]: a status and body, a redirect, or a body larger than
//! a client should read. For tests of what a client sends where (secrets
//! after a server change, redirects) and how much it reads. Every answer
//! closes its connection. Dropping the recorder stops it.

use crate::error::{io_err, Result};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the recorder answers to every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `status` with a plain-text `body`.
    Status { status: u16, body: String },
    /// A redirect (`status`, e.g. 307) to `location`.
    Redirect { status: u16, location: String },
    /// 200 with a body of `bytes` bytes in chunks, announced by no
    /// `Content-Length` (`Transfer-Encoding: chunked`).
    Chunked { bytes: u64 },
    /// 200 announcing a `Content-Length` of `length`, then a few bytes and
    /// the connection closed.
    Announced { length: u64 },
}

/// One request as the recorder read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names lowercased, values as sent (lossy UTF-8).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The value of header `name` (lowercase), if the request carried it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `text` appears anywhere in the request: its path, a header
    /// value or the body.
    pub fn contains(&self, text: &str) -> bool {
        self.path.contains(text)
            || self.headers.iter().any(|(_, v)| v.contains(text))
            || String::from_utf8_lossy(&self.body).contains(text)
    }
}

/// A recording HTTP server; see the module docs.
#[derive(Debug)]
pub struct Recorder {
    url: String,
    seen: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl Recorder {
    /// Starts a recorder on a free 127.0.0.1 port answering `answer`.
    pub async fn start(answer: Answer) -> Result<Recorder> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io_err("binding the recorder to 127.0.0.1:0"))?;
        let port = listener
            .local_addr()
            .map_err(io_err("reading the recorder's port"))?
            .port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(accept(listener, answer, Arc::clone(&seen)));
        Ok(Recorder {
            url: format!("http://127.0.0.1:{port}"),
            seen,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request read so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, answer: Answer, seen: Arc<Mutex<Vec<Recorded>>>) {
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        let (answer, seen) = (answer.clone(), Arc::clone(&seen));
        connections.spawn(async move {
            let _ = serve(stream, &answer, &seen).await;
        });
    }
}

/// Reads one request, records it and answers it.
async fn serve(
    mut stream: TcpStream,
    answer: &Answer,
    seen: &Mutex<Vec<Recorded>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let (recorded, body_at, length) = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(at)) = request.parse(&buf) {
            let headers: Vec<(String, String)> = request
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let length = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let recorded = Recorded {
                method: request.method.unwrap_or("").to_owned(),
                path: request.path.unwrap_or("").to_owned(),
                headers,
                body: Vec::new(),
            };
            break (recorded, at, length);
        }
    };
    while buf.len() < body_at + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let end = buf.len().min(body_at + length);
    let mut recorded = recorded;
    recorded.body = buf[body_at..end].to_vec();
    seen.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(recorded);
    match answer {
        Answer::Status { status, body } => {
            let head = format!(
                "HTTP/1.1 {status} Scripted\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
        }
        Answer::Redirect { status, location } => {
            let head = format!(
                "HTTP/1.1 {status} Redirect\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
        }
        Answer::Chunked { bytes } => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
                .await?;
            let piece = vec![b' '; 256 * 1024];
            let mut left = *bytes;
            while left > 0 {
                let n = left.min(piece.len() as u64) as usize;
                stream.write_all(format!("{n:x}\r\n").as_bytes()).await?;
                stream.write_all(&piece[..n]).await?;
                stream.write_all(b"\r\n").await?;
                left -= n as u64;
            }
            stream.write_all(b"0\r\n\r\n").await?;
        }
        Answer::Announced { length } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n{{"
            );
            stream.write_all(head.as_bytes()).await?;
        }
    }
    stream.flush().await?;
    stream.shutdown().await
}
