//! Auth: a token-checking proxy in front of the real server answers 401 like
//! sqld, and tokens that may do less (read-only: 403 to any write, as sqld;
//! restricted per table: the authorizer's SQLITE_AUTH) pull, keep their
//! refused changes pending and say why in `status()`. A missing or expired
//! token is a typed `Auth` error after exactly one request (no retry storm)
//! and loses nothing; replacing the token at run time resumes sync; the
//! token never appears in log lines, error texts or `Debug` output. The
//! encryption key of a customer-key database reaches every request and,
//! like the token, no log line, error, status or `Debug`.

#![allow(clippy::unwrap_used)] // test code

mod common;

use erth_core::{Config, ErrorKind};
use erth_tests::{AuthProxy, TestServer};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Collects every log line the engine emits, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn bad_tokens_are_typed_errors_and_a_new_token_resumes_sync() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    const GOOD: &str = "eyJhbGciOiJFZERTQSJ9.good-token-1.sig";
    const NEXT: &str = "eyJhbGciOiJFZERTQSJ9.rotated-token-2.sig";
    const WRONG: &str = "eyJhbGciOiJFZERTQSJ9.expired-token-0.sig";
    let server = TestServer::start().await.unwrap();
    let proxy = AuthProxy::start(server.url(), GOOD).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path(), "a", proxy.url(), Some(WRONG), Config::default()).await;
    let mut texts = Vec::new();
    // Typed `Auth` errors seen, and requests beyond the first 401 of each.
    let (mut auth_errors, mut retries) = (0u64, 0u64);
    let mut count = |e: &erth_core::Error, rejected: u64| {
        auth_errors += u64::from(e.kind() == ErrorKind::Auth);
        retries += rejected.saturating_sub(1);
    };

    // Missing and wrong tokens: typed, one request each, nothing lost.
    db.add_todo("written while unauthorized").await.unwrap();
    for token in [None, Some(WRONG)] {
        db.set_auth_token(token);
        let before = proxy.rejected();
        let e = db.sync().await.unwrap_err();
        count(&e, proxy.rejected() - before);
        assert_eq!(db.status().await.unwrap().pending_changes, 1);
        texts.push(format!("{e} {e:?} {:?} {db:?}", db.status().await.unwrap()));
    }

    // The right token resumes sync at run time.
    let mut resumed = 0;
    db.set_auth_token(Some(GOOD));
    let r = db.sync().await.unwrap();
    assert_eq!(r.pushed, 1);
    resumed += 1;

    // The server rotates the token: the old one expires, the new one works.
    proxy.set_token(Some(NEXT.into()));
    db.add_todo("after rotation").await.unwrap();
    let before = proxy.rejected();
    let e = db.sync().await.unwrap_err();
    count(&e, proxy.rejected() - before);
    texts.push(format!("{e} {e:?} {:?}", db.status().await.unwrap()));
    db.set_auth_token(Some(NEXT));
    assert_eq!(db.sync().await.unwrap().pushed, 1);
    resumed += 1;

    // A token given inside the URL is taken out of it.
    let url_db = common::open(
        dir.path(),
        "b",
        &format!("{}?authToken={NEXT}", proxy.url()),
        None,
        Config::default(),
    )
    .await;
    url_db.sync().await.unwrap();
    assert_eq!(url_db.list_active_todos().await.unwrap().len(), 2);
    resumed += 1;
    texts.push(format!("{url_db:?} {:?}", url_db.status().await.unwrap()));

    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("sync failed"),
        "the engine logged the auth failures: {logged}"
    );
    let all = format!("{logged}\n{}", texts.join("\n"));
    // Every token, and its middle part alone, must appear nowhere.
    let leaks: usize = [GOOD, NEXT, WRONG]
        .iter()
        .map(|t| all.matches(t).count() + all.matches(t.split('.').nth(1).unwrap()).count())
        .sum();
    println!(
        "faults_auth: 401s answered {}, typed Auth errors {auth_errors} of 3 rejected syncs, requests after a 401 (retries) {retries}, \
         syncs resumed after a token change {resumed}, log bytes scanned {}, token leaks {leaks}",
        proxy.rejected(),
        all.len()
    );
    assert_eq!(auth_errors, 3, "every rejected sync is a typed Auth error");
    assert_eq!(retries, 0, "no retry storm on 401");
    assert_eq!(leaks, 0, "a token leaked into logs or errors");
}

