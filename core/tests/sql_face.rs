//! The app's face of a replica without a network, on real SQLite files:
//! plain SQL through the views (clocks, tombstones, pending marks, value
//! checks, refused statements that change nothing), live queries, and
//! opening files with a changed schema (additive changes applied,
//! everything else refused with the file left byte-identical). A file
//! written by the release before views existed: `tests/tests/schema_sql.rs`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use erth_core::{Config, Database, Error, Rows, SqlValue, Statement};
use std::path::Path;
use std::sync::{Arc, Mutex};

const NOTES_V1: &str = r#"{"tables": {"notes": {"columns": {
    "title": {"type": "text", "notNull": true, "default": ""},
    "n": {"type": "integer"}, "score": {"type": "real"}, "data": {"type": "blob"}},
    "indexes": [["title"]]},
  "tags": {"columns": {"name": {"type": "text", "notNull": true}}}}}"#;

async fn open(path: &Path, schema: &str) -> Result<Database, Error> {
    Database::open_native(path, Config::default().with_schema_json(schema)?).await
}

fn text(v: &str) -> SqlValue {
    SqlValue::Text(v.to_owned())
}

async fn one(db: &Database, sql: &str) -> Vec<SqlValue> {
    let rows = db.query(sql, &[]).await.unwrap();
    assert_eq!(rows.rows.len(), 1, "{sql}: {rows:?}");
    rows.rows.into_iter().next().unwrap()
}

/// Everything in the file, engine tables included, for "nothing changed" checks.
async fn snapshot(db: &Database) -> Vec<Rows> {
    let mut out = vec![db
        .query(
            "SELECT type, name, sql FROM sqlite_schema ORDER BY name",
            &[],
        )
        .await
        .unwrap()];
    for t in db.tables() {
        out.push(
            db.query(
                &format!("SELECT * FROM \"_erth_rows_{}\" ORDER BY id", t.name),
                &[],
            )
            .await
            .unwrap(),
        );
    }
    out.push(
        db.query("SELECT * FROM _erth_state WHERE k != 'hlc'", &[])
            .await
            .unwrap(),
    );
    out
}

