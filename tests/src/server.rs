//! [`TestServer`]: the Hrana server one test talks to.
//!
//! By default every `TestServer` is its own `tursodb --sync-server` process
//! with its own database in a temporary directory, so tests run in parallel
//! without seeing each other.
//!
//! **External mode.** If `ERTH_TEST_HRANA_URL` is set (token, if any, in
//! `ERTH_TEST_HRANA_TOKEN`), tests use that server instead (e.g. a local
//! `sqld` or a Turso Cloud database). They then share one database, so a
//! `TestServer` holds a global cross-process lock for its whole life (tests
//! run one at a time) and **wipes the database on start** by dropping every
//! table in it. Only ever point `ERTH_TEST_HRANA_URL` at a throwaway database.

use crate::cache::{self, CacheLock};
use crate::error::{Error, Result};
use crate::hrana;
use crate::launch::LocalServer;
use tempfile::TempDir;

/// Environment variable naming an external Hrana server for the tests.
pub const URL_ENV: &str = "ERTH_TEST_HRANA_URL";
/// Environment variable holding the external server's auth token.
pub const TOKEN_ENV: &str = "ERTH_TEST_HRANA_TOKEN";
/// Lists the tables wiped on start in external mode (every table: tests
/// declare tables of their own).
const LIST_TABLES: &str =
    "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'";

/// A Hrana server for one test; see the module docs. Dropping it kills the
/// local server and deletes its database, or releases the external lock.
#[derive(Debug)]
pub struct TestServer {
    url: String,
    token: Option<String>,
    // Field order is drop order: the server goes before its directory.
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Local { _server: LocalServer, _dir: TempDir },
    External { _lock: CacheLock },
}

impl TestServer {
    /// Starts a fresh local tursodb (installing it on first use, see
    /// [`crate::tools::tursodb`]), or, in
    /// external mode, waits for the external-server lock and resets the
    /// database.
    pub async fn start() -> Result<TestServer> {
        match std::env::var(URL_ENV).ok().filter(|u| !u.is_empty()) {
            Some(url) => Self::external(url).await,
            None => Self::local().await,
        }
    }

    async fn local() -> Result<TestServer> {
        blocking(|| {
            let dir = tempfile::Builder::new()
                .prefix("erth-server-")
                .tempdir()
                .map_err(crate::error::io_err("creating the server's temp dir"))?;
            let server = LocalServer::start(
                &dir.path().join("server.db"),
                &dir.path().join("server.log"),
                None,
            )?;
            Ok(TestServer {
                url: server.url().to_string(),
                token: None,
                kind: Kind::Local {
                    _server: server,
                    _dir: dir,
                },
            })
        })
        .await
    }

    async fn external(url: String) -> Result<TestServer> {
        let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
        let lock = blocking(|| cache::lock("external-hrana-server")).await?;
        let failed = |e| Error::Server(format!("resetting the {URL_ENV} database failed: {e}"));
        let listed = hrana::execute(&url, token.as_deref(), &[LIST_TABLES])
            .await
            .map_err(failed)?;
        let drops: Vec<String> = listed[0]["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r[0]["value"].as_str())
            .map(|t| format!("DROP TABLE IF EXISTS \"{}\"", t.replace('"', "\"\"")))
            .collect();
        if !drops.is_empty() {
            let drops: Vec<&str> = drops.iter().map(String::as_str).collect();
            hrana::execute(&url, token.as_deref(), &drops)
                .await
                .map_err(failed)?;
        }
        Ok(TestServer {
            url,
            token,
            kind: Kind::External { _lock: lock },
        })
    }

    /// The server's URL (`http://127.0.0.1:<port>` for a local server).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The auth token to send, if the server needs one (never for a local one).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether this is the shared server named by `ERTH_TEST_HRANA_URL`.
    pub fn is_external(&self) -> bool {
        matches!(self.kind, Kind::External { .. })
    }
}

/// Runs blocking harness code (installs, process start, file locks) off the
/// async runtime's worker threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Server(format!("a harness task panicked or was cancelled: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn answers_select_1() {
        let server = TestServer::start().await.expect("start");
        let results = hrana::execute(server.url(), server.token(), &["SELECT 1"])
            .await
            .expect("SELECT 1");
        assert_eq!(results[0]["rows"][0][0]["value"], "1");
    }

    #[tokio::test]
    async fn local_servers_are_isolated_and_stop_on_drop() {
        let a = TestServer::start().await.expect("start a");
        if a.is_external() {
            eprintln!("skipped: {URL_ENV} is set, there is only one shared server");
            return;
        }
        let b = TestServer::start().await.expect("start b");
        assert_ne!(a.url(), b.url());
        hrana::execute(a.url(), None, &["CREATE TABLE todos (id TEXT)"])
            .await
            .expect("create on a");
        let on_b = hrana::execute(
            b.url(),
            None,
            &["SELECT count(*) FROM sqlite_schema WHERE name = 'todos'"],
        )
        .await
        .expect("query b");
        assert_eq!(on_b[0]["rows"][0][0]["value"], "0");
        let url = a.url().to_string();
        drop(a);
        assert!(hrana::execute(&url, None, &["SELECT 1"]).await.is_err());
    }

    /// tursodb serves one connection at a time; two pooling clients that
    /// alternate must still both get answers (tursodb closes every
    /// connection after its response, so reqwest keeps none idle).
    #[tokio::test]
    async fn two_pooling_clients_alternating_do_not_deadlock() {
        let server = TestServer::start().await.expect("start");
        let endpoint = format!("{}/v2/pipeline", hrana::http_base(server.url()));
        let body = r#"{"requests":[{"type":"execute","stmt":{"sql":"SELECT 1"}}]}"#;
        let clients = [reqwest::Client::new(), reqwest::Client::new()];
        let run = async {
            for i in 0..10 {
                let client = &clients[i % 2];
                let mut request = client.post(&endpoint).body(body);
                if let Some(token) = server.token() {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.expect("send");
                assert_eq!(response.status(), 200);
                response.bytes().await.expect("body");
            }
        };
        tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("alternating clients deadlocked");
    }
}
