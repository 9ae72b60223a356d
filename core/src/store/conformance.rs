//! The conformance suite every [`Store`] must pass: one public check per
//! behaviour, covering every method of the trait. [`run`] runs them all on
//! one fresh, empty store (each check uses tables of its own, `conf_*` and
//! the engine's objects of a table `conf_todo`); native stores run it in
//! `store::sqlite`'s tests, the browser's OPFS and IndexedDB stores in the
//! wasm worker suite.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed check

use super::*;
use crate::hlc::NodeId;
use crate::schema::{ColumnDef, SqlType, TableDef};
use crate::value::SqlValue;

/// Runs every check against a fresh, empty store.
pub async fn run(store: &dyn Store) {
    round_trips_every_value_type(store).await;
    write_is_atomic(store).await;
    returning_rows_come_back(store).await;
    hostile_text_is_data(store).await;
    write_after_reads_sees_its_reads_in_the_same_transaction(store).await;
    app_writes_run_the_engine_triggers_on_the_transaction_clock(store).await;
    app_statements_are_held_to_the_access_rules(store).await;
    interactive_app_transactions_read_their_writes_and_end_whole(store).await;
    app_queries_only_read(store).await;
    columns_read_names_the_view_and_its_engine_table(store).await;
    the_sync_lock_is_held_until_its_guard_drops(store).await;
    writes_are_persisted(store).await;
}

/// [`Store::query`] and [`Store::write`]: every value type comes back as
/// written (NUL and emoji in text, `i64::MIN`, an empty-ish blob).
pub async fn round_trips_every_value_type(store: &dyn Store) {
    store
        .write(&[Statement::plain("CREATE TABLE conf_v (a, b, c, d, e)")])
        .await
        .expect("create");
    let vals = vec![
        SqlValue::Null,
        SqlValue::Integer(i64::MIN),
        SqlValue::Real(1.5),
        SqlValue::Text("héllo \u{0} wörld 🎉".into()),
        SqlValue::Blob(vec![0, 255, 1]),
    ];
    store
        .write(&[Statement::new(
            "INSERT INTO conf_v VALUES (?, ?, ?, ?, ?)",
            vals.clone(),
        )])
        .await
        .expect("insert");
    let rows = store
        .query(&Statement::plain("SELECT a, b, c, d, e FROM conf_v"))
        .await
        .expect("select");
    assert_eq!(rows.columns, ["a", "b", "c", "d", "e"]);
    assert_eq!(rows.rows, vec![vals]);
}

/// [`Store::write`]: all statements commit or none; the store is usable
/// after a failed transaction.
pub async fn write_is_atomic(store: &dyn Store) {
    store
        .write(&[Statement::plain("CREATE TABLE conf_a (x INTEGER NOT NULL)")])
        .await
        .expect("create");
    let err = store
        .write(&[
            Statement::new("INSERT INTO conf_a VALUES (?)", vec![SqlValue::Integer(1)]),
            Statement::new("INSERT INTO conf_a VALUES (?)", vec![SqlValue::Null]),
        ])
        .await
        .expect_err("NOT NULL must fail");
    assert_eq!(err.kind, StoreErrorKind::Constraint, "{err}");
    let rows = store
        .query(&Statement::plain("SELECT count(*) FROM conf_a"))
        .await
        .expect("count");
    assert_eq!(
        rows.rows[0][0],
        SqlValue::Integer(0),
        "first insert rolled back"
    );
    // The store is usable after a failed transaction.
    store
        .write(&[Statement::new(
            "INSERT INTO conf_a VALUES (?)",
            vec![SqlValue::Integer(2)],
        )])
        .await
        .expect("insert after rollback");
}

/// [`Store::write`]: each statement's rows come back (`RETURNING`).
pub async fn returning_rows_come_back(store: &dyn Store) {
    let out = store
        .write(&[
            Statement::plain("CREATE TABLE conf_r (id TEXT PRIMARY KEY, n INTEGER)"),
            Statement::new(
                "INSERT INTO conf_r VALUES (?, ?), (?, ?) RETURNING id",
                vec!["a".into(), 1.into(), "b".into(), 2.into()],
            ),
            Statement::new(
                "UPDATE conf_r SET n = n + 1 WHERE id = ? RETURNING n",
                vec!["zzz".into()],
            ),
        ])
        .await
        .expect("write");
    assert_eq!(out.len(), 3);
    assert_eq!(
        out[1].rows,
        vec![vec![SqlValue::from("a")], vec![SqlValue::from("b")]]
    );
    assert!(out[2].rows.is_empty());
}

