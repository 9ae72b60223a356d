//! The sync engine: bootstrap the server schema, push pending changes, pull
//! remote changes by cursor, apply them through the merge rules. It runs on
//! a `Syncer`, which borrows what one sync needs (store, remote, config,
//! clocks, events); [`crate::Database::sync`] builds one per sync and keeps
//! the replica-wide concerns (coalescing overlapping calls, the lock across
//! processes, the status).
//!
//! - `bootstrap`: creates or migrates the server tables (read first, so a
//!   read-only token can pull), notices a new or reset server.
//! - `restored`: a server restored from a backup (it forgot rows this
//!   replica saw) is noticed at the start of each sync; the replica then
//!   pushes everything again and pulls from the start.
//! - `purged`: a purge removed tombstones this replica has not pulled
//!   (the server's purge mark passed what it caught up with): it compares
//!   the ids it holds with the server's and drops the purged ones before
//!   it pushes; every push carries a guard that rolls it back if a purge
//!   overtook that check ([`crate::purge`] is the server's side).
//! - `push`: pending rows, table after table and in id order within each
//!   (`pending`; rows of several tables share a batch when they fit), in
//!   batches of at most the link's push budget and `push_batch_rows` rows;
//!   each batch is one Hrana request and one server transaction
//!   (`BEGIN IMMEDIATE`, multi-row merge upserts taking fresh `_seq` values
//!   from the counter read once per statement, bump of `_erth_meta.seq`, a
//!   read-back of the counter and the newest row, `COMMIT` only if all
//!   succeeded). Batches are pipelined: the next one is read and encoded
//!   while one runs on the server, and sent when its answer is back.
//!   Afterwards `_dirty` is cleared only where it still equals the pushed
//!   value, so edits made during the push stay pending. A push whose answer
//!   was lost is retried; the merge makes the repeat a no-op. A transaction
//!   the server rolled back for contention ([`crate::Error::is_contention`])
//!   is run again with backoff and jitter, so it lands exactly once. A
//!   batch the server refuses because of its rows
//!   ([`crate::Error::is_row_refusal`]) is narrowed down until the refused
//!   rows stand alone; they are set aside (`refused`) and everything else
//!   lands in the same sync. A table the server refuses as a whole keeps
//!   its changes pending and is reported in `status().refused_tables`.
//! - `pull`: keyset pages `WHERE _seq > cursor ORDER BY _seq`, sized in
//!   bytes by size probes (`pull_sql`) and the planner (`plan`); the
//!   next page is requested before the current one is merged, so the
//!   server builds it meanwhile. Each page is validated whole, then merged
//!   into the stage (`stage`, `_erth_stage_<table>`) in one local
//!   transaction together with the new cursor and clock, so a crash never
//!   loses or double-applies a page; once every table has caught up,
//!   everything staged is applied to the engine tables in one local
//!   transaction, so another device's transaction is seen whole. A
//!   table's first pull writes its pages straight into the engine table
//!   instead, the rows hidden from the app until that apply, which then
//!   only releases them (`stage`). Also:
//!   backfills of columns this replica added after pulling rows, and the
//!   server's columns this replica does not declare (never selected or
//!   written; reported).
//! - **Echo skip**: when a push's sequence numbers directly follow the
//!   replica's cursor, the cursor jumps over them: those rows are what the
//!   replica just sent, merged with what it had already pulled.
//! - **Tombstones hold no data**: a pulled tombstone that still holds user
//!   data (an earlier release wrote it) is cleared by the merge and marked
//!   pending, and the same sync pushes it back, which clears it on the
//!   server.

mod bootstrap;
mod large_row;
mod opening;
mod pending;
mod plan;
mod pull;
mod pull_sql;
pub(crate) mod purged;
mod push;
mod push_tx;
pub(crate) mod refused;
mod restored;
mod sealed;
mod stage;
mod subscribed;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::Registry;
use crate::hlc::ReplicaClock;
use crate::hrana::HranaClient;
use crate::schema::TableDef;
use crate::shared_store::SharedStore;
use crate::state;
use crate::status::{refusals_from_text, refusals_text, SyncProgress, TableRefusal};
use crate::subscription::Filter;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

