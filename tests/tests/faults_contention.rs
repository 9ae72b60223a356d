//! Contention: the server answers push transactions as sqld does when a
//! commit fails for other writers (an MVCC `BEGIN CONCURRENT` conflict,
//! which sqld reports as `SQLITE_BUSY`; a busy database; sqld's
//! `TRANSACTION_BUSY`). The push runs the transaction again with backoff
//! and jitter and it lands exactly once — also when the answer of the
//! commit that did land is lost. Contention that outlasts the retries is a
//! typed error and sets nothing aside: the rows stay pending and the next
//! sync pushes them.

#![allow(clippy::unwrap_used)] // test code

mod common;

use erth_core::hrana::RetryPolicy;
use erth_core::Config;
use erth_tests::{hrana, FaultProxy, TestServer};

/// Counts, on the server, every row write that takes a `_seq`: an insert,
/// or an update giving the row a new `_seq`.
const WRITE_AUDIT: [&str; 3] = [
    "CREATE TABLE test_write_audit (id TEXT)",
    "CREATE TRIGGER test_write_audit_insert AFTER INSERT ON todos BEGIN \
     INSERT INTO test_write_audit VALUES (new.id); END",
    "CREATE TRIGGER test_write_audit_update AFTER UPDATE ON todos \
     WHEN old._seq IS NOT new._seq BEGIN INSERT INTO test_write_audit VALUES (new.id); END",
];

async fn count(server: &TestServer, sql: &str) -> u64 {
    let res = hrana::execute(server.url(), server.token(), &[sql])
        .await
        .unwrap();
    res[0]["rows"][0][0]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_conflicts_are_retried_and_the_push_lands_once() {
    let server = TestServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.url(), 1).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        retry: RetryPolicy {
            attempts: 5,
            base_delay_ms: 10,
            max_delay_ms: 80,
        },
        ..Config::default()
    };
    let db = common::open(dir.path(), "a", proxy.url(), server.token(), config).await;
    db.sync().await.unwrap();
    hrana::execute(server.url(), server.token(), &WRITE_AUDIT)
        .await
        .unwrap();

    // Each kind of contention sqld reports, twice before the commit lands.
    let mut pushed = 0;
    for code in ["SQLITE_BUSY", "TRANSACTION_BUSY", "SQLITE_LOCKED"] {
        for i in 0..10 {
            db.add_todo(&format!("{code} {i}")).await.unwrap();
        }
        proxy.fail_next_commits(2, code, "commit conflict");
        let report = db.sync().await.unwrap();
        assert_eq!(report.pushed, 10, "{code}");
        pushed += 10;
    }
    let status = db.status().await.unwrap();
    assert_eq!((status.pending_changes, status.rejected), (0, 0));

    // The commit lands but its answer is lost: the repeat changes nothing.
    for i in 0..10 {
        db.add_todo(&format!("lost answer {i}")).await.unwrap();
    }
    proxy.drop_next_responses(1);
    assert_eq!(db.sync().await.unwrap().pushed, 10);
    pushed += 10;

    let rows = count(&server, "SELECT count(*) FROM todos").await;
    let writes = count(&server, "SELECT count(*) FROM test_write_audit").await;
    let distinct_seqs = count(&server, "SELECT count(DISTINCT _seq) FROM todos").await;
    let stats = proxy.stats();
    println!(
        "faults_contention: rows pushed {pushed}, on the server {rows}, row writes {writes}, \
         failed commits answered {}, lost answers {}",
        stats.failed_commits, stats.drop_response
    );
    assert_eq!(stats.failed_commits, 6, "every injected conflict was met");
    assert_eq!(rows, pushed);
    assert_eq!(writes, pushed, "every row written exactly once");
    assert_eq!(distinct_seqs, pushed);

    // Contention that outlasts the retries: a typed error, nothing set aside.
    let id = db.add_todo("contended").await.unwrap().id;
    proxy.fail_next_commits(5, "SQLITE_BUSY", "database is locked");
    let e = db.sync().await.unwrap_err();
    assert_eq!(e.server_code(), Some("SQLITE_BUSY"), "{e:?}");
    let status = db.status().await.unwrap();
    assert_eq!(status.last_error_kind, Some(erth_core::ErrorKind::Server));
    assert_eq!(
        status.last_error_server_code.as_deref(),
        Some("SQLITE_BUSY")
    );
    assert_eq!((status.pending_changes, status.rejected), (1, 0));
    assert_eq!(
        db.sync().await.unwrap().pushed,
        1,
        "the next sync pushes it"
    );
    assert_eq!(
        count(
            &server,
            &format!("SELECT count(*) FROM todos WHERE id = '{id}'")
        )
        .await,
        1
    );
}
