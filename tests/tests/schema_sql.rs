//! The app's own tables and plain SQL against a real Hrana server
//! (`tursodb --sync-server` started by the harness, or
//! `ERTH_TEST_HRANA_URL`): every SQLite type round-trips byte for byte,
//! offline plain-SQL writes converge in both sync orders with deletes that
//! stick, replicas on different schema versions keep each other's columns
//! (and an upgraded replica backfills what it skipped), a replica file of
//! the previous release syncs, and live queries hear pulled pages.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use erth_core::{Config, Database, Rows, SqlValue};
use erth_tests::hrana;
use erth_tests::server::TestServer;
use std::path::Path;
use std::sync::{Arc, Mutex};

const V1: &str = r#"{"tables": {"notes": {"columns": {
    "title": {"type": "text", "notNull": true, "default": ""},
    "n": {"type": "integer"}, "score": {"type": "real"}, "data": {"type": "blob"}}}}}"#;

const V2: &str = r#"{"tables": {
  "notes": {"columns": {
    "title": {"type": "text", "notNull": true, "default": ""},
    "n": {"type": "integer"}, "score": {"type": "real"}, "data": {"type": "blob"},
    "color": {"type": "text"}}},
  "lists": {"columns": {"name": {"type": "text", "notNull": true}}}}}"#;

async fn replica(dir: &Path, name: &str, server: &TestServer, schema: &str) -> Database {
    let config = Config {
        url: Some(server.url().to_owned()),
        auth_token: server.token().map(str::to_owned),
        ..Config::default()
    }
    .with_schema_json(schema)
    .unwrap();
    Database::open_native(dir.join(format!("{name}.db")), config)
        .await
        .unwrap()
}

fn text(v: &str) -> SqlValue {
    SqlValue::Text(v.to_owned())
}

async fn rows(db: &Database, sql: &str) -> Vec<Vec<SqlValue>> {
    db.query(sql, &[]).await.unwrap().rows
}

async fn assert_same(a: &Database, b: &Database, table: &str) {
    assert_eq!(
        a.dump(table).await.unwrap(),
        b.dump(table).await.unwrap(),
        "{table}: replicas differ"
    );
    let live = format!("SELECT * FROM {table} ORDER BY id");
    assert_eq!(rows(a, &live).await, rows(b, &live).await);
}

#[tokio::test]
async fn every_type_round_trips_byte_for_byte() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = replica(dir.path(), "a", &server, V1).await;
    let b = replica(dir.path(), "b", &server, V1).await;
    let blob: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let hostile = "'; DROP TABLE notes; -- \"q\" \u{0} nul, \u{1F980} non-BMP, \\ backslash";
    let cases: Vec<[SqlValue; 4]> = vec![
        [
            text("2^53+1"),
            SqlValue::Integer((1 << 53) + 1),
            SqlValue::Real(0.5),
            SqlValue::Null,
        ],
        [
            text("min"),
            SqlValue::Integer(i64::MIN),
            SqlValue::Real(-1.0e-300),
            SqlValue::Blob(vec![]),
        ],
        [
            text("max"),
            SqlValue::Integer(i64::MAX),
            SqlValue::Real(std::f64::consts::PI),
            SqlValue::Blob(vec![0, 255, 0]),
        ],
        [
            text(""),
            SqlValue::Null,
            SqlValue::Null,
            SqlValue::Blob(blob),
        ],
        [
            text(hostile),
            SqlValue::Integer(0),
            SqlValue::Real(1e300),
            SqlValue::Null,
        ],
    ];
    for c in &cases {
        a.execute(
            "INSERT INTO notes (title, n, score, data) VALUES (?, ?, ?, ?)",
            c,
        )
        .await
        .unwrap();
    }
    a.sync().await.unwrap();
    assert_eq!(b.sync().await.unwrap().pulled, cases.len() as u64);
    assert_same(&a, &b, "notes").await;
    let got = rows(
        &b,
        "SELECT title, n, score, data FROM notes ORDER BY created_at, id",
    )
    .await;
    let want: Vec<Vec<SqlValue>> = cases.iter().map(|c| c.to_vec()).collect();
    assert_eq!(got, want);
    // Empty string and NULL stay apart.
    assert_eq!(
        rows(&b, "SELECT count(*) FROM notes WHERE n IS NULL").await,
        vec![vec![SqlValue::Integer(1)]]
    );
    assert_eq!(
        rows(&b, "SELECT count(*) FROM notes WHERE title = ''").await,
        vec![vec![SqlValue::Integer(1)]]
    );
    // And back: B edits every column of one row.
    b.execute(
        "UPDATE notes SET title = ?, n = ?, score = ?, data = ? WHERE n = ?",
        &[
            text("edited on b"),
            SqlValue::Integer(i64::MIN + 1),
            SqlValue::Real(2.25),
            SqlValue::Blob(vec![7; 3]),
            SqlValue::Integer(i64::MAX),
        ],
    )
    .await
    .unwrap();
    b.sync().await.unwrap();
    a.sync().await.unwrap();
    assert_same(&a, &b, "notes").await;
    // The server holds the same bytes.
    let on_server = hrana::execute(
        server.url(),
        server.token(),
        &["SELECT hex(data), n FROM notes WHERE title = 'edited on b'"],
    )
    .await
    .unwrap();
    assert_eq!(on_server[0]["rows"][0][0]["value"], "070707");
    assert_eq!(
        on_server[0]["rows"][0][1]["value"],
        (i64::MIN + 1).to_string()
    );
}

