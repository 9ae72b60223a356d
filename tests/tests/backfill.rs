//! Backfills against a real server (`tursodb --sync-server` started by the
//! harness, or `ERTH_TEST_HRANA_URL`). A replica that pulled rows before it
//! declared a column pulls again, at its next sync, the rows whose new
//! column carries a clock (`erth_core::migrate`, the sync's
//! `backfill_table`), page by page with its own cursor. Here the backfill
//! is interrupted mid-way (the link fails after some pages) and resumes
//! where it stopped (its pages wait in the stage, applied with the rest
//! once the pull caught up); and a second column is added while the first
//! column's backfill is pending and half done, and both are filled in.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use erth_core::hrana::RetryPolicy;
use erth_core::{Config, Database, SqlValue, SyncProgress};
use erth_tests::server::TestServer;
use erth_tests::{hrana, FaultProxy, Faults};
use std::path::Path;

const V1: &str = r#"{"tables": {"notes": {"columns": {
    "title": {"type": "text", "notNull": true, "default": ""}}}}}"#;

const V2: &str = r#"{"tables": {"notes": {"columns": {
    "title": {"type": "text", "notNull": true, "default": ""},
    "color": {"type": "text"}}}}}"#;

const V3: &str = r#"{"tables": {"notes": {"columns": {
    "title": {"type": "text", "notNull": true, "default": ""},
    "color": {"type": "text"},
    "size": {"type": "integer", "notNull": true, "default": 0}}}}}"#;

/// Rows each replica writes: B (on V3) with colors and sizes, C (on V2)
/// with colors, A (on V1) with neither.
const ROWS: usize = 30;
/// Rows per pull page: the backfill of `color` (B's and C's rows) is 12
/// pages.
const PAGE_ROWS: usize = 5;

async fn replica(dir: &Path, name: &str, url: &str, token: Option<&str>, schema: &str) -> Database {
    let config = Config {
        url: Some(url.to_owned()),
        auth_token: token.map(str::to_owned),
        pull_page_rows: PAGE_ROWS,
        // A failed request fails the sync at once (the interruption).
        retry: RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        },
        ..Config::default()
    }
    .with_schema_json(schema)
    .unwrap();
    Database::open_native(dir.join(format!("{name}.db")), config)
        .await
        .unwrap()
}

async fn rows(db: &Database, sql: &str) -> Vec<Vec<SqlValue>> {
    db.query(sql, &[]).await.unwrap().rows
}

fn int(v: &SqlValue) -> i64 {
    v.as_i64().unwrap()
}

/// The pending backfill record of `notes` as `(upto, after, columns)`.
async fn backfill(db: &Database) -> Option<(i64, i64, String)> {
    let found = rows(db, "SELECT v FROM _erth_state WHERE k = 'backfill:notes'").await;
    found.first().map(|r| {
        let v = r[0].as_str().unwrap();
        let mut parts = v.splitn(3, ' ');
        (
            parts.next().unwrap().parse().unwrap(),
            parts.next().unwrap().parse().unwrap(),
            parts.next().unwrap().to_owned(),
        )
    })
}