/// Bound text is data, never SQL.
pub async fn hostile_text_is_data(store: &dyn Store) {
    let hostile = "'; DROP TABLE conf_r; --";
    store
        .write(&[Statement::new(
            "INSERT INTO conf_r VALUES (?, ?)",
            vec![hostile.into(), SqlValue::Null],
        )])
        .await
        .expect("insert");
    let rows = store
        .query(&Statement::new(
            "SELECT id FROM conf_r WHERE id = ?",
            vec![hostile.into()],
        ))
        .await
        .expect("select");
    assert_eq!(rows.rows, vec![vec![SqlValue::from(hostile)]]);
}

/// [`Store::write_after_reads`]: the builder gets the reads' rows from inside
/// the write transaction; an error from it rolls everything back and is
/// returned.
pub async fn write_after_reads_sees_its_reads_in_the_same_transaction(store: &dyn Store) {
    store
        .write(&[Statement::plain(
            "CREATE TABLE IF NOT EXISTS conf_w (n INTEGER NOT NULL)",
        )])
        .await
        .expect("create");
    let count = Statement::plain("SELECT count(*) FROM conf_w");
    for _ in 0..3 {
        store
            .write_after_reads(std::slice::from_ref(&count), &mut |rows| {
                let n = rows[0].rows[0][0].as_i64().unwrap();
                Ok(vec![Statement::new(
                    "INSERT INTO conf_w VALUES (?) RETURNING n",
                    vec![SqlValue::Integer(n * 10)],
                )])
            })
            .expect("write after reads");
    }
    let rows = store
        .query(&Statement::plain("SELECT n FROM conf_w ORDER BY n"))
        .await
        .unwrap();
    let ns: Vec<SqlValue> = rows.rows.into_iter().map(|mut r| r.remove(0)).collect();
    assert_eq!(ns, vec![0.into(), 10.into(), 20.into()]);
    let out = store
        .write_after_reads(&[], &mut |rows| {
            assert!(rows.is_empty());
            Ok(vec![Statement::plain(
                "INSERT INTO conf_w VALUES (7) RETURNING n",
            )])
        })
        .unwrap();
    assert_eq!(
        out[0].rows,
        vec![vec![SqlValue::Integer(7)]],
        "the built statements' rows"
    );
    // The builder fails after a statement of the same transaction ran: nothing stays.
    let e = store
        .write_after_reads(
            &[Statement::plain("INSERT INTO conf_w VALUES (99)")],
            &mut |_| Err(StoreError::new(StoreErrorKind::Other, "abandoned")),
        )
        .expect_err("the builder's error");
    assert_eq!(e.message, "abandoned");
    let rows = store
        .query(&Statement::plain(
            "SELECT count(*) FROM conf_w WHERE n = 99",
        ))
        .await
        .unwrap();
    assert_eq!(rows.rows[0][0], SqlValue::Integer(0), "rolled back");
}

/// The engine table `_erth_rows_conf_todo` and its view `conf_todo` with
/// their triggers, as a replica has them, and the plain tables `conf_log`
/// and `conf_w` (once).
async fn engine_table(store: &dyn Store) -> TableDef {
    let def = TableDef::new(
        "conf_todo",
        vec![
            ColumnDef::new("title", SqlType::Text).default_value(""),
            ColumnDef::new("n", SqlType::Integer).nullable(),
        ],
    )
    .unwrap();
    let exists = store
        .query(&Statement::plain(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'conf_todo'",
        ))
        .await
        .unwrap();
    if exists.rows[0][0] == SqlValue::Integer(0) {
        let mut ddl = vec![
            Statement::plain("CREATE TABLE IF NOT EXISTS conf_log (x)"),
            Statement::plain("CREATE TABLE IF NOT EXISTS conf_w (n INTEGER NOT NULL)"),
            // The replica's state, which the view reads (`TableDef::visible_sql`).
            Statement::plain(crate::schema::local::STATE_TABLE_SQL),
            Statement::plain(def.create_local_table_sql()),
        ];
        ddl.extend(def.local_index_sql().into_iter().map(Statement::plain));
        ddl.extend(
            def.view_sql()
                .into_iter()
                .map(|(_, sql)| Statement::plain(sql)),
        );
        store.write(&ddl).await.expect("engine table and view");
    }
    def
}

