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
    ErthError::Sql {
        message: "the transaction has ended (committed or rolled back)".into(),
    }
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
