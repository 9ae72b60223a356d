//! The guarantees at their edges, against the real server behind the fault
//! proxy: every sync ends (a server that fails every page, one that never
//! answers, a cancelled sync), one row never blocks the rest (a row the
//! link cannot carry on push, a poisoned row on the server), a failure of
//! the whole server is not blamed on rows, and values sqld could not send
//! in one page (its 5,000,000-byte string limit and 10 MB answer limit,
//! enforced by the proxy as sqld does) arrive on the first sync.

#![allow(clippy::unwrap_used)] // test code

mod common;

use erth_core::hrana::RetryPolicy;
use erth_core::{Config, Database, Error, ErrorKind};
use erth_tests::{hrana, FaultProxy, Oversize, PageFault, TestServer};
use std::time::Duration;

/// The server's count of todos matching `filter`.
async fn server_count(server: &TestServer, filter: &str) -> u64 {
    let res = hrana::execute(
        server.url(),
        server.token(),
        &[&format!("SELECT count(*) FROM todos {filter}")],
    )
    .await
    .unwrap();
    res[0]["rows"][0][0]["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// A config for a replica behind a failing proxy: short request timeouts
/// and deadline, quick retries.
fn impatient(sync_timeout_ms: u64) -> Config {
    Config {
        request_timeout_ms: 400,
        sync_timeout_ms,
        retry: RetryPolicy {
            attempts: 2,
            base_delay_ms: 20,
            max_delay_ms: 50,
        },
        ..Config::default()
    }
}

/// Runs `db.sync()`, failing the test if it has not ended after `bound`
/// (a liveness bound, far above the sync's own deadline).
async fn sync_ends(db: &Database, bound: Duration) -> Result<erth_core::SyncReport, Error> {
    tokio::time::timeout(bound, db.sync())
        .await
        .expect("the sync never ended")
}

#[tokio::test]
async fn a_server_that_fails_every_page_or_never_answers_ends_each_sync_typed() {
    let server = TestServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.url(), common::seed())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let writer = common::open(
        dir.path(),
        "w",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    for i in 0..300 {
        writer.add_todo(&format!("todo {i}")).await.unwrap();
    }
    writer.sync().await.unwrap();
    let reader = common::open(
        dir.path(),
        "r",
        proxy.url(),
        server.token(),
        impatient(2_000),
    )
    .await;
    for fault in [PageFault::TooLarge, PageFault::Stall] {
        proxy.fault_pages(Some(fault));
        let e = sync_ends(&reader, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::SyncTimeout { ms: 2_000 }),
            "{fault:?}: {e:?}"
        );
        assert_eq!(e.kind(), ErrorKind::Network);
        let status = reader.status().await.unwrap();
        assert!(!status.syncing, "{fault:?}");
        assert_eq!(status.last_error, Some(e.to_string()), "{fault:?}");
    }
    assert!(proxy.stats().page_faults > 0);
    // A server that accepts and never answers anything: one request timeout.
    proxy.fault_pages(None);
    proxy.refuse_bodies_over(Some((0, Oversize::Stall)));
    let e = sync_ends(&reader, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    assert!(!reader.status().await.unwrap().syncing);
    // A sync the app cancels mid-way leaves the status right and the locks free.
    let cancelled = tokio::time::timeout(Duration::from_millis(100), reader.sync()).await;
    assert!(cancelled.is_err(), "the stalled sync was not cancelled");
    let status = reader.status().await.unwrap();
    assert!(!status.syncing, "syncing stays true after a cancelled sync");
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("cancelled")),
        "{status:?}"
    );
    // Nothing holds a lock: with the server answering, the next sync gets everything.
    proxy.refuse_bodies_over(None);
    let report = sync_ends(&reader, Duration::from_secs(60)).await.unwrap();
    assert!(report.pulled <= 300);
    assert_eq!(reader.list_active_todos().await.unwrap().len(), 300);
    assert_eq!(reader.status().await.unwrap().last_error, None);
}