/// How many server rows with `_seq <= seq` carry a color.
async fn colored_on_server_upto(server: &TestServer, seq: i64) -> i64 {
    let sql = format!("SELECT count(*) FROM notes WHERE color IS NOT NULL AND _seq <= {seq}");
    let res = hrana::execute(server.url(), server.token(), &[sql.as_str()])
        .await
        .unwrap();
    res[0]["rows"][0][0]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The setup both tests share: B (on V3), C (on V2) and A (on V1) each
/// write `ROWS` rows and sync, A last, so A holds every row without colors
/// or sizes;
/// A reopens on V2 (a backfill of `color` is recorded) and syncs through
/// a proxy that fails every request once a few backfill pages arrived.
/// Returns A (on V2, its backfill interrupted), B, and the record's
/// `after` when it stopped.
async fn interrupted(dir: &Path, server: &TestServer) -> (Database, Database, i64) {
    let (url, token) = (server.url(), server.token());
    let b = replica(dir, "b", url, token, V3).await;
    for i in 0..ROWS {
        b.execute(
            "INSERT INTO notes (title, color, size) VALUES (?, ?, ?)",
            &[
                format!("b {i}").into(),
                format!("color {i}").into(),
                SqlValue::Integer(i as i64 + 1),
            ],
        )
        .await
        .unwrap();
    }
    b.sync().await.unwrap();
    let c = replica(dir, "c", url, token, V2).await;
    for i in 0..ROWS {
        c.execute(
            "INSERT INTO notes (title, color) VALUES (?, ?)",
            &[format!("c {i}").into(), format!("c color {i}").into()],
        )
        .await
        .unwrap();
    }
    c.sync().await.unwrap();
    let a = replica(dir, "a", url, token, V1).await;
    for i in 0..ROWS {
        a.execute(
            "INSERT INTO notes (title) VALUES (?)",
            &[format!("a {i}").into()],
        )
        .await
        .unwrap();
    }
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    assert_eq!(
        rows(&a, "SELECT count(*) FROM notes").await[0][0],
        SqlValue::Integer(3 * ROWS as i64)
    );
    drop(a);

    let proxy = FaultProxy::start(url, 7).await.unwrap();
    let a = replica(dir, "a", proxy.url(), token, V2).await;
    let (upto, after, columns) = backfill(&a).await.expect("upgrading records a backfill");
    assert_eq!((after, columns.as_str()), (0, "color"));
    assert!(upto > 0);
    let failed = a
        .sync_with_progress(&|p| {
            if let SyncProgress::Pulled { rows, .. } = p {
                if rows >= 2 * PAGE_ROWS as u64 {
                    proxy.set_faults(Faults {
                        reset: 1.0,
                        ..Faults::none()
                    });
                }
            }
        })
        .await;
    assert!(failed.is_err(), "the sync was not interrupted: {failed:?}");
    let (upto_now, after, _) = backfill(&a)
        .await
        .expect("an interrupted backfill stays recorded");
    assert_eq!(upto_now, upto);
    assert!(
        after > 0 && after < upto,
        "the backfill's cursor {after} did not keep its progress (0..{upto})"
    );
    // Nothing of it is applied yet (a pull is applied whole once it caught
    // up with the server); the pages that arrived are staged: exactly the
    // colored rows up to its cursor.
    assert_eq!(
        rows(&a, "SELECT count(*) FROM notes WHERE color IS NOT NULL").await,
        vec![vec![SqlValue::Integer(0)]],
        "part of an unfinished pull was applied"
    );
    let staged = int(&rows(
        &a,
        "SELECT count(*) FROM _erth_stage_notes WHERE color IS NOT NULL",
    )
    .await[0][0]);
    assert_eq!(staged, colored_on_server_upto(server, after).await);
    assert!(
        staged > 0 && staged < 2 * ROWS as i64,
        "{staged} staged rows"
    );
    drop(a);
    drop(proxy);
    (replica(dir, "a", url, token, V2).await, b, after)
}

#[tokio::test]
async fn an_interrupted_backfill_resumes_where_it_stopped() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b, after) = interrupted(dir.path(), &server).await;
    let done_before = colored_on_server_upto(&server, after).await;
    let report = a.sync().await.unwrap();
    assert_eq!(backfill(&a).await, None, "the backfill finished");
    // Only what was left: the colored rows past the backfill's cursor.
    assert_eq!(report.pulled, 2 * ROWS as u64 - done_before as u64);
    let want = rows(&b, "SELECT id, title, color FROM notes ORDER BY id").await;
    assert_eq!(
        rows(&a, "SELECT id, title, color FROM notes ORDER BY id").await,
        want
    );
    assert_eq!(a.status().await.unwrap().pending_changes, 0);
}

#[tokio::test]
async fn a_column_added_while_a_backfill_is_pending_is_backfilled_too() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b, _) = interrupted(dir.path(), &server).await;
    let (upto, _, _) = backfill(&a).await.unwrap();
    drop(a);
    // Upgraded again before the first backfill finished: one record for
    // both columns, from the start (rows the first one already re-pulled
    // lack `size`; C's rows past its cursor carry `color` but no `size`).
    let a = replica(dir.path(), "a", server.url(), server.token(), V3).await;
    assert_eq!(backfill(&a).await, Some((upto, 0, "color,size".into())));
    a.sync().await.unwrap();
    assert_eq!(backfill(&a).await, None, "the backfill finished");
    let all = "SELECT id, title, color, size FROM notes ORDER BY id";
    assert_eq!(rows(&a, all).await, rows(&b, all).await);
    assert_eq!(
        rows(&a, "SELECT count(*), sum(size) FROM notes WHERE size > 0").await,
        vec![vec![
            SqlValue::Integer(ROWS as i64),
            SqlValue::Integer((ROWS * (ROWS + 1) / 2) as i64)
        ]]
    );
    assert_eq!(
        a.dump("notes").await.unwrap(),
        b.dump("notes").await.unwrap()
    );
}
