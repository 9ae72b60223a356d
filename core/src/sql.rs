//! The app's plain SQL on the local replica: [`Database::execute`],
//! [`Database::query`] and [`Database::transaction`], and the access rules
//! every app statement is held to while SQLite prepares it
//! ([`crate::access::check_access`], called from the store's authorizer).
//!
//! A synced table's name is a view of its live rows
//! ([`crate::schema::local`]); writes to it go through `INSTEAD OF`
//! triggers that clock every changed column and mark the row pending. The
//! engine ticks the hybrid clock once per call (one clock per transaction:
//! only the committed state of a row ever leaves the replica) inside the
//! write transaction, after catching up with the clock persisted in the
//! file (another process may share it), binds it to the triggers'
//! functions, and persists it in the same transaction.
//!
//! Refused (typed [`Error::Sql`], nothing changes): DDL on a synced table's
//! view or on the engine's objects (`_erth_*`), writes to the engine's
//! tables, `ATTACH`/`DETACH`, transaction control (`BEGIN`, `SAVEPOINT`:
//! the engine owns transactions), `PRAGMA`s that change settings, and calls
//! of the engine's functions outside its triggers. Everything else — local
//! tables of the app's own, views, indexes on them — is plain SQLite.

use crate::db::Database;
use crate::error::{Error, LockHolder, Result};
use crate::schema::local::LOCAL_PREFIX;
use crate::schema::q;
use crate::state;
use crate::store::{AppContext, Store, StoreError, StoreErrorKind};
use crate::value::{Rows, SqlValue, Statement};

/// One statement's outcome.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[cfg_attr(
    feature = "js",
    derive(serde::Serialize, tsify::Tsify),
    serde(rename_all = "camelCase")
)]
pub struct ExecuteResult {
    /// Rows the statement returned (a query, or `RETURNING` on a local table).
    #[cfg_attr(feature = "js", tsify(type = "Row[]"))]
    pub rows: Rows,
    /// Rows it inserted, updated or deleted, in synced tables (through
    /// their views) and local ones.
    pub rows_affected: u64,
}

/// The error of an app statement: SQLite's or the engine's message.
pub(crate) fn app_error(e: StoreError) -> Error {
    match e.kind {
        StoreErrorKind::Locked => Error::DatabaseLocked(LockHolder::other()),
        StoreErrorKind::NotReadOnly => Error::WriteInReadOnlyCall {
            call: "query()".into(),
        },
        StoreErrorKind::Corrupt => Error::Storage(e),
        StoreErrorKind::WrongKey => Error::WrongFileKey { reason: e.message },
        // SQLite names the engine table (`NOT NULL constraint failed:
        // _erth_rows_items.list_id`); the app knows the table as `items`.
        StoreErrorKind::Refused => Error::Sql { message: e.message },
        _ => Error::Sql {
            message: e.message.replace(LOCAL_PREFIX, ""),
        },
    }
}