#[tokio::test]
async fn the_encryption_key_reaches_every_request_and_no_log_error_or_status() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    const KEY: &str = "bXktb3duLWFlcy0yNTYta2V5LWZvci10dXJzby1jbG91ZA==";
    const WRONG: &str = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=";
    let server = TestServer::start().await.unwrap();
    let proxy = erth_tests::FaultProxy::start(server.url(), 1)
        .await
        .unwrap();
    proxy.require_header("x-turso-encryption-key", KEY);
    let dir = tempfile::tempdir().unwrap();
    let keyed = |key: &str| Config {
        encryption_key: Some(key.to_owned()),
        ..Config::default()
    };
    let mut texts = Vec::new();

    // The right key: every request of several syncs carries it.
    let a = common::open(dir.path(), "a", proxy.url(), server.token(), keyed(KEY)).await;
    for i in 0..3 {
        a.add_todo(&format!("encrypted {i}")).await.unwrap();
        a.sync().await.unwrap();
    }
    let b = common::open(dir.path(), "b", proxy.url(), server.token(), keyed(KEY)).await;
    b.sync().await.unwrap();
    assert_eq!(b.list_active_todos().await.unwrap().len(), 3);
    let with_key = proxy.stats().requests;
    let lacked = proxy.stats().missing_header;
    texts.push(format!(
        "{a:?} {:?} {:?}",
        a.status().await.unwrap(),
        keyed(KEY)
    ));

    // A wrong key, and none: refused, typed, and the key is in no text.
    for (name, config) in [("c", keyed(WRONG)), ("d", Config::default())] {
        let db = common::open(dir.path(), name, proxy.url(), server.token(), config).await;
        let e = db.sync().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server, "{e}");
        texts.push(format!("{e} {e:?} {:?} {db:?}", db.status().await.unwrap()));
    }
    assert!(proxy.stats().missing_header >= 2);

    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let all = format!("{logged}\n{}", texts.join("\n"));
    let leaks: usize = [KEY, WRONG].iter().map(|k| all.matches(k).count()).sum();
    println!(
        "faults_auth: requests of replicas holding the encryption key {with_key}, of them without the key {lacked}, \
         requests refused without the right key {}, log bytes scanned {}, key leaks {leaks}",
        proxy.stats().missing_header,
        all.len()
    );
    assert_eq!(lacked, 0, "a request lacked the key");
    assert!(with_key >= 7, "several syncs' requests: {with_key}");
    assert_eq!(
        leaks, 0,
        "the encryption key leaked into logs, errors or Debug"
    );
}

