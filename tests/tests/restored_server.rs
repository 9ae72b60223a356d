//! A server that forgets, against a real Hrana server (`tursodb` from the
//! harness, or `ERTH_TEST_HRANA_URL`): the server database is restored from
//! an older backup — same `db_id`, rows and sequence counter back where they
//! were. The backup and the restore are done with SQL through the server's
//! own Hrana endpoint (every row of `todos` and `_erth_meta` read, then
//! written back over the tables' content), so the test runs unchanged
//! against any server. For every order of "backup", "push by A" and "pull
//! by B", followed by "restore" and "push by B": every replica and a fresh
//! one end with every row, each exactly once, and nothing pending.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use erth_core::{Config, Database};
use erth_tests::hrana;
use erth_tests::server::TestServer;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

async fn replica(dir: &Path, name: &str, server: &TestServer) -> Database {
    let config = Config {
        url: Some(server.url().to_owned()),
        auth_token: server.token().map(str::to_owned),
        ..Config::default()
    };
    Database::open_native(dir.join(format!("{name}.db")), config)
        .await
        .unwrap()
}

/// A JSON Hrana value as an SQL literal.
fn literal(v: &Value) -> String {
    match v["type"].as_str() {
        Some("null") => "NULL".into(),
        Some("integer") | Some("float") => v["value"].to_string().trim_matches('"').to_owned(),
        Some("text") => format!("'{}'", v["value"].as_str().unwrap().replace('\'', "''")),
        other => panic!("unexpected value type {other:?} in {v}"),
    }
}

