//! The local database behind one trait, [`Store`], an SQL executor: the
//! engine's reads ([`Store::query`]) and write transactions
//! ([`Store::write`], [`Store::write_after_reads`] when the statements
//! depend on reads made inside the transaction), the app's own SQL held to
//! the access rules ([`Store::write_app`], [`Store::query_app`],
//! [`Store::tables_read`] for live queries, and one statement at a time in a
//! transaction the app keeps open: [`Store::begin_app`],
//! [`Store::app_statement`], [`Store::commit_app`],
//! [`Store::rollback_app`]), the lock that keeps syncs of
//! processes sharing a file apart ([`Store::try_lock_sync`]), and durability
//! of the synchronous writes ([`Store::persisted`]). The engine generates
//! all SQL but the app's; a store only executes it, so one conformance
//! suite (`conformance`, every method) holds every implementation to the
//! same behaviour. Imports nothing above values, clocks and the access rules.
//!
//! Implementations: [`sqlite`] (rusqlite; a bundled SQLite file natively,
//! sqlite-wasm-rs in the browser), and in the browser `browser`, which
//! opens it on OPFS or keeps it in memory saved to IndexedDB.

use crate::hlc::Timestamp;
use crate::platform::{SendOutsideWasm, SyncOutsideWasm};
use crate::value::{Rows, Statement};

#[cfg(target_arch = "wasm32")]
pub mod browser;
pub mod error;
pub mod sqlite;

pub use error::{StoreError, StoreErrorKind};

/// Pragmas of a browser database in OPFS (`browser::open_opfs`; see that
/// module's docs for why these). Here, on every target, so the benchmarks
/// can run SQLite's floor in the very same mode. `locking_mode` must come
/// before `journal_mode`: SQLite allows WAL on a VFS without shared memory
/// (the sahpool VFS has none) only in exclusive locking mode
/// (<https://sqlite.org/wal.html#noshm>).
pub const OPFS_PRAGMAS: &[&str] = &[
    "PRAGMA locking_mode = EXCLUSIVE",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA foreign_keys = ON",
];

/// A local SQLite database.
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait Store: SendOutsideWasm + SyncOutsideWasm {
    /// Runs one read-only statement.
    async fn query(&self, stmt: &Statement) -> Result<Rows, StoreError>;

    /// Runs `stmts` in order in one write transaction (`BEGIN IMMEDIATE`):
    /// all of them commit, or none (the first error rolls back and is returned).
    /// Returns each statement's rows (for `RETURNING`).
    async fn write(&self, stmts: &[Statement]) -> Result<Vec<Rows>, StoreError>;

    /// Runs `reads`, then the statements `then` builds from their rows, in
    /// one write transaction (`BEGIN IMMEDIATE`): nothing another process
    /// sharing the file writes can come between the reads and the writes
    /// (it waits for the lock). An error from `then` rolls back and is
    /// returned. Returns the rows of the built statements. Synchronous, as
    /// [`Store::write_app`].
    fn write_after_reads(
        &self,
        reads: &[Statement],
        then: &mut WriteBuilder<'_>,
    ) -> Result<Vec<Rows>, StoreError>;

    /// Runs the app's own SQL (`stmts`, each checked by [`crate::access::check_access`]
    /// when prepared, with the engine's SQL functions bound to the clock
    /// `ctx.clock` returns) and the engine statements `ctx.clock` returned
    /// (unchecked, first), all in one write transaction: `ctx.read` runs
    /// first inside it and its rows go to `ctx.clock`. The first error rolls
    /// everything back and is returned. Synchronous: local statements take
    /// microseconds and run inline, as [`Store::write`] does.
    fn write_app(&self, ctx: AppContext<'_>, stmts: &[Statement]) -> Result<AppWrite, StoreError>;

    /// Opens an interactive app transaction (`BEGIN IMMEDIATE`, waiting up
    /// to the busy timeout for another process's write lock): runs
    /// `ctx.read` and the engine statements `ctx.clock` returns, and leaves
    /// the transaction open for [`Store::app_statement`] until
    /// [`Store::commit_app`] or [`Store::rollback_app`]. While it is open
    /// the connection belongs to it: the caller keeps every other method
    /// from running (`store::shared` does). [`Store::write_app`] is this
    /// with its statements in one call.
    fn begin_app(&self, ctx: AppContext<'_>) -> Result<AppTx, StoreError>;

    /// Runs one app statement (a read or a write, checked as in
    /// [`Store::write_app`]) in the open transaction `tx`; it sees the
    /// transaction's earlier writes. A failed statement undoes itself only
    /// (SQLite's statement journal) and the transaction stays open, unless
    /// SQLite rolled the whole transaction back (a full disk, an I/O error):
    /// then this and every later call on `tx` fail with
    /// [`StoreErrorKind::Other`] saying so. Returns the statement's rows and
    /// how many rows of tables it changed (triggers included).
    fn app_statement(&self, tx: &mut AppTx, stmt: &Statement) -> Result<(Rows, u64), StoreError>;

    /// Commits `tx`. Returns the rows its statements changed: table name
    /// and rowids, in order of the table's first change. On an error the
    /// transaction is rolled back.
    fn commit_app(&self, tx: AppTx) -> Result<Vec<(String, Vec<i64>)>, StoreError>;

    /// Rolls `tx` back: nothing it wrote remains.
    fn rollback_app(&self, tx: AppTx) -> Result<(), StoreError>;

    /// Runs one read-only app statement (checked like [`Store::write_app`]);
    /// a statement that would write is refused. Synchronous, so live queries
    /// re-run inside the commit notification.
    fn query_app(&self, protected: &[String], stmt: &Statement) -> Result<Rows, StoreError>;

    /// The columns a read-only statement reads, as `(table, column)` pairs
    /// in the order of their names, as SQLite's authorizer reports them
    /// while preparing it: a view is reported with the columns the
    /// statement names, and its underlying tables with the columns the
    /// view reads. A statement that writes is refused
    /// ([`StoreErrorKind::NotReadOnly`]).
    fn columns_read(&self, sql: &str) -> Result<Vec<(String, String)>, StoreError>;

    /// Takes the lock that keeps syncs of this database in different
    /// processes apart, without waiting: `Ok(None)` while another process
    /// holds it. A store with one owner (in memory; the browser's OPFS file
    /// behind its Web Lock) always gets a guard that holds nothing.
    fn try_lock_sync(&self) -> Result<Option<SyncGuard>, StoreError> {
        Ok(Some(SyncGuard::single_owner()))
    }

    /// Resolves once every write committed so far is kept where the store
    /// keeps its data. Files and OPFS keep a commit as it happens (at once);
    /// the browser's IndexedDB store saves a database after the synchronous
    /// writes ([`Store::write_after_reads`], [`Store::write_app`]), and this
    /// waits for those saves (an error: a save failed; the change is made
    /// in memory only).
    async fn persisted(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Builds the statements of [`Store::write_after_reads`] from the rows of its reads.
pub type WriteBuilder<'a> = dyn FnMut(Vec<Rows>) -> Result<Vec<Statement>, StoreError> + 'a;

/// Picks an app transaction's clock from the rows of [`AppContext::read`];
/// returns it and the engine statements to run in the transaction.
pub type ClockBuilder<'a> = dyn FnMut(Rows) -> Result<(Timestamp, Vec<Statement>), StoreError> + 'a;

/// What the engine gives a store for app statements.
pub struct AppContext<'a> {
    /// Read first inside the write transaction (the persisted clock).
    pub read: Statement,
    /// From `read`'s rows: the clock of this transaction (every column it
    /// changes takes it, or past a far-future clock that clock + 1; see
    /// `crate::hlc`) and the engine statements to run in the same
    /// transaction (before the app's).
    pub clock: Box<ClockBuilder<'a>>,
    /// Names the app may not change the shape of (synced tables' views).
    pub protected: &'a [String],
}

impl std::fmt::Debug for AppContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppContext")
            .field("read", &self.read)
            .field("protected", &self.protected)
            .finish_non_exhaustive()
    }
}

/// Held while this process syncs a database (see [`Store::try_lock_sync`]);
/// dropping it lets the next process sync.
pub struct SyncGuard {
    _held: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for SyncGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncGuard")
            .field("holds_lock", &self._held.is_some())
            .finish()
    }
}