#[tokio::test]
async fn plain_sql_writes_are_clocked_local_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("a.db"), NOTES_V1).await.unwrap();
    let big = vec![0xabu8; 1 << 20];
    let hostile = "it's \"quoted\"; DROP TABLE notes; --\u{0}\u{1F600}";
    let out = db
        .execute(
            "INSERT INTO notes (title, n, score, data) VALUES (?, ?, ?, ?)",
            &[
                text(hostile),
                SqlValue::Integer(i64::MIN),
                SqlValue::Real(0.1),
                SqlValue::Blob(big.clone()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.rows_affected, 1);
    db.execute(
        "INSERT INTO notes (n) VALUES (?)",
        &[SqlValue::Integer((1 << 53) + 1)],
    )
    .await
    .unwrap();
    let id = erth_core::ids::new_id();
    db.execute(
        "INSERT INTO notes (id, title, n) VALUES (?, 'mine', ?)",
        &[text(&id), SqlValue::Integer(i64::MAX)],
    )
    .await
    .unwrap();

    // The view shows id, user columns and timestamps, nothing of the engine.
    let all = db
        .query("SELECT * FROM notes ORDER BY n", &[])
        .await
        .unwrap();
    assert_eq!(
        all.columns,
        [
            "id",
            "title",
            "n",
            "score",
            "data",
            "created_at",
            "updated_at"
        ]
    );
    assert_eq!(all.rows.len(), 3);
    assert_eq!(all.rows[0][1], text(hostile));
    assert_eq!(all.rows[0][2], SqlValue::Integer(i64::MIN));
    assert_eq!(all.rows[0][3], SqlValue::Real(0.1));
    assert_eq!(all.rows[0][4], SqlValue::Blob(big));
    assert_eq!(all.rows[1][1], text(""), "default of a NOT NULL column");
    assert_eq!(all.rows[1][2], SqlValue::Integer((1 << 53) + 1));
    assert_eq!(all.rows[1][3], SqlValue::Null, "nullable without default");
    assert_eq!(all.rows[2][0], text(&id), "an explicit UUIDv7 id is kept");
    for row in &all.rows {
        let id = row[0].as_str().unwrap();
        erth_core::ids::parse_id(id).unwrap();
    }
    assert_eq!(db.status().await.unwrap().pending_changes, 3);

    // UPDATE of one column: only that column's clock moves.
    let before = db.get_row("notes", &id).await.unwrap().unwrap();
    let out = db
        .execute("UPDATE notes SET n = n - 1 WHERE id = ?", &[text(&id)])
        .await
        .unwrap();
    assert_eq!(out.rows_affected, 1);
    let after = db.get_row("notes", &id).await.unwrap().unwrap();
    assert_eq!(after.values[1], SqlValue::Integer(i64::MAX - 1));
    assert!(after.clocks[1] > before.clocks[1], "n's clock moved");
    assert_eq!(after.clocks[0], before.clocks[0], "title's clock did not");
    assert_eq!(after.clocks[2..], before.clocks[2..]);
    // An UPDATE that changes no value writes nothing.
    let same = db
        .execute("UPDATE notes SET title = title WHERE id = ?", &[text(&id)])
        .await
        .unwrap();
    assert_eq!(same.rows_affected, 0);
    assert_eq!(db.get_row("notes", &id).await.unwrap().unwrap(), after);

    // DELETE is a tombstone: gone from the view, kept (and pending) in the engine table.
    let gone = db
        .execute("DELETE FROM notes WHERE id = ?", &[text(&id)])
        .await
        .unwrap();
    assert_eq!(gone.rows_affected, 1);
    assert_eq!(
        one(&db, "SELECT count(*) FROM notes").await,
        [SqlValue::Integer(2)]
    );
    let tomb = db.get_row("notes", &id).await.unwrap().unwrap();
    assert!(tomb.is_deleted);
    assert!(tomb.clocks[4] > after.clocks[4], "the tombstone is clocked");
    assert_eq!(db.dump("notes").await.unwrap().len(), 3);
    // A deleted row cannot be updated or deleted again through the view.
    let again = db
        .execute("UPDATE notes SET n = 1 WHERE id = ?", &[text(&id)])
        .await
        .unwrap();
    assert_eq!(again.rows_affected, 0);

    // A transaction is all or nothing.
    let e = db
        .transaction(&[
            Statement::new("INSERT INTO notes (title) VALUES ('kept?')", vec![]),
            Statement::new("INSERT INTO notes (n) VALUES ('not a number')", vec![]),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Sql { message } if message.contains("column n of notes takes integer values")),
        "{e}"
    );
    assert_eq!(
        one(&db, "SELECT count(*) FROM notes").await,
        [SqlValue::Integer(2)]
    );
    let ok = db
        .transaction(&[
            Statement::new("INSERT INTO tags (name) VALUES ('a')", vec![]),
            Statement::new("INSERT INTO tags (name) VALUES ('b')", vec![]),
            Statement::new("UPDATE tags SET name = upper(name)", vec![]),
        ])
        .await
        .unwrap();
    assert_eq!(
        ok.iter().map(|r| r.rows_affected).collect::<Vec<_>>(),
        [1, 1, 2]
    );
    assert_eq!(
        db.query("SELECT name FROM tags ORDER BY name", &[])
            .await
            .unwrap()
            .rows,
        vec![vec![text("A")], vec![text("B")]]
    );
}

#[tokio::test]
async fn app_objects_named_like_the_engines_are_refused() {
    // The access rules trust statements SQLite codes for a trigger named
    // `_erth_*` (the engine's own): an app trigger with such a name on its
    // own table would write the engine's state on the app's behalf.
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("a.db"), NOTES_V1).await.unwrap();
    db.execute("CREATE TABLE drafts (x)", &[]).await.unwrap();
    db.execute("INSERT INTO notes (title) VALUES ('x')", &[])
        .await
        .unwrap();
    let before = snapshot(&db).await;
    for sql in [
        "CREATE TRIGGER _erth_x AFTER INSERT ON drafts BEGIN UPDATE _erth_state SET v = '0' WHERE k != 'hlc'; UPDATE _erth_rows_notes SET _dirty = 0; END",
        "CREATE TRIGGER \"_ERTH_Y\" AFTER INSERT ON drafts BEGIN DELETE FROM _erth_rows_notes; END",
        "CREATE TEMP TRIGGER _erth_t AFTER INSERT ON main.drafts BEGIN DELETE FROM _erth_rows_notes; END",
        "CREATE VIEW _erth_v AS SELECT erth_clock()",
        "CREATE TEMP VIEW _erth_tv AS SELECT 1",
        "CREATE INDEX _erth_i ON drafts (x)",
    ] {
        let e = db.execute(sql, &[]).await.expect_err(sql);
        assert!(matches!(e, Error::Sql { .. }), "{sql}: {e:?}");
        assert!(e.to_string().contains("Erth Sync"), "{sql}: {e}");
    }
    db.execute("INSERT INTO drafts VALUES (1)", &[])
        .await
        .unwrap();
    assert_eq!(snapshot(&db).await, before, "the engine's state changed");
    assert_eq!(db.pending_changes().await.unwrap(), 1);
    // The app's own names are fine.
    db.execute(
        "CREATE TRIGGER my_trigger AFTER INSERT ON drafts BEGIN SELECT 1; END",
        &[],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn statements_the_engine_cannot_sync_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("a.db"), NOTES_V1).await.unwrap();
    db.execute("INSERT INTO notes (title) VALUES ('x')", &[])
        .await
        .unwrap();
    let before = snapshot(&db).await;
    let cases: &[(&str, Vec<SqlValue>, &str)] = &[
        ("DROP VIEW notes", vec![], "synced by Erth Sync"),
        ("DROP TABLE _erth_rows_notes", vec![], "synced by Erth Sync"),
        (
            "ALTER TABLE _erth_rows_notes ADD COLUMN x",
            vec![],
            "synced by Erth Sync",
        ),
        (
            "CREATE TRIGGER t AFTER INSERT ON _erth_rows_notes BEGIN SELECT 1; END",
            vec![],
            "synced by Erth Sync",
        ),
        (
            "CREATE TRIGGER t INSTEAD OF INSERT ON notes BEGIN SELECT 1; END",
            vec![],
            "synced by Erth Sync",
        ),
        (
            "CREATE INDEX i ON _erth_rows_notes (n)",
            vec![],
            "synced by Erth Sync",
        ),
        ("CREATE TABLE notes (x)", vec![], "synced by Erth Sync"),
        (
            "INSERT INTO _erth_rows_notes (id, created_at, updated_at) VALUES ('x', 1, 1)",
            vec![],
            "engine's own table",
        ),
        (
            "UPDATE _erth_state SET v = '0'",
            vec![],
            "engine's own table",
        ),
        ("DELETE FROM _erth_rows_notes", vec![], "engine's own table"),
        ("ATTACH 'other.db' AS other", vec![], "ATTACH"),
        ("BEGIN", vec![], "BEGIN"),
        ("SAVEPOINT s", vec![], "BEGIN"),
        ("PRAGMA user_version = 9", vec![], "PRAGMA user_version"),
        (
            "PRAGMA writable_schema = 1",
            vec![],
            "PRAGMA writable_schema",
        ),
        ("SELECT erth_clock()", vec![], "write triggers"),
        (
            "UPDATE notes SET id = ?",
            vec![text(&erth_core::ids::new_id())],
            "set by Erth Sync",
        ),
        (
            "UPDATE notes SET created_at = 5",
            vec![],
            "set by Erth Sync",
        ),
        (
            "INSERT INTO notes (title, updated_at) VALUES ('y', 5)",
            vec![],
            "set by Erth Sync",
        ),
        (
            "INSERT INTO notes (id) VALUES ('not-a-uuid')",
            vec![],
            "bad id",
        ),
        (
            "INSERT INTO notes (id) VALUES (?)",
            vec![text("0190c0de-0000-4000-8000-000000000000")],
            "not a UUIDv7",
        ),
        (
            "INSERT INTO tags (name) VALUES (NULL)",
            vec![],
            "NOT NULL constraint failed: tags.name",
        ),
        (
            "INSERT INTO notes (title) VALUES (x'00')",
            vec![],
            "takes text values",
        ),
        ("INSERT INTO notes (score) VALUES (9e999)", vec![], "finite"),
        (
            "INSERT INTO notes (data) VALUES ('text')",
            vec![],
            "takes blob values",
        ),
        (
            "INSERT INTO notes (title) VALUES (?)",
            vec![text(&"x".repeat(5_000_001))],
            "byte limit",
        ),
        (
            "INSERT OR REPLACE INTO notes (id, title) SELECT id, 'replaced' FROM notes",
            vec![],
            "with this id exists",
        ),
        (
            "INSERT INTO notes (id) SELECT id FROM notes",
            vec![],
            "with this id exists",
        ),
        (
            "INSERT INTO notes (title) VALUES ('a') ON CONFLICT DO NOTHING",
            vec![],
            "UPSERT",
        ),
        (
            "INSERT INTO notes (title) VALUES ('r') RETURNING id",
            vec![],
            "RETURNING does not work",
        ),
        (
            "UPDATE notes SET n = 1 RETURNING n",
            vec![],
            "RETURNING does not work",
        ),
        (
            "INSERT INTO notes (score) VALUES (?)",
            vec![SqlValue::Real(f64::NAN)],
            "only finite numbers",
        ),
        ("SELEC 1", vec![], "syntax error"),
        ("SELECT * FROM nowhere", vec![], "no such table"),
        ("INSERT INTO notes (title) VALUES (?)", vec![], "parameter"),
        ("SELECT 1; SELECT 2", vec![], "one statement per call"),
    ];
    for (sql, params, says) in cases {
        let e = match db.execute(sql, params).await {
            Ok(out) => panic!("{sql}: accepted ({out:?})"),
            Err(e) => e,
        };
        match &e {
            Error::Sql { message } => assert!(message.contains(says), "{sql}: {message}"),
            other => panic!("{sql}: expected Error::Sql, got {other:?}"),
        }
        assert!(!e.to_string().contains("/*app*/"), "{e}");
    }
    assert_eq!(
        snapshot(&db).await,
        before,
        "a refused statement changed the file"
    );
    // query() is read-only, and says so naming the call the app made.
    let e = db.query("DELETE FROM notes", &[]).await.unwrap_err();
    assert!(matches!(e, Error::WriteInReadOnlyCall { .. }), "{e:?}");
    assert_eq!(e.kind(), erth_core::ErrorKind::Sql);
    assert_eq!(
        e.to_string(),
        "query() runs read-only statements; use execute() to write"
    );
    // A face names its own call (the npm package's getAll).
    assert_eq!(
        e.for_call("getAll()").to_string(),
        "getAll() runs read-only statements; use execute() to write"
    );
    assert_eq!(snapshot(&db).await, before);

    // The app's own local tables are plain SQLite, DDL included.
    db.execute("CREATE TABLE drafts (body TEXT)", &[])
        .await
        .unwrap();
    db.execute("INSERT INTO drafts VALUES ('d')", &[])
        .await
        .unwrap();
    db.execute("CREATE INDEX drafts_body ON drafts (body)", &[])
        .await
        .unwrap();
    assert_eq!(one(&db, "SELECT body FROM drafts").await, [text("d")]);
    assert_eq!(
        one(&db, "PRAGMA user_version").await,
        [SqlValue::Integer(3)]
    );
    let id = one(&db, "SELECT uuid7()").await;
    erth_core::ids::parse_id(id[0].as_str().unwrap()).unwrap();
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

#[tokio::test]
async fn live_queries_fire_once_per_change_that_matters() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("a.db"), NOTES_V1).await.unwrap();
    db.execute("CREATE TABLE local_only (x)", &[])
        .await
        .unwrap();
    let (seen, cb) = recorder();
    let live = db
        .watch(
            "SELECT title FROM notes WHERE n > ? ORDER BY title",
            &[SqlValue::Integer(10)],
            cb,
        )
        .unwrap();
    assert_eq!(live.tables(), ["notes"]);
    let count = || seen.lock().unwrap().len();
    assert_eq!(count(), 1, "the first result is delivered at once");
    assert!(seen.lock().unwrap()[0].rows.is_empty());

    db.execute("INSERT INTO notes (title, n) VALUES ('big', 50)", &[])
        .await
        .unwrap();
    assert_eq!(count(), 2);
    assert_eq!(seen.lock().unwrap()[1].rows, vec![vec![text("big")]]);
    // A change to the table that leaves the result alone: no call.
    db.execute("INSERT INTO notes (title, n) VALUES ('small', 1)", &[])
        .await
        .unwrap();
    assert_eq!(count(), 2);
    // Other tables, synced or local: no call.
    db.execute("INSERT INTO tags (name) VALUES ('t')", &[])
        .await
        .unwrap();
    db.execute("INSERT INTO local_only VALUES (1)", &[])
        .await
        .unwrap();
    assert_eq!(count(), 2);
    // The typed row API and a multi-statement transaction: one call each.
    db.insert(
        "notes",
        &[("title", text("api")), ("n", SqlValue::Integer(99))],
    )
    .await
    .unwrap();
    assert_eq!(count(), 3);
    db.transaction(&[
        Statement::new("INSERT INTO notes (title, n) VALUES ('t1', 20)", vec![]),
        Statement::new("INSERT INTO notes (title, n) VALUES ('t2', 30)", vec![]),
    ])
    .await
    .unwrap();
    assert_eq!(count(), 4);
    assert_eq!(seen.lock().unwrap()[3].rows.len(), 4);
    // A delete through the view.
    db.execute("DELETE FROM notes WHERE title = 'big'", &[])
        .await
        .unwrap();
    assert_eq!(count(), 5);
    // A failed statement changes nothing and calls nothing.
    db.execute("INSERT INTO notes (n) VALUES ('x')", &[])
        .await
        .unwrap_err();
    assert_eq!(count(), 5);

    // A join reads both tables; local tables are watched too.
    let (joined, cb) = recorder();
    let join = db
        .watch("SELECT count(*) FROM notes, local_only", &[], cb)
        .unwrap();
    let mut tables = join.tables().to_vec();
    tables.sort();
    assert_eq!(tables, ["local_only", "notes"]);
    db.execute("INSERT INTO local_only VALUES (2)", &[])
        .await
        .unwrap();
    assert_eq!(joined.lock().unwrap().len(), 2);

    live.stop();
    db.execute("INSERT INTO notes (title, n) VALUES ('after', 77)", &[])
        .await
        .unwrap();
    assert_eq!(count(), 5, "no call after stop");
    assert_eq!(joined.lock().unwrap().len(), 3, "the join still runs");
    drop(join);
    db.execute("INSERT INTO local_only VALUES (3)", &[])
        .await
        .unwrap();
    assert_eq!(joined.lock().unwrap().len(), 3, "no call after drop");

    let e = db
        .watch("DELETE FROM notes", &[], recorder().1)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "watch() runs read-only statements; use execute() to write"
    );
    assert_eq!(e.kind(), erth_core::ErrorKind::Sql);
}

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[tokio::test]
async fn additive_schema_changes_apply_and_others_leave_the_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    {
        let db = open(&path, NOTES_V1).await.unwrap();
        db.execute("INSERT INTO notes (title, n) VALUES ('kept', 1)", &[])
            .await
            .unwrap();
    }
    let original = file_bytes(&path);
    assert!(!dir.path().join("a.db-wal").exists(), "closed cleanly");

    let refused = [
        // A dropped column (or a rename: the old name is missing).
        (
            r#"{"tables": {"notes": {"columns": {"title": {"type": "text", "notNull": true, "default": ""}, "n": {"type": "integer"}, "score": {"type": "real"}}}, "tags": {"columns": {"name": {"type": "text", "notNull": true}}}}}"#,
            "notes",
            Some("data"),
        ),
        // A type change.
        (
            r#"{"tables": {"notes": {"columns": {"title": {"type": "text", "notNull": true, "default": ""}, "n": {"type": "text"}, "score": {"type": "real"}, "data": {"type": "blob"}}}, "tags": {"columns": {"name": {"type": "text", "notNull": true}}}}}"#,
            "notes",
            Some("n"),
        ),
        // Nullability changed.
        (
            r#"{"tables": {"notes": {"columns": {"title": {"type": "text", "default": ""}, "n": {"type": "integer"}, "score": {"type": "real"}, "data": {"type": "blob"}}}, "tags": {"columns": {"name": {"type": "text", "notNull": true}}}}}"#,
            "notes",
            Some("title"),
        ),
        // An added NOT NULL column without a default.
        (
            r#"{"tables": {"notes": {"columns": {"title": {"type": "text", "notNull": true, "default": ""}, "n": {"type": "integer"}, "score": {"type": "real"}, "data": {"type": "blob"}, "must": {"type": "text", "notNull": true}}}, "tags": {"columns": {"name": {"type": "text", "notNull": true}}}}}"#,
            "notes",
            Some("must"),
        ),
        // A dropped table.
        (
            r#"{"tables": {"notes": {"columns": {"title": {"type": "text", "notNull": true, "default": ""}, "n": {"type": "integer"}, "score": {"type": "real"}, "data": {"type": "blob"}}}}}"#,
            "tags",
            None,
        ),
    ];
    for (schema, table, column) in refused {
        match open(&path, schema).await {
            Err(Error::SchemaChange {
                table: t,
                column: c,
                ..
            }) => {
                assert_eq!(t, table, "{schema}");
                assert_eq!(c.as_deref(), column, "{schema}");
            }
            other => panic!("{schema}: expected SchemaChange, got {other:?}"),
        }
        assert_eq!(file_bytes(&path), original, "{schema}: the file changed");
    }

    // Additive: a nullable column, a defaulted NOT NULL column, a new table, a new index.
    let v2 = r#"{"tables": {"notes": {"columns": {
        "title": {"type": "text", "notNull": true, "default": ""},
        "n": {"type": "integer"}, "score": {"type": "real"}, "data": {"type": "blob"},
        "color": {"type": "text"}, "pinned": {"type": "integer", "notNull": true, "default": 0}},
        "indexes": [["title"], ["pinned", "n"]]},
      "tags": {"columns": {"name": {"type": "text", "notNull": true}}},
      "lists": {"columns": {"name": {"type": "text", "notNull": true}}}}}"#;
    let db = open(&path, v2).await.unwrap();
    assert_eq!(
        db.query("SELECT title, n, color, pinned FROM notes", &[])
            .await
            .unwrap()
            .rows,
        vec![vec![
            text("kept"),
            SqlValue::Integer(1),
            SqlValue::Null,
            SqlValue::Integer(0)
        ]]
    );
    db.execute(
        "INSERT INTO notes (title, color) VALUES ('new', 'red')",
        &[],
    )
    .await
    .unwrap();
    db.execute("INSERT INTO lists (name) VALUES ('groceries')", &[])
        .await
        .unwrap();
    let indexes = db
        .query(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND name LIKE '\\_erth\\_ix\\_notes(%' ESCAPE '\\' ORDER BY name",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        indexes.rows,
        vec![
            vec![text("_erth_ix_notes(pinned,n)")],
            vec![text("_erth_ix_notes(title)")]
        ]
    );
    let objects = "SELECT type, name, sql FROM sqlite_schema ORDER BY name";
    let settled = db.query(objects, &[]).await.unwrap();
    drop(db);
    // Reopening with the same schema changes no table, view or trigger.
    let db = open(&path, v2).await.unwrap();
    assert_eq!(db.query(objects, &[]).await.unwrap(), settled);
    drop(db);
    // An index the schema no longer lists is dropped.
    let fewer = v2.replace(r#", ["pinned", "n"]"#, "");
    assert_ne!(fewer, v2);
    let db = open(&path, &fewer).await.unwrap();
    assert_eq!(
        db.query(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND name LIKE '\\_erth\\_ix\\_notes(%' ESCAPE '\\'",
            &[]
        )
        .await
        .unwrap()
        .rows,
        vec![vec![text("_erth_ix_notes(title)")]]
    );
}