/// The server's `todos` and `_erth_meta` as SQL that puts them back.
async fn backup(server: &TestServer) -> Vec<String> {
    let res = hrana::execute(
        server.url(),
        server.token(),
        &["SELECT * FROM todos", "SELECT k, v FROM _erth_meta"],
    )
    .await
    .unwrap();
    let cols: Vec<String> = res[0]["cols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    let mut sql = vec!["DELETE FROM todos".to_owned()];
    for row in res[0]["rows"].as_array().unwrap() {
        let values: Vec<String> = row.as_array().unwrap().iter().map(literal).collect();
        sql.push(format!(
            "INSERT INTO todos ({}) VALUES ({})",
            cols.join(", "),
            values.join(", ")
        ));
    }
    for row in res[1]["rows"].as_array().unwrap() {
        sql.push(format!(
            "UPDATE _erth_meta SET v = {} WHERE k = {}",
            literal(&row[1]),
            literal(&row[0])
        ));
    }
    sql
}

async fn restore(server: &TestServer, sql: &[String]) {
    let stmts: Vec<&str> = sql.iter().map(String::as_str).collect();
    hrana::execute(server.url(), server.token(), &stmts)
        .await
        .unwrap();
}

/// Live titles and how often each occurs.
async fn titles(db: &Database) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for t in db.list_active_todos().await.unwrap() {
        *out.entry(t.title).or_insert(0) += 1;
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Backup,
    PushA,
    PullB,
}

#[tokio::test]
async fn a_restored_server_loses_nothing_in_every_order() {
    use Step::*;
    let orders = [
        [Backup, PushA, PullB],
        [Backup, PullB, PushA],
        [PushA, Backup, PullB],
        [PushA, PullB, Backup],
        [PullB, Backup, PushA],
        [PullB, PushA, Backup],
    ];
    for order in orders {
        let server = TestServer::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let a = replica(dir.path(), "a", &server).await;
        let b = replica(dir.path(), "b", &server).await;
        let mut want = Vec::new();
        for i in 0..3 {
            let title = format!("shared {i}");
            a.add_todo(&title).await.unwrap();
            want.push(title);
        }
        a.sync().await.unwrap();
        b.sync().await.unwrap();

        let mut saved = None;
        for step in order {
            match step {
                Backup => saved = Some(backup(&server).await),
                PushA => {
                    for i in 0..2 {
                        let title = format!("from a {i}");
                        a.add_todo(&title).await.unwrap();
                        want.push(title);
                    }
                    a.sync().await.unwrap();
                }
                PullB => {
                    b.sync().await.unwrap();
                }
            }
        }
        restore(&server, &saved.unwrap()).await;
        // B pushes more rows than A lost, so the counter alone does not
        // fall below A's cursor.
        for i in 0..3 {
            let title = format!("from b {i}");
            b.add_todo(&title).await.unwrap();
            want.push(title);
        }
        b.sync().await.unwrap();

        for db in [&a, &b, &a, &b] {
            db.sync().await.unwrap();
        }
        let c = replica(dir.path(), "c", &server).await;
        c.sync().await.unwrap();
        let want: BTreeMap<String, usize> = want.into_iter().map(|t| (t, 1)).collect();
        for (db, who) in [(&a, "a"), (&b, "b"), (&c, "fresh c")] {
            assert_eq!(titles(db).await, want, "{who}, order {order:?}");
            assert_eq!(db.status().await.unwrap().pending_changes, 0, "{who}");
        }
        let dump = a.dump("todos").await.unwrap();
        assert_eq!(b.dump("todos").await.unwrap(), dump, "order {order:?}");
        assert_eq!(c.dump("todos").await.unwrap(), dump, "order {order:?}");
        let rows = hrana::execute(
            server.url(),
            server.token(),
            &["SELECT count(*), count(DISTINCT title) FROM todos"],
        )
        .await
        .unwrap();
        let n = |i: usize| rows[0]["rows"][0][i]["value"].as_str().unwrap().to_owned();
        assert_eq!(
            (n(0), n(1)),
            (want.len().to_string(), want.len().to_string()),
            "server, order {order:?}"
        );
    }
}

#[derive(Debug, Clone, Copy)]
enum Interrupted {
    Backup,
    PushA,
    /// B adds rows and syncs: its push lands, then the link is cut before
    /// its pull completes.
    PushBPullCut,
}

#[tokio::test]
async fn a_restore_after_an_interrupted_pull_loses_nothing_in_every_order() {
    use erth_tests::FaultProxy;
    use Interrupted::*;
    let orders = [
        [Backup, PushA, PushBPullCut],
        [Backup, PushBPullCut, PushA],
        [PushA, Backup, PushBPullCut],
        [PushA, PushBPullCut, Backup],
        [PushBPullCut, Backup, PushA],
        [PushBPullCut, PushA, Backup],
    ];
    for order in orders {
        let server = TestServer::start().await.unwrap();
        let proxy = FaultProxy::start(server.url(), 7).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let a = replica(dir.path(), "a", &server).await;
        let b = Database::open_native(
            dir.path().join("b.db"),
            Config {
                url: Some(proxy.url().to_owned()),
                auth_token: server.token().map(str::to_owned),
                request_timeout_ms: 500,
                ..Config::default()
            },
        )
        .await
        .unwrap();
        // The ledger: every title any replica wrote.
        let mut want = Vec::new();
        for i in 0..3 {
            let title = format!("shared {i}");
            a.add_todo(&title).await.unwrap();
            want.push(title);
        }
        a.sync().await.unwrap();
        b.sync().await.unwrap();
        let mut saved = None;
        for (k, step) in order.into_iter().enumerate() {
            match step {
                Backup => saved = Some(backup(&server).await),
                PushA => {
                    for i in 0..4 {
                        let title = format!("from a {k} {i}");
                        a.add_todo(&title).await.unwrap();
                        want.push(title);
                    }
                    a.sync().await.unwrap();
                }
                PushBPullCut => {
                    for i in 0..2 {
                        let title = format!("from b {k} {i}");
                        b.add_todo(&title).await.unwrap();
                        want.push(title);
                    }
                    // Behind the server (A pushed), B's pull has pages to ask.
                    a.add_todo("a makes b behind").await.unwrap();
                    want.push("a makes b behind".into());
                    a.sync().await.unwrap();
                    // The restore check and the push go through, then nothing.
                    proxy.cut_after(Some(2));
                    assert!(
                        b.sync().await.is_err(),
                        "order {order:?}: the pull was not cut"
                    );
                    proxy.cut_after(None);
                    assert_eq!(
                        b.status().await.unwrap().pending_changes,
                        0,
                        "order {order:?}: B's push did not land before the cut"
                    );
                }
            }
        }
        restore(&server, &saved.unwrap()).await;
        for db in [&a, &b, &a, &b] {
            db.sync().await.unwrap();
        }
        let c = replica(dir.path(), "c", &server).await;
        c.sync().await.unwrap();
        let want: BTreeMap<String, usize> = want.into_iter().map(|t| (t, 1)).collect();
        for (db, who) in [(&a, "a"), (&b, "b"), (&c, "fresh c")] {
            assert_eq!(titles(db).await, want, "{who}, order {order:?}");
            assert_eq!(db.status().await.unwrap().pending_changes, 0, "{who}");
        }
    }
}
