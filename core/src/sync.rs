//! The sync engine: bootstrap the server schema, push pending changes, pull
//! remote changes by cursor, apply them through the merge rules.
//!
//! - **Push**: dirty rows in id order, in batches; each batch is one Hrana
//!   request and one server transaction (`BEGIN IMMEDIATE`, multi-row merge
//!   upserts taking fresh `_seq` values, bump of `_erth_meta.seq`, `COMMIT`
//!   only if all succeeded). Afterwards `_dirty` is cleared only where it
//!   still equals the pushed value, so edits made during the push stay
//!   pending. A push whose answer was lost is retried; the merge makes the
//!   repeat a no-op.
//! - **Pull**: keyset pages `WHERE _seq > cursor ORDER BY _seq`; each page is
//!   validated whole, then merged in one local transaction together with the
//!   new cursor and clock, so a crash never loses or double-applies a page.
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
use crate::row::SyncRow;
use crate::schema::{q, TableDef, ZERO_CLOCK};
use crate::state;
use crate::value::{SqlValue, Statement};
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// How often a sync waiting for another process's sync checks again (ms).
const SYNC_LOCK_POLL_MS: u64 = 25;

/// Largest approximate request body for one push batch.
const PUSH_BATCH_BYTES: usize = 4_000_000;

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
                status.last_error = None;
                status.last_sync_at_ms = Some(finished);
                drop(status);
                *self.last_sync.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((writes_at_start, finished, report));
                self.syncs_done.fetch_add(1, Ordering::SeqCst);
                Ok(report)
            }
            Err(e) => {
                tracing::warn!(error = %e, "sync failed");
                status.last_error = Some(e.to_string());
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
        for def in &self.config.tables {
            pushed += self.push_table(remote, def, progress).await?;
        }
        for def in &self.config.tables {
            pulled += self.pull_table(remote, def, progress).await?;
        }
        // Pulled tombstones that still held user data were cleared here and
        // marked pending: clear them on the server in this sync too.
        if self.uncleared_pulled.swap(false, Ordering::SeqCst) {
            for def in &self.config.tables {
                pushed += self.push_table(remote, def, progress).await?;
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
        let db_id = meta
            .rows
            .iter()
            .find(|r| r.first().and_then(SqlValue::as_str) == Some("db_id"))
            .and_then(|r| r.get(1).and_then(SqlValue::as_i64))
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
        remote.bootstrapped.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn cursor(&self, table: &str) -> Result<i64> {
        let kv = read_state(self.store.as_ref()).await?;
        Ok(kv
            .get(&state::cursor_key(table))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    async fn push_table(
        &self,
        remote: &Remote,
        def: &TableDef,
        progress: &(dyn Fn(SyncProgress) + Sync),
    ) -> Result<u64> {
        let mut after = String::new();
        let mut pushed = 0u64;
        loop {
            let rows = self
                .store
                .query(&Statement::new(
                    format!(
                        "SELECT {}, \"_dirty\" FROM {} WHERE \"_dirty\" > 0 AND \"id\" > ? ORDER BY \"id\" LIMIT ?",
                        def.row_column_list(),
                        q(&def.local_name())
                    ),
                    vec![SqlValue::Text(after.clone()), SqlValue::Integer(self.config.push_batch_rows as i64)],
                ))
                .await?;
            if rows.rows.is_empty() {
                return Ok(pushed);
            }
            let full_page = rows.rows.len() == self.config.push_batch_rows;
            let mut batch: Vec<(SyncRow, i64)> = Vec::new();
            let mut bytes = 0;
            for cells in &rows.rows {
                let row = SyncRow::from_cells(def, cells).map_err(|e| {
                    Error::Storage(crate::store::StoreError::new(
                        crate::store::StoreErrorKind::Corrupt,
                        e,
                    ))
                })?;
                let dirty = cells.last().and_then(SqlValue::as_i64).unwrap_or(0);
                let size = row.approx_size();
                if !batch.is_empty() && bytes + size > PUSH_BATCH_BYTES {
                    self.push_batch(remote, def, &batch).await?;
                    pushed += batch.len() as u64;
                    progress(SyncProgress::Pushed {
                        table: def.name.clone(),
                        rows: pushed,
                    });
                    batch.clear();
                    bytes = 0;
                }
                bytes += size;
                batch.push((row, dirty));
            }
            after = batch.last().map(|(r, _)| r.id.clone()).unwrap_or_default();
            self.push_batch(remote, def, &batch).await?;
            pushed += batch.len() as u64;
            progress(SyncProgress::Pushed {
                table: def.name.clone(),
                rows: pushed,
            });
            if !full_page {
                return Ok(pushed);
            }
        }
    }

    async fn push_batch(
        &self,
        remote: &Remote,
        def: &TableDef,
        batch: &[(SyncRow, i64)],
    ) -> Result<()> {
        let rows: Vec<SyncRow> = batch.iter().map(|(r, _)| r.clone()).collect();
        let n = rows.len() as i64;
        let offsets: Vec<i64> = (1..=n).collect();
        let mut stmts = Vec::new();
        for (chunk, offs) in rows
            .chunks(self.config.rows_per_statement)
            .zip(offsets.chunks(self.config.rows_per_statement))
        {
            stmts.push(merge::upsert(def, chunk, offs, Target::Server));
        }
        let merges = stmts.len();
        stmts.push(Statement::new(
            format!(
                "UPDATE {} SET \"v\" = \"v\" + ? WHERE \"k\" = 'seq'",
                q(META_TABLE)
            ),
            vec![SqlValue::Integer(n)],
        ));
        let (steps, commit) = hrana::transaction(stmts);
        let out = remote.client.batch(&steps).await?;
        if out.results.get(commit).is_none_or(Option::is_none) {
            return Err(out
                .first_error()
                .unwrap_or_else(|| Error::Protocol("push transaction did not commit".into())));
        }

        // Echo skip: the sequence numbers this push took, if they follow our cursor.
        let offset_of: HashMap<&str, i64> = rows
            .iter()
            .map(|r| r.id.as_str())
            .zip(offsets.iter().copied())
            .collect();
        // The newest row it changed becomes the anchor (`crate::restored`).
        let mut base = None;
        let mut newest: Option<(i64, &str)> = None;
        for res in out.results[1..=merges].iter().flatten() {
            for r in &res.rows {
                if let (Some(SqlValue::Text(id)), Some(SqlValue::Integer(seq))) =
                    (r.first(), r.get(1))
                {
                    if let Some(off) = offset_of.get(id.as_str()) {
                        base.get_or_insert(seq - off);
                        newest = newest.max(Some((*seq, id.as_str())));
                    }
                }
            }
        }

        let mut local = Vec::new();
        for chunk in batch.chunks(400) {
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
        if let (Some(base), Some((seq, id))) = (base, newest) {
            if base == self.cursor(&def.name).await? {
                local.push(state::set(
                    &state::cursor_key(&def.name),
                    (base + n).to_string(),
                ));
                local.push(state::raise(
                    &state::anchor_key(&def.name),
                    crate::restored::anchor(seq, id),
                ));
            }
        }
        self.store.write(&local).await?;
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
        let mut page_rows = self.config.pull_page_rows;
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
        let select = format!(
            "SELECT {}, \"_seq\" FROM {} WHERE \"_seq\" > ?{filter} ORDER BY \"_seq\" LIMIT ?",
            def.row_column_list(),
            q(&def.name)
        );
        loop {
            let mut args = vec![SqlValue::Integer(after)];
            args.extend(fixed_args.iter().cloned());
            args.push(SqlValue::Integer(page_rows as i64));
            let stmt = Statement::new(select.clone(), args);
            let page = if std::mem::take(&mut probe) {
                self.probe_and_page(remote, def, stmt).await
            } else {
                remote.client.execute(stmt).await
            };
            let page = match page {
                Ok(p) => p,
                Err(e) if e.server_code() == Some("RESPONSE_TOO_LARGE") && page_rows > 1 => {
                    page_rows /= 2;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if page.rows.is_empty() {
                return Ok(pulled);
            }
            let expected = def.row_columns().len() + 1;
            let mut rows = Vec::with_capacity(page.rows.len());
            let mut seqs = Vec::with_capacity(page.rows.len());
            let mut last = after;
            for cells in &page.rows {
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
            let n = rows.len();
            let changed = self.apply_page(def, &rows, &seqs, cursor(last)).await?;
            after = last;
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
            if n < page_rows {
                return Ok(pulled);
            }
        }
    }

    /// The first page of a pull together with the server table's columns
    /// (one request); records the columns this replica does not declare.
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
