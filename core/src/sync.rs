//! The sync engine: bootstrap the server schema, push pending changes, pull
//! remote changes by cursor, apply them through the merge rules.
//!
//! - **Push**: dirty rows in id order, in batches; each batch is one Hrana
//!   request and one server transaction (`BEGIN IMMEDIATE`, multi-row merge
//!   upserts taking fresh `_seq` values from the counter read once per
//!   statement, bump of `_erth_meta.seq`, a read-back of the counter and
//!   the newest row, `COMMIT` only if all succeeded). Batches are
//!   pipelined: the next one is read and encoded while one runs on the
//!   server, and sent when its answer is back. Afterwards `_dirty` is cleared only where it
//!   still equals the pushed value, so edits made during the push stay
//!   pending. A push whose answer was lost is retried; the merge makes the
//!   repeat a no-op. A transaction the server rolled back for contention
//!   (busy, locked, an MVCC commit conflict: [`Error::is_contention`]) is
//!   run again with backoff and jitter, so it lands exactly once.
//! - **Refused rows**: a batch the server refuses because of its rows
//!   ([`Error::is_row_refusal`]) is narrowed down — to the refused
//!   statement's chunk when the answer names it, else by halves — until
//!   the refused rows stand alone; they are set aside with the server's code
//!   and message ([`crate::rejected`]) and everything else lands in the same
//!   sync (a row costs at most about 2·log2(batch) extra requests). A table
//!   the server refuses as a whole (`SQLITE_AUTH`, or HTTP 403 for a
//!   read-only token) keeps its changes pending and is reported in
//!   `status().refused_tables`; the other tables sync.
//! - **Pull**: keyset pages `WHERE _seq > cursor ORDER BY _seq`, sized in
//!   bytes: a probe lists the next rows' `_seq` and approximate size (up to
//!   `pull_page_rows` of them), and each page asks for the `_seq` range that
//!   fits the link's budget (at least one row, so every sync progresses for
//!   any row size the engine accepts). The server builds pages and probes as
//!   one JSON cell where that is exact ([`crate::page`]); the page that
//!   empties the plan carries the next probe in the same request, a cheap
//!   aggregate one (count, total size and last `_seq` of the rows that
//!   should fit, listed row by row only when they do not), and the next
//!   page is requested before the current one is merged, so the server
//!   builds it meanwhile. Each page is validated whole, then merged in one
//!   local transaction together with the new cursor and clock, so a crash
//!   never loses or double-applies a page.
//! - **Slow links**: the page budget follows what the link delivers (a page
//!   slower than [`TARGET_PAGE_MS`] shrinks it in proportion, a fast one
//!   doubles it); a page or push batch that times out is asked again at
//!   half its size instead of being resent as it was, and pages never grow
//!   back to a size that timed out. Budgets live with the remote, across
//!   syncs.
//! - **Echo skip**: when a push's sequence numbers directly follow the
//!   replica's cursor, the cursor jumps over them: those rows are what the
//!   replica just sent, merged with what it had already pulled.
//! - **Backfill**: a column this replica added after pulling rows is filled
//!   in by pulling again only the rows up to the upgrade's cursor whose new
//!   column carries a clock (see [`crate::migrate`]).
//! - **Unknown columns**: columns of the server's tables this replica does
//!   not declare are never selected or written (pushes list only declared
//!   columns, so an upsert leaves the others alone); `status()` lists them.
//! - **Tombstones hold no data** (merge rule 5): a pulled tombstone that
//!   still holds user data (an earlier release wrote it) is cleared by the
//!   merge and marked pending, and the same sync pushes it back, which
//!   clears it on the server.
//! - **Server identity**: the server keeps a random `db_id`; when it changes
//!   (a new URL, a reset server) the replica re-pushes everything and pulls
//!   from the start. A server restored from a backup keeps its `db_id`:
//!   [`crate::restored`] notices it at the start of each sync and recovers
//!   the same way.
//! - `sync()` calls that overlap coalesce: a caller that waited for a
//!   running sync reuses its report if that sync already saw all of the
//!   caller's writes. A sync in another process sharing the replica file
//!   is waited for (the store's sync lock), up to `sync_lock_timeout_ms`.

use crate::db::{persist_clock, read_state, Database, Remote, SyncProgress, SyncReport};
use crate::error::{Error, Result};
use crate::events::{ChangeEvent, ChangeOrigin};
use crate::hlc::Observed;
use crate::hrana::{self, Step};
use crate::merge::{self, Target, META_TABLE};
use crate::migrate::Backfill;
use crate::rejected::{self, TableRefusal};
use crate::row::SyncRow;
use crate::schema::{q, TableDef, ZERO_CLOCK};
use crate::state;
use crate::value::{SqlValue, Statement};
use std::sync::atomic::Ordering;

/// How often a sync waiting for another process's sync checks again (ms).
const SYNC_LOCK_POLL_MS: u64 = 25;

/// Approximate request body of one push batch at first; halved (down to
/// [`MIN_BATCH_BYTES`]) when a push times out, for the link's later syncs.
pub(crate) const PUSH_BATCH_BYTES: usize = 4_000_000;
/// Answer size of one pull page at first; adapted to the link (see the
/// module docs) between [`MIN_BATCH_BYTES`] and [`MAX_PAGE_BYTES`]. 4 MB
/// holds 10,000 `todos` rows as a JSON page (2.1 MB) with room to spare,
/// so a fresh device gets them in one page; a link slower than 1 MB/s
/// shrinks it after the first page (see `next_page_budget`).
pub(crate) const PULL_PAGE_BYTES: usize = 4_000_000;
/// sqld refuses answers over 10 MB (`RESPONSE_TOO_LARGE`); JSON adds to the
/// row bytes counted here.
pub(crate) const MAX_PAGE_BYTES: usize = 6_000_000;
const MIN_BATCH_BYTES: usize = 64 * 1024;
/// A page should arrive within this many ms: a slower one shrinks the
/// budget in proportion, one four times faster doubles it.
const TARGET_PAGE_MS: u64 = 4_000;

/// The output of a request sent ahead (polled once already), once it arrived.
async fn arrived<F: std::future::Future + Unpin>(
    mut request: futures::future::MaybeDone<F>,
) -> Result<F::Output> {
    (&mut request).await;
    std::pin::Pin::new(&mut request)
        .take_output()
        .ok_or_else(|| Error::Protocol("a request sent ahead gave no answer".into()))
}

/// A push transaction encoded, not yet sent ([`Database::prepare_push`]).
struct PreparedPush {
    batch: hrana::PreparedBatch,
    merges: usize,
    commit: usize,
}

/// A batch sent ahead by `push_table`, with what its request gave.
type Landed = (Vec<(SyncRow, i64)>, Result<SentBatch, PushFailure>);

/// A push transaction's answer, not yet read ([`Database::finish_batch`]).
struct SentBatch {
    out: hrana::BatchOutcome,
    /// How many merge statements follow `BEGIN`.
    merges: usize,
    /// The step of `COMMIT`.
    commit: usize,
}