/// An app transaction's context: `clock` for its triggers, then `after`.
fn app_context<'a>(
    clock: Timestamp,
    after: Vec<Statement>,
    protected: &'a [String],
) -> AppContext<'a> {
    let mut after = Some(after);
    AppContext {
        read: Statement::plain("SELECT 1"),
        clock: Box::new(move |rows| {
            assert_eq!(
                rows.rows,
                vec![vec![SqlValue::Integer(1)]],
                "the read's rows"
            );
            Ok((clock, after.take().unwrap_or_default()))
        }),
        protected,
    }
}

const CLOCK: Timestamp = Timestamp {
    hlc: 0x0190_0000_0000_0007,
    node: NodeId(0xabc),
};

/// [`Store::begin_app`], [`Store::app_statement`], [`Store::commit_app`],
/// [`Store::rollback_app`]: statements in an open transaction see its
/// earlier writes; a failed statement undoes itself only and the
/// transaction goes on; a rollback leaves nothing (the engine's statements
/// included), a commit everything, on the transaction's clock, with the
/// changed rows reported.
pub async fn interactive_app_transactions_read_their_writes_and_end_whole(store: &dyn Store) {
    let def = engine_table(store).await;
    let protected = vec![def.name.clone()];
    let count = |sql: &'static str| async move {
        store.query(&Statement::plain(sql)).await.unwrap().rows[0][0].clone()
    };
    let rows_before = count("SELECT count(*) FROM \"_erth_rows_conf_todo\"").await;
    let log_before = count("SELECT count(*) FROM conf_log").await;
    let (a, b) = (crate::ids::new_id(), crate::ids::new_id());
    let insert = |id: &str, n: i64| {
        Statement::new(
            "INSERT INTO conf_todo (id, title, n) VALUES (?, 'tx', ?)",
            vec![id.into(), n.into()],
        )
    };
    let in_tx = Statement::plain("SELECT count(*) FROM conf_todo WHERE title = 'tx'");

    let after = vec![Statement::plain("INSERT INTO conf_log VALUES ('tx')")];
    let mut tx = store
        .begin_app(app_context(CLOCK, after.clone(), &protected))
        .expect("begin");
    assert_eq!(tx.clock(), CLOCK);
    assert_eq!(store.app_statement(&mut tx, &insert(&a, 1)).unwrap().1, 1);
    let (seen, _) = store.app_statement(&mut tx, &in_tx).unwrap();
    assert_eq!(seen.rows[0][0], SqlValue::Integer(1), "reads its own write");
    // The same id again: the constraint fails that statement only.
    let e = store
        .app_statement(&mut tx, &insert(&a, 2))
        .expect_err("duplicate id");
    assert_ne!(e.kind, StoreErrorKind::Refused, "{e}");
    let e = store
        .app_statement(&mut tx, &Statement::plain("COMMIT"))
        .expect_err("transaction control");
    assert_eq!(e.kind, StoreErrorKind::Refused, "{e}");
    let (seen, _) = store.app_statement(&mut tx, &in_tx).unwrap();
    assert_eq!(
        seen.rows[0][0],
        SqlValue::Integer(1),
        "still open, first write kept"
    );
    store.rollback_app(tx).expect("rollback");
    assert_eq!(
        count("SELECT count(*) FROM \"_erth_rows_conf_todo\"").await,
        rows_before
    );
    assert_eq!(
        count("SELECT count(*) FROM conf_log").await,
        log_before,
        "engine statements rolled back"
    );

    let mut tx = store
        .begin_app(app_context(CLOCK, after, &protected))
        .expect("begin again");
    store.app_statement(&mut tx, &insert(&a, 1)).unwrap();
    store.app_statement(&mut tx, &insert(&b, 2)).unwrap();
    store
        .app_statement(&mut tx, &Statement::plain("INSERT INTO conf_w VALUES (5)"))
        .unwrap();
    let changed = store.commit_app(tx).expect("commit");
    let tables: Vec<&str> = changed.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(tables, [def.local_name().as_str(), "conf_w"]);
    assert_eq!(changed[0].1.len(), 2);
    let clocks = store
        .query(&Statement::new(
            "SELECT \"_clk_title\" FROM \"_erth_rows_conf_todo\" WHERE id IN (?, ?)",
            vec![a.as_str().into(), b.as_str().into()],
        ))
        .await
        .unwrap();
    assert_eq!(
        clocks.rows,
        vec![vec![SqlValue::Text(CLOCK.to_string())]; 2],
        "both rows on the transaction's clock"
    );
    assert_eq!(
        count("SELECT count(*) FROM conf_log").await,
        SqlValue::Integer(log_before.as_i64().unwrap() + 1)
    );
    // The store is back to plain engine work.
    store
        .write(&[Statement::plain("INSERT INTO conf_w VALUES (6)")])
        .await
        .expect("a write after the transaction");
}

