//! Crash recovery: the `erth` CLI is killed with SIGKILL at random points
//! during local writes, pushes and pulls, 120 times. After every kill the
//! replica file passes `PRAGMA integrity_check`, acknowledged writes are
//! there, every row is either still pending or on the server, and the pull
//! cursor never skips a page; at the end every replica converges.

#![allow(clippy::unwrap_used)] // test code

use erth_core::store::sqlite::SqliteStore;
use erth_core::store::Store;
use erth_core::{Config, Database, SqlValue, Statement};
use erth_tests::{hrana, TestServer};
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const ERTH: &str = env!("CARGO_BIN_EXE_erth");

async fn raw(path: &Path, sql: &str) -> Vec<Vec<SqlValue>> {
    let store = SqliteStore::open(path).unwrap();
    store.query(&Statement::plain(sql)).await.unwrap().rows
}

/// Whether the replica got as far as creating its schema (a kill can land
/// before `Database::open` commits it; then the file holds nothing at all).
async fn has_schema(path: &Path) -> bool {
    let rows = raw(
        path,
        "SELECT count(*) FROM sqlite_master WHERE name IN ('_erth_state', 'todos')",
    )
    .await;
    match rows[0][0].as_i64() {
        Some(2) => true,
        Some(0) => false,
        other => panic!("half a schema in {}: {other:?}", path.display()),
    }
}

async fn integrity_ok(path: &Path) {
    let rows = raw(path, "PRAGMA integrity_check").await;
    assert_eq!(rows, vec![vec![SqlValue::from("ok")]], "{}", path.display());
}

async fn server_ids(server: &TestServer, max_seq: Option<i64>) -> BTreeSet<String> {
    let filter = max_seq.map_or(String::new(), |s| format!(" WHERE _seq <= {s}"));
    let res = hrana::execute(
        server.url(),
        server.token(),
        &[&format!("SELECT id FROM todos{filter}")],
    )
    .await
    .unwrap();
    res[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0]["value"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs `erth` with `args` and kills it after `delay` (if still running).
/// Returns whether it finished successfully on its own.
fn run_and_kill(db: &Path, url: &str, args: &[&str], delay: Duration) -> bool {
    let mut child = Command::new(ERTH)
        .arg("--db")
        .arg(db)
        .args(["--remote", url])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    match child.try_wait().unwrap() {
        Some(status) => status.success(),
        None => {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            false
        }
    }
}

async fn open(path: &Path, url: &str) -> Database {
    Database::open_native(
        path,
        Config {
            url: Some(url.to_owned()),
            ..Config::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_loses_nothing() {
    let seed: u64 = std::env::var("ERTH_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(42);
    println!("faults_crash: seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let server = TestServer::start().await.unwrap();
    let url = server.url().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let (w, p, q) = (
        dir.path().join("writer.db"),
        dir.path().join("pusher.db"),
        dir.path().join("puller.db"),
    );
    // Create the server's tables first, so server-side checks can run
    // even when the first push is killed before it bootstraps the server.
    open(&dir.path().join("bootstrap.db"), &url)
        .await
        .sync()
        .await
        .unwrap();
    let mut kills = 0;
    let iterations = 40;

    // Local writes: a killed `add` leaves the row fully there or not at all.
    let mut acked = 0i64;
    for i in 0..iterations {
        let delay = Duration::from_millis(rng.random_range(0..25));
        if run_and_kill(&w, &url, &["add", &format!("write {i}")], delay) {
            acked += 1;
        } else {
            kills += 1;
        }
        integrity_ok(&w).await;
        if !has_schema(&w).await {
            assert_eq!(acked, 0, "schema lost after acknowledged writes");
            continue;
        }
        let rows = raw(&w, "SELECT count(*), sum(_dirty > 0) FROM _erth_rows_todos").await;
        let (n, dirty) = (
            rows[0][0].as_i64().unwrap(),
            rows[0][1].as_i64().unwrap_or(0),
        );
        assert!(
            n == acked || n == acked + 1,
            "{n} rows after {acked} acknowledged adds"
        );
        assert_eq!(dirty, n, "every unsynced row is pending");
        acked = n;
    }

    // Pushes: kill mid-push; every row is pending or already on the server.
    {
        let db = open(&p, &url).await;
        for i in 0..3_000 {
            db.insert("todos", &[("title", format!("push {i}").into())])
                .await
                .unwrap();
        }
    }
    for _ in 0..iterations {
        let delay = Duration::from_millis(rng.random_range(0..120));
        if !run_and_kill(&p, &url, &["sync"], delay) {
            kills += 1;
        }
        integrity_ok(&p).await;
        let clean: BTreeSet<String> = raw(&p, "SELECT id FROM _erth_rows_todos WHERE _dirty = 0")
            .await
            .into_iter()
            .map(|r| r[0].as_str().unwrap().to_owned())
            .collect();
        let on_server = server_ids(&server, None).await;
        assert!(
            clean.is_subset(&on_server),
            "{} rows marked pushed are not on the server",
            clean.difference(&on_server).count()
        );
        // Add more work so later kills still land mid-push.
        let db = open(&p, &url).await;
        for i in 0..rng.random_range(0..200) {
            db.insert("todos", &[("title", format!("more {i}").into())])
                .await
                .unwrap();
        }
    }

    // Pulls: kill mid-pull; the cursor never runs ahead of the applied rows.
    for _ in 0..iterations {
        let delay = Duration::from_millis(rng.random_range(0..150));
        if !run_and_kill(&q, &url, &["sync"], delay) {
            kills += 1;
        }
        integrity_ok(&q).await;
        if !has_schema(&q).await {
            continue;
        }
        let cursor = raw(&q, "SELECT v FROM _erth_state WHERE k = 'cursor:todos'").await;
        let cursor: i64 = cursor
            .first()
            .and_then(|r| r[0].as_str())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let local: BTreeSet<String> = raw(&q, "SELECT id FROM _erth_rows_todos")
            .await
            .into_iter()
            .map(|r| r[0].as_str().unwrap().to_owned())
            .collect();
        let upto = server_ids(&server, Some(cursor)).await;
        assert!(
            upto.is_subset(&local),
            "cursor {cursor} skipped {} rows",
            upto.difference(&local).count()
        );
    }

    // Everyone finishes cleanly and converges.
    let dbs = [
        open(&w, &url).await,
        open(&p, &url).await,
        open(&q, &url).await,
    ];
    for _ in 0..2 {
        for db in &dbs {
            db.sync().await.unwrap();
        }
    }
    let dump = dbs[0].dump("todos").await.unwrap();
    for db in &dbs[1..] {
        assert_eq!(db.dump("todos").await.unwrap(), dump);
        assert_eq!(db.status().await.unwrap().pending_changes, 0);
    }
    assert_eq!(
        server_ids(&server, None).await.len(),
        dump.len(),
        "no duplicates, no loss on the server"
    );
    println!(
        "faults_crash: iterations {}, kills {kills}, rows {}, integrity checks {}, divergences 0",
        iterations * 3,
        dump.len(),
        iterations * 3
    );
    assert!(
        kills >= 30,
        "only {kills} kills landed: the test did not test crashes"
    );
}
