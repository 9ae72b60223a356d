//! Deleted means gone (merge rule 5), against a real Hrana server
//! (`tursodb --sync-server` started by the harness, or
//! `ERTH_TEST_HRANA_URL`): a delete clears the row's user columns on the
//! deleting replica, on the server and on every replica that merges it,
//! also when another device edited the row concurrently; tombstones that
//! earlier releases wrote with their content are cleared by the next sync.

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