/// [`Store::write_app`]: app statements on a synced table's view run its
/// triggers with the transaction's clock; the rows they change are
/// reported (table and rowids); the engine's statements run after them in
/// the same transaction.
pub async fn app_writes_run_the_engine_triggers_on_the_transaction_clock(store: &dyn Store) {
    let def = engine_table(store).await;
    let protected = vec![def.name.clone()];
    let id = crate::ids::new_id();
    let out = store
        .write_app(
            app_context(
                CLOCK,
                vec![Statement::plain("INSERT INTO conf_log VALUES ('after')")],
                &protected,
            ),
            &[
                Statement::new(
                    "INSERT INTO conf_todo (id, title, n) VALUES (?, ?, ?)",
                    vec![id.as_str().into(), "a".into(), 1.into()],
                ),
                Statement::plain("SELECT count(*) FROM conf_todo"),
            ],
        )
        .expect("app write");
    assert_eq!(out.results.len(), 2);
    assert_eq!(out.results[0].1, 1, "one engine row inserted");
    assert_eq!(
        out.results[1].0.rows,
        vec![vec![SqlValue::Integer(1)]],
        "reads its own write"
    );
    assert_eq!(out.changed.len(), 1);
    assert_eq!(out.changed[0].0, def.local_name());
    assert_eq!(out.changed[0].1.len(), 1);
    let row = store
        .query(&Statement::new(
            "SELECT \"_clk_title\", \"_clk_is_deleted\", \"_dirty\", \"created_at\" FROM \"_erth_rows_conf_todo\" WHERE id = ?",
            vec![id.as_str().into()],
        ))
        .await
        .unwrap();
    let clock = SqlValue::Text(CLOCK.to_string());
    assert_eq!(
        row.rows,
        vec![vec![
            clock.clone(),
            clock,
            1.into(),
            SqlValue::Integer(CLOCK.physical_ms() as i64)
        ]]
    );
    let log = store
        .query(&Statement::plain("SELECT x FROM conf_log"))
        .await
        .unwrap();
    assert_eq!(
        log.rows,
        vec![vec![SqlValue::from("after")]],
        "after ran once"
    );
}

/// [`Store::write_app`]: writes to engine tables, DDL on a synced view,
/// transaction control and the engine's functions are refused
/// ([`StoreErrorKind::Refused`]) before anything runs, and a refused
/// statement rolls back the statements before it and the engine's.
pub async fn app_statements_are_held_to_the_access_rules(store: &dyn Store) {
    let def = engine_table(store).await;
    let protected = vec![def.name.clone()];
    let count = || async {
        store
            .query(&Statement::plain(
                "SELECT count(*) FROM \"_erth_rows_conf_todo\"",
            ))
            .await
            .unwrap()
            .rows[0][0]
            .clone()
    };
    let before = count().await;
    for refused in [
        "INSERT INTO \"_erth_rows_conf_todo\" (id) VALUES ('x')",
        "DROP VIEW conf_todo",
        "BEGIN",
        "SELECT erth_clock()",
        "ATTACH ':memory:' AS other",
    ] {
        let e = store
            .write_app(
                app_context(
                    CLOCK,
                    vec![Statement::plain("INSERT INTO conf_log VALUES ('no')")],
                    &protected,
                ),
                &[
                    Statement::plain("INSERT INTO conf_todo (title) VALUES ('first')"),
                    Statement::plain(refused),
                ],
            )
            .expect_err(refused);
        assert_eq!(e.kind, StoreErrorKind::Refused, "{refused}: {e}");
    }
    assert_eq!(count().await, before, "nothing was written");
    let log = store
        .query(&Statement::plain(
            "SELECT count(*) FROM conf_log WHERE x = 'no'",
        ))
        .await
        .unwrap();
    assert_eq!(
        log.rows[0][0],
        SqlValue::Integer(0),
        "the engine's statements did not run"
    );
    // A wrong parameter count is an error, not a NULL.
    let e = store
        .write_app(
            app_context(CLOCK, Vec::new(), &protected),
            &[Statement::plain("INSERT INTO conf_todo (title) VALUES (?)")],
        )
        .expect_err("missing parameter");
    assert!(e.message.contains("parameter"), "{e}");
}

