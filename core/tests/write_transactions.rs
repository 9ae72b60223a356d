//! Interactive write transactions on real SQLite files, without a network:
//! a read-modify-write no other writer slips into (other tasks, and
//! another process sharing the file), rollback on error and on drop, live
//! queries that fire once per commit and never see uncommitted rows, waits
//! bounded by the lock timeout, one clock per transaction. Sync waiting for
//! an open transaction: `tests/tests/core_server.rs`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use erth_core::{Config, Database, Error, LockHolder, Rows, SqlValue};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SCHEMA: &str = r#"{"tables": {"counters": {"columns": {
    "name": {"type": "text", "notNull": true, "default": ""},
    "n": {"type": "integer", "notNull": true, "default": 0}}}}}"#;

async fn open_with(path: &Path, lock_timeout_ms: u64) -> Database {
    let config = Config {
        lock_timeout_ms,
        ..Config::default().with_schema_json(SCHEMA).unwrap()
    };
    Database::open_native(path, config).await.unwrap()
}

async fn open(path: &Path) -> Database {
    open_with(path, 5_000).await
}

async fn counter(db: &Database) -> i64 {
    let rows = db
        .query("SELECT n FROM counters WHERE name = 'c'", &[])
        .await
        .unwrap();
    rows.rows[0][0].as_i64().unwrap()
}

async fn add_counter(db: &Database) {
    db.execute("INSERT INTO counters (name, n) VALUES ('c', 0)", &[])
        .await
        .unwrap();
}

/// Reads the counter, yields to every other task (and sleeps, so other
/// threads run too), then writes what it read plus one.
async fn increment(db: &Database) {
    let mut tx = db.write_transaction().await.unwrap();
    let rows = tx
        .query("SELECT n FROM counters WHERE name = 'c'", &[])
        .unwrap();
    let n = rows.rows[0][0].as_i64().unwrap();
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    tx.execute(
        "UPDATE counters SET n = ? WHERE name = 'c'",
        &[SqlValue::Integer(n + 1)],
    )
    .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_writer_slips_between_a_transactions_read_and_its_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(open(&dir.path().join("a.db")).await);
    add_counter(&db).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                increment(&db).await;
            }
        }));
    }
    // One-shot writers meanwhile: each adds 1,000 in one statement.
    let plain = {
        let db = db.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                db.execute("UPDATE counters SET n = n + 1000 WHERE name = 'c'", &[])
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    plain.await.unwrap();
    // A lost update would leave less: each of the 100 transactions wrote
    // what it read plus one, and each plain write added 1,000.
    assert_eq!(counter(&db).await, 100 + 10 * 1000);
}

#[tokio::test]
async fn an_error_or_a_drop_rolls_everything_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("a.db")).await;
    add_counter(&db).await;
    let pending = db.pending_changes().await.unwrap();
    let clock = db.last_clock().await;

    // The app's callback fails half way: `?` drops the transaction.
    async fn half_way(db: &Database) -> Result<(), Error> {
        let mut tx = db.write_transaction().await?;
        tx.execute("INSERT INTO counters (name, n) VALUES ('x', 1)", &[])?;
        tx.execute("UPDATE counters SET n = 99 WHERE name = 'c'", &[])?;
        tx.execute("CREATE TABLE app_local (v)", &[])?;
        tx.execute("INSERT INTO app_local VALUES (1)", &[])?;
        tx.execute("INSERT INTO counters (n) VALUES ('not a number')", &[])?;
        tx.commit().await
    }
    let e = half_way(&db).await.unwrap_err();
    assert!(matches!(e, Error::Sql { .. }), "{e}");
    assert_eq!(counter(&db).await, 0);
    let rows = db
        .query("SELECT count(*) FROM counters", &[])
        .await
        .unwrap();
    assert_eq!(rows.rows[0][0], SqlValue::Integer(1), "the insert is gone");
    let e = db.query("SELECT * FROM app_local", &[]).await.unwrap_err();
    assert!(e.to_string().contains("no such table"), "{e}");
    assert_eq!(db.pending_changes().await.unwrap(), pending);

    // An explicit rollback, after a failed statement the app caught.
    let mut tx = db.write_transaction().await.unwrap();
    tx.execute("UPDATE counters SET n = 5 WHERE name = 'c'", &[])
        .unwrap();
    tx.execute("SELECT * FROM no_such_table", &[]).unwrap_err();
    let seen = tx
        .query("SELECT n FROM counters WHERE name = 'c'", &[])
        .unwrap();
    assert_eq!(
        seen.rows[0][0],
        SqlValue::Integer(5),
        "still open, still written"
    );
    tx.rollback().unwrap();
    assert_eq!(counter(&db).await, 0);
    assert_eq!(db.pending_changes().await.unwrap(), pending);
    // The engine's own statements (the persisted clock) rolled back too,
    // and the replica goes on: the next write's clock is later.
    db.execute("UPDATE counters SET n = 1 WHERE name = 'c'", &[])
        .await
        .unwrap();
    assert!(db.last_clock().await > clock);
    assert_eq!(counter(&db).await, 1);
}

type Seen = Arc<Mutex<Vec<Rows>>>;

