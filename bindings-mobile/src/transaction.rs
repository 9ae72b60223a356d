//! [`ErthWriteTransaction`]: an interactive write transaction
//! ([`erth_core::WriteTransaction`]) as a foreign object. Every method
//! forwards; the host's idiomatic form (Kotlin `writeTransaction { }`,
//! Swift `writeTransaction { }`, Python `async with
//! db.write_transaction()`) wraps it to commit when the block returns and
//! roll back when it throws.
//!
//! The transaction holds the replica alone until it ends: other calls wait
//! for it (up to `ErthConfig.lock_timeout_ms`, then `DatabaseLocked`). A
//! handle dropped without `commit()` (Kotlin `close()`, the last Swift
//! reference, Python's garbage collector) rolls back.

use crate::error::{guard, guard_sync, ErthError};
use crate::types::{ExecuteResult, Rows, SqlValue};
use std::sync::{Arc, Mutex};

/// An open write transaction: reads see its own writes; nothing else
/// writes until it ends. End it with `commit()` or `rollback()`.
#[derive(Debug, uniffi::Object)]
pub struct ErthWriteTransaction {
    /// `None` once it ended (or while `commit()` runs).
    tx: Mutex<Option<erth_core::WriteTransaction>>,
}

impl ErthWriteTransaction {
    pub(crate) fn new(tx: erth_core::WriteTransaction) -> Arc<ErthWriteTransaction> {
        Arc::new(ErthWriteTransaction {
            tx: Mutex::new(Some(tx)),
        })
    }

    /// Runs `f` on the open transaction; `Sql` once it ended.
    fn with_open<T>(
        &self,
        f: impl FnOnce(&mut erth_core::WriteTransaction) -> erth_core::Result<T>,
    ) -> Result<T, ErthError> {
        guard_sync(|| {
            let mut tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
            match tx.as_mut() {
                Some(tx) => Ok(f(tx)?),
                None => Err(ended()),
            }
        })
    }
}

fn ended() -> ErthError {
    erth_core::write_transaction::ended().into()
}

#[uniffi::export(async_runtime = "tokio")]
impl ErthWriteTransaction {
    /// Runs one statement (read or write) inside the transaction. `Sql`
    /// when it fails: that statement changed nothing and the transaction
    /// stays open (roll back, or go on).
    pub async fn execute(
        &self,
        sql: String,
        params: Vec<SqlValue>,
    ) -> Result<ExecuteResult, ErthError> {
        self.with_open(|tx| tx.execute(&sql, &params))
    }

    /// Runs one statement inside the transaction and returns its rows;
    /// sees the transaction's own writes.
    pub async fn query(&self, sql: String, params: Vec<SqlValue>) -> Result<Rows, ErthError> {
        self.with_open(|tx| tx.query(&sql, &params))
    }

    /// Commits; then live queries and listeners hear of the changes, once.
    /// `Sql` when the transaction had ended or the commit failed (nothing
    /// remains).
    pub async fn commit(&self) -> Result<(), ErthError> {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        match tx {
            Some(tx) => guard(tx.commit()).await,
            None => Err(ended()),
        }
    }

    /// Rolls back: nothing the transaction wrote remains. Does nothing
    /// once it ended.
    pub async fn rollback(&self) -> Result<(), ErthError> {
        guard_sync(|| {
            let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
            match tx {
                Some(tx) => Ok(tx.rollback()?),
                None => Ok(()),
            }
        })
    }