/// Refuses parameters SQLite would silently store as something else (a NaN
/// becomes NULL), as rows from the server are refused.
pub(crate) fn check_params(stmts: &[Statement]) -> Result<()> {
    for stmt in stmts {
        for (i, arg) in stmt.args.iter().enumerate() {
            if let SqlValue::Real(r) = arg {
                if !r.is_finite() {
                    return Err(Error::Sql {
                        message: format!(
                            "parameter {} is {r}: only finite numbers are stored",
                            i + 1
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

impl Database {
    /// The synced tables' names: views the app may not restructure.
    pub(crate) fn protected_names(&self) -> Vec<String> {
        self.config.tables.iter().map(|t| t.name.clone()).collect()
    }

    /// Runs one statement of the app's SQL with positional parameters (`?`,
    /// `?NNN`) on the local replica, as its own transaction. Writes to a
    /// synced table (through its name) become local changes that sync.
    ///
    /// Errors: [`Error::Sql`] with SQLite's or the engine's message (syntax,
    /// constraint, wrong parameter count, a refused statement; see the
    /// module docs) — nothing is changed; [`Error::DatabaseLocked`].
    pub async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<ExecuteResult> {
        let mut out = self
            .transaction(&[Statement::new(sql, params.to_vec())])
            .await?;
        Ok(out.pop().unwrap_or_default())
    }

    /// The context the store runs the app's statements in: the clock is
    /// taken inside the write transaction, after catching up with the one
    /// another process sharing the file persisted, and persisted with it;
    /// `protected` are the names the app may not change the shape of. Used
    /// by [`Database::transaction`] and [`Database::write_transaction`].
    pub(crate) fn app_context<'a>(
        &'a self,
        hlc: &'a mut crate::hlc::HybridClock,
        protected: &'a [String],
    ) -> AppContext<'a> {
        AppContext {
            read: state::get(state::KEY_HLC),
            clock: Box::new(move |rows| {
                hlc.catch_up(state::persisted_clock(&rows));
                let clock = hlc.tick(self.now_ms());
                Ok((clock, vec![state::persist_clock(hlc)]))
            }),
            protected,
        }
    }

    /// Runs `stmts` as one local transaction: all of them commit, or none
    /// (the first error rolls back and is returned). Live queries and
    /// subscribers hear of the changes once, after the commit.
    pub async fn transaction(&self, stmts: &[Statement]) -> Result<Vec<ExecuteResult>> {
        check_params(stmts)?;
        let protected = self.protected_names();
        // A turn, then the clock: every holder of both takes them in this
        // order (an interactive transaction holds the turn, then ticks).
        let turn = self.store.turn().await?;
        let mut hlc = self.clock.lock().await;
        let ctx = self.app_context(&mut hlc, &protected);
        let out = turn.write_app(ctx, stmts).map_err(app_error)?;
        drop(hlc);
        let mut changed = Vec::with_capacity(out.changed.len());
        for (table, rowids) in &out.changed {
            changed.push(match table.strip_prefix(LOCAL_PREFIX) {
                Some(name) => (name.to_owned(), ids_of_rowids(&*turn, table, rowids).await?),
                None => (table.clone(), rowids.iter().map(i64::to_string).collect()),
            });
        }
        drop(turn);
        self.store.persisted().await?;
        for (name, ids) in changed {
            self.after_local_write(&name, ids);
        }
        Ok(out
            .results
            .into_iter()
            .map(|(rows, rows_affected)| ExecuteResult {
                rows,
                rows_affected,
            })
            .collect())
    }

    /// Runs one read-only statement of the app's SQL on the local replica.
    ///
    /// Errors: [`Error::Sql`]; [`Error::WriteInReadOnlyCall`] for a
    /// statement that would write (use [`Database::execute`]).
    pub async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Rows> {
        let stmt = Statement::new(sql, params.to_vec());
        let turn = self.store.turn().await?;
        turn.query_app(&self.protected_names(), &stmt)
            .map_err(app_error)
    }
}

/// The ids of rows of an engine table, by rowid (rows are never
/// physically deleted, so a rowid keeps its row), each once. Runs of
/// consecutive rowids (a bulk insert's) are read by range scans, first,
/// then the others 500 at a time by `IN`, each in rowid order.
pub(crate) async fn ids_of_rowids(
    store: &dyn Store,
    table: &str,
    rowids: &[i64],
) -> Result<Vec<String>> {
    let (ranges, singles) = rowid_runs(rowids);
    let mut statements = Vec::new();
    for (first, last) in ranges {
        statements.push(Statement::new(
            format!(
                "SELECT \"id\" FROM {} WHERE \"rowid\" BETWEEN ? AND ? ORDER BY \"rowid\"",
                q(table)
            ),
            vec![SqlValue::Integer(first), SqlValue::Integer(last)],
        ));
    }
    for chunk in singles.chunks(500) {
        statements.push(Statement::new(
            format!(
                "SELECT \"id\" FROM {} WHERE \"rowid\" IN ({}) ORDER BY \"rowid\"",
                q(table),
                vec!["?"; chunk.len()].join(", ")
            ),
            chunk.iter().map(|r| SqlValue::Integer(*r)).collect(),
        ));
    }
    let mut ids = Vec::with_capacity(rowids.len());
    for stmt in &statements {
        let rows = store.query(stmt).await?;
        ids.extend(
            rows.rows
                .into_iter()
                .filter_map(|r| r.into_iter().next())
                .filter_map(|v| match v {
                    SqlValue::Text(t) => Some(t),
                    _ => None,
                }),
        );
    }
    Ok(ids)
}

/// Splits rowids (in any order, repeats allowed) into runs of at least
/// [`MIN_RUN`] consecutive rowids, as `(first, last)`, and the rest, each
/// sorted and without repeats.
fn rowid_runs(rowids: &[i64]) -> (Vec<(i64, i64)>, Vec<i64>) {
    let mut sorted = rowids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let (mut ranges, mut singles) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        if j + 1 - i >= MIN_RUN {
            ranges.push((sorted[i], sorted[j]));
        } else {
            singles.extend_from_slice(&sorted[i..=j]);
        }
        i = j + 1;
    }
    (ranges, singles)
}

/// Consecutive rowids worth one range scan of their own.
const MIN_RUN: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn rowids_split_into_runs_and_singles() {
        assert_eq!(rowid_runs(&[]), (vec![], vec![]));
        let bulk: Vec<i64> = (100..110).rev().collect();
        assert_eq!(rowid_runs(&bulk), (vec![(100, 109)], vec![]));
        // Repeats (a row changed twice) count once; short runs stay singles.
        let mixed = [5, 3, 4, 3, 50, 20, 21, 22, 23, 24, 25, 26, 27, 28, 1];
        assert_eq!(rowid_runs(&mixed), (vec![(20, 28)], vec![1, 3, 4, 5, 50]));
        let edge: Vec<i64> = (i64::MAX - 9..=i64::MAX).collect();
        assert_eq!(rowid_runs(&edge), (vec![(i64::MAX - 9, i64::MAX)], vec![]));
    }
}