#[tokio::test]
async fn one_row_the_link_cannot_carry_is_set_aside_and_the_other_999_push() {
    let server = TestServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.url(), common::seed())
        .await
        .unwrap();
    // A gateway that takes bodies of at most 1 MB.
    proxy.refuse_bodies_over(Some((1_000_000, Oversize::Status413)));
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(
        dir.path(),
        "a",
        proxy.url(),
        server.token(),
        Config::default(),
    )
    .await;
    for i in 0..500 {
        db.add_todo(&format!("before {i}")).await.unwrap();
    }
    let big = db.add_todo(&"x".repeat(1_500_000)).await.unwrap();
    for i in 0..499 {
        db.add_todo(&format!("after {i}")).await.unwrap();
    }
    let report = db.sync().await.unwrap();
    assert_eq!(report.pushed, 999);
    assert_eq!(server_count(&server, "").await, 999);
    let rejected = db.rejected_rows().await.unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].id, big.id);
    assert_eq!(rejected[0].code, "HTTP 413");
    // Every later sync: the others sync, the big one stays aside, no error.
    db.add_todo("later").await.unwrap();
    let report = db.sync().await.unwrap();
    assert_eq!(report.pushed, 1);
    let status = db.status().await.unwrap();
    assert_eq!((status.rejected, status.pending_changes), (1, 1));
    assert_eq!(status.last_error, None);
    assert_eq!(server_count(&server, "").await, 1_000);
}

#[tokio::test]
async fn one_poisoned_row_among_a_thousand_is_quarantined_on_every_replica() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paged = Config {
        pull_page_rows: 64,
        ..Config::default()
    };
    let writer = common::open(dir.path(), "w", server.url(), server.token(), paged.clone()).await;
    let mut ids = Vec::new();
    for i in 0..1_000 {
        ids.push(writer.add_todo(&format!("todo {i}")).await.unwrap().id);
    }
    writer.sync().await.unwrap();
    // A buggy client writes one row that breaks the layout, with a new _seq.
    hrana::execute(
        server.url(),
        server.token(),
        &[&format!(
            "UPDATE todos SET is_completed = 'yes', _seq = (SELECT max(_seq) + 1 FROM todos) WHERE id = '{}'",
            ids[500]
        )],
    )
    .await
    .unwrap();
    let reader = common::open(dir.path(), "r", server.url(), server.token(), paged).await;
    for round in 0..2 {
        for db in [&reader, &writer] {
            db.sync()
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            let quarantined = db.quarantined_rows().await.unwrap();
            assert_eq!(quarantined.len(), 1, "round {round}: {quarantined:?}");
            assert_eq!(quarantined[0].id, ids[500]);
            assert!(
                quarantined[0].reason.contains("is_completed"),
                "{quarantined:?}"
            );
            assert_eq!(db.status().await.unwrap().last_error, None);
        }
    }
    // The fresh replica has the 999 others; the writer keeps its own version.
    let live = reader.list_active_todos().await.unwrap();
    assert_eq!(live.len(), 999);
    assert!(live.iter().all(|t| t.id != ids[500]));
    assert!(writer.get_todo(&ids[500]).await.is_ok());
}

#[tokio::test]
async fn a_failure_of_the_whole_server_leaves_every_row_pending() {
    let server = TestServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.url(), common::seed())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(
        dir.path(),
        "a",
        proxy.url(),
        server.token(),
        Config::default(),
    )
    .await;
    db.sync().await.unwrap();
    for i in 0..10 {
        db.add_todo(&format!("todo {i}")).await.unwrap();
    }
    // tursodb reports a full disk as a failed step like a refused row.
    proxy.fail_next_commits(1_000, "BATCH_STEP_ERROR", "database or disk is full");
    let e = db.sync().await.unwrap_err();
    assert_eq!(e.server_code(), Some("BATCH_STEP_ERROR"), "{e:?}");
    let status = db.status().await.unwrap();
    assert_eq!(status.pending_changes, 10);
    assert_eq!(
        status.rejected, 0,
        "rows were blamed for the server's failure"
    );
    assert!(db.rejected_rows().await.unwrap().is_empty());
    // The server recovers: everything goes up.
    proxy.clear_failed_commits();
    let report = db.sync().await.unwrap();
    assert_eq!(report.pushed, 10);
    assert_eq!(server_count(&server, "").await, 10);
}