/// [`Store::query_app`]: reads run (views included); a statement that would
/// write is refused ([`StoreErrorKind::NotReadOnly`]), and so is a read of a parameter count that differs.
pub async fn app_queries_only_read(store: &dyn Store) {
    let def = engine_table(store).await;
    let protected = vec![def.name.clone()];
    let rows = store
        .query_app(
            &protected,
            &Statement::new(
                "SELECT title FROM conf_todo WHERE title = ?",
                vec!["a".into()],
            ),
        )
        .expect("read");
    assert_eq!(rows.columns, ["title"]);
    assert_eq!(rows.rows, vec![vec![SqlValue::from("a")]]);
    let e = store
        .query_app(
            &protected,
            &Statement::plain("UPDATE conf_todo SET title = 'b'"),
        )
        .expect_err("a write");
    assert_eq!(e.kind, StoreErrorKind::NotReadOnly, "{e}");
    let e = store
        .query_app(
            &protected,
            &Statement::plain("SELECT * FROM \"_erth_state_missing\""),
        )
        .expect_err("no such table");
    assert_ne!(e.kind, StoreErrorKind::Refused, "{e}");
    let still = store
        .query(&Statement::plain(
            "SELECT count(*) FROM conf_todo WHERE title = 'b'",
        ))
        .await
        .unwrap();
    assert_eq!(still.rows[0][0], SqlValue::Integer(0));
}

/// [`Store::columns_read`]: the columns a read-only statement reads, a
/// synced view reporting the columns the statement names and its engine
/// table; a writing statement is refused ([`StoreErrorKind::NotReadOnly`]).
pub async fn columns_read_names_the_view_and_its_engine_table(store: &dyn Store) {
    engine_table(store).await;
    let read = store
        .columns_read("SELECT c.title FROM conf_todo c JOIN conf_w w ON w.n = c.n")
        .expect("columns");
    let has = |t: &str, c: &str| read.contains(&(t.to_owned(), c.to_owned()));
    assert!(has("_erth_rows_conf_todo", "title"), "{read:?}");
    assert!(has("conf_todo", "title"), "{read:?}");
    assert!(has("conf_w", "n"), "{read:?}");
    assert!(
        !read
            .iter()
            .any(|(t, c)| t == "conf_todo" && c != "title" && c != "n"),
        "the view is reported with the columns the statement names only: {read:?}"
    );
    let e = store
        .columns_read("DELETE FROM conf_w")
        .expect_err("not read-only");
    assert_eq!(e.kind, StoreErrorKind::NotReadOnly, "{e}");
    assert!(store.columns_read("SELECT * FROM nowhere").is_err());
}

/// [`Store::try_lock_sync`]: a guard is had; while it is held this store
/// either has one owner (another guard is had too) or refuses a second
/// one; once dropped, a guard is had again.
pub async fn the_sync_lock_is_held_until_its_guard_drops(store: &dyn Store) {
    let held = store.try_lock_sync().expect("lock").expect("free at first");
    let second = store.try_lock_sync().expect("lock");
    drop(second);
    drop(held);
    let again = store.try_lock_sync().expect("lock");
    assert!(again.is_some(), "free again once dropped");
}

/// [`Store::persisted`]: resolves once every committed write is kept where
/// the store keeps its data.
pub async fn writes_are_persisted(store: &dyn Store) {
    store
        .write(&[Statement::plain("CREATE TABLE conf_p (x)")])
        .await
        .unwrap();
    store
        .write_after_reads(&[], &mut |_| {
            Ok(vec![Statement::plain("INSERT INTO conf_p VALUES (1)")])
        })
        .unwrap();
    store.persisted().await.expect("persisted");
}
