//! Deleted means gone (merge rule 5), against a real Hrana server
//! (`tursodb --sync-server` started by the harness, or
//! `ERTH_TEST_HRANA_URL`): a delete clears the row's user columns on the
//! deleting replica, on the server and on every replica that merges it,
//! also when another device edited the row concurrently; tombstones that
//! earlier releases wrote with their content are cleared by the next sync;
//! every column type (TEXT, INTEGER, REAL, BLOB, nullable and NOT NULL) is
//! cleared in the engine's table at the delete itself, before any sync.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use erth_core::hlc::{NodeId, Timestamp};
use erth_core::store::sqlite::SqliteStore;
use erth_core::store::Store;
use erth_core::{Config, Database, SqlValue, Statement};
use erth_tests::hrana;
use erth_tests::server::TestServer;
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

/// One row of the server's `todos`: `(title, is_completed, is_deleted)`.
async fn on_server(server: &TestServer, id: &str) -> (String, String, String) {
    let sql = format!("SELECT title, is_completed, is_deleted FROM todos WHERE id = '{id}'");
    let res = hrana::execute(server.url(), server.token(), &[sql.as_str()])
        .await
        .unwrap();
    let cell = |i: usize| {
        let v = &res[0]["rows"][0][i]["value"];
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    };
    (cell(0), cell(1), cell(2))
}

/// How many server rows hold `needle` in their title.
async fn server_titles_like(server: &TestServer, needle: &str) -> String {
    let sql = format!("SELECT count(*) FROM todos WHERE title LIKE '%{needle}%'");
    let res = hrana::execute(server.url(), server.token(), &[sql.as_str()])
        .await
        .unwrap();
    let v = &res[0]["rows"][0][0]["value"];
    v.as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| v.to_string())
}

fn assert_cleared_tombstone(row: &erth_core::row::SyncRow, who: &str) {
    assert!(row.is_deleted, "{who}: not deleted");
    assert_eq!(
        row.values,
        vec![SqlValue::from(""), SqlValue::Integer(0)],
        "{who}: the tombstone keeps user data"
    );
}

#[tokio::test]
async fn a_delete_clears_the_row_everywhere_even_with_a_concurrent_edit() {
    // Order 0: A (deleting) syncs first; order 1: B (editing) first. The
    // delete goes through the todo API once and through the SQL view once.
    for order in [[0usize, 1, 0, 1], [1, 0, 1, 0]] {
        let server = TestServer::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let a = replica(dir.path(), "a", &server).await;
        let b = replica(dir.path(), "b", &server).await;
        let t = a.add_todo("secret plan").await.unwrap();
        a.sync().await.unwrap();
        b.sync().await.unwrap();

        if order[0] == 0 {
            assert!(a.delete_todo(&t.id).await.unwrap());
        } else {
            let out = a
                .execute("DELETE FROM todos WHERE id = ?", &[t.id.as_str().into()])
                .await
                .unwrap();
            assert_eq!(out.rows_affected, 1);
        }
        // Cleared at once on the deleting replica, clocks kept.
        let local = a.get_row("todos", &t.id).await.unwrap().unwrap();
        assert_cleared_tombstone(&local, "deleting replica");
        let before = b.get_row("todos", &t.id).await.unwrap().unwrap();
        assert_eq!(local.clocks[..2], before.clocks[..2]);

        // Concurrently on B: a newer rename and completion.
        b.rename_todo(&t.id, "secret plan v2").await.unwrap();
        b.set_todo_completed(&t.id, true).await.unwrap();
        let edited = b.get_row("todos", &t.id).await.unwrap().unwrap();

        let dbs = [&a, &b];
        for i in order {
            dbs[i].sync().await.unwrap();
        }
        let c = replica(dir.path(), "c", &server).await;
        c.sync().await.unwrap();
        let dump = a.dump("todos").await.unwrap();
        for (db, who) in [(&a, "a"), (&b, "b"), (&c, "fresh c")] {
            let row = db.get_row("todos", &t.id).await.unwrap().unwrap();
            assert_cleared_tombstone(&row, who);
            // The edit's clocks win, its values do not survive.
            assert_eq!(row.clocks[..2], edited.clocks[..2], "{who}");
            assert_eq!(db.dump("todos").await.unwrap(), dump, "{who} differs");
            assert_eq!(db.status().await.unwrap().pending_changes, 0, "{who}");
        }
        assert_eq!(
            on_server(&server, &t.id).await,
            (String::new(), "0".into(), "1".into()),
            "order {order:?}"
        );
        assert_eq!(server_titles_like(&server, "secret").await, "0");
    }
}

/// A tombstone as a release before rule 5 wrote it: deleted, content kept.
fn old_tombstone(title: &str) -> (String, String) {
    let id = erth_core::ids::new_id();
    let clk = Timestamp {
        hlc: 1_700_000_000_000 << 16,
        node: NodeId(0x01d),
    };
    (
        id,
        format!("'{title}', 1, 1, 1700000000000, 1700000000000, '{clk}', '{clk}', '{clk}'"),
    )
}