pub(crate) use plan::Budgets;

/// The server side of a replica: its client and what the engine learned
/// about the link, kept across syncs.
#[derive(Debug)]
pub(crate) struct Remote {
    pub(crate) client: HranaClient,
    /// The server's schema was checked (or created) in this session.
    pub(crate) bootstrapped: AtomicBool,
    /// Byte budgets of a pull page and a push batch, adapted to the link.
    pub(crate) budgets: Budgets,
    /// The column keys were checked against the server's sealed values
    /// in this session (`sealed`).
    pub(crate) keys_checked: AtomicBool,
}

impl Remote {
    pub(crate) fn new(client: HranaClient) -> Remote {
        Remote {
            client,
            bootstrapped: AtomicBool::new(false),
            budgets: Budgets::default(),
            keys_checked: AtomicBool::new(false),
        }
    }
}

/// What a sync learned besides its counts, for `status()`; kept even when
/// the sync fails later.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// How far ahead of local time a pulled clock was, past the drift bound.
    pub(crate) clock_ahead_ms: Option<u64>,
    /// Per table whose first page was asked: the server's columns this
    /// replica does not declare.
    pub(crate) unknown_columns: Vec<(String, Vec<String>)>,
    /// The tables the server refused, once the push phase completed.
    pub(crate) refused_tables: Option<Vec<TableRefusal>>,
    /// The replica started over (a new, reset or restored server).
    pub(crate) started_over: bool,
    /// Pulled tombstones that still held user data were marked pending.
    uncleared: bool,
    /// Whether the server took a write of no row of the app's, once asked
    /// in this sync (see `push`).
    server_takes_writes: Option<bool>,
}

/// One sync's view of a replica: everything it borrows, nothing it owns
/// but what it found.
pub(crate) struct Syncer<'a> {
    pub(crate) store: &'a SharedStore,
    pub(crate) remote: &'a Remote,
    pub(crate) config: &'a Config,
    pub(crate) clock: &'a ReplicaClock,
    pub(crate) events: &'a Registry,
    pub(crate) progress: &'a (dyn Fn(SyncProgress) + Sync),
    found: Mutex<Found>,
    /// Each partial table's share in this sync (`subscribed`).
    shares: Mutex<HashMap<String, Filter>>,
    /// Per table, the purge mark above which a push stops (`purged`).
    floors: Mutex<HashMap<String, i64>>,
    /// The server database's id, for sealed values (`sealed`).
    server_db: Mutex<String>,
}

