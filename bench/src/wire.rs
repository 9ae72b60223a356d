//! Where a sync's time goes: a [`Transport`] that wraps the native one and
//! counts requests, bytes and the time spent waiting for the server, so the
//! report can split a sync into server round trips and local work.

use anyhow::Result;
use erth_core::store::sqlite::SqliteStore;
use erth_core::transport::native::NativeTransport;
use erth_core::transport::{HttpRequest, HttpResponse, Transport, TransportError};
use erth_core::{Config, Database, SystemClock};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Totals since the last [`Wire::take`].
#[derive(Debug, Clone, Default)]
pub struct WireStats {
    pub requests: u64,
    /// Seconds from sending a request to having its whole response.
    pub secs: f64,
    pub up_bytes: u64,
    pub down_bytes: u64,
    /// Each request's seconds, in order.
    pub each: Vec<f64>,
}

/// The counting transport.
#[derive(Debug)]
pub struct Wire {
    inner: NativeTransport,
    stats: Mutex<WireStats>,
}

impl Wire {
    /// Returns the totals and starts counting from zero.
    pub fn take(&self) -> WireStats {
        std::mem::take(&mut *self.stats.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[async_trait::async_trait]
impl Transport for Wire {
    async fn post(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let up = request.body.len() as u64;
        let t = Instant::now();
        let response = self.inner.post(request).await;
        let secs = t.elapsed().as_secs_f64();
        let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        s.requests += 1;
        s.secs += secs;
        s.each.push(secs);
        s.up_bytes += up;
        s.down_bytes += response.as_ref().map_or(0, |r| r.body.len() as u64);
        response
    }

    async fn sleep(&self, ms: u64) {
        self.inner.sleep(ms).await;
    }
}

/// [`Database::open_native`] with the counting transport: the same store
/// (rusqlite file, WAL), transport settings and wall clock.
pub async fn open(path: &Path, url: &str) -> Result<(Database, Arc<Wire>)> {
    let wire = Arc::new(Wire {
        inner: NativeTransport::new(Duration::from_secs(30))?,
        stats: Mutex::new(WireStats::default()),
    });
    let db = Database::open(
        Arc::new(SqliteStore::open(path)?),
        wire.clone(),
        Arc::new(SystemClock),
        Config {
            url: Some(url.to_owned()),
            ..Config::default()
        },
    )
    .await?;
    Ok((db, wire))
}

/// tursodb's floor for reading rows: `sql` as one Hrana `execute` request
/// over the same transport, timed until the whole answer has arrived (not
/// decoded). Returns the time and the answer's size in bytes.
pub async fn select_floor(url: &str, sql: &str) -> Result<(Duration, u64)> {
    // A plain SELECT of 1,000,000 rows answers with more than the engine
    // reads in one response (its pages are bounded; this floor is one
    // answer): lift the cap for this measurement only.
    let transport =
        NativeTransport::new(Duration::from_secs(600))?.with_max_response_bytes(4 << 30);
    let body = serde_json::to_vec(&serde_json::json!({
        "requests": [{"type": "execute", "stmt": {"sql": sql}}]
    }))?;
    let t = Instant::now();
    let response = transport
        .post(HttpRequest {
            url: format!("{}/v2/pipeline", url.trim_end_matches('/')),
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        })
        .await?;
    let elapsed = t.elapsed();
    let answer = String::from_utf8_lossy(&response.body[..response.body.len().min(300)]);
    if response.status != 200 || !answer.contains("\"type\":\"ok\"") {
        anyhow::bail!(
            "the floor SELECT failed (HTTP {}): {answer}",
            response.status
        );
    }
    Ok((elapsed, response.body.len() as u64))
}