async fn plant_on_server(server: &TestServer, id: &str, cells: &str) {
    let insert = format!(
        "INSERT INTO todos (id, title, is_completed, is_deleted, created_at, updated_at, _clk_title, _clk_is_completed, _clk_is_deleted, _seq, _dirty) \
         VALUES ('{id}', {cells}, (SELECT v FROM _erth_meta WHERE k = 'seq') + 1, 0)"
    );
    hrana::execute(
        server.url(),
        server.token(),
        &[
            insert.as_str(),
            "UPDATE _erth_meta SET v = v + 1 WHERE k = 'seq'",
        ],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn tombstones_written_by_earlier_releases_are_cleared_by_the_next_sync() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = replica(dir.path(), "a", &server).await;
    a.sync().await.unwrap(); // bootstrap

    // 1. An old release pushed a tombstone with its title; A pulls it now:
    //    the merge clears it locally and the same sync clears the server.
    let (id1, cells1) = old_tombstone("old secret one");
    plant_on_server(&server, &id1, &cells1).await;
    a.sync().await.unwrap();
    assert_cleared_tombstone(&a.get_row("todos", &id1).await.unwrap().unwrap(), "a");
    assert_eq!(on_server(&server, &id1).await.0, "");

    // 2. A replica file that an old release left holding such a tombstone
    //    (pulled before the upgrade): the next open clears it, the next
    //    sync clears the server.
    let (id2, cells2) = old_tombstone("old secret two");
    plant_on_server(&server, &id2, &cells2).await;
    let sql = format!("SELECT _seq FROM todos WHERE id = '{id2}'");
    let res = hrana::execute(server.url(), server.token(), &[sql.as_str()])
        .await
        .unwrap();
    let seq = res[0]["rows"][0][0]["value"].as_str().unwrap().to_owned();
    drop(a);
    let path = dir.path().join("a.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        let insert = format!(
            "INSERT INTO _erth_rows_todos (id, title, is_completed, is_deleted, created_at, updated_at, _clk_title, _clk_is_completed, _clk_is_deleted, _seq, _dirty) \
             VALUES ('{id2}', {cells2}, {seq}, 0)"
        );
        let cursor = format!("UPDATE _erth_state SET v = '{seq}' WHERE k = 'cursor:todos'");
        store
            .write(&[Statement::plain(insert), Statement::plain(cursor)])
            .await
            .unwrap();
    }
    let a = replica(dir.path(), "a", &server).await;
    assert_cleared_tombstone(
        &a.get_row("todos", &id2).await.unwrap().unwrap(),
        "reopened a",
    );
    assert_eq!(a.status().await.unwrap().pending_changes, 1);
    assert_eq!(on_server(&server, &id2).await.0, "old secret two");
    a.sync().await.unwrap();
    assert_eq!(
        on_server(&server, &id2).await,
        (String::new(), "0".into(), "1".into())
    );
    assert_eq!(server_titles_like(&server, "old secret").await, "0");

    // A fresh replica gets both tombstones cleared, and nothing is pending.
    let b = replica(dir.path(), "b", &server).await;
    b.sync().await.unwrap();
    for id in [&id1, &id2] {
        assert_cleared_tombstone(&b.get_row("todos", id).await.unwrap().unwrap(), "b");
    }
    assert_eq!(
        b.dump("todos").await.unwrap(),
        a.dump("todos").await.unwrap()
    );
    assert_eq!(a.status().await.unwrap().pending_changes, 0);
}

/// A table with a column of every type, nullable and NOT NULL; the NOT NULL
/// ones have defaults that are not the type's zero, so clearing to the
/// default would show.
const EVERY_TYPE: &str = r#"{"tables": {"things": {"columns": {
    "t_null": {"type": "text"},
    "t_nn": {"type": "text", "notNull": true, "default": "dflt"},
    "i_null": {"type": "integer"},
    "i_nn": {"type": "integer", "notNull": true, "default": 7},
    "r_null": {"type": "real"},
    "r_nn": {"type": "real", "notNull": true, "default": 1.5},
    "b_null": {"type": "blob"},
    "b_nn": {"type": "blob", "notNull": true, "default": "ff"}}}}}"#;