#[tokio::test]
async fn the_todo_api_works_whatever_order_an_app_declares_todos_columns_in() {
    // Found in Firefox: WebDriver hands a page the schema object with its
    // keys sorted, so `is_completed` came before `title`.
    let dir = tempfile::tempdir().unwrap();
    let schema = r#"{"tables": {"todos": {"columns": {
        "is_completed": {"type": "integer", "notNull": true, "default": 0},
        "title": {"type": "text", "notNull": true}}}}}"#;
    let db = open(&dir.path().join("todos.db"), schema).await.unwrap();
    let added = db.add_todo("milk").await.unwrap();
    assert_eq!((added.title.as_str(), added.is_completed), ("milk", false));
    let done = db.set_todo_completed(&added.id, true).await.unwrap();
    assert_eq!((done.title.as_str(), done.is_completed), ("milk", true));
    let renamed = db.rename_todo(&added.id, "oat milk").await.unwrap();
    assert_eq!(
        (renamed.title.as_str(), renamed.is_completed),
        ("oat milk", true)
    );
    let listed = db.list_active_todos().await.unwrap();
    assert_eq!(listed, vec![renamed]);
}

#[tokio::test]
async fn a_write_committed_while_a_live_query_starts_is_not_missed() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(open(&dir.path().join("a.db"), NOTES_V1).await.unwrap());
    let seen: Arc<Mutex<Vec<Rows>>> = Arc::default();
    let (log, writer) = (seen.clone(), db.clone());
    // The first result is delivered before the live query subscribes to
    // changes: another task commits a write right then (a thread of its own,
    // as a coroutine on another dispatcher would).
    let _live = db
        .watch(
            "SELECT title FROM notes",
            &[],
            Arc::new(move |rows: &Rows| {
                let first = {
                    let mut log = log.lock().unwrap();
                    log.push(rows.clone());
                    log.len() == 1
                };
                if first {
                    let db = writer.clone();
                    std::thread::spawn(move || {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .build()
                            .unwrap();
                        rt.block_on(db.execute("INSERT INTO notes (title) VALUES ('raced')", &[]))
                            .unwrap();
                    })
                    .join()
                    .unwrap();
                }
            }),
        )
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].rows.is_empty());
    assert_eq!(seen[1].rows, vec![vec![text("raced")]]);
}