#[tokio::test]
async fn values_sqld_could_not_send_in_one_page_arrive_on_the_first_sync() {
    let server = TestServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.url(), common::seed())
        .await
        .unwrap();
    proxy.limit_like_sqld(true);
    let dir = tempfile::tempdir().unwrap();
    let writer = common::open(
        dir.path(),
        "w",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    // 4,999,000 control characters: about 30 MB as JSON.
    writer.add_todo(&"\u{1}".repeat(4_999_000)).await.unwrap();
    // 150 rows of 40 KB of emoji.
    for _ in 0..150 {
        writer.add_todo(&"😀".repeat(10_000)).await.unwrap();
    }
    // 30 MB of plain text.
    for i in 0..3_000 {
        writer
            .add_todo(&format!("{i:05}{}", "a".repeat(10_000)))
            .await
            .unwrap();
    }
    writer.sync().await.unwrap();
    let reader = common::open(
        dir.path(),
        "r",
        proxy.url(),
        server.token(),
        Config::default(),
    )
    .await;
    let report = reader
        .sync()
        .await
        .unwrap_or_else(|e| panic!("the first sync failed: {e}"));
    assert_eq!(report.pulled, 3_151);
    assert_eq!(
        reader.dump("todos").await.unwrap(),
        writer.dump("todos").await.unwrap(),
        "the replicas differ"
    );
    let stats = proxy.stats();
    assert!(
        stats.too_big + stats.too_large > 0,
        "the control characters never met sqld's limits: {stats:?}"
    );
}

#[tokio::test]
async fn a_table_this_token_may_not_read_does_not_stop_the_others() {
    let server = TestServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.url(), common::seed())
        .await
        .unwrap();
    let schema = r#"{"tables": {
        "notes": {"columns": {"body": {"type": "text", "notNull": true, "default": ""}}},
        "secret": {"columns": {"body": {"type": "text", "notNull": true, "default": ""}}}
    }}"#;
    let config = || Config::default().with_schema_json(schema).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let writer = common::open(dir.path(), "w", server.url(), server.token(), config()).await;
    for i in 0..20 {
        writer
            .execute(
                "INSERT INTO notes (body) VALUES (?)",
                &[format!("note {i}").into()],
            )
            .await
            .unwrap();
        writer
            .execute("INSERT INTO secret (body) VALUES ('hidden')", &[])
            .await
            .unwrap();
    }
    writer.sync().await.unwrap();
    // The reader's token may not read `secret` (nor write it).
    proxy.deny_reads_of(&["secret"]);
    let reader = common::open(dir.path(), "r", proxy.url(), server.token(), config()).await;
    reader
        .execute("INSERT INTO notes (body) VALUES ('from the reader')", &[])
        .await
        .unwrap();
    for round in 0..2 {
        reader
            .sync()
            .await
            .unwrap_or_else(|e| panic!("round {round}: one unreadable table failed the sync: {e}"));
        let notes = reader
            .query("SELECT count(*) FROM notes", &[])
            .await
            .unwrap();
        assert_eq!(notes.rows[0][0], 21.into(), "round {round}");
        let secret = reader
            .query("SELECT count(*) FROM secret", &[])
            .await
            .unwrap();
        assert_eq!(secret.rows[0][0], 0.into(), "round {round}");
        let status = reader.status().await.unwrap();
        assert!(
            status.refused_tables.iter().any(|r| r.table == "secret"
                && r.code == "SQLITE_AUTH"
                && r.message.contains("reading")),
            "round {round}: {status:?}"
        );
        assert_eq!(status.pending_changes, 0, "the reader's note went up");
    }
    writer.sync().await.unwrap();
    let notes = writer
        .query("SELECT count(*) FROM notes", &[])
        .await
        .unwrap();
    assert_eq!(notes.rows[0][0], 21.into());
}
