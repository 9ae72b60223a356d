//! Native transport: `reqwest` with rustls and the webpki root certificates
//! (no system certificate store needed, so it works on Android too), on tokio.
//!
//! Connections to plain-`http` servers are not pooled: `tursodb
//! --sync-server` serves one TCP connection at a time, so an idle pooled
//! connection would stall every other client. HTTPS connections are pooled
//! briefly to save TLS handshakes.
//!
//! Redirects are never followed (Hrana servers do not redirect): a 3xx
//! answer is handed back as it is, so the token, the encryption key and the
//! body are never sent to an address the server names. An answer is read
//! in chunks up to [`super::MAX_RESPONSE_BYTES`] (a bigger one, announced or
//! not, fails as [`TransportError::ResponseTooLarge`] without being read
//! further).
//!
//! Requests run on the transport's own I/O thread (a one-worker tokio
//! runtime), not on the caller's: a request once polled keeps moving while
//! the caller's thread is busy in SQLite, which is how a pull applies one
//! page while the next one downloads ([`crate::sync`]), whatever runtime
//! the caller uses (the CLI's is single-threaded). Dropping a request's
//! future aborts it, as it would on the caller's runtime.

use super::{HttpRequest, HttpResponse, Transport, TransportError, MAX_RESPONSE_BYTES};
use std::sync::Arc;
use std::time::Duration;

/// HTTP over reqwest.
#[derive(Debug, Clone)]
pub struct NativeTransport {
    plain: reqwest::Client,
    tls: reqwest::Client,
    io: Arc<IoThread>,
    /// The largest answer read ([`MAX_RESPONSE_BYTES`]; tests lower it).
    max_response_bytes: u64,
}

/// The runtime requests run on; shut down without waiting when the last
/// transport clone goes (dropping a runtime inside async code would panic).
struct IoThread(Option<tokio::runtime::Runtime>);

impl std::fmt::Debug for IoThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IoThread")
    }
}

impl Drop for IoThread {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Aborts the spawned request when the caller stops waiting for it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl NativeTransport {
    /// A transport with `timeout` per request.
    ///
    /// Errors: [`TransportError::Connect`] when the HTTP client or the I/O
    /// thread cannot be set up.
    pub fn new(timeout: Duration) -> Result<NativeTransport, TransportError> {
        let build = |idle: usize| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(timeout)
                .connect_timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(idle)
                .pool_idle_timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| TransportError::Connect(e.to_string()))
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("erth-io")
            .enable_all()
            .build()
            .map_err(|e| TransportError::Connect(format!("starting the I/O thread: {e}")))?;
        Ok(NativeTransport {
            plain: build(0)?,
            tls: build(4)?,
            io: Arc::new(IoThread(Some(runtime))),
            max_response_bytes: MAX_RESPONSE_BYTES,
        })
    }

    /// This transport reading answers up to `bytes` only (tests of the
    /// limit; the default is [`MAX_RESPONSE_BYTES`]).
    pub fn with_max_response_bytes(mut self, bytes: u64) -> NativeTransport {
        self.max_response_bytes = bytes;
        self
    }
}

fn describe(e: &reqwest::Error) -> String {
    // reqwest errors may embed the URL; ours never carries the token (it is
    // sent as a header, and secret-looking parameters are dropped at
    // parse), and the text is clipped and redacted like any server text.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    crate::error::clip(&text, 500)
}

#[async_trait::async_trait]
impl Transport for NativeTransport {
    async fn post(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let client = if request.url.starts_with("https:") {
            self.tls.clone()
        } else {
            self.plain.clone()
        };
        let Some(runtime) = self.io.0.as_ref() else {
            return Err(TransportError::Io("the I/O thread has stopped".into()));
        };
        let limit = self.max_response_bytes;
        let mut task = AbortOnDrop(runtime.spawn(send(client, request, limit)));
        (&mut task.0)
            .await
            .map_err(|e| TransportError::Io(format!("the request's task failed: {e}")))?
    }

    async fn sleep(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// One POST on the I/O thread; the answer read up to `limit` bytes.
async fn send(
    client: reqwest::Client,
    request: HttpRequest,
    limit: u64,
) -> Result<HttpResponse, TransportError> {
    let mut builder = client.post(&request.url).body(request.body);
    for (k, v) in &request.headers {
        builder = builder.header(k, v);
    }
    let response = builder.send().await.map_err(|e| {
        if e.is_timeout() {
            TransportError::Timeout
        } else if e.is_connect() {
            TransportError::Connect(describe(&e))
        } else {
            TransportError::Io(describe(&e))
        }
    })?;
    let status = response.status().as_u16();
    let too_large = TransportError::ResponseTooLarge { limit_bytes: limit };
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(too_large);
    }
    let mut response = response;
    let mut body = Vec::with_capacity(
        response
            .content_length()
            .map_or(0, |n| n.min(1 << 20) as usize),
    );
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        if e.is_timeout() {
            TransportError::Timeout
        } else {
            TransportError::Io(describe(&e))
        }
    })? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpResponse { status, body })
}