async fn server_count(server: &TestServer, table: &str) -> u64 {
    let res = erth_tests::hrana::execute(
        server.url(),
        server.token(),
        &[&format!("SELECT count(*) FROM \"{table}\"")],
    )
    .await
    .unwrap();
    res[0]["rows"][0][0]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A read-only token (the proxy answers 403 to any write, as sqld does):
/// a fresh replica pulls everything without DDL; its local changes stay
/// pending and `status()` says why; with a full token they push.
#[tokio::test]
async fn a_read_only_token_pulls_and_keeps_local_changes_pending() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let writer = common::open(
        dir.path(),
        "writer",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    for i in 0..25 {
        writer.add_todo(&format!("shared {i}")).await.unwrap();
    }
    writer.sync().await.unwrap();

    let proxy = erth_tests::FaultProxy::start(server.url(), 1)
        .await
        .unwrap();
    proxy.set_read_only(true);
    let reader = common::open(
        dir.path(),
        "reader",
        proxy.url(),
        server.token(),
        Config {
            pull_page_rows: 10,
            ..Config::default()
        },
    )
    .await;
    let local = reader
        .add_todo("written with a read-only token")
        .await
        .unwrap();
    let report = reader.sync().await.unwrap();
    let status = reader.status().await.unwrap();
    println!(
        "faults_auth: read-only token: pulled {}, pushed {}, refused tables {:?}, requests refused {}",
        report.pulled,
        report.pushed,
        status.refused_tables,
        proxy.stats().forbidden
    );
    assert_eq!(report.pulled, 25, "the read-only replica pulls everything");
    assert_eq!(report.pushed, 0);
    assert_eq!(status.pending_changes, 1, "the local change stays pending");
    assert_eq!(
        status.rejected, 0,
        "not a refused row: the token cannot write"
    );
    assert_eq!(status.refused_tables.len(), 1);
    assert_eq!(status.refused_tables[0].table, "todos");
    assert_eq!(status.refused_tables[0].code, "HTTP 403");
    assert!(status.last_error.is_none(), "the sync itself succeeded");
    assert_eq!(
        proxy.stats().forbidden,
        1,
        "one refused request (the push), no DDL sent"
    );
    assert_eq!(server_count(&server, "todos").await, 25);

    // Reopened (a CLI runs one command per process): status() still says why.
    drop(reader);
    let reader = common::open(
        dir.path(),
        "reader",
        proxy.url(),
        server.token(),
        Config::default(),
    )
    .await;
    assert_eq!(
        reader.status().await.unwrap().refused_tables,
        status.refused_tables
    );

    // Rights granted: the pending change pushes and the refusal clears.
    proxy.set_read_only(false);
    let report = reader.sync().await.unwrap();
    assert_eq!(report.pushed, 1);
    let status = reader.status().await.unwrap();
    assert!(status.refused_tables.is_empty());
    assert_eq!(status.pending_changes, 0);
    drop(reader);
    let reader = common::open(
        dir.path(),
        "reader",
        proxy.url(),
        server.token(),
        Config::default(),
    )
    .await;
    assert!(reader.status().await.unwrap().refused_tables.is_empty());
    writer.sync().await.unwrap();
    assert!(writer.get_todo(&local.id).await.is_ok());
}

/// A token restricted per table (the server's authorizer refuses writes to
/// one table with SQLITE_AUTH): the other tables sync, the refused one is
/// reported per table, its changes stay pending, and pulls of it work.
#[tokio::test]
async fn a_token_restricted_per_table_syncs_the_tables_it_may() {
    const SCHEMA: &str = r#"{"tables": {
        "notes": {"columns": {"body": {"type": "text", "notNull": true, "default": ""}}},
        "secrets": {"columns": {"body": {"type": "text", "notNull": true, "default": ""}}}}}"#;
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default().with_schema_json(SCHEMA).unwrap();
    let writer = common::open(
        dir.path(),
        "writer",
        server.url(),
        server.token(),
        config.clone(),
    )
    .await;
    writer
        .insert("secrets", &[("body", "from the writer".into())])
        .await
        .unwrap();
    writer.sync().await.unwrap();

    let proxy = erth_tests::FaultProxy::start(server.url(), 1)
        .await
        .unwrap();
    proxy.deny_writes_to(&["secrets"]);
    let limited = common::open(dir.path(), "limited", proxy.url(), server.token(), config).await;
    let note = limited
        .insert("notes", &[("body", "allowed".into())])
        .await
        .unwrap();
    let secret = limited
        .insert("secrets", &[("body", "not allowed".into())])
        .await
        .unwrap();
    let report = limited.sync().await.unwrap();
    let status = limited.status().await.unwrap();
    println!(
        "faults_auth: per-table token: pushed {}, pulled {}, refused tables {:?}",
        report.pushed, report.pulled, status.refused_tables
    );
    assert_eq!(report.pushed, 1, "the allowed table pushes");
    let secrets = limited.dump("secrets").await.unwrap();
    assert!(
        secrets
            .iter()
            .any(|r| r.values[0] == "from the writer".into()),
        "the refused table still pulls"
    );
    assert_eq!(status.pending_changes, 1);
    assert_eq!(status.refused_tables.len(), 1);
    assert_eq!(status.refused_tables[0].table, "secrets");
    assert_eq!(status.refused_tables[0].code, "SQLITE_AUTH");
    assert_eq!(status.rejected, 0, "a refused table sets no row aside");
    assert_eq!(server_count(&server, "notes").await, 1);
    assert_eq!(server_count(&server, "secrets").await, 1);
    assert!(limited.get_row("notes", &note).await.unwrap().is_some());

    proxy.deny_writes_to(&[]);
    assert_eq!(limited.sync().await.unwrap().pushed, 1);
    assert_eq!(server_count(&server, "secrets").await, 2);
    assert!(limited.status().await.unwrap().refused_tables.is_empty());
    writer.sync().await.unwrap();
    assert!(writer.get_row("secrets", &secret).await.unwrap().is_some());
}