impl<'a> Syncer<'a> {
    pub(crate) fn new(
        store: &'a SharedStore,
        remote: &'a Remote,
        config: &'a Config,
        clock: &'a ReplicaClock,
        events: &'a Registry,
        progress: &'a (dyn Fn(SyncProgress) + Sync),
    ) -> Syncer<'a> {
        Syncer {
            store,
            remote,
            config,
            clock,
            events,
            progress,
            found: Mutex::new(Found::default()),
            shares: Mutex::new(HashMap::new()),
            floors: Mutex::new(HashMap::new()),
            server_db: Mutex::new(String::new()),
        }
    }

    /// What this sync found so far (see [`Found`]).
    pub(crate) fn into_found(self) -> Found {
        self.found.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    fn found(&self) -> std::sync::MutexGuard<'_, Found> {
        self.found.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The purge floors of this sync's pushes (see `purged::guard`).
    fn floors(&self) -> HashMap<String, i64> {
        self.floors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One sync: bootstrap, the restore check (reading the purge marks too)
    /// and catching up with purges, push every table, pull every
    /// table (partial ones by their subscriptions, `subscribed`), and push
    /// again the tombstones the pull cleared. Returns
    /// `(pushed, pulled)` rows.
    pub(crate) async fn run(&self) -> Result<(u64, u64)> {
        self.bootstrap().await?;
        self.load_server_db().await?;
        self.check_keys().await?;
        if let Some((marks, restored)) = self.recover_if_server_forgot().await? {
            self.catch_up_purges(&marks, restored).await?;
        }
        let first = self.push_caught_up().await?;
        let mut pushed = first.total();
        let mut refused = first.refused;
        self.prepare_shares().await?;
        // Tables pull independently: one this token may not read is
        // reported and skipped, the others pull.
        let tables: Vec<&TableDef> = self.config.tables.iter().collect();
        let (mut pulled, unreadable, together) = self.pull_tables(&tables).await?;
        let skip: Vec<String> = unreadable.iter().map(|r| r.table.clone()).collect();
        for refusal in unreadable {
            tracing::warn!(table = %refusal.table, code = %refusal.code, "the server refuses reading this table; it is not pulled");
            refused.push(refusal);
        }
        self.record_refusals(refused).await?;
        // What was pulled becomes visible at once, as the server held it.
        pulled += self.settle_pull(&skip, !together).await?;
        self.finish_shares(&skip).await?;
        // Pulled tombstones that still held user data were cleared here and
        // marked pending: clear them on the server in this sync too. (A
        // table refused now was refused, and recorded, above.)
        if std::mem::take(&mut self.found().uncleared) {
            pushed += self.push_caught_up().await?.total();
        }
        Ok((pushed, pulled))
    }

    /// [`Syncer::push_all`] behind the purge guard: a push that met it (the
    /// server purged history this replica has not seen) catches up
    /// (`purged`) and pushes again, up to [`purged::MAX_CATCH_UPS`] times.
    async fn push_caught_up(&self) -> Result<push::Pushed> {
        let mut times = 0;
        loop {
            let floors = self.purge_floors().await?;
            *self.floors.lock().unwrap_or_else(|p| p.into_inner()) = floors;
            match self.push_all().await {
                Err(Error::PurgedDuringSync { .. }) if times < purged::MAX_CATCH_UPS => {
                    times += 1;
                    tracing::debug!(times, "a push met the purge guard; catching up");
                    self.check_purges().await?;
                }
                Err(Error::PurgedDuringSync { .. }) => {
                    return Err(Error::PurgedDuringSync { times: times + 1 })
                }
                other => return other,
            }
        }
    }

    /// Keeps the tables the server refused in the file (so `status()` says
    /// why after a reopen too), when they changed.
    async fn record_refusals(&self, refused: Vec<TableRefusal>) -> Result<()> {
        let kv = state::read_state(self.store).await?;
        let known = kv
            .get(state::KEY_REFUSED_TABLES)
            .map(|v| refusals_from_text(v))
            .unwrap_or_default();
        if known != refused {
            self.store
                .write(&[if refused.is_empty() {
                    state::delete(state::KEY_REFUSED_TABLES)
                } else {
                    state::set(state::KEY_REFUSED_TABLES, refusals_text(&refused))
                }])
                .await?;
        }
        self.found().refused_tables = Some(refused);
        Ok(())
    }

    /// The pull cursor of `table` (0 before its first pull).
    async fn cursor(&self, table: &str) -> Result<i64> {
        let kv = state::read_state(self.store).await?;
        Ok(kv
            .get(&state::cursor_key(table))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }
}

/// The refusal of reading a whole table in a pull's error: the server's
/// authorizer (`SQLITE_AUTH`, a token restricted per table and action).
fn read_refusal(table: &str, error: &Error) -> Option<TableRefusal> {
    match error {
        Error::Server { code, message } if error.is_table_refusal() => Some(TableRefusal {
            table: table.to_owned(),
            code: code.clone(),
            message: format!(
                "the server refused reading this table: {}",
                crate::error::clip(message, 400)
            ),
        }),
        _ => None,
    }
}

/// The output of a request sent ahead (polled once already), once it arrived.
async fn arrived<F: std::future::Future + Unpin>(
    mut request: futures::future::MaybeDone<F>,
) -> Result<F::Output> {
    (&mut request).await;
    std::pin::Pin::new(&mut request)
        .take_output()
        .ok_or_else(|| Error::Protocol("a request sent ahead gave no answer".into()))
}
