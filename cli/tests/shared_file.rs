//! Several processes share one replica file (an app's UI process, its
//! background sync process, the CLI): 30 `erth` processes write to one file
//! at once (todo API and plain SQL) while 3 more sync it with a real server
//! (`tursodb` from the harness, or `ERTH_TEST_HRANA_URL`). Every write that
//! was acknowledged lands exactly once, locally and on the server; the file
//! passes `PRAGMA integrity_check`; no two writes share a clock; and every
//! write lands (each waits for the others, a few milliseconds each, far
//! under the 5 s timeout).
//!
//! Then each rule on its own, with another process (this test) holding the
//! lock: a write waits for the file's write lock and lands after it is
//! released; a sync waits for another process's sync and runs after it;
//! a write locked out past the timeout exits 6 and changes nothing.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{command, WriteLock, ERTH};
use erth_core::store::sqlite::SqliteStore;
use erth_core::store::Store;
use erth_tests::hrana;
use erth_tests::server::TestServer;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::Duration;

const WRITERS: usize = 30;
const SYNCERS: usize = 3;

/// How long this test holds a lock while another process waits for it:
/// long enough for that process to start and reach the lock. Nothing is
/// measured by it; the tests check the order of events.
const HOLD: Duration = Duration::from_secs(2);

/// Milliseconds since the epoch, as the engine's clock reads them.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Titles of the live todos in `db` and how often each occurs.
fn titles(db: &Path, server: &TestServer) -> BTreeMap<String, usize> {
    let out = ok(
        command(db, server, &["--json", "list"]).output().unwrap(),
        "list",
    );
    let list: Vec<Value> = serde_json::from_str(&out).unwrap();
    let mut counts = BTreeMap::new();
    for t in list {
        *counts
            .entry(t["title"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn thirty_writers_and_three_syncers_share_one_replica_file() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    ok(
        command(&db, &server, &["add", "before"]).output().unwrap(),
        "first add",
    );

    // All at once: writers alternate between the todo API and plain SQL.
    let mut children: Vec<(String, Option<String>, Child)> = Vec::new();
    for i in 0..WRITERS + SYNCERS {
        let (what, title, args): (String, Option<String>, Vec<String>) = if i % 11 == 5 {
            (format!("sync {i}"), None, vec!["sync".into()])
        } else if i % 2 == 0 {
            let title = format!("writer {i} (add)");
            (
                format!("add {i}"),
                Some(title.clone()),
                vec!["add".into(), title],
            )
        } else {
            let title = format!("writer {i} (sql)");
            let sql = format!("INSERT INTO todos (title) VALUES ('{title}')");
            (format!("sql {i}"), Some(title), vec!["sql".into(), sql])
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        children.push((what, title, command(&db, &server, &args).spawn().unwrap()));
    }
    assert_eq!(
        children.iter().filter(|(_, t, _)| t.is_none()).count(),
        SYNCERS
    );

    let mut acknowledged = vec!["before".to_owned()];
    let (mut locked, mut syncs_ok) = (0, 0);
    for (what, title, child) in children {
        let out = child.wait_with_output().unwrap();
        match out.status.code() {
            Some(0) => match title {
                Some(t) => acknowledged.push(t),
                None => syncs_ok += 1,
            },
            // Waited past its timeout: allowed, and its write must be absent.
            Some(6) => locked += 1,
            _ => panic!(
                "{what} failed: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
    println!(
        "shared file: writers {WRITERS}, syncers {SYNCERS}, writes acknowledged {}, syncs ok {syncs_ok}, locked past the timeout {locked}",
        acknowledged.len() - 1
    );
    // Writes wait for each other: none may be locked out (each holds the
    // lock for milliseconds; the timeout is 5 s). Without waiting, most
    // would exit 6 and the checks below would still pass on what is left.
    assert_eq!(locked, 0, "writes and syncs locked out instead of waiting");
    assert_eq!(acknowledged.len() - 1, WRITERS);
    assert_eq!(syncs_ok, SYNCERS);

    let integrity = ok(
        command(&db, &server, &["--json", "sql", "PRAGMA integrity_check"])
            .output()
            .unwrap(),
        "integrity_check",
    );
    assert_eq!(
        serde_json::from_str::<Value>(&integrity).unwrap()[0]["integrity_check"],
        "ok"
    );
    // Each write ticked the clock inside its write transaction after
    // reading the one the other processes persisted: no two rows share a
    // clock, not even its hlc part (node ids differ per process anyway).
    let dump = ok(
        command(&db, &server, &["--json", "dump", "todos"])
            .output()
            .unwrap(),
        "dump",
    );
    let rows: Vec<Value> = serde_json::from_str(&dump).unwrap();
    let hlcs: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|r| &r["_clk_title"].as_str().unwrap()[..16])
        .collect();
    assert_eq!(hlcs.len(), rows.len(), "two writes issued the same clock");
    let want: BTreeMap<String, usize> = acknowledged.iter().map(|t| (t.clone(), 1)).collect();
    assert_eq!(
        titles(&db, &server),
        want,
        "locally: each write exactly once"
    );

    // After one more sync the server holds each of them exactly once too.
    ok(
        command(&db, &server, &["sync"]).output().unwrap(),
        "final sync",
    );
    let fresh = dir.path().join("fresh.db");
    ok(
        command(&fresh, &server, &["sync"]).output().unwrap(),
        "fresh sync",
    );
    assert_eq!(titles(&fresh, &server), want, "on the server");
    let status = ok(
        command(&db, &server, &["--json", "status"])
            .output()
            .unwrap(),
        "status",
    );
    assert_eq!(
        serde_json::from_str::<Value>(&status).unwrap()["pending_changes"],
        0
    );
}

/// Waits `HOLD` while `child` runs, then asserts it is still running: it
/// is waiting for the lock this test holds.
async fn still_waiting(child: &mut Child, what: &str) {
    tokio::time::sleep(HOLD).await;
    if let Some(status) = child.try_wait().unwrap() {
        let out = child.stdout.take().map(std::io::read_to_string);
        let err = child.stderr.take().map(std::io::read_to_string);
        panic!("{what} ended ({status}) while the lock was held: {out:?} {err:?}");
    }
}

/// Writes wait: `erth add` started while another process holds the file's
/// write lock is still running when the lock is released, and its row was
/// written after that (its clock was read inside its write transaction).
#[tokio::test]
async fn a_write_waits_for_another_process_holding_the_write_lock() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    ok(
        command(&db, &server, &["add", "first"]).output().unwrap(),
        "first add",
    );

    let lock = WriteLock::hold(&db);
    let mut child = command(&db, &server, &["--json", "add", "waited"])
        .spawn()
        .unwrap();
    still_waiting(&mut child, "erth add").await;
    let released_at = now_ms();
    lock.release();
    let out = ok(child.wait_with_output().unwrap(), "the waiting add");
    let todo: Value = serde_json::from_str(&out).unwrap();
    let written_at = todo["created_at"].as_i64().unwrap();
    assert!(
        written_at >= released_at,
        "written at {written_at}, before the lock was released at {released_at}"
    );
    let want: BTreeMap<String, usize> = [("first".to_owned(), 1), ("waited".to_owned(), 1)].into();
    assert_eq!(titles(&db, &server), want);
}

/// Syncs wait: `erth sync` started while another process syncs the file
/// (holds its sync lock) sends nothing until that ends, then pushes.
#[tokio::test]
async fn a_sync_waits_for_another_process_syncing_the_file() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    // The server's tables exist; then one change is pending.
    ok(
        command(&db, &server, &["sync"]).output().unwrap(),
        "first sync",
    );
    ok(
        command(&db, &server, &["add", "pending"]).output().unwrap(),
        "add",
    );
    let on_server = || async {
        let res = hrana::execute(
            server.url(),
            server.token(),
            &["SELECT count(*) FROM todos"],
        )
        .await
        .unwrap();
        res[0]["rows"][0][0]["value"].as_str().unwrap().to_owned()
    };

    let other = SqliteStore::open(&db).unwrap();
    let held = other.try_lock_sync().unwrap().expect("no sync runs yet");
    let mut child = command(&db, &server, &["--json", "sync"]).spawn().unwrap();
    still_waiting(&mut child, "erth sync").await;
    assert_eq!(
        on_server().await,
        "0",
        "pushed while another sync held the lock"
    );
    let released_at = now_ms();
    drop(held);
    let out: Value =
        serde_json::from_str(&ok(child.wait_with_output().unwrap(), "the waiting sync")).unwrap();
    assert_eq!(out["pushed"], 1);
    assert_eq!(on_server().await, "1");
    let status: Value = serde_json::from_str(&ok(
        command(&db, &server, &["--json", "status"])
            .output()
            .unwrap(),
        "status",
    ))
    .unwrap();
    let synced_at = status["last_sync_at_ms"].as_i64().unwrap();
    assert!(
        synced_at >= released_at,
        "finished at {synced_at}, before the other sync ended at {released_at}"
    );
}

/// Exit code 6: a write that waited past the timeout (5 s) for another
/// process's write lock fails with `DatabaseLocked` and changes nothing.
#[test]
fn a_write_locked_out_past_the_timeout_exits_6_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("local.db");
    let erth = |args: &[&str]| {
        Command::new(ERTH)
            .arg("--db")
            .arg(&db)
            .args(args)
            .env_remove("ERTH_DATABASE_URL")
            .env_remove("ERTH_SCHEMA")
            .env_remove("ERTH_AUTH_TOKEN")
            .output()
            .unwrap()
    };
    ok(erth(&["add", "before"]), "first add");
    let lock = WriteLock::hold(&db);
    let out = erth(&["--json", "add", "locked out"]);
    lock.release();
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["kind"], "DatabaseLocked");
    let list: Vec<Value> = serde_json::from_str(&ok(erth(&["--json", "list"]), "list")).unwrap();
    let titles: Vec<&str> = list.iter().map(|t| t["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["before"], "the locked-out write changed the file");
}
