//! The proxy's I/O: accepting client connections, serving each one request
//! after request according to the [`Plan`](super::Plan), and forwarding to
//! the upstream with a fresh HTTP request.

use super::http::{self, ReadError, Request, Response};
use super::{After, Plan, Shared};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Request headers that describe the client's connection, not the request.
const HOP_BY_HOP: [&str; 12] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "expect",
];

/// Accepts connections until aborted; aborting drops the [`JoinSet`], which
/// aborts every connection task.
pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                // Small request/response exchanges: do not wait for Nagle.
                let _ = stream.set_nodelay(true);
                connections.spawn(serve(Arc::clone(&shared), stream));
            }
            // E.g. out of file descriptors: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
        while connections.try_join_next().is_some() {}
    }
}

/// Serves one client connection; returning closes it.
async fn serve(shared: Arc<Shared>, mut stream: TcpStream) {
    let mut buf = Vec::new();
    loop {
        let request = match http::read_request(&mut stream, &mut buf).await {
            Ok(request) => request,
            Err(ReadError::Bad(status, message)) => {
                let _ = http::write_response(&mut stream, &Response::text(status, message), false)
                    .await;
                return;
            }
            Err(ReadError::Closed | ReadError::Broken) => return,
        };
        let keep_alive = request.keep_alive;
        let mut request = request;
        let plan = shared.control().plan(&mut request);
        let throttle = shared.control().throttle;
        let written = match plan {
            Plan::Answer(response) => {
                http::write_response(&mut stream, &response, keep_alive).await
            }
            Plan::Stall => {
                // Until the client gives up (its read fails) or the proxy stops.
                let mut byte = [0u8; 1];
                let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut byte).await;
                return;
            }
            Plan::Unauthorized => {
                let response = Response::text(401, "Unauthorized");
                http::write_response(&mut stream, &response, keep_alive).await
            }
            Plan::Reset => {
                // SO_LINGER 0: closing sends RST instead of FIN.
                let _ = stream.set_zero_linger();
                return;
            }
            Plan::DropRequest => return,
            Plan::Status(status) => {
                let response = Response::text(status, &format!("injected fault: HTTP {status}"));
                http::write_response(&mut stream, &response, keep_alive).await
            }
            Plan::Forward { delay, then } => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let mut request = request;
                let due = {
                    let mut control = shared.control();
                    let hit = control.run_before.as_ref().is_some_and(|r| {
                        super::pipeline_statements(&request)
                            .iter()
                            .any(|sql| sql.contains(&r.trigger))
                    });
                    if hit {
                        control.run_before.take()
                    } else {
                        None
                    }
                };
                if let Some(run) = due {
                    for sql in &run.statements {
                        if let Err(e) =
                            crate::hrana::execute(&shared.upstream, run.token.as_deref(), &[sql])
                                .await
                        {
                            panic!("FaultProxy::run_before: {sql}: {e}");
                        }
                    }
                }
                let denied = shared.control().denied_reads.clone();
                let hit = super::deny_reads(&mut request, &denied);
                let rewrite = shared.control().rewrite.clone();
                let statements = rewrite
                    .as_ref()
                    .map(|_| super::pipeline_statements(&request))
                    .unwrap_or_default();
                let mut response = forward(&shared, request).await;
                if !hit.is_empty() {
                    response = super::denied_answer(response, &hit);
                }
                {
                    let mut control = shared.control();
                    if control.sqld_limits {
                        response = super::limit_like_sqld(response, &mut control.stats);
                    }
                }
                if let Some(rewrite) = rewrite {
                    let body = String::from_utf8_lossy(&response.body).into_owned();
                    if let Some(body) = rewrite(&statements, &body) {
                        response = Response::synthetic(response.status, "application/json", &body);
                    }
                }
                match then {
                    After::Answer => match throttle {
                        None => http::write_response(&mut stream, &response, keep_alive).await,
                        Some(rate) => {
                            let sent =
                                http::write_throttled(&mut stream, &response, keep_alive, rate)
                                    .await;
                            if sent.is_err() {
                                shared.control().stats.abandoned += 1;
                            }
                            sent
                        }
                    },
                    After::DropResponse => return,
                    After::Truncate => {
                        let _ = http::write_truncated(&mut stream, &response).await;
                        return;
                    }
                    After::NonJson => {
                        let response = Response::synthetic(200, "text/html", "<html>oops</html>");
                        http::write_response(&mut stream, &response, keep_alive).await
                    }
                }
            }
        };
        if written.is_err() || !keep_alive {
            return;
        }
    }
}

/// Sends `request` upstream; an upstream failure becomes a 502.
async fn forward(shared: &Shared, request: Request) -> Response {
    match send(shared, request).await {
        Ok(response) => {
            let mut control = shared.control();
            control.stats.forwarded += 1;
            control.stats.bytes_forwarded += response.body.len() as u64;
            drop(control);
            response
        }
        Err(e) => {
            shared.control().stats.upstream_errors += 1;
            Response::text(
                502,
                &format!("erth test proxy: upstream request failed: {e}"),
            )
        }
    }
}

async fn send(shared: &Shared, request: Request) -> Result<Response, reqwest::Error> {
    let upstream = request.upstream.as_deref().unwrap_or(&shared.upstream);
    let url = format!("{upstream}{}", request.target);
    let mut headers = HeaderMap::new();
    for (name, value) in &request.headers {
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let upstream = shared
        .client
        .request(request.method, url)
        .headers(headers)
        .body(request.body)
        .send()
        .await?;
    let status = upstream.status().as_u16();
    let headers = upstream
        .headers()
        .iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
        .collect();
    let body = upstream.bytes().await?.to_vec();
    Ok(Response {
        status,
        headers,
        body,
    })
}