#[tokio::test]
async fn a_bulk_transaction_reports_every_changed_id_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("a.db"), NOTES_V1).await.unwrap();
    let insert =
        |title: String| Statement::new("INSERT INTO notes (title) VALUES (?)", vec![text(&title)]);
    db.transaction(
        &(0..3)
            .map(|i| insert(format!("old {i}")))
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let old: Vec<SqlValue> = db
        .query("SELECT id FROM notes ORDER BY title", &[])
        .await
        .unwrap()
        .rows
        .into_iter()
        .map(|r| r[0].clone())
        .collect();

    let seen: Arc<Mutex<Vec<erth_core::ChangeEvent>>> = Arc::default();
    let s = seen.clone();
    let _sub = db.subscribe(Arc::new(move |ev| s.lock().unwrap().push(ev.clone())));
    // 50 new rows (consecutive rowids, right after the last old row's),
    // and rows written before, one of them changed twice.
    let mut stmts: Vec<Statement> = (0..50).map(|i| insert(format!("new {i}"))).collect();
    for (n, id) in [(1, &old[0]), (2, &old[2]), (3, &old[0])] {
        stmts.push(Statement::new(
            "UPDATE notes SET n = ? WHERE id = ?",
            vec![SqlValue::Integer(n), id.clone()],
        ));
    }
    db.transaction(&stmts).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one event for the table: {seen:?}");
    assert_eq!(seen[0].table, "notes");
    let mut ids = seen[0].ids.clone();
    let mut want: Vec<String> = db
        .query(
            "SELECT id FROM notes WHERE title LIKE 'new %' OR n IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .rows
        .into_iter()
        .map(|r| r[0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(want.len(), 52);
    ids.sort();
    want.sort();
    assert_eq!(ids, want, "every changed row once");
}

#[tokio::test]
async fn a_second_open_in_this_process_says_so_and_to_share_the_handle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twice.db");
    let first = open(&path, NOTES_V1).await.unwrap();
    // The same file by another spelling of its path.
    let other = dir.path().join(".").join("twice.db");
    let e = open(&other, NOTES_V1).await.unwrap_err();
    assert!(
        matches!(
            &e,
            Error::DatabaseLocked(erth_core::LockHolder::ThisProcess { .. })
        ),
        "{e:?}"
    );
    let message = e.to_string();
    assert!(
        message.contains("already open in this process"),
        "{message}"
    );
    assert!(message.contains("share that handle"), "{message}");
    assert!(!message.contains("another process"), "{message}");
    drop(first);
    open(&path, NOTES_V1).await.unwrap();
}