#[tokio::test]
async fn offline_plain_sql_writes_converge_in_both_orders() {
    for a_first in [true, false] {
        let server = TestServer::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let a = replica(dir.path(), "a", &server, V1).await;
        let b = replica(dir.path(), "b", &server, V1).await;
        for (title, n) in [("one", 1), ("two", 2), ("three", 3)] {
            a.execute(
                "INSERT INTO notes (title, n) VALUES (?, ?)",
                &[text(title), SqlValue::Integer(n)],
            )
            .await
            .unwrap();
        }
        a.sync().await.unwrap();
        b.sync().await.unwrap();

        // Offline on both: different columns of one row; delete vs update of another.
        a.execute("UPDATE notes SET title = 'one (a)' WHERE n = 1", &[])
            .await
            .unwrap();
        b.execute("UPDATE notes SET score = 1.5 WHERE n = 1", &[])
            .await
            .unwrap();
        a.execute("DELETE FROM notes WHERE n = 2", &[])
            .await
            .unwrap();
        b.execute(
            "UPDATE notes SET title = 'two (b)', n = 20 WHERE n = 2",
            &[],
        )
        .await
        .unwrap();
        a.execute("INSERT INTO notes (title) VALUES ('from a')", &[])
            .await
            .unwrap();
        b.execute("INSERT INTO notes (title) VALUES ('from b')", &[])
            .await
            .unwrap();

        let (first, second) = if a_first { (&a, &b) } else { (&b, &a) };
        first.sync().await.unwrap();
        second.sync().await.unwrap();
        first.sync().await.unwrap();
        assert_same(&a, &b, "notes").await;
        for db in [&a, &b] {
            assert_eq!(db.status().await.unwrap().pending_changes, 0);
            assert_eq!(
                rows(db, "SELECT title, n, score FROM notes ORDER BY title").await,
                vec![
                    vec![text("from a"), SqlValue::Null, SqlValue::Null],
                    vec![text("from b"), SqlValue::Null, SqlValue::Null],
                    vec![text("one (a)"), SqlValue::Integer(1), SqlValue::Real(1.5)],
                    vec![text("three"), SqlValue::Integer(3), SqlValue::Null],
                ],
                "a_first = {a_first}"
            );
            // The deleted row is a tombstone, not a live row.
            assert_eq!(
                rows(
                    db,
                    "SELECT count(*) FROM _erth_rows_notes WHERE is_deleted = 1"
                )
                .await,
                vec![vec![SqlValue::Integer(1)]]
            );
        }
    }
}

