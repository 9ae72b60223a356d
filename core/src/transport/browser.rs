//! Browser transport: the global `fetch` through `web-sys`, so the same code
//! runs in a Window, a dedicated Worker and Node. Each request is bounded by
//! an `AbortSignal.timeout`, which covers reading the body too; the engine's
//! backoff sleeps on `setTimeout`.
//!
//! Errors carry the URL (which never holds the token: it travels in the
//! `Authorization` header) and the JS error's name and message, never the
//! request's headers.
//!
//! Redirects are never followed (`redirect: "manual"`): following one would
//! send the token, the encryption key and the body again, to wherever the
//! redirect points. A redirect comes back as an opaque response (a
//! browser) or as the 3xx itself (Node), and either fails the request with
//! a [`TransportError::Connect`] that says so; nothing is sent twice.
//! (`"manual"` rather than `"error"`: both stop at the first response, but
//! `"error"` fails with the same `TypeError` as an unreachable server.)

use super::{HttpRequest, HttpResponse, Transport, TransportError};
use js_sys::futures::JsFuture;
use js_sys::{Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(catch, js_name = fetch)]
    fn global_fetch(request: &web_sys::Request) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, ms: f64) -> JsValue;
}

/// HTTP over the platform's `fetch`.
#[derive(Debug, Clone)]
pub struct BrowserTransport {
    timeout_ms: u32,
}

impl BrowserTransport {
    /// A transport that gives up on a request after `timeout_ms`.
    pub fn new(timeout_ms: u32) -> BrowserTransport {
        BrowserTransport { timeout_ms }
    }
}

/// `"Name: message"` of a JS exception (or its string form).
pub fn describe_js(value: &JsValue) -> String {
    let field = |name: &str| {
        Reflect::get(value, &JsValue::from_str(name))
            .ok()
            .and_then(|v| v.as_string())
    };
    match (field("name"), field("message")) {
        (Some(name), Some(message)) => format!("{name}: {message}"),
        (None, Some(message)) => message,
        _ => value.as_string().unwrap_or_else(|| format!("{value:?}")),
    }
}

/// The error of a request the server answered with a redirect (`status` is
/// 0 where the browser hides it). The `Location` is not shown: it may carry
/// anything the server put there.
fn redirected(url: &str, status: u16) -> TransportError {
    let status = if status == 0 {
        String::new()
    } else {
        format!(" (HTTP {status})")
    };
    TransportError::Connect(format!(
        "POST {url}: the server answered with a redirect{status}, which is not followed: it \
         would send the auth token, the encryption key and the request again, elsewhere; \
         use the server's final URL"
    ))
}

fn is_timeout(value: &JsValue) -> bool {
    Reflect::get(value, &JsValue::from_str("name"))
        .ok()
        .and_then(|v| v.as_string())
        .is_some_and(|name| name == "TimeoutError")
}

impl BrowserTransport {
    fn build(&self, request: &HttpRequest) -> Result<web_sys::Request, TransportError> {
        let invalid = |e: JsValue| TransportError::Connect(describe_js(&e));
        let headers = web_sys::Headers::new().map_err(invalid)?;
        for (name, value) in &request.headers {
            // Only the header name is reported: the value may be the token.
            headers
                .append(name, value)
                .map_err(|_| TransportError::Connect(format!("invalid header {name:?}")))?;
        }
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_headers(&headers);
        init.set_body(&Uint8Array::from(request.body.as_slice()));
        init.set_redirect(web_sys::RequestRedirect::Manual);
        init.set_signal(Some(&web_sys::AbortSignal::timeout_with_u32(
            self.timeout_ms,
        )));
        web_sys::Request::new_with_str_and_init(&request.url, &init).map_err(invalid)
    }
}

#[async_trait::async_trait(?Send)]
impl Transport for BrowserTransport {
    async fn post(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let req = self.build(&request)?;
        let url = &request.url;
        let fail = |e: JsValue, stage: &str| {
            if is_timeout(&e) {
                TransportError::Timeout
            } else if stage == "connect" {
                TransportError::Connect(format!("POST {url}: {}", describe_js(&e)))
            } else {
                TransportError::Io(format!("POST {url}: {}", describe_js(&e)))
            }
        };
        let pending = global_fetch(&req).map_err(|e| fail(e, "connect"))?;
        let response: web_sys::Response = JsFuture::from(pending)
            .await
            .map_err(|e| fail(e, "connect"))?
            .dyn_into()
            .map_err(|_| TransportError::Io(format!("POST {url}: fetch returned no Response")))?;
        let status = response.status();
        if response.type_() == web_sys::ResponseType::Opaqueredirect || (300..400).contains(&status)
        {
            return Err(redirected(url, status));
        }
        let body = response.array_buffer().map_err(|e| fail(e, "body"))?;
        let body = JsFuture::from(body).await.map_err(|e| fail(e, "body"))?;
        Ok(HttpResponse {
            status,
            body: Uint8Array::new(&body).to_vec(),
        })
    }

    async fn sleep(&self, ms: u64) {
        let promise = Promise::new(&mut |resolve, _reject| {
            set_timeout(&resolve, ms as f64);
        });
        // The promise only ever resolves.
        let _ = JsFuture::from(promise).await;
    }
}
