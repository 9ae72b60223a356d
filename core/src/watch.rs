//! Live queries: [`Database::watch`] runs a read-only statement, then again
//! after every committed change (a local write, a pulled page) to a table
//! it reads, and calls back only when the result differs from the last one
//! it delivered. Re-runs that find a write transaction open wait for its
//! end ([`crate::shared_store`]).
//!
//! Which tables a statement reads comes from SQLite itself: the store
//! prepares it once under an authorizer that records every table read
//! ([`crate::store::Store::tables_read`]); reading a synced table's view
//! reads its engine table, which maps back to the synced name. Re-runs
//! happen on the task that committed the change, right after the commit
//! (local statements take microseconds), after the clock's lock is
//! released, in a shared turn of the store ([`crate::shared_store`]); while
//! a write transaction holds the store, they run after it ends.

use crate::db::Database;
use crate::error::{Error, Result};
use crate::events::{ChangeEvent, Subscription};
use crate::schema::local::LOCAL_PREFIX;
use crate::shared_store::SharedStore;
use crate::value::{Rows, Statement};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Called with the query's rows: once at the start, then on every change.
#[cfg(not(target_arch = "wasm32"))]
pub type RowsListener = Arc<dyn Fn(&Rows) + Send + Sync>;
#[cfg(target_arch = "wasm32")]
pub type RowsListener = Arc<dyn Fn(&Rows)>;

/// A running live query; dropping it (or [`LiveQuery::stop`]) stops it.
/// After `stop` returns, no callback starts.
#[must_use = "a live query stops when this handle is dropped"]
pub struct LiveQuery {
    active: Arc<AtomicBool>,
    tables: Vec<String>,
    _subscription: Subscription,
}

impl std::fmt::Debug for LiveQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveQuery")
            .field("tables", &self.tables)
            .field("active", &self.active.load(Ordering::SeqCst))
            .finish()
    }
}

impl LiveQuery {
    /// The tables whose changes re-run the query (synced tables by name).
    pub fn tables(&self) -> &[String] {
        &self.tables
    }

    /// Stops the query now (same as dropping it).
    pub fn stop(self) {}
}

impl Drop for LiveQuery {
    fn drop(&mut self) {
        self.active.store(false, Ordering::SeqCst);
    }
}

/// The state one live query keeps between re-runs.
struct Watcher {
    store: Arc<SharedStore>,
    protected: Vec<String>,
    stmt: Statement,
    /// The rows last delivered (none yet: the first run waits for a write
    /// transaction); shared with the callback's call rather than copied (a
    /// re-run over 10,000 rows would copy every value).
    last: Mutex<Option<Arc<Rows>>>,
    active: Arc<AtomicBool>,
    callback: RowsListener,
}

impl Watcher {
    /// Re-runs the query and delivers its rows if they differ from the
    /// last ones delivered; while a write transaction holds the replica,
    /// once it ends (its uncommitted rows are never delivered).
    fn on_change(self: &Arc<Self>) {
        if !self.active.load(Ordering::SeqCst) {
            return;
        }
        let Some(turn) = self.store.try_turn() else {
            let again = self.clone();
            self.store.defer(Box::new(move || again.on_change()));
            return;
        };
        let rows = match turn.query_app(&self.protected, &self.stmt) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "live query failed to re-run");
                return;
            }
        };
        drop(turn);
        let rows = {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if last.as_deref() == Some(&rows) {
                return;
            }
            let rows = Arc::new(rows);
            *last = Some(rows.clone());
            rows
        };
        if self.active.load(Ordering::SeqCst) {
            (self.callback)(&rows);
        }
    }
}

impl Database {
    /// Starts a live query: `callback` gets the rows of `sql` now, then
    /// again after each committed change to a table the statement reads,
    /// when the rows differ from the last ones it got. Synchronous: the first
    /// call happens before `watch` returns, unless a write transaction
    /// ([`Database::write_transaction`]) holds the replica: then as soon as
    /// it ends. A live query never sees a transaction's uncommitted rows.
    ///
    /// Errors: [`Error::Sql`] for bad SQL; [`Error::WriteInReadOnlyCall`]
    /// for a statement that writes (when the first run waits for a
    /// transaction, its errors are logged).
    pub fn watch(
        &self,
        sql: &str,
        params: &[crate::value::SqlValue],
        callback: RowsListener,
    ) -> Result<LiveQuery> {
        let sql_error = |e: crate::store::StoreError| match e.kind {
            crate::store::StoreErrorKind::NotReadOnly => Error::WriteInReadOnlyCall {
                call: "watch()".into(),
            },
            _ => Error::Sql { message: e.message },
        };
        let mut tables: Vec<String> = self
            .store
            .unshared()
            .columns_read(sql)
            .map_err(sql_error)?
            .into_iter()
            .filter_map(|(t, _)| match t.strip_prefix(LOCAL_PREFIX) {
                Some(name) => Some(name.to_owned()),
                // The replica's state, which every view reads (whether a
                // first pull's rows show, `TableDef::visible_sql`): what
                // changes there reaches live queries as their tables' events.
                None if t.starts_with("_erth") => None,
                None => Some(t),
            })
            .collect();
        // A view and its engine table both report reads, a read a column.
        tables.sort();
        tables.dedup();
        let protected = self.protected_names();
        let stmt = Statement::new(sql, params.to_vec());
        // The first run, now unless a write transaction holds the replica.
        let first = match self.store.try_turn() {
            Some(turn) => Some(Arc::new(
                turn.query_app(&protected, &stmt).map_err(sql_error)?,
            )),
            None => None,
        };
        let active = Arc::new(AtomicBool::new(true));
        let watcher = Arc::new(Watcher {
            store: self.store.clone(),
            protected,
            stmt,
            last: Mutex::new(first.clone()),
            active: active.clone(),
            callback: callback.clone(),
        });
        if let Some(first) = &first {
            callback(first);
        }
        let watched = tables.clone();
        let listener = watcher.clone();
        let subscription = self.subscribe(Arc::new(move |ev: &ChangeEvent| {
            if watched.iter().any(|t| t.eq_ignore_ascii_case(&ev.table)) {
                listener.on_change();
            }
        }));
        // A write committed by another task between the first run and the
        // subscription sent its event to nobody: run once more now that
        // every later change is heard (delivered only if the rows differ).
        watcher.on_change();
        Ok(LiveQuery {
            active,
            tables,
            _subscription: subscription,
        })
    }
}