    /// Whether `commit()` or `rollback()` has not been called yet.
    pub fn is_open(&self) -> bool {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::ErthDb;
    use crate::events::LiveQueryListener;
    use crate::types::ErthConfig;
    use std::time::{Duration, Instant};

    const SCHEMA: &str = r#"{"tables": {"notes": {"columns": {"body": {"type": "text"}}}}}"#;

    async fn open(dir: &tempfile::TempDir, lock_timeout_ms: Option<u64>) -> Arc<ErthDb> {
        ErthDb::open(ErthConfig {
            path: dir.path().join("tx.db").display().to_string(),
            url: None,
            auth_token: None,
            allow_insecure_http: false,
            schema: Some(SCHEMA.into()),
            encryption_key: None,
            auto_sync: None,
            request_timeout_ms: None,
            sync_timeout_ms: None,
            lock_timeout_ms,
            column_keys: Vec::new(),
            file_key: None,
        })
        .await
        .expect("open")
    }

    fn insert(body: &str) -> (String, Vec<SqlValue>) {
        (
            "INSERT INTO notes (body) VALUES (?)".into(),
            vec![body.into()],
        )
    }

    async fn bodies(db: &ErthDb) -> Vec<SqlValue> {
        db.query("SELECT body FROM notes ORDER BY body".into(), Vec::new())
            .await
            .expect("query")
            .rows
            .into_iter()
            .flatten()
            .collect()
    }

    /// Counts what a live query delivers.
    struct Deliveries(Arc<Mutex<Vec<Rows>>>);

    impl LiveQueryListener for Deliveries {
        fn on_rows(&self, rows: Rows) -> Result<(), ErthError> {
            self.0.lock().expect("lock").push(rows);
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_configured_lock_timeout_bounds_the_wait_for_an_open_transaction() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = open(&dir, Some(200)).await;
        let first = db.write_transaction().await.expect("first");
        let (sql, params) = insert("first");
        first.execute(sql, params).await.expect("insert");

        let started = Instant::now();
        let err = db.write_transaction().await.expect_err("the first is open");
        let waited = started.elapsed();
        assert!(matches!(err, ErthError::DatabaseLocked { .. }), "{err:?}");
        assert!(
            waited >= Duration::from_millis(150) && waited < Duration::from_secs(4),
            "{waited:?}"
        );
        let (sql, params) = insert("plain");
        assert!(matches!(
            db.execute(sql, params).await,
            Err(ErthError::DatabaseLocked { .. })
        ));

        first.commit().await.expect("commit");
        assert_eq!(bodies(&db).await, vec![SqlValue::from("first")]);
        let second = db.write_transaction().await.expect("free again");
        second.rollback().await.expect("rollback");
    }

    #[tokio::test]
    async fn an_ended_handle_refuses_work_and_a_dropped_one_rolls_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = open(&dir, None).await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let live = db
            .watch(
                "SELECT body FROM notes".into(),
                Vec::new(),
                Box::new(Deliveries(seen.clone())),
            )
            .expect("watch");

        let tx = db.write_transaction().await.expect("begin");
        assert!(tx.is_open());
        for body in ["a", "b", "c"] {
            let (sql, params) = insert(body);
            tx.execute(sql, params).await.expect("insert");
        }
        let own = tx
            .query("SELECT count(*) FROM notes".into(), Vec::new())
            .await
            .expect("own writes");
        assert_eq!(own.rows, vec![vec![SqlValue::Integer(3)]]);
        assert_eq!(seen.lock().expect("lock").len(), 1, "nothing before commit");
        tx.commit().await.expect("commit");
        assert!(!tx.is_open());
        let delivered = seen.lock().expect("lock").clone();
        assert_eq!(delivered.len(), 2, "first result, then one per commit");
        assert_eq!(delivered[1].rows.len(), 3);

        let (sql, params) = insert("late");
        for err in [
            tx.execute(sql.clone(), params.clone())
                .await
                .expect_err("ended"),
            tx.query(sql, params).await.expect_err("ended"),
            tx.commit().await.expect_err("ended"),
        ] {
            assert!(
                matches!(&err, ErthError::Sql { message } if message.contains("ended")),
                "{err:?}"
            );
        }
        tx.rollback()
            .await
            .expect("a rollback once ended does nothing");

        let failed = db.write_transaction().await.expect("begin");
        let err = failed
            .execute("INSERT INTO nowhere VALUES (1)".into(), Vec::new())
            .await
            .expect_err("no such table");
        assert!(matches!(err, ErthError::Sql { .. }), "{err:?}");
        assert!(failed.is_open(), "a failed statement leaves it open");
        let (sql, params) = insert("dropped");
        failed.execute(sql, params).await.expect("insert");
        drop(failed);

        let rolled = db.write_transaction().await.expect("the drop released it");
        let (sql, params) = insert("rolled back");
        rolled.execute(sql, params).await.expect("insert");
        rolled.rollback().await.expect("rollback");
        assert!(!rolled.is_open());

        assert_eq!(
            bodies(&db).await,
            vec![SqlValue::from("a"), "b".into(), "c".into()]
        );
        assert_eq!(seen.lock().expect("lock").len(), 2, "no call for rollbacks");
        live.stop().expect("stop");
    }
}