/// Why a push of some rows did not land.
struct PushFailure {
    error: Error,
    /// Which merge statement (chunk of `rows_per_statement` rows) the
    /// server refused, when its answer says so.
    chunk: Option<usize>,
}

impl From<Error> for PushFailure {
    fn from(error: Error) -> Self {
        PushFailure { error, chunk: None }
    }
}

/// What pushing a table ended with.
enum Pushed {
    Rows(u64),
    /// The server refused the table itself (after `u64` rows went through).
    TableRefused(u64, TableRefusal),
}

fn meta_bootstrap() -> Vec<Statement> {
    vec![
        Statement::plain(format!(
            "CREATE TABLE IF NOT EXISTS {} (\"k\" TEXT PRIMARY KEY NOT NULL, \"v\" INTEGER NOT NULL)",
            q(META_TABLE)
        )),
        Statement::new(
            format!("INSERT INTO {} (\"k\", \"v\") VALUES ('seq', 0), ('schema_version', 1), ('db_id', ?) ON CONFLICT (\"k\") DO NOTHING", q(META_TABLE)),
            vec![SqlValue::Integer((crate::ids::new_uuid().as_u128() as i64) & i64::MAX)],
        ),
    ]
}

/// Which rows of a server table a pull asks for: `_seq` in `(after, upto]`,
/// and when `clocked` is not empty, only rows where one of those columns
/// carries a clock (a backfill).
struct PullRange {
    after: i64,
    upto: Option<i64>,
    clocked: Vec<String>,
    /// Read the server table's columns with the first page (same request),
    /// to report the ones this replica does not know.
    probe_columns: bool,
}

/// Rows of a pull's plan: one row, or (from an aggregate size probe) `rows`
/// rows ending at `_seq` `seq`, about `bytes` long in all.
#[derive(Debug, Clone, Copy)]
struct Planned {
    seq: i64,
    bytes: usize,
    rows: usize,
}

/// One pull page to ask for: the first `take` entries of the plan, up to
/// `_seq` `upto`, about `bytes` long, asked with page budget `budget`.
#[derive(Debug, Clone, Copy)]
struct PageAsk {
    take: usize,
    upto: i64,
    bytes: usize,
    budget: usize,
    /// The request also asks how many of the next this-many rows there are
    /// and how big they are (an aggregate probe).
    probe_next: Option<usize>,
}

/// SQL for the approximate size in bytes of a server row in a page: its
/// user values plus a fixed share for the id, flags, timestamps and clocks,
/// which depends on the page's encoding ([`crate::page`]): as one JSON
/// cell, about 38 bytes per clock (a 33-character text) and 80 for the id,
/// flags and `_seq`; as Hrana value objects about 60 per cell. (Measured on
/// tursodb for the built-in `todos`: 208 and 463 bytes a row, estimated 212
/// and 430.)
fn row_bytes_sql(def: &TableDef, json: bool) -> String {
    let n = def.columns.len();
    let overhead = if json {
        82 + 38 * (n + 1) + 3 * n
    } else {
        60 * (n + 1 + 4)
    };
    let mut parts = vec![overhead.to_string()];
    parts.extend(
        def.columns
            .iter()
            .map(|c| format!("coalesce(length({}), 0)", q(&c.name))),
    );
    parts.join(" + ")
}

/// The next page budget after a page of `page_bytes` (asked with `budget`)
/// arrived in `elapsed_ms`: slower than [`TARGET_PAGE_MS`], in proportion
/// to what the link delivered; four times faster with at least half the
/// budget used, double; else the same. Within
/// [`MIN_BATCH_BYTES`]..=[`MAX_PAGE_BYTES`] (the caller also keeps it under
/// the link's ceiling).
fn next_page_budget(budget: usize, page_bytes: usize, elapsed_ms: u64) -> usize {
    let next = if elapsed_ms > TARGET_PAGE_MS {
        (page_bytes as u128 * TARGET_PAGE_MS as u128 / elapsed_ms as u128) as usize
    } else if elapsed_ms * 4 < TARGET_PAGE_MS && page_bytes * 2 > budget {
        budget.saturating_mul(2)
    } else {
        budget
    };
    next.clamp(MIN_BATCH_BYTES, MAX_PAGE_BYTES)
}

/// The refusal of a whole table in a push's error: the server's authorizer
/// (`SQLITE_AUTH`, a token restricted per table), or HTTP 403 (sqld: a
/// read-only token writing; TOOLCHAIN.md). 401 (a missing or bad token) is
/// not: it fails the sync.
fn table_refusal(table: &str, error: &Error) -> Option<TableRefusal> {
    match error {
        Error::Auth { status: 403 } => Some(TableRefusal {
            table: table.to_owned(),
            code: "HTTP 403".into(),
            message: "the server answered HTTP 403: this token may not write (read-only)".into(),
        }),
        Error::Server { code, message } if error.is_table_refusal() => Some(TableRefusal {
            table: table.to_owned(),
            code: code.clone(),
            message: crate::error::clip(message, 500),
        }),
        _ => None,
    }
}

/// The `db_id` in the rows of `SELECT k, v FROM _erth_meta`.
fn db_id_of(meta: &crate::value::Rows) -> Option<i64> {
    meta.rows
        .iter()
        .find(|r| r.first().and_then(SqlValue::as_str) == Some("db_id"))
        .and_then(|r| r.get(1).and_then(SqlValue::as_i64))
}

fn invalid_row(table: &str, reason: impl Into<String>) -> Error {
    Error::InvalidRemoteRow {
        table: table.to_owned(),
        reason: reason.into(),
    }
}

impl Database {
    /// Pushes local changes, then pulls remote ones.
    pub async fn sync(&self) -> Result<SyncReport> {
        self.sync_with_progress(&|_| {}).await
    }

    /// [`Database::sync`], reporting progress after every batch and page.
    pub async fn sync_with_progress(
        &self,
        progress: &(dyn Fn(SyncProgress) + Sync),
    ) -> Result<SyncReport> {
        self.check_online()?;
        let remote = self.remote_handle().ok_or(Error::NoRemote)?;
        let writes_at_call = self.writes.load(Ordering::SeqCst);
        let done_at_call = self.syncs_done.load(Ordering::SeqCst);
        let _guard = self.sync_lock.lock().await;
        if self.syncs_done.load(Ordering::SeqCst) > done_at_call {
            let last = *self.last_sync.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((writes_seen, _, report)) = last {
                if writes_seen >= writes_at_call {
                    return Ok(report);
                }
            }
        }
        // Another process sharing the file may be syncing it: wait for it.
        let _other_processes = self.lock_sync_across_processes().await?;
        let writes_at_start = self.writes.load(Ordering::SeqCst);
        self.set_syncing(true);
        let started = self.now_ms();
        let result = self.sync_once(&remote, progress).await;
        let finished = self.now_ms();
        let result = match result {
            Ok(counts) => self
                .store
                .write(&[state::set(state::KEY_LAST_SYNC, finished.to_string())])
                .await
                .map(|_| counts)
                .map_err(Error::from),
            Err(e) => Err(e),
        };
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.syncing = false;
        match result {
            Ok((pushed, pulled)) => {
                let report = SyncReport {
                    pushed,
                    pulled,
                    duration_ms: finished.saturating_sub(started),
                };
                (status.last_error, status.last_error_kind) = (None, None);
                status.last_error_server_code = None;
                status.last_sync_at_ms = Some(finished);
                drop(status);
                *self.last_sync.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((writes_at_start, finished, report));
                self.syncs_done.fetch_add(1, Ordering::SeqCst);
                Ok(report)
            }
            Err(e) => {
                tracing::warn!(error = %e, "sync failed");
                (status.last_error, status.last_error_kind) = (Some(e.to_string()), Some(e.kind()));
                status.last_error_server_code = e.server_code().map(str::to_owned);
                Err(e)
            }
        }
    }

