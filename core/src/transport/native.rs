//! Native transport: `reqwest` with rustls and the webpki root certificates
//! (no system certificate store needed, so it works on Android too), on tokio.
//!
//! Connections to plain-`http` servers are not pooled: `tursodb
//! --sync-server` serves one TCP connection at a time, so an idle pooled
//! connection would stall every other client. HTTPS connections are pooled
//! briefly to save TLS handshakes.

use super::{HttpRequest, HttpResponse, Transport, TransportError};
use std::time::Duration;

/// HTTP over reqwest.
#[derive(Debug, Clone)]
pub struct NativeTransport {
    plain: reqwest::Client,
    tls: reqwest::Client,
}

impl NativeTransport {
    /// A transport with `timeout` per request.
    pub fn new(timeout: Duration) -> Result<NativeTransport, TransportError> {
        let build = |idle: usize| {
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(idle)
                .pool_idle_timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| TransportError::Connect(e.to_string()))
        };
        Ok(NativeTransport {
            plain: build(0)?,
            tls: build(4)?,
        })
    }
}

fn describe(e: &reqwest::Error) -> String {
    // reqwest errors may embed the URL; ours never carries the token (it is
    // sent as a header), so the URL is safe to show.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[async_trait::async_trait]
impl Transport for NativeTransport {
    async fn post(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let client = if request.url.starts_with("https:") {
            &self.tls
        } else {
            &self.plain
        };
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
        let body = response.bytes().await.map_err(|e| {
            if e.is_timeout() {
                TransportError::Timeout
            } else {
                TransportError::Io(describe(&e))
            }
        })?;
        Ok(HttpResponse {
            status,
            body: body.to_vec(),
        })
    }

    async fn sleep(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}
