//! The SQLite store: `rusqlite` on one connection, natively on a bundled
//! SQLite file and in the browser on `sqlite-wasm-rs` (opened on the OPFS
//! VFS by [`super::browser`]). One implementation for both targets, so the
//! conformance suite proves the same code on each.
//!
//! SQLite playbook for files: WAL journal, `synchronous = NORMAL` (durable
//! against process crashes; the last commits may be lost on power loss), a
//! busy timeout, exclusive locking (one process owns a replica, so the
//! engine's in-memory clock is the only writer) and one connection behind a
//! mutex (one writer; statements never interleave). Local statements take
//! microseconds, so they run inline on the caller's task.
//!
//! Why not the `libsql` crate natively: `libsql` 0.10 reads TEXT through a
//! C string (`value.rs`, `CStr::from_ptr(..).to_str().unwrap()`), which
//! truncates text at the first NUL and panics on invalid UTF-8; rusqlite
//! reads text by length.

use super::{Store, StoreError, StoreErrorKind};
use crate::value::{Rows, SqlValue, Statement};
use rusqlite::types::{Value, ValueRef};
use std::sync::Mutex;

/// A replica database on one SQLite connection.
pub struct SqliteStore {
    conn: Mutex<rusqlite::Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

pub(crate) fn err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(code, msg) => StoreError::from_sqlite_code(
            code.extended_code,
            msg.clone().unwrap_or_else(|| e.to_string()),
        ),
        _ => StoreError::new(StoreErrorKind::Other, e.to_string()),
    }
}

fn to_sql(v: &SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::Integer(*i),
        SqlValue::Real(r) => Value::Real(*r),
        SqlValue::Text(t) => Value::Text(t.clone()),
        SqlValue::Blob(b) => Value::Blob(b.clone()),
    }
}

fn from_sql(v: ValueRef<'_>) -> Result<SqlValue, StoreError> {
    Ok(match v {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) => SqlValue::Integer(i),
        ValueRef::Real(r) => SqlValue::Real(r),
        ValueRef::Text(t) => SqlValue::Text(String::from_utf8(t.to_vec()).map_err(|_| {
            StoreError::new(StoreErrorKind::Corrupt, "text column holds invalid UTF-8")
        })?),
        ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
    })
}

impl SqliteStore {
    /// Wraps an open connection, applying `pragmas` (each may return a row).
    pub fn from_connection(
        conn: rusqlite::Connection,
        pragmas: &[&str],
    ) -> Result<SqliteStore, StoreError> {
        for pragma in pragmas {
            let mut stmt = conn.prepare(pragma).map_err(err)?;
            let mut rows = stmt.query([]).map_err(err)?;
            while rows.next().map_err(err)?.is_some() {}
        }
        let store = SqliteStore {
            conn: Mutex::new(conn),
        };
        // Take the write lock once now, so a second owner fails at open.
        store.write_sync(&[])?;
        Ok(store)
    }

    /// Opens (creating if needed) a database file with the playbook above.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<SqliteStore, StoreError> {
        let conn = rusqlite::Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        SqliteStore::from_connection(
            conn,
            &[
                "PRAGMA journal_mode = WAL",
                "PRAGMA synchronous = NORMAL",
                "PRAGMA locking_mode = EXCLUSIVE",
                "PRAGMA foreign_keys = ON",
            ],
        )
    }

    /// An in-memory database (tests, benchmarks).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn memory() -> Result<SqliteStore, StoreError> {
        SqliteStore::from_connection(rusqlite::Connection::open_in_memory().map_err(err)?, &[])
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        // A panic while holding the lock cannot leave SQLite mid-transaction
        // in a way the next BEGIN would not report; keep serving.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write_sync(&self, stmts: &[Statement]) -> Result<Vec<Rows>, StoreError> {
        let conn = self.lock();
        conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
        let mut out = Vec::with_capacity(stmts.len());
        for stmt in stmts {
            match run(&conn, stmt) {
                Ok(rows) => out.push(rows),
                Err(e) => {
                    // The statement's error matters more than a failed rollback.
                    let _ = conn.execute_batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
        if let Err(e) = conn.execute_batch("COMMIT") {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(err(e));
        }
        Ok(out)
    }
}

fn run(conn: &rusqlite::Connection, stmt: &Statement) -> Result<Rows, StoreError> {
    let mut prepared = conn.prepare_cached(&stmt.sql).map_err(err)?;
    let columns: Vec<String> = prepared.column_names().map(str::to_owned).collect();
    let n = columns.len();
    let params = rusqlite::params_from_iter(stmt.args.iter().map(to_sql));
    let mut rows = prepared.query(params).map_err(err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(err)? {
        let mut cells = Vec::with_capacity(n);
        for i in 0..n {
            cells.push(from_sql(row.get_ref(i).map_err(err)?)?);
        }
        out.push(cells);
    }
    Ok(Rows { columns, rows: out })
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl Store for SqliteStore {
    async fn query(&self, stmt: &Statement) -> Result<Rows, StoreError> {
        run(&self.lock(), stmt)
    }

    async fn write(&self, stmts: &[Statement]) -> Result<Vec<Rows>, StoreError> {
        self.write_sync(stmts)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance_in_memory() {
        let store = SqliteStore::memory().unwrap();
        super::super::conformance::run(&store).await;
    }

    #[tokio::test]
    async fn conformance_on_file_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            super::super::conformance::run(&store).await;
        }
        let store = SqliteStore::open(&path).unwrap();
        let rows = store
            .query(&Statement::plain("SELECT count(*) FROM conf_r"))
            .await
            .unwrap();
        assert_eq!(rows.rows[0][0], SqlValue::Integer(3));
        let mode = store
            .query(&Statement::plain("PRAGMA journal_mode"))
            .await
            .unwrap();
        assert_eq!(mode.rows[0][0], SqlValue::from("wal"));
    }

    #[test]
    fn second_opener_gets_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let _first = SqliteStore::open(&path).unwrap();
        let e = SqliteStore::open(&path).expect_err("exclusive lock");
        assert!(e.is_locked(), "{e:?}");
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_panic() {
        let store = SqliteStore::memory().unwrap();
        let conn = store.lock();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (CAST(X'ff00fe' AS TEXT));")
            .unwrap();
        let e = run(&conn, &Statement::plain("SELECT x FROM t")).unwrap_err();
        assert_eq!(e.kind, StoreErrorKind::Corrupt);
    }
}