    /// Waits (in steps of [`SYNC_LOCK_POLL_MS`], up to
    /// `Config::sync_lock_timeout_ms`) until no other process syncs this
    /// replica file, and holds that until the guard drops.
    ///
    /// Errors: [`Error::DatabaseLocked`] after the timeout.
    async fn lock_sync_across_processes(&self) -> Result<crate::store::SyncGuard> {
        let mut waited = 0;
        loop {
            if let Some(guard) = self.store.try_lock_sync()? {
                return Ok(guard);
            }
            if waited >= self.config.sync_lock_timeout_ms {
                return Err(Error::DatabaseLocked);
            }
            self.transport.sleep(SYNC_LOCK_POLL_MS).await;
            waited += SYNC_LOCK_POLL_MS;
        }
    }

    fn set_syncing(&self, on: bool) {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .syncing = on;
    }

    async fn sync_once(
        &self,
        remote: &Remote,
        progress: &(dyn Fn(SyncProgress) + Sync),
    ) -> Result<(u64, u64)> {
        self.bootstrap(remote).await?;
        self.recover_if_server_forgot(remote).await?;
        let mut pushed = 0;
        let mut pulled = 0;
        let mut refused = Vec::new();
        for def in &self.config.tables {
            match self.push_table(remote, def, progress).await? {
                Pushed::Rows(n) => pushed += n,
                Pushed::TableRefused(n, refusal) => {
                    pushed += n;
                    refused.push(refusal);
                }
            }
        }
        let known = self
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .refused_tables
            .clone();
        if known != refused {
            self.store
                .write(&[if refused.is_empty() {
                    state::delete(state::KEY_REFUSED_TABLES)
                } else {
                    state::set(state::KEY_REFUSED_TABLES, rejected::refusals_text(&refused))
                }])
                .await?;
        }
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .refused_tables = refused;
        for def in &self.config.tables {
            pulled += self.pull_table(remote, def, progress).await?;
        }
        // Pulled tombstones that still held user data were cleared here and
        // marked pending: clear them on the server in this sync too.
        if self.uncleared_pulled.swap(false, Ordering::SeqCst) {
            for def in &self.config.tables {
                // A table refused now was refused (and recorded) above.
                match self.push_table(remote, def, progress).await? {
                    Pushed::Rows(n) | Pushed::TableRefused(n, _) => pushed += n,
                }
            }
        }
        Ok((pushed, pulled))
    }