#[tokio::test]
async fn replicas_on_two_schema_versions_keep_each_others_columns() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = replica(dir.path(), "a", &server, V1).await;
    let b = replica(dir.path(), "b", &server, V1).await;
    for title in ["red one", "blue one", "plain one"] {
        a.execute("INSERT INTO notes (title) VALUES (?)", &[text(title)])
            .await
            .unwrap();
    }
    a.sync().await.unwrap();
    b.sync().await.unwrap();

    // B upgrades: a new column on notes and a new table; it colors two rows.
    drop(b);
    let b = replica(dir.path(), "b", &server, V2).await;
    b.execute(
        "UPDATE notes SET color = 'red' WHERE title = 'red one'",
        &[],
    )
    .await
    .unwrap();
    b.execute(
        "UPDATE notes SET color = 'blue' WHERE title = 'blue one'",
        &[],
    )
    .await
    .unwrap();
    b.execute("INSERT INTO lists (name) VALUES ('groceries')", &[])
        .await
        .unwrap();
    b.sync().await.unwrap();

    // A, still on v1, edits the same rows and syncs: it must not erase B's colors.
    a.execute("UPDATE notes SET title = title || ' (edited on a)'", &[])
        .await
        .unwrap();
    a.sync().await.unwrap();
    assert_eq!(
        a.status().await.unwrap().unknown_server_columns,
        ["notes.color"]
    );
    let server_rows = hrana::execute(
        server.url(),
        server.token(),
        &["SELECT title, color FROM notes ORDER BY title"],
    )
    .await
    .unwrap();
    let got: Vec<(String, Option<String>)> = server_rows[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0]["value"].as_str().unwrap().to_owned(),
                r[1]["value"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "blue one (edited on a)".to_string(),
                Some("blue".to_string())
            ),
            ("plain one (edited on a)".to_string(), None),
            ("red one (edited on a)".to_string(), Some("red".to_string())),
        ]
    );
    b.sync().await.unwrap();
    assert_eq!(
        rows(
            &b,
            "SELECT title, color FROM notes WHERE color IS NOT NULL ORDER BY color"
        )
        .await,
        vec![
            vec![text("blue one (edited on a)"), text("blue")],
            vec![text("red one (edited on a)"), text("red")],
        ]
    );

    // A upgrades: it sees the colors of rows it pulled before, without a reset.
    drop(a);
    let a = replica(dir.path(), "a", &server, V2).await;
    assert_eq!(
        rows(&a, "SELECT count(*) FROM notes WHERE color IS NOT NULL").await,
        vec![vec![SqlValue::Integer(0)]],
        "before the backfill, A has no colors"
    );
    let report = a.sync().await.unwrap();
    // The backfill re-pulls only the two colored rows; the normal pull adds
    // the list row (A's own title edits were echoes it skipped).
    assert!(
        report.pulled <= 4,
        "pulled {} rows: more than the backfill needs",
        report.pulled
    );
    assert_same(&a, &b, "notes").await;
    assert_same(&a, &b, "lists").await;
    assert!(a.status().await.unwrap().unknown_server_columns.is_empty());
    assert_eq!(
        rows(&a, "SELECT v FROM _erth_state WHERE k = 'backfill:notes'").await,
        Vec::<Vec<SqlValue>>::new(),
        "the backfill finished"
    );
}

#[tokio::test]
async fn a_replica_file_of_the_previous_release_syncs() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/replica-v1.db");
    std::fs::copy(fixture, dir.path().join("old.db")).unwrap();
    let config = Config {
        url: Some(server.url().to_owned()),
        auth_token: server.token().map(str::to_owned),
        ..Config::default()
    };
    let old = Database::open_native(dir.path().join("old.db"), config.clone())
        .await
        .unwrap();
    // Opened and converted in place: rows, the tombstone, pending changes
    // and the cursor kept; `todos` is now the view.
    assert_eq!(old.status().await.unwrap().pending_changes, 4);
    assert_eq!(old.dump("todos").await.unwrap().len(), 4);
    assert_eq!(
        rows(&old, "SELECT type FROM sqlite_schema WHERE name = 'todos'").await,
        vec![vec![text("view")]]
    );
    assert_eq!(
        rows(&old, "SELECT count(*) FROM todos WHERE is_completed = 1").await,
        vec![vec![SqlValue::Integer(1)]]
    );
    assert_eq!(
        rows(&old, "SELECT v FROM _erth_state WHERE k = 'cursor:todos'").await,
        vec![vec![text("3")]]
    );
    assert_eq!(
        rows(&old, "PRAGMA user_version").await,
        vec![vec![SqlValue::Integer(3)]]
    );
    // A server it never saw: it pushes everything it has.
    old.sync().await.unwrap();
    assert_eq!(old.status().await.unwrap().pending_changes, 0);
    let fresh = Database::open_native(dir.path().join("fresh.db"), config)
        .await
        .unwrap();
    fresh.sync().await.unwrap();
    let titles: Vec<(String, bool)> = fresh
        .list_active_todos()
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.title, t.is_completed))
        .collect();
    assert_eq!(
        titles,
        [
            ("added offline".to_string(), false),
            ("synced, untouched".to_string(), true),
            ("renamed offline".to_string(), false),
        ]
    );
    assert_eq!(
        old.dump("todos").await.unwrap(),
        fresh.dump("todos").await.unwrap()
    );
}

#[tokio::test]
async fn live_queries_hear_pulled_pages_once() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = replica(dir.path(), "a", &server, V1).await;
    let b = replica(dir.path(), "b", &server, V1).await;
    let seen: Arc<Mutex<Vec<Rows>>> = Arc::default();
    let s = seen.clone();
    let _live = a
        .watch(
            "SELECT title FROM notes ORDER BY title",
            &[],
            Arc::new(move |r: &Rows| s.lock().unwrap().push(r.clone())),
        )
        .unwrap();
    b.execute("INSERT INTO notes (title) VALUES ('from b')", &[])
        .await
        .unwrap();
    b.sync().await.unwrap();
    a.sync().await.unwrap();
    a.sync().await.unwrap(); // nothing new: no call
    b.execute("UPDATE notes SET n = 5", &[]).await.unwrap(); // a column the query does not show
    b.sync().await.unwrap();
    a.sync().await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].rows, vec![vec![text("from b")]]);
}
