//! Several processes share one replica file (an app's UI process, its
//! background sync process, the CLI): 30 `erth` processes write to one file
//! at once (todo API and plain SQL) while 3 more sync it with a real server
//! (`tursodb` from the harness, or `ERTH_TEST_HRANA_URL`). Every write that
//! was acknowledged lands exactly once, locally and on the server; the file
//! passes `PRAGMA integrity_check`; no two writes share a clock; the only
//! failure allowed is exit code 6 (the file stayed locked past the
//! timeout), and such a write is absent.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::command;
use erth_tests::server::TestServer;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Output};

const WRITERS: usize = 30;
const SYNCERS: usize = 3;

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
