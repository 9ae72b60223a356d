//! Interactive write transactions: [`Database::write_transaction`] opens
//! one, the app reads and writes through it ([`WriteTransaction::execute`],
//! [`WriteTransaction::query`]) deciding as it goes, and it ends in
//! [`WriteTransaction::commit`] or [`WriteTransaction::rollback`] (or a
//! drop, which rolls back). "Add the item only if its list still exists",
//! "take the next number": nothing else writes between the read and the
//! write.
//!
//! The transaction holds the replica alone from its `BEGIN IMMEDIATE` to
//! its end: within this process the store's exclusive turn
//! ([`crate::shared_store`]), so other calls, live queries and sync wait
//! for it (up to `Config::lock_timeout_ms`, then
//! [`Error::DatabaseLocked`]) and never see its uncommitted rows; across
//! processes sharing the file, SQLite's write lock, which their writes wait
//! for up to the busy timeout. One clock is ticked at `BEGIN`, as for
//! [`Database::transaction`]: every column the transaction changes takes
//! it, and only its committed state ever leaves the replica. Live queries
//! and subscribers hear of its changes once, after the commit.

use crate::db::Database;
use crate::error::{Error, Result};
use crate::events::{ChangeEvent, ChangeOrigin, Registry};
use crate::schema::local::LOCAL_PREFIX;
use crate::shared_store::ExclusiveTurn;
use crate::sql::{app_error, check_params, ids_of_rowids, ExecuteResult};
use crate::store::AppTx;
use crate::value::{Rows, SqlValue, Statement};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An open interactive write transaction of a replica (see the module docs).
/// Dropping it without [`WriteTransaction::commit`] rolls it back.
#[must_use = "a write transaction rolls back unless committed"]
pub struct WriteTransaction {
    /// `None` once it ended.
    open: Option<Open>,
    /// The replica's write counter and listeners, told after the commit.
    writes: Arc<AtomicU64>,
    events: Arc<Registry>,
}

struct Open {
    turn: ExclusiveTurn,
    tx: AppTx,
}

impl std::fmt::Debug for WriteTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTransaction")
            .field("open", &self.open.is_some())
            .field("clock", &self.open.as_ref().map(|o| o.tx.clock()))
            .finish()
    }
}

impl Database {
    /// Opens an interactive write transaction: waits until no other write
    /// transaction of this replica is open, takes the file's write lock
    /// (`BEGIN IMMEDIATE`) and ticks the transaction's clock.
    ///
    /// Errors: [`Error::DatabaseLocked`] when another write transaction of
    /// this replica stayed open past `Config::lock_timeout_ms`, or another
    /// process held the file's write lock past the busy timeout;
    /// [`Error::Storage`].
    pub async fn write_transaction(&self) -> Result<WriteTransaction> {
        let protected = self.protected_names();
        let turn = self.store.exclusive().await?;
        let mut hlc = self.clock.lock().await;
        let ctx = self.app_context(&mut hlc, &protected);
        let tx = turn.begin_app(ctx).map_err(app_error)?;
        drop(hlc);
        Ok(WriteTransaction {
            open: Some(Open { turn, tx }),
            writes: self.writes.clone(),
            events: self.events.clone(),
        })
    }
}

impl WriteTransaction {
    fn open(&mut self) -> Result<&mut Open> {
        self.open.as_mut().ok_or_else(ended)
    }

    /// Runs one statement of the app's SQL (a read or a write, held to the
    /// rules of [`Database::execute`]) inside the transaction; a read sees
    /// the transaction's own writes.
    ///
    /// Errors: [`Error::Sql`]; the failed statement changed nothing and the
    /// transaction stays open, for the app to go on or roll back (unless
    /// SQLite rolled it all back, a full disk say: then every later call
    /// fails saying so).
    pub fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<ExecuteResult> {
        let stmt = Statement::new(sql, params.to_vec());
        check_params(std::slice::from_ref(&stmt))?;
        let open = self.open()?;
        let (rows, rows_affected) = open
            .turn
            .app_statement(&mut open.tx, &stmt)
            .map_err(app_error)?;
        Ok(ExecuteResult {
            rows,
            rows_affected,
        })
    }

    /// [`WriteTransaction::execute`], returning the statement's rows.
    pub fn query(&mut self, sql: &str, params: &[SqlValue]) -> Result<Rows> {
        Ok(self.execute(sql, params)?.rows)
    }

    /// Commits: every change becomes visible at once, to this process and
    /// others, and syncs. Then live queries re-run and subscribers hear of
    /// the changes, once.
    ///
    /// Errors: [`Error::Sql`] when the commit failed or SQLite had rolled
    /// the transaction back already (nothing remains); [`Error::Storage`]
    /// when the file is corrupt, or when the browser's IndexedDB store
    /// failed to save the committed database (the change is in memory only).
    pub async fn commit(mut self) -> Result<()> {
        let Some(Open { turn, tx }) = self.open.take() else {
            return Err(ended());
        };
        let changed = turn.commit_app(tx).map_err(app_error)?;
        // Committed: what follows cannot undo it, so its errors are logged
        // (and listeners told the table changed) rather than returned.
        let mut events = Vec::with_capacity(changed.len());
        for (table, rowids) in &changed {
            let event = match table.strip_prefix(LOCAL_PREFIX) {
                Some(name) => (
                    name.to_owned(),
                    ids_of_rowids(&*turn, table, rowids).await.map_err(|e| {
                        tracing::warn!(error = %e, table = name, "reading the ids of committed rows failed");
                    }),
                ),
                None => (
                    table.clone(),
                    Ok(rowids.iter().map(i64::to_string).collect()),
                ),
            };
            events.push(event);
        }
        let persisted = turn.persisted().await;
        drop(turn);
        for (table, ids) in events {
            self.writes.fetch_add(1, Ordering::SeqCst);
            match ids {
                Ok(ids) => self.events.emit(ChangeEvent {
                    table,
                    ids,
                    origin: ChangeOrigin::Local,
                }),
                Err(()) => self.events.emit_many(&table, ChangeOrigin::Local),
            }
        }
        Ok(persisted?)
    }

    /// Rolls back: nothing the transaction wrote remains. Ending a
    /// transaction that already ended does nothing.
    pub fn rollback(mut self) -> Result<()> {
        self.end()
    }

    fn end(&mut self) -> Result<()> {
        match self.open.take() {
            Some(Open { turn, tx }) => turn.rollback_app(tx).map_err(app_error),
            None => Ok(()),
        }
    }
}

/// The error of a call on a transaction that ended (committed or rolled
/// back): [`Error::Sql`]. Public so that the bindings, which hold a
/// transaction until its end, report it in the same words.
pub fn ended() -> Error {
    Error::Sql {
        message: "the transaction has ended (committed or rolled back)".into(),
    }
}

impl Drop for WriteTransaction {
    fn drop(&mut self) {
        if let Err(e) = self.end() {
            tracing::warn!(error = %e, "rolling back a dropped write transaction failed");
        }
    }
}