    /// Creates or migrates the server tables (idempotent), and notices a new
    /// or reset server.
    async fn bootstrap(&self, remote: &Remote) -> Result<()> {
        if remote.bootstrapped.load(Ordering::SeqCst) {
            return Ok(());
        }
        let db_id = match self.read_server_schema(remote).await? {
            Some(db_id) => db_id,
            None => self.create_server_schema(remote).await?,
        };
        self.note_server(db_id).await?;
        remote.bootstrapped.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// The server's `db_id` when its tables already have every declared
    /// column (`None` otherwise), read without writing anything: a
    /// read-only token can pull (sqld answers 403 to DDL from it).
    async fn read_server_schema(&self, remote: &Remote) -> Result<Option<i64>> {
        let mut steps = vec![Step {
            cond: None,
            stmt: Statement::plain(format!("SELECT \"k\", \"v\" FROM {}", q(META_TABLE))),
        }];
        steps.extend(self.config.tables.iter().map(|def| Step {
            cond: None,
            stmt: Statement::plain(def.probe_columns_sql(&def.name)),
        }));
        let out = remote.client.batch(&steps).await?;
        let Some(meta) = out.results.first().cloned().flatten() else {
            return Ok(None);
        };
        for (def, probe) in self.config.tables.iter().zip(&out.results[1..]) {
            match probe {
                Some(rows) if def.migration_sql(&def.name, &rows.columns)?.is_empty() => {}
                _ => return Ok(None),
            }
        }
        Ok(db_id_of(&meta))
    }

    /// Creates or migrates the server tables (idempotent); returns the
    /// server's `db_id`.
    async fn create_server_schema(&self, remote: &Remote) -> Result<i64> {
        let mut stmts = meta_bootstrap();
        for def in &self.config.tables {
            stmts.push(Statement::plain(def.create_table_sql()));
            stmts.extend(def.server_index_sql().into_iter().map(Statement::plain));
        }
        stmts.push(Statement::plain(format!(
            "SELECT \"k\", \"v\" FROM {}",
            q(META_TABLE)
        )));
        let steps: Vec<Step> = stmts
            .into_iter()
            .enumerate()
            .map(|(i, stmt)| Step {
                cond: (i > 0).then(|| hrana::ok(i - 1)),
                stmt,
            })
            .collect();
        let n = steps.len();
        let out = remote.client.batch(&steps).await?;
        if let Some(e) = out.first_error() {
            return Err(e);
        }
        let meta = out
            .results
            .get(n - 1)
            .cloned()
            .flatten()
            .ok_or_else(|| Error::Protocol("bootstrap returned no meta rows".into()))?;
        let db_id = db_id_of(&meta)
            .ok_or_else(|| Error::Protocol("server _erth_meta has no db_id".into()))?;

        for def in &self.config.tables {
            let existing = remote
                .client
                .execute(Statement::plain(def.probe_columns_sql(&def.name)))
                .await?
                .columns;
            let alters = def.migration_sql(&def.name, &existing)?;
            if !alters.is_empty() {
                let steps: Vec<Step> = alters
                    .into_iter()
                    .enumerate()
                    .map(|(i, sql)| Step {
                        cond: (i > 0).then(|| hrana::ok(i - 1)),
                        stmt: Statement::plain(sql),
                    })
                    .collect();
                let out = remote.client.batch(&steps).await?;
                if let Some(e) = out.first_error() {
                    // Another replica may have migrated concurrently: re-check once.
                    let existing = remote
                        .client
                        .execute(Statement::plain(def.probe_columns_sql(&def.name)))
                        .await?
                        .columns;
                    if !def.migration_sql(&def.name, &existing)?.is_empty() {
                        return Err(e);
                    }
                }
            }
        }
        Ok(db_id)
    }

    /// Records the server's identity; a new or reset server makes the
    /// replica push everything again and pull from the start.
    async fn note_server(&self, db_id: i64) -> Result<()> {
        let kv = read_state(self.store.as_ref()).await?;
        let known = kv.get(state::KEY_SERVER_DB).cloned();
        if known.as_deref() != Some(&db_id.to_string()) {
            let mut stmts = vec![state::set(state::KEY_SERVER_DB, db_id.to_string())];
            if known.is_some() {
                tracing::info!("server changed or was reset: pushing everything again");
                stmts.extend(crate::restored::start_over(self));
            }
            self.store.write(&stmts).await?;
        }
        Ok(())
    }

    async fn cursor(&self, table: &str) -> Result<i64> {
        let kv = read_state(self.store.as_ref()).await?;
        Ok(kv
            .get(&state::cursor_key(table))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Pushes the table's pending rows that are not set aside, in batches
    /// of at most the link's push budget in bytes.
    async fn push_table(
        &self,
        remote: &Remote,
        def: &TableDef,
        progress: &(dyn Fn(SyncProgress) + Sync),
    ) -> Result<Pushed> {
        let mut after = String::new();
        let mut pushed = 0u64;
        let mut more = true;
        // The last batch sent: its request runs on the server while the
        // next page is read, and its answer is read while the next batch
        // runs. Batches still commit one at a time, in order: the next
        // request leaves only once the previous answer is back.
        let mut inflight = None;
        while more || inflight.is_some() {
            let mut parts = Vec::new();
            if more {
                let page = self.pending_page(def, &after).await?;
                more = page.len() == self.config.push_batch_rows;
                if let Some((row, _)) = page.last() {
                    after = row.id.clone();
                }
                parts = self.split_by_budget(remote, page);
            }
            // The page's last part is encoded now, while the batch in flight
            // runs on the server, and sent once that one's answer is back.
            let next = match parts.pop() {
                Some(rows) => match self.prepare_push(remote, def, &rows) {
                    Ok(prepared) => Some((rows, prepared)),
                    Err(failure) => return Err(failure.error),
                },
                None => None,
            };
            let mut landed = match inflight.take() {
                Some(request) => Some(arrived(request).await?),
                None => None,
            };
            // A page the budget splits: its first parts go one at a time.
            if !parts.is_empty() {
                let first = landed.take();
                if let Some(refusal) = self
                    .settle(remote, def, first, &mut pushed, progress)
                    .await?
                {
                    return Ok(Pushed::TableRefused(pushed, refusal));
                }
                for part in parts {
                    if let Some(refusal) = self
                        .push_rows(remote, def, part, None, &mut pushed, progress)
                        .await?
                    {
                        return Ok(Pushed::TableRefused(pushed, refusal));
                    }
                }
            }
            if let Some((rows, prepared)) = next {
                let mut request = futures::future::maybe_done(Box::pin(async move {
                    let sent = self.send_prepared(remote, prepared).await;
                    (rows, sent)
                }));
                let _ = futures::poll!(&mut request);
                inflight = Some(request);
            }
            if let Some(refusal) = self
                .settle(remote, def, landed, &mut pushed, progress)
                .await?
            {
                return Ok(Pushed::TableRefused(pushed, refusal));
            }
        }
        Ok(Pushed::Rows(pushed))
    }

    /// The next pending rows of `def` after id `after`, in id order (at
    /// most `push_batch_rows`), each with its `_dirty` value.
    async fn pending_page(&self, def: &TableDef, after: &str) -> Result<Vec<(SyncRow, i64)>> {
        let rows = self
            .store
            .query(&Statement::new(
                format!(
                    "SELECT {}, t.\"_dirty\" FROM {} t WHERE t.\"_dirty\" > 0 AND t.\"id\" > ? AND {} ORDER BY t.\"id\" LIMIT ?",
                    def.row_column_list(),
                    q(&def.local_name()),
                    rejected::NOT_SET_ASIDE,
                ),
                vec![
                    SqlValue::Text(after.to_owned()),
                    def.name.as_str().into(),
                    SqlValue::Integer(self.config.push_batch_rows as i64),
                ],
            ))
            .await?;
        let mut page = Vec::with_capacity(rows.rows.len());
        for cells in &rows.rows {
            let row = SyncRow::from_cells(def, cells).map_err(|e| {
                Error::Storage(crate::store::StoreError::new(
                    crate::store::StoreErrorKind::Corrupt,
                    e,
                ))
            })?;
            let dirty = cells.last().and_then(SqlValue::as_i64).unwrap_or(0);
            page.push((row, dirty));
        }
        Ok(page)
    }

    /// `page` in push batches that fit the link's push budget (at least one
    /// row each).
    fn split_by_budget(
        &self,
        remote: &Remote,
        page: Vec<(SyncRow, i64)>,
    ) -> Vec<Vec<(SyncRow, i64)>> {
        let mut parts = Vec::new();
        let mut rest = page.into_iter().peekable();
        while rest.peek().is_some() {
            let budget = remote.push_bytes.load(Ordering::Relaxed);
            let mut bytes = 0;
            let mut part = Vec::new();
            while let Some((row, _)) = rest.peek() {
                bytes += row.approx_size();
                if bytes > budget && !part.is_empty() {
                    break;
                }
                part.extend(rest.next());
            }
            parts.push(part);
        }
        parts
    }

    /// Reads the answer of a batch sent ahead ([`Database::send_batch`]);
    /// a batch that did not land goes through [`Database::push_rows`] from
    /// its failure on. Returns the refusal of the whole table, if any.
    async fn settle(
        &self,
        remote: &Remote,
        def: &TableDef,
        landed: Option<Landed>,
        pushed: &mut u64,
        progress: &(dyn Fn(SyncProgress) + Sync),
    ) -> Result<Option<TableRefusal>> {
        let Some((rows, sent)) = landed else {
            return Ok(None);
        };
        let failure = match sent {
            Ok(sent) => match self.finish_batch(def, &rows, sent).await {
                Ok(()) => {
                    *pushed += rows.len() as u64;
                    progress(SyncProgress::Pushed {
                        table: def.name.clone(),
                        rows: *pushed,
                    });
                    return Ok(None);
                }
                Err(f) => f,
            },
            Err(f) => f,
        };
        self.push_rows(remote, def, rows, Some(failure), pushed, progress)
            .await
    }

    /// Pushes `rows`, narrowing a refused batch down to the rows at fault:
    /// the part the server's answer names (the refused statement's chunk),
    /// else halves, until a single refused row is set aside with the
    /// server's reason. A batch that times out (or is answered HTTP 413,
    /// too large) is split too, and the link's push budget halved. `failed`
    /// is how `rows` already failed, when they were sent before. Returns the
    /// refusal of the whole table, if the server refused that (a token that
    /// may not write it).
    async fn push_rows(
        &self,
        remote: &Remote,
        def: &TableDef,
        rows: Vec<(SyncRow, i64)>,
        mut failed: Option<PushFailure>,
        pushed: &mut u64,
        progress: &(dyn Fn(SyncProgress) + Sync),
    ) -> Result<Option<TableRefusal>> {
        let mut stack = vec![rows];
        while let Some(part) = stack.pop() {
            // `failed`: how `rows` already failed once (sent ahead by
            // `push_table`).
            let failure = match self.push_batch(remote, def, &part, failed.take()).await {
                Ok(()) => {
                    *pushed += part.len() as u64;
                    progress(SyncProgress::Pushed {
                        table: def.name.clone(),
                        rows: *pushed,
                    });
                    continue;
                }
                Err(f) => f,
            };
            let error = failure.error;
            if let Some(refusal) = table_refusal(&def.name, &error) {
                tracing::warn!(table = %def.name, code = %refusal.code, "the server refuses this table's changes; they stay pending");
                return Ok(Some(refusal));
            }
            let split_at = if error.is_row_refusal() {
                if let [(row, dirty)] = part.as_slice() {
                    tracing::warn!(table = %def.name, row = %row.id, error = %error, "the server refused a row; set aside");
                    self.store
                        .write(&[rejected::set_aside(
                            &def.name,
                            &row.id,
                            *dirty,
                            &error,
                            self.now_ms(),
                        )])
                        .await?;
                    continue;
                }
                let per = self.config.rows_per_statement;
                match failure.chunk {
                    Some(c) if per < part.len() && c * per < part.len() => {
                        vec![c * per, ((c + 1) * per).min(part.len())]
                    }
                    _ => vec![part.len() / 2],
                }
            } else if (error.is_timeout() || matches!(error, Error::Http { status: 413, .. }))
                && part.len() > 1
            {
                let budget = remote.push_bytes.load(Ordering::Relaxed);
                remote
                    .push_bytes
                    .store((budget / 2).max(MIN_BATCH_BYTES), Ordering::Relaxed);
                vec![part.len() / 2]
            } else {
                return Err(error);
            };
            // Pieces in order: the stack pops the first one next.
            let mut bounds = vec![0];
            bounds.extend(split_at.into_iter().filter(|&b| b > 0 && b < part.len()));
            bounds.push(part.len());
            for w in bounds.windows(2).rev() {
                if w[0] < w[1] {
                    stack.push(part[w[0]..w[1]].to_vec());
                }
            }
        }
        Ok(None)
    }

    /// One push transaction, run again with backoff and jitter while the
    /// server reports contention (busy, locked, an MVCC commit conflict):
    /// the transaction rolled back, so it lands exactly once. A push whose
    /// answer was lost after the commit is safe to repeat too: the merge
    /// makes the repeat a no-op.
    /// `first`: how the first attempt already went (`push_table` sent it
    /// ahead), so it counts as one of the retry policy's attempts.
    async fn push_batch(
        &self,
        remote: &Remote,
        def: &TableDef,
        batch: &[(SyncRow, i64)],
        first: Option<PushFailure>,
    ) -> Result<(), PushFailure> {
        let mut attempt = 0;
        let mut result = match first {
            Some(failure) => Err(failure),
            None => self.push_batch_once(remote, def, batch).await,
        };
        loop {
            match result {
                Err(f) if f.error.is_contention() && attempt + 1 < self.config.retry.attempts => {
                    let delay = self.config.retry.delay(attempt);
                    tracing::debug!(error = %f.error, attempt, delay, "push met contention; retrying");
                    self.transport.sleep(delay).await;
                    attempt += 1;
                    result = self.push_batch_once(remote, def, batch).await;
                }
                other => return other,
            }
        }
    }

    async fn push_batch_once(
        &self,
        remote: &Remote,
        def: &TableDef,
        batch: &[(SyncRow, i64)],
    ) -> Result<(), PushFailure> {
        let sent = self.send_batch(remote, def, batch).await?;
        self.finish_batch(def, batch, sent).await
    }

    /// Sends one push transaction for `batch` (see the module docs) and
    /// returns the server's answer, unread.
    async fn send_batch(
        &self,
        remote: &Remote,
        def: &TableDef,
        batch: &[(SyncRow, i64)],
    ) -> Result<SentBatch, PushFailure> {
        let prepared = self.prepare_push(remote, def, batch)?;
        self.send_prepared(remote, prepared).await
    }

    /// The push transaction for `batch`, encoded (the CPU work of a push
    /// request, done while the previous batch runs on the server).
    fn prepare_push(
        &self,
        remote: &Remote,
        def: &TableDef,
        batch: &[(SyncRow, i64)],
    ) -> Result<PreparedPush, PushFailure> {
        let n = batch.len() as i64;
        let mut stmts = Vec::new();
        let mut offset = 0;
        for chunk in batch.chunks(self.config.rows_per_statement) {
            let rows: Vec<SyncRow> = chunk.iter().map(|(r, _)| r.clone()).collect();
            let offs: Vec<i64> = (offset + 1..=offset + rows.len() as i64).collect();
            offset += rows.len() as i64;
            stmts.push(merge::upsert(def, &rows, &offs, Target::Server));
        }
        let merges = stmts.len();
        stmts.push(Statement::new(
            format!(
                "UPDATE {} SET \"v\" = \"v\" + ? WHERE \"k\" = 'seq'",
                q(META_TABLE)
            ),
            vec![SqlValue::Integer(n)],
        ));
        // The range this push took, `(counter - n, counter]`, and the newest
        // row in it (none when every merge was a no-op), read inside the
        // transaction: the upserts return nothing (see `merge::upsert`).
        let counter = format!("SELECT \"v\" FROM {} WHERE \"k\" = 'seq'", q(META_TABLE));
        stmts.push(Statement::plain(counter.clone()));
        stmts.push(Statement::new(
            format!(
                "SELECT \"id\", \"_seq\" FROM {} WHERE \"_seq\" > ({counter}) - ? ORDER BY \"_seq\" DESC LIMIT 1",
                q(&def.name)
            ),
            vec![SqlValue::Integer(n)],
        ));
        let (steps, commit) = hrana::transaction(stmts);
        Ok(PreparedPush {
            batch: remote.client.prepare(&steps)?,
            merges,
            commit,
        })
    }

    /// Sends a prepared push transaction; returns the answer, unread.
    async fn send_prepared(
        &self,
        remote: &Remote,
        prepared: PreparedPush,
    ) -> Result<SentBatch, PushFailure> {
        let out = remote.client.send_or_timeout(&prepared.batch).await?;
        Ok(SentBatch {
            out,
            merges: prepared.merges,
            commit: prepared.commit,
        })
    }

    /// Reads a push transaction's answer: on a commit, clears `_dirty` of
    /// the rows still as pushed and skips the cursor past the push's own
    /// `_seq` range when it directly follows; else says what failed.
    async fn finish_batch(
        &self,
        def: &TableDef,
        batch: &[(SyncRow, i64)],
        sent: SentBatch,
    ) -> Result<(), PushFailure> {
        let SentBatch {
            out,
            merges,
            commit,
        } = sent;
        let n = batch.len() as i64;
        if out.results.get(commit).is_none_or(Option::is_none) {
            let (step, error) = out
                .first_error_step()
                .unwrap_or_else(|| (0, Error::Protocol("push transaction did not commit".into())));
            // Step 0 is BEGIN; steps 1..=merges are the merge statements.
            let chunk = (1..=merges).contains(&step).then(|| step - 1);
            return Err(PushFailure { error, chunk });
        }
        // Steps: BEGIN, the merges, the counter bump, the counter, the newest row.
        let cell = |step: usize| {
            out.results
                .get(step)
                .and_then(Option::as_ref)
                .and_then(|r| r.rows.first())
        };
        let base = cell(merges + 2)
            .and_then(|r| r.first())
            .and_then(SqlValue::as_i64)
            .map(|counter| counter - n)
            .ok_or_else(|| Error::Protocol("the push did not read the server counter".into()))?;
        let newest = cell(merges + 3).and_then(|r| match (r.first(), r.get(1)) {
            (Some(SqlValue::Text(id)), Some(SqlValue::Integer(seq))) => Some((*seq, id.as_str())),
            _ => None,
        });

        let mut local = Vec::new();
        for chunk in batch.chunks(400) {
            let ids: Vec<&str> = chunk.iter().map(|(r, _)| r.id.as_str()).collect();
            local.push(rejected::accepted(&def.name, &ids));
            let tuples = vec!["(?, ?)"; chunk.len()].join(", ");
            let mut args = Vec::with_capacity(chunk.len() * 2);
            for (row, dirty) in chunk {
                args.push(SqlValue::Text(row.id.clone()));
                args.push(SqlValue::Integer(*dirty));
            }
            local.push(Statement::new(
                format!(
                    "UPDATE {} SET \"_dirty\" = 0 WHERE (\"id\", \"_dirty\") IN (VALUES {tuples})",
                    q(&def.local_name())
                ),
                args,
            ));
        }
        // Echo skip: the sequence numbers this push took directly follow
        // the cursor, so the rows in them are what this replica just sent.
        if base == self.cursor(&def.name).await.map_err(PushFailure::from)? {
            local.push(state::set(
                &state::cursor_key(&def.name),
                (base + n).to_string(),
            ));
            // The newest row it changed becomes the anchor (`crate::restored`).
            if let Some((seq, id)) = newest {
                local.push(state::raise(
                    &state::anchor_key(&def.name),
                    crate::restored::anchor(seq, id),
                ));
            }
        }
        self.store.write(&local).await.map_err(Error::from)?;
        Ok(())
    }

    async fn pull_table(
        &self,
        remote: &Remote,
        def: &TableDef,
        progress: &(dyn Fn(SyncProgress) + Sync),
    ) -> Result<u64> {
        let mut pulled = self.backfill_table(remote, def, progress).await?;
        let cursor_key = state::cursor_key(&def.name);
        let range = PullRange {
            after: self.cursor(&def.name).await?,
            upto: None,
            clocked: Vec::new(),
            probe_columns: true,
        };
        pulled += self
            .pull_range(remote, def, range, pulled, progress, &|last| {
                state::set(&cursor_key, last.to_string())
            })
            .await?;
        Ok(pulled)
    }

    /// Pulls again the rows a column added since they were pulled is
    /// missing (see [`crate::migrate`]): rows up to the cursor of the upgrade
    /// whose new columns carry a clock. Resumable: its own cursor moves with
    /// every page.
    async fn backfill_table(
        &self,
        remote: &Remote,
        def: &TableDef,
        progress: &(dyn Fn(SyncProgress) + Sync),
    ) -> Result<u64> {
        let key = state::backfill_key(&def.name);
        let Some(backfill) = read_state(self.store.as_ref())
            .await?
            .get(&key)
            .and_then(|v| Backfill::parse(v))
        else {
            return Ok(0);
        };
        let range = PullRange {
            after: backfill.after,
            upto: Some(backfill.upto),
            clocked: backfill
                .columns
                .iter()
                .filter(|c| def.column(c).is_some())
                .cloned()
                .collect(),
            probe_columns: false,
        };
        let pulled = if range.clocked.is_empty() {
            0
        } else {
            self.pull_range(remote, def, range, 0, progress, &|last| {
                let moved = Backfill {
                    after: last,
                    ..backfill.clone()
                };
                state::set(&key, moved.text())
            })
            .await?
        };
        self.store.write(&[state::delete(&key)]).await?;
        Ok(pulled)
    }

    /// Pulls the pages of `range` and merges each with `cursor(last _seq)`
    /// in one local transaction. `pulled_before` only offsets progress.
    async fn pull_range(
        &self,
        remote: &Remote,
        def: &TableDef,
        range: PullRange,
        pulled_before: u64,
        progress: &(dyn Fn(SyncProgress) + Sync),
        cursor: &(dyn Fn(i64) -> Statement + Sync),
    ) -> Result<u64> {
        let mut after = range.after;
        let mut probe = range.probe_columns;
        let mut pulled = 0u64;
        let mut filter = String::new();
        let mut fixed_args = Vec::new();
        if let Some(upto) = range.upto {
            filter.push_str(" AND \"_seq\" <= ?");
            fixed_args.push(SqlValue::Integer(upto));
        }
        if !range.clocked.is_empty() {
            let any: Vec<String> = range
                .clocked
                .iter()
                .map(|c| format!("{} > ?", q(&format!("_clk_{c}"))))
                .collect();
            filter.push_str(&format!(" AND ({})", any.join(" OR ")));
            fixed_args.extend(range.clocked.iter().map(|_| SqlValue::from(ZERO_CLOCK)));
        }
        let json = crate::page::json_pages(def);
        // The size probe: `(_seq, approximate bytes)` of the next rows, as one JSON cell.
        let sizes = crate::page::as_one_cell(
            "\"_seq\", \"bytes\"",
            &format!(
                "SELECT \"_seq\", {} AS \"bytes\" FROM {} WHERE \"_seq\" > ?{filter} ORDER BY \"_seq\" LIMIT ?",
                row_bytes_sql(def, json),
                q(&def.name)
            ),
        );
        let sizes_stmt = |after: i64| {
            let mut args = vec![SqlValue::Integer(after)];
            args.extend(fixed_args.iter().cloned());
            args.push(SqlValue::Integer(self.config.pull_page_rows as i64));
            Statement::new(sizes.clone(), args)
        };
        let columns = format!("{}, \"_seq\"", def.row_column_list());
        let mut select = format!(
            "SELECT {columns} FROM {} WHERE \"_seq\" > ? AND \"_seq\" <= ?{filter} ORDER BY \"_seq\"",
            q(&def.name)
        );
        if json {
            select = crate::page::as_one_cell(&columns, &select);
        }
        let expected = def.row_columns().len() + 1;
        // The cheap probe that rides on page requests: how many of the next
        // `limit` rows there are, their total size and last `_seq`.
        let aggregate = format!(
            "SELECT count(*), coalesce(sum(\"bytes\"), 0), max(\"_seq\") FROM (SELECT \"_seq\", {} AS \"bytes\" FROM {} WHERE \"_seq\" > ?{filter} ORDER BY \"_seq\" LIMIT ?)",
            row_bytes_sql(def, json),
            q(&def.name)
        );
        let aggregate_stmt = |after: i64, limit: usize| {
            let mut args = vec![SqlValue::Integer(after)];
            args.extend(fixed_args.iter().cloned());
            args.push(SqlValue::Integer(limit as i64));
            Statement::new(aggregate.clone(), args)
        };
        // The next rows, planned into pages by bytes.
        let mut plan: std::collections::VecDeque<Planned> = Default::default();
        // Adds a size probe's answer to the plan; whether more rows may follow it.
        let add_to_plan = |plan: &mut std::collections::VecDeque<Planned>,
                           answer: &crate::value::Rows|
         -> Result<bool> {
            let planned = crate::page::decode(&def.name, answer, 2, 0)?;
            for r in &planned {
                let (Some(seq), Some(bytes)) = (r[0].as_i64(), r[1].as_i64()) else {
                    return Err(invalid_row(&def.name, "a row size is not an integer"));
                };
                plan.push_back(Planned {
                    seq,
                    bytes: bytes.max(0) as usize,
                    rows: 1,
                });
            }
            Ok(planned.len() >= self.config.pull_page_rows)
        };
        // Adds an aggregate probe's answer (`limit` rows asked) as one entry.
        let add_aggregate = |plan: &mut std::collections::VecDeque<Planned>,
                             answer: &crate::value::Rows,
                             limit: usize|
         -> Result<bool> {
            let row = match answer.rows.as_slice() {
                [row] if row.len() == 3 => row,
                _ => {
                    return Err(Error::Protocol(
                        "the size probe is not one row of three values".into(),
                    ))
                }
            };
            let (Some(rows), Some(bytes)) = (row[0].as_i64(), row[1].as_i64()) else {
                return Err(invalid_row(
                    &def.name,
                    "a size probe's count or sum is not an integer",
                ));
            };
            if rows <= 0 {
                return Ok(false);
            }
            let seq = row[2].as_i64().ok_or_else(|| {
                invalid_row(&def.name, "a size probe's last _seq is not an integer")
            })?;
            plan.push_back(Planned {
                seq,
                bytes: bytes.max(0) as usize,
                rows: rows as usize,
            });
            Ok(rows as usize >= limit)
        };
        // The first probe is an aggregate one too: rows small enough to fit
        // the budget together are never listed one by one.
        let first = aggregate_stmt(after, self.config.pull_page_rows);
        let answer = if std::mem::take(&mut probe) {
            self.probe_and_page(remote, def, first).await?
        } else {
            remote.client.execute(first).await?
        };
        let mut more = add_aggregate(&mut plan, &answer, self.config.pull_page_rows)?;
        // The next page: as many planned rows as the budget holds, at least
        // one entry; the page that empties the plan also asks, in the same
        // request, how many rows follow and how big they are (one request
        // per page instead of two), for about 90% of a budget's worth of
        // rows the size of this page's.
        let next_page = |plan: &std::collections::VecDeque<Planned>, more: bool| {
            let budget = remote.page_bytes.load(Ordering::Relaxed);
            let mut bytes = 0;
            let take = plan
                .iter()
                .take_while(|p| {
                    bytes += p.bytes;
                    bytes <= budget
                })
                .count()
                .max(1);
            let bytes: usize = plan.iter().take(take).map(|p| p.bytes).sum();
            let rows: usize = plan.iter().take(take).map(|p| p.rows).sum();
            let per_row = (bytes / rows.max(1)).max(1);
            PageAsk {
                take,
                upto: plan[take - 1].seq,
                bytes,
                budget,
                probe_next: (more && take == plan.len())
                    .then(|| (budget / 10 * 9 / per_row).clamp(1, self.config.pull_page_rows)),
            }
        };
        // An aggregated entry too big for the budget is planned row by row.
        let needs_detail = |plan: &std::collections::VecDeque<Planned>| {
            plan.front()
                .is_some_and(|p| p.rows > 1 && p.bytes > remote.page_bytes.load(Ordering::Relaxed))
        };
        let fetch = |after: i64, ask: PageAsk| {
            let mut args = vec![SqlValue::Integer(after), SqlValue::Integer(ask.upto)];
            args.extend(fixed_args.iter().cloned());
            let mut steps = vec![Step {
                cond: None,
                stmt: Statement::new(select.clone(), args),
            }];
            if let Some(limit) = ask.probe_next {
                steps.push(Step {
                    cond: None,
                    stmt: aggregate_stmt(ask.upto, limit),
                });
            }
            let started = self.now_ms();
            Box::pin(async move {
                let out = remote.client.batch_or_timeout(&steps).await?;
                match out.first_error() {
                    Some(e) => Err(e),
                    None => Ok((out.results, self.now_ms().saturating_sub(started))),
                }
            })
        };
        // The page requested while the previous one was being applied.
        let mut prefetched = None;
        while !plan.is_empty() {
            if prefetched.is_none() && needs_detail(&plan) {
                plan.clear();
                let answer = remote.client.execute(sizes_stmt(after)).await?;
                more = add_to_plan(&mut plan, &answer)?;
                continue;
            }
            let (ask, request) = match prefetched.take() {
                Some(p) => p,
                None => {
                    let ask = next_page(&plan, more);
                    (ask, futures::future::maybe_done(fetch(after, ask)))
                }
            };
            let answer = arrived(request).await?;
            let PageAsk {
                take,
                upto,
                bytes: page_bytes,
                budget,
                probe_next,
            } = ask;
            let (answer, elapsed) = match answer {
                Ok(answer) => answer,
                Err(e)
                    if (take > 1 || plan[0].rows > 1)
                        && (e.is_timeout() || e.server_code() == Some("RESPONSE_TOO_LARGE")) =>
                {
                    // Ask for less: half of what did not arrive, and never
                    // grow back to it on this link.
                    let smaller = (page_bytes / 2).max(MIN_BATCH_BYTES).min(budget);
                    tracing::debug!(error = %e, bytes = smaller, "pull page too big for the link; shrinking");
                    remote.page_bytes.store(smaller, Ordering::Relaxed);
                    remote.page_ceiling.fetch_min(smaller, Ordering::Relaxed);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut answer = answer.into_iter();
            let page = answer
                .next()
                .flatten()
                .ok_or_else(|| Error::Protocol("the page has no result".into()))?;
            let next = next_page_budget(budget, page_bytes, elapsed)
                .min(remote.page_ceiling.load(Ordering::Relaxed))
                .max(MIN_BATCH_BYTES);
            remote.page_bytes.store(next, Ordering::Relaxed);
            let cells = if json {
                crate::page::decode(&def.name, &page, expected, expected - 1)?
            } else {
                page.rows
            };
            let mut rows = Vec::with_capacity(cells.len());
            let mut seqs = Vec::with_capacity(cells.len());
            let mut last = after;
            for cells in &cells {
                if cells.len() != expected {
                    return Err(invalid_row(
                        &def.name,
                        format!("expected {expected} columns, got {}", cells.len()),
                    ));
                }
                let row = SyncRow::from_cells(def, cells).map_err(|e| invalid_row(&def.name, e))?;
                let seq = cells[expected - 1].as_i64().ok_or_else(|| {
                    invalid_row(&def.name, format!("row {}: _seq is not an integer", row.id))
                })?;
                if seq <= last {
                    return Err(invalid_row(
                        &def.name,
                        format!("_seq {seq} does not increase after {last}"),
                    ));
                }
                last = seq;
                rows.push(row);
                seqs.push(seq);
            }
            if last > upto {
                return Err(invalid_row(
                    &def.name,
                    format!("_seq {last} is beyond the page's end {upto}"),
                ));
            }
            plan.drain(..take);
            if let Some(limit) = probe_next {
                let answer = answer
                    .next()
                    .flatten()
                    .ok_or_else(|| Error::Protocol("the page's size probe has no result".into()))?;
                more = add_aggregate(&mut plan, &answer, limit)?;
            }
            // Ask for the next page before applying this one: its request
            // leaves now (polled once) and the server builds it while this
            // page is merged. (Its `elapsed` then includes this apply,
            // milliseconds against the seconds that change a page budget.)
            if !plan.is_empty() && !needs_detail(&plan) {
                let ask = next_page(&plan, more);
                let mut request = futures::future::maybe_done(fetch(upto, ask));
                let _ = futures::poll!(&mut request);
                prefetched = Some((ask, request));
            }
            // Rows of the plan missing from the page were changed since and
            // come later with a new `_seq`: the cursor moves to the page's end.
            let n = rows.len();
            let changed = self.apply_page(def, &rows, &seqs, cursor(upto)).await?;
            after = upto;
            pulled += n as u64;
            progress(SyncProgress::Pulled {
                table: def.name.clone(),
                rows: pulled_before + pulled,
            });
            self.events.emit(ChangeEvent {
                table: def.name.clone(),
                ids: changed,
                origin: ChangeOrigin::Remote,
            });
        }
        Ok(pulled)
    }

    /// The first size probe of a pull together with the server table's
    /// columns (one request); records the columns this replica does not declare.
    async fn probe_and_page(
        &self,
        remote: &Remote,
        def: &TableDef,
        page: Statement,
    ) -> Result<crate::value::Rows> {
        let steps = [
            Step {
                cond: None,
                stmt: Statement::plain(def.probe_columns_sql(&def.name)),
            },
            Step {
                cond: None,
                stmt: page,
            },
        ];
        let mut out = remote.client.batch(&steps).await?;
        if let Some(e) = out.first_error() {
            return Err(e);
        }
        let columns = out.results.first().cloned().flatten().map(|r| r.columns);
        let page = out
            .results
            .get_mut(1)
            .and_then(Option::take)
            .ok_or_else(|| Error::Protocol("the pull batch returned no page".into()))?;
        if let Some(columns) = columns {
            let prefix = format!("{}.", def.name);
            let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
            let unknown = &mut status.unknown_server_columns;
            unknown.retain(|c| !c.starts_with(&prefix));
            unknown.extend(
                columns
                    .iter()
                    .filter(|c| !crate::schema::is_system_column(c) && def.column(c).is_none())
                    .map(|c| format!("{prefix}{c}")),
            );
        }
        Ok(page)
    }

    /// Merges a validated page and moves the cursor, in one local transaction.
    async fn apply_page(
        &self,
        def: &TableDef,
        rows: &[SyncRow],
        seqs: &[i64],
        cursor: Statement,
    ) -> Result<Vec<String>> {
        let mut hlc = self.hlc.lock().await;
        let now = self.now_ms();
        for row in rows {
            if let Some(max) = row.max_clock() {
                if let Observed::Clamped { ahead_ms } = hlc.observe(max, now) {
                    tracing::warn!(ahead_ms, row = %row.id, "remote clock far ahead; local clock clamped");
                    self.status
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clock_ahead_ms = Some(ahead_ms);
                }
            }
        }
        let mut stmts: Vec<Statement> = rows
            .chunks(self.config.rows_per_statement)
            .zip(seqs.chunks(self.config.rows_per_statement))
            .map(|(r, s)| merge::upsert_into(&def.local_name(), def, r, s, Target::Replica))
            .collect();
        let merges = stmts.len();
        stmts.push(persist_clock(&hlc));
        stmts.push(cursor);
        if let (Some(row), Some(seq)) = (rows.last(), seqs.last()) {
            stmts.push(state::raise(
                &state::anchor_key(&def.name),
                crate::restored::anchor(*seq, &row.id),
            ));
        }
        let uncleared: Vec<SqlValue> = rows
            .iter()
            .filter(|r| r.is_uncleared_tombstone(def))
            .map(|r| SqlValue::Text(r.id.clone()))
            .collect();
        if !uncleared.is_empty() {
            self.uncleared_pulled.store(true, Ordering::SeqCst);
            stmts.push(Statement::new(
                format!(
                    "UPDATE {} SET \"_dirty\" = \"_dirty\" + 1 WHERE \"id\" IN ({})",
                    q(&def.local_name()),
                    vec!["?"; uncleared.len()].join(", ")
                ),
                uncleared,
            ));
        }
        let out = self.store.write(&stmts).await?;
        drop(hlc);
        Ok(out[..merges]
            .iter()
            .flat_map(|r| r.rows.iter())
            .filter_map(|r| r.first().and_then(SqlValue::as_str).map(str::to_owned))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn page_budget_follows_the_link() {
        let mb = 1_000_000;
        // A 2 MB page in 8 s (250 KB/s): the next one fits the 4 s target.
        assert_eq!(next_page_budget(2 * mb, 2 * mb, 8_000), mb);
        // Fast and full: doubles; fast but a short (last) page: stays.
        assert_eq!(next_page_budget(2 * mb, 2 * mb, 500), 4 * mb);
        assert_eq!(next_page_budget(2 * mb, 100_000, 500), 2 * mb);
        // Within the target: stays.
        assert_eq!(next_page_budget(2 * mb, 2 * mb, 2_000), 2 * mb);
        // Bounds: never under the minimum, never over what sqld answers.
        assert_eq!(
            next_page_budget(MIN_BATCH_BYTES, 10, 60_000),
            MIN_BATCH_BYTES
        );
        assert_eq!(
            next_page_budget(MAX_PAGE_BYTES, MAX_PAGE_BYTES, 1),
            MAX_PAGE_BYTES
        );
    }

    #[test]
    fn row_size_sql_counts_every_user_column() {
        let lengths = "coalesce(length(\"title\"), 0) + coalesce(length(\"is_completed\"), 0)";
        let todos = crate::schema::todos_table();
        assert_eq!(row_bytes_sql(&todos, false), format!("420 + {lengths}"));
        assert_eq!(row_bytes_sql(&todos, true), format!("202 + {lengths}"));
    }
}