fn recorder() -> (Seen, erth_core::RowsListener) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    (
        seen,
        Arc::new(move |rows: &Rows| s.lock().unwrap().push(rows.clone())),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_queries_fire_once_per_commit_and_never_see_uncommitted_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(open(&dir.path().join("a.db")).await);
    add_counter(&db).await;
    let (seen, cb) = recorder();
    let _live = db
        .watch("SELECT name, n FROM counters ORDER BY name", &[], cb)
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);

    let mut tx = db.write_transaction().await.unwrap();
    for name in ["a", "b", "d"] {
        tx.execute(
            "INSERT INTO counters (name, n) VALUES (?, 1)",
            &[SqlValue::Text(name.into())],
        )
        .unwrap();
    }
    tx.execute("UPDATE counters SET n = 7 WHERE name = 'c'", &[])
        .unwrap();
    // A live query started while the transaction is open gets its first
    // rows when it ends, committed ones.
    let (late, cb) = recorder();
    let _late = db.watch("SELECT count(*) FROM counters", &[], cb).unwrap();
    assert!(late.lock().unwrap().is_empty(), "no uncommitted first call");
    // A read from another task waits for the commit and sees all of it.
    let reader = {
        let db = db.clone();
        tokio::spawn(async move { db.query("SELECT count(*), sum(n) FROM counters", &[]).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!reader.is_finished(), "the read waited for the transaction");
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "nothing delivered while open"
    );
    tx.commit().await.unwrap();

    let read = reader.await.unwrap().unwrap();
    assert_eq!(read.rows[0], [SqlValue::Integer(4), SqlValue::Integer(10)]);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "one call for the whole commit: {seen:?}");
    assert_eq!(seen[1].rows.len(), 4);
    assert_eq!(
        late.lock().unwrap().as_slice(),
        [Rows {
            columns: vec!["count(*)".into()],
            rows: vec![vec![SqlValue::Integer(4)]],
        }]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_an_open_transaction_end_at_the_lock_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(open_with(&dir.path().join("a.db"), 200).await);
    add_counter(&db).await;
    let tx = db.write_transaction().await.unwrap();
    let started = Instant::now();
    let e = db.write_transaction().await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::DatabaseLocked(LockHolder::WriteTransaction { waited_ms: 200 })
        ),
        "{e}"
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    let e = db
        .execute("UPDATE counters SET n = 3", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::DatabaseLocked(LockHolder::WriteTransaction { waited_ms: 200 })
        ),
        "{e}"
    );
    let e = db.query("SELECT 1", &[]).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::DatabaseLocked(LockHolder::WriteTransaction { waited_ms: 200 })
        ),
        "{e}"
    );
    let e = db.pending_changes().await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::DatabaseLocked(LockHolder::WriteTransaction { waited_ms: 200 })
        ),
        "{e}"
    );
    drop(tx);
    db.execute("UPDATE counters SET n = 3", &[]).await.unwrap();
    assert_eq!(counter(&db).await, 3);
}

#[tokio::test]
async fn a_transaction_is_one_clock_and_its_rows_are_pending() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("a.db")).await;
    let before = db.last_clock().await;
    let mut tx = db.write_transaction().await.unwrap();
    tx.execute("INSERT INTO counters (name, n) VALUES ('a', 1)", &[])
        .unwrap();
    tx.execute("INSERT INTO counters (name, n) VALUES ('b', 2)", &[])
        .unwrap();
    tx.execute("UPDATE counters SET n = n + 10", &[]).unwrap();
    tx.commit().await.unwrap();
    let clocks = db
        .query(
            "SELECT DISTINCT _clk_name, _clk_n, _dirty FROM _erth_rows_counters",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        clocks.rows.len(),
        1,
        "one clock, every row pending: {clocks:?}"
    );
    let clock = clocks.rows[0][0].as_str().unwrap().to_owned();
    // `n`, changed twice in the transaction, took its clock and then one
    // past it: a column's new clock always passes its old one (`hlc`).
    assert!(clocks.rows[0][1].as_str().unwrap() > clock.as_str());
    // Pending: `_dirty` counts the row's local changes (insert, update).
    assert_eq!(clocks.rows[0][2], SqlValue::Integer(2));
    assert!(clock > before.to_string());
    assert_eq!(db.last_clock().await.to_string(), clock);
    assert_eq!(db.pending_changes().await.unwrap(), 2);
}

/// The child of [`another_process_waits_for_the_transaction`]: opens the
/// file, reads the counter in a transaction, says so, waits for a line on
/// stdin, writes what it read plus one and commits.
#[tokio::test]
#[ignore = "the other process of another_process_waits_for_the_transaction, which runs it"]
async fn child_holds_a_transaction() {
    let path = std::env::var("ERTH_TX_CHILD_FILE").expect("ERTH_TX_CHILD_FILE");
    let db = open(Path::new(&path)).await;
    let mut tx = db.write_transaction().await.unwrap();
    let n = tx
        .query("SELECT n FROM counters WHERE name = 'c'", &[])
        .unwrap()
        .rows[0][0]
        .as_i64()
        .unwrap();
    println!("ERTH_READ {n}");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    tx.execute(
        "UPDATE counters SET n = ? WHERE name = 'c'",
        &[SqlValue::Integer(n + 1)],
    )
    .unwrap();
    tx.commit().await.unwrap();
    println!("ERTH_COMMITTED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_waits_for_the_transaction() {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let db = Arc::new(open(&path).await);
    add_counter(&db).await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_a_transaction",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ERTH_TX_CHILD_FILE", &path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // libtest prints the test's name on the same line before its output.
    while !line.contains("ERTH_READ") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child ended early"
        );
    }
    assert!(line.trim_end().ends_with("ERTH_READ 0"), "{line}");
    // This process's increment waits for the child's write lock.
    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            db.execute("UPDATE counters SET n = n + 1 WHERE name = 'c'", &[])
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !writer.is_finished(),
        "the write waited for the other process"
    );
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin).unwrap();
    writer.await.unwrap().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{rest}");
    assert!(rest.contains("ERTH_COMMITTED"), "{rest}");
    assert_eq!(counter(&db).await, 2, "neither increment was lost");
}
