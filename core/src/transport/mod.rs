//! HTTP behind a small trait: POST a body, get status and body back; plus
//! the timer the engine backs off with (both come from the platform's event
//! loop: tokio natively, the browser's on wasm).
//!
//! Requests carry headers explicitly; a transport must never log them (the
//! `Authorization` header holds the token).

use crate::platform::{SendOutsideWasm, SyncOutsideWasm};

#[cfg(target_arch = "wasm32")]
pub mod browser;
#[cfg(not(target_arch = "wasm32"))]
pub mod native;

/// One HTTP POST.
pub struct HttpRequest {
    pub url: String,
    /// Header pairs; may hold secrets, so this type's `Debug` omits values.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("url", &self.url)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The server's answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why no response came back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("request timed out")]
    Timeout,
    #[error("connection failed mid-request: {0}")]
    Io(String),
    /// The answer was larger than the transport reads
    /// ([`MAX_RESPONSE_BYTES`]); it was not read further.
    #[error("the server's answer is larger than {limit_bytes} bytes, the most the engine reads")]
    ResponseTooLarge { limit_bytes: u64 },
}

/// The largest answer a transport reads (64 MiB): more than sqld's 10 MB
/// answer limit and the engine's largest pull page (its byte budget stays
/// under that limit, see [`crate::sync`]), so no honest answer comes near
/// it; a larger one is [`TransportError::ResponseTooLarge`], read no
/// further.
pub const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// Sends HTTP requests and sleeps.
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait Transport: SendOutsideWasm + SyncOutsideWasm {
    async fn post(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
    async fn sleep(&self, ms: u64);
}