/// `(typeof, value)` of every user column of one row, then `is_deleted`
/// and whether it is pending, read with plain SQL from the engine's own
/// table in the replica file (another connection, not the engine's).
async fn raw_engine_row(path: &Path, id: &str) -> Vec<SqlValue> {
    let store = SqliteStore::open(path).unwrap();
    let cols = [
        "t_null", "t_nn", "i_null", "i_nn", "r_null", "r_nn", "b_null", "b_nn",
    ];
    let cells: Vec<String> = cols
        .iter()
        .map(|c| format!("typeof(\"{c}\"), \"{c}\""))
        .collect();
    let sql = format!(
        "SELECT {}, \"is_deleted\", \"_dirty\" > 0 FROM \"_erth_rows_things\" WHERE \"id\" = ?",
        cells.join(", ")
    );
    let rows = store
        .query(&Statement::new(sql, vec![id.into()]))
        .await
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 1, "row {id} is not in the engine table");
    rows.into_iter().next().unwrap()
}

/// What a cleared tombstone of `things` holds in its engine row: NULL where
/// nullable, else the type's zero of the type's storage class (`''`, `0`,
/// `0.0`, `x''`); deleted and pending.
fn cleared_every_type() -> Vec<SqlValue> {
    let t = |s: &str| SqlValue::from(s);
    vec![
        t("null"),
        SqlValue::Null,
        t("text"),
        t(""),
        t("null"),
        SqlValue::Null,
        t("integer"),
        SqlValue::Integer(0),
        t("null"),
        SqlValue::Null,
        t("real"),
        SqlValue::Real(0.0),
        t("null"),
        SqlValue::Null,
        t("blob"),
        SqlValue::Blob(Vec::new()),
        SqlValue::Integer(1),
        SqlValue::Integer(1),
    ]
}

/// A delete clears every column type at once, in the engine's table, before
/// any sync: through the row API and through the view's `DELETE`. Then the
/// server and a fresh replica hold the same cleared values.
#[tokio::test]
async fn a_delete_clears_every_column_type_in_the_engine_table_before_any_sync() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let config = |server: &TestServer| {
        Config {
            url: Some(server.url().to_owned()),
            auth_token: server.token().map(str::to_owned),
            ..Config::default()
        }
        .with_schema_json(EVERY_TYPE)
        .unwrap()
    };
    let a = Database::open_native(&path, config(&server)).await.unwrap();
    let values = [
        SqlValue::from("secret"),
        SqlValue::from("secret too"),
        SqlValue::Integer(42),
        SqlValue::Integer(-42),
        SqlValue::Real(2.5),
        SqlValue::Real(-2.5),
        SqlValue::Blob(vec![1, 2, 3]),
        SqlValue::Blob(vec![4, 5, 6]),
    ];
    let insert = "INSERT INTO things (t_null, t_nn, i_null, i_nn, r_null, r_nn, b_null, b_nn) \
                  VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
    let mut ids = Vec::new();
    for _ in 0..2 {
        a.execute(insert, &values).await.unwrap();
    }
    for r in a
        .query("SELECT id FROM things ORDER BY id", &[])
        .await
        .unwrap()
        .rows
    {
        ids.push(r[0].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 2);
    // Before the delete the engine row holds every value.
    let before = raw_engine_row(&path, &ids[0]).await;
    let held: Vec<SqlValue> = before[..16].iter().skip(1).step_by(2).cloned().collect();
    assert_eq!(held, values);

    assert!(a.delete("things", &ids[0]).await.unwrap(), "row API");
    let out = a
        .execute("DELETE FROM things WHERE id = ?", &[ids[1].as_str().into()])
        .await
        .unwrap();
    assert_eq!(out.rows_affected, 1, "SQL DELETE");
    for (id, how) in ids.iter().zip(["the row API", "SQL DELETE"]) {
        assert_eq!(
            raw_engine_row(&path, id).await,
            cleared_every_type(),
            "a delete through {how} left data in the engine table"
        );
    }
    assert_eq!(
        a.status().await.unwrap().last_sync_at_ms,
        None,
        "no sync yet"
    );

    // The server and a fresh replica get exactly the cleared tombstones.
    a.sync().await.unwrap();
    let fresh = dir.path().join("b.db");
    let b = Database::open_native(&fresh, config(&server))
        .await
        .unwrap();
    b.sync().await.unwrap();
    assert_eq!(
        a.dump("things").await.unwrap(),
        b.dump("things").await.unwrap()
    );
    for id in &ids {
        let mut want = cleared_every_type();
        want[17] = SqlValue::Integer(0); // pulled, not pending
        assert_eq!(raw_engine_row(&fresh, id).await, want, "fresh replica");
    }
    let sql = "SELECT typeof(t_null), typeof(t_nn), t_nn, typeof(i_null), typeof(i_nn), i_nn, \
               typeof(r_null), typeof(r_nn), r_nn, typeof(b_null), typeof(b_nn), length(b_nn) \
               FROM things ORDER BY id";
    let res = hrana::execute(server.url(), server.token(), &[sql])
        .await
        .unwrap();
    let cells: Vec<Vec<String>> = res[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| match &v["value"] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    let want: Vec<String> = [
        "null", "text", "", "null", "integer", "0", "null", "real", "0.0", "null", "blob", "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(cells, vec![want.clone(), want], "on the server");
}