impl SyncGuard {
    /// A guard that holds nothing: the store has one owner.
    pub fn single_owner() -> SyncGuard {
        SyncGuard { _held: None }
    }

    /// A guard that holds `lock` until it drops.
    pub fn holding(lock: Box<dyn std::any::Any + Send + Sync>) -> SyncGuard {
        SyncGuard { _held: Some(lock) }
    }
}

/// An open interactive app transaction ([`Store::begin_app`]): its clock
/// and the rows its statements changed so far. Must end in
/// [`Store::commit_app`] or [`Store::rollback_app`]; dropped without
/// either, the connection stays inside the transaction.
#[derive(Debug)]
#[must_use = "an app transaction must be committed or rolled back"]
pub struct AppTx {
    clock: Timestamp,
    protected: Vec<String>,
    /// Rows changed by its statements: (table, rowid).
    changes: Vec<(String, i64)>,
    /// Why SQLite ended the transaction on its own, if it did.
    lost: Option<String>,
}

impl AppTx {
    /// The transaction's clock: every column it changes takes it.
    pub fn clock(&self) -> Timestamp {
        self.clock
    }
}

/// Groups (table, rowid) changes by table, in order of the table's first change.
fn group_changes(changes: Vec<(String, i64)>) -> Vec<(String, Vec<i64>)> {
    let mut out: Vec<(String, Vec<i64>)> = Vec::new();
    for (table, rowid) in changes {
        match out.iter_mut().find(|(t, _)| *t == table) {
            Some((_, ids)) => ids.push(rowid),
            None => out.push((table, vec![rowid])),
        }
    }
    out
}

/// What [`Store::write_app`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppWrite {
    /// Per app statement: its rows (a query, or `RETURNING`) and how many
    /// rows of tables it changed (triggers included).
    pub results: Vec<(Rows, u64)>,
    /// Rows changed by the app statements: table name and rowids, in order
    /// of the table's first change.
    pub changed: Vec<(String, Vec<i64>)>,
}

/// The conformance suite every [`Store`] must pass, one named check per
/// behaviour, covering every method of the trait; each store's tests call
/// [`conformance::run`] (native: `store::sqlite`; browser: the wasm worker
/// suite). Built for this crate's tests and with feature `testing`, never
/// into the shipped library.
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
