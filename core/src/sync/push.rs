//! Push: a table's pending rows (those not set aside), in id order, in
//! batches of at most the link's push budget, each one server transaction
//! (see the [module docs](super)). Batches are pipelined, one server
//! transaction at a time: while batch N runs on the server, the next
//! pending rows are read and batch N+1 is encoded; N+1 leaves as soon as
//! N's answer is back, and N's answer (clearing `_dirty`, the echo skip) is
//! read while N+1 runs. A batch that did not land goes through narrowing
//! and contention retries from its failure on (the first attempt counts).

use super::plan::{halved, narrowed, split_by_budget};
use super::refused::{self, table_refusal};
use super::{arrived, restored, Pushed, Syncer};
use crate::error::{Error, Result};
use crate::hrana;
use crate::merge::{self, Target, META_TABLE};
use crate::row::SyncRow;
use crate::schema::{q, TableDef};
use crate::state;
use crate::status::{SyncProgress, TableRefusal};
use crate::store::{StoreError, StoreErrorKind};
use crate::value::{SqlValue, Statement};

/// Pending rows with their `_dirty` value when read.
type Batch = Vec<(SyncRow, i64)>;

/// A push transaction encoded, not yet sent ([`Syncer::prepare_push`]).
struct PreparedPush {
    batch: hrana::PreparedBatch,
    merges: usize,
    commit: usize,
}

/// A batch sent ahead by [`Syncer::push_table`], with what its request gave.
type Landed = (Batch, Result<SentBatch, PushFailure>);

/// A push transaction's answer, not yet read ([`Syncer::finish_batch`]).
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

impl Syncer<'_> {
    /// Pushes the table's pending rows that are not set aside, in batches
    /// of at most the link's push budget in bytes.
    pub(super) async fn push_table(&self, def: &TableDef) -> Result<Pushed> {
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
                parts = self.split_by_budget(page);
            }
            // The page's last part is encoded now, while the batch in flight
            // runs on the server, and sent once that one's answer is back.
            let next = match parts.pop() {
                Some(rows) => {
                    let prepared = self.prepare_push(def, &rows).map_err(|f| f.error)?;
                    Some((rows, prepared))
                }
                None => None,
            };
            let mut landed = match inflight.take() {
                Some(request) => Some(arrived(request).await?),
                None => None,
            };
            // A page the budget splits: its first parts go one at a time.
            if !parts.is_empty() {
                let first = landed.take();
                if let Some(refusal) = self.push_parts(def, first, parts, &mut pushed).await? {
                    return Ok(Pushed::TableRefused(pushed, refusal));
                }
            }
            if let Some((rows, prepared)) = next {
                let mut request = futures::future::maybe_done(Box::pin(async move {
                    let sent = self.send_prepared(prepared).await;
                    (rows, sent)
                }));
                let _ = futures::poll!(&mut request);
                inflight = Some(request);
            }
            if let Some(refusal) = self.settle(def, landed, &mut pushed).await? {
                return Ok(Pushed::TableRefused(pushed, refusal));
            }
        }
        Ok(Pushed::Rows(pushed))
    }

    /// Settles `first` (a batch sent ahead), then pushes `parts` one at a
    /// time. Returns the refusal of the whole table, if any.
    async fn push_parts(
        &self,
        def: &TableDef,
        first: Option<Landed>,
        parts: Vec<Batch>,
        pushed: &mut u64,
    ) -> Result<Option<TableRefusal>> {
        if let Some(refusal) = self.settle(def, first, pushed).await? {
            return Ok(Some(refusal));
        }
        for part in parts {
            if let Some(refusal) = self.push_rows(def, part, None, pushed).await? {
                return Ok(Some(refusal));
            }
        }
        Ok(None)
    }

    /// The next pending rows of `def` after id `after`, in id order (at
    /// most `push_batch_rows`), each with its `_dirty` value.
    async fn pending_page(&self, def: &TableDef, after: &str) -> Result<Batch> {
        let rows = self
            .store
            .query(&Statement::new(
                format!(
                    "SELECT {}, t.\"_dirty\" FROM {} t WHERE t.\"_dirty\" > 0 AND t.\"id\" > ? AND {} ORDER BY t.\"id\" LIMIT ?",
                    def.row_column_list(),
                    q(&def.local_name()),
                    refused::NOT_SET_ASIDE,
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
            let row = SyncRow::from_cells(def, cells)
                .map_err(|e| Error::Storage(StoreError::new(StoreErrorKind::Corrupt, e)))?;
            let dirty = cells.last().and_then(SqlValue::as_i64).unwrap_or(0);
            page.push((row, dirty));
        }
        Ok(page)
    }

    /// `page` in push batches that fit the link's push budget (at least one
    /// row each).
    fn split_by_budget(&self, page: Batch) -> Vec<Batch> {
        let lengths = split_by_budget(
            page.iter().map(|(row, _)| row.approx_size()),
            self.remote.budgets.push(),
        );
        let mut rest = page.into_iter();
        lengths
            .into_iter()
            .map(|n| rest.by_ref().take(n).collect())
            .collect()
    }

    /// Reads the answer of a batch sent ahead; a batch that did not land
    /// goes through [`Syncer::push_rows`] from its failure on. Returns the
    /// refusal of the whole table, if any.
    async fn settle(
        &self,
        def: &TableDef,
        landed: Option<Landed>,
        pushed: &mut u64,
    ) -> Result<Option<TableRefusal>> {
        let Some((rows, sent)) = landed else {
            return Ok(None);
        };
        let failure = match sent {
            Ok(sent) => match self.finish_batch(def, &rows, sent).await {
                Ok(()) => {
                    self.count_pushed(def, rows.len(), pushed);
                    return Ok(None);
                }
                Err(f) => f,
            },
            Err(f) => f,
        };
        self.push_rows(def, rows, Some(failure), pushed).await
    }

    fn count_pushed(&self, def: &TableDef, rows: usize, pushed: &mut u64) {
        *pushed += rows as u64;
        (self.progress)(SyncProgress::Pushed {
            table: def.name.clone(),
            rows: *pushed,
        });
    }

    /// Pushes `rows`, narrowing a refused batch down to the rows at fault:
    /// the part the server's answer names (the refused statement's chunk),
    /// else halves, until a single refused row is set aside with the
    /// server's reason. A batch that times out (or is answered HTTP 413,
    /// too large) is halved too, and the link's push budget with it; one row
    /// the link cannot carry is set aside like a refused one. A row is set
    /// aside only if the server takes other writes
    /// ([`Syncer::server_takes_writes`]); otherwise the fault is the
    /// server's and the sync fails, every row still pending. `failed` is
    /// how `rows` already failed, when they were sent before. Returns the
    /// refusal of the whole table, if the server refused that (a token that
    /// may not write it).
    async fn push_rows(
        &self,
        def: &TableDef,
        rows: Batch,
        mut failed: Option<PushFailure>,
        pushed: &mut u64,
    ) -> Result<Option<TableRefusal>> {
        let mut stack = vec![rows];
        while let Some(part) = stack.pop() {
            let failure = match self.push_batch(def, &part, failed.take()).await {
                Ok(()) => {
                    self.count_pushed(def, part.len(), pushed);
                    continue;
                }
                Err(f) => f,
            };
            let error = failure.error;
            if let Some(refusal) = table_refusal(&def.name, &error) {
                tracing::warn!(table = %def.name, code = %refusal.code, "the server refuses this table's changes; they stay pending");
                return Ok(Some(refusal));
            }
            let too_much = error.is_timeout() || matches!(error, Error::Http { status: 413, .. });
            if !error.is_row_refusal() && !too_much {
                return Err(error);
            }
            if let [(row, dirty)] = part.as_slice() {
                // One row: it is at fault only if the server takes other
                // writes (a full disk or a locked database refuses every
                // row alike, and tursodb reports both as a failed step).
                if !self.server_takes_writes().await {
                    return Err(error);
                }
                self.set_aside(def, row, *dirty, &error).await?;
                continue;
            }
            let pieces = if too_much {
                self.remote.budgets.push_failed();
                halved(part.len())
            } else {
                narrowed(part.len(), failure.chunk, self.config.rows_per_statement)
            };
            // Pieces in order: the stack pops the first one next.
            for range in pieces.into_iter().rev() {
                stack.push(part[range].to_vec());
            }
        }
        Ok(None)
    }

    /// Whether the server commits a write transaction that touches no row
    /// of the app's (the counter set to itself), asked once per sync: a
    /// server that does not is failing as a whole (read-only, full, locked,
    /// stalled), so what it refused says nothing about the rows.
    async fn server_takes_writes(&self) -> bool {
        if let Some(known) = self.found().server_takes_writes {
            return known;
        }
        let (steps, commit) = hrana::transaction(vec![Statement::plain(format!(
            "UPDATE {} SET \"v\" = \"v\" WHERE \"k\" = 'seq'",
            q(META_TABLE)
        ))]);
        let takes = match self.remote.client.batch(&steps).await {
            Ok(out) => out.results.get(commit).is_some_and(Option::is_some),
            Err(e) => {
                tracing::debug!(error = %e, "the server's write check failed");
                false
            }
        };
        self.found().server_takes_writes = Some(takes);
        takes
    }

    /// Records that the server refused version `dirty` of `row`.
    async fn set_aside(
        &self,
        def: &TableDef,
        row: &SyncRow,
        dirty: i64,
        error: &Error,
    ) -> Result<()> {
        tracing::warn!(table = %def.name, row = %row.id, error = %error, "the server refused a row; set aside");
        self.store
            .write(&[refused::set_aside(
                &def.name,
                &row.id,
                dirty,
                error,
                self.clock.now_ms(),
            )])
            .await?;
        Ok(())
    }

    /// One push transaction, run again with backoff and jitter while the
    /// server reports contention (busy, locked, an MVCC commit conflict):
    /// the transaction rolled back, so it lands exactly once. A push whose
    /// answer was lost after the commit is safe to repeat too: the merge
    /// makes the repeat a no-op. `first`: how the first attempt already
    /// went (sent ahead), so it counts as one of the retry policy's attempts.
    async fn push_batch(
        &self,
        def: &TableDef,
        batch: &[(SyncRow, i64)],
        first: Option<PushFailure>,
    ) -> Result<(), PushFailure> {
        let mut attempt = 0;
        let mut result = match first {
            Some(failure) => Err(failure),
            None => self.push_batch_once(def, batch).await,
        };
        loop {
            match result {
                Err(f) if f.error.is_contention() && attempt + 1 < self.config.retry.attempts => {
                    let delay = self.config.retry.delay(attempt);
                    tracing::debug!(error = %f.error, attempt, delay, "push met contention; retrying");
                    self.remote.client.sleep(delay).await;
                    attempt += 1;
                    result = self.push_batch_once(def, batch).await;
                }
                other => return other,
            }
        }
    }

    async fn push_batch_once(
        &self,
        def: &TableDef,
        batch: &[(SyncRow, i64)],
    ) -> Result<(), PushFailure> {
        let prepared = self.prepare_push(def, batch)?;
        let sent = self.send_prepared(prepared).await?;
        self.finish_batch(def, batch, sent).await
    }

    /// The push transaction for `batch`, encoded (the CPU work of a push
    /// request, done while the previous batch runs on the server).
    fn prepare_push(
        &self,
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
            batch: self.remote.client.prepare(&steps)?,
            merges,
            commit,
        })
    }

    /// Sends a prepared push transaction; returns the answer, unread.
    async fn send_prepared(&self, prepared: PreparedPush) -> Result<SentBatch, PushFailure> {
        let out = self.remote.client.send(&prepared.batch).await?;
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
        let (base, newest) = landed_range(&sent, batch.len())?;
        let mut local = Vec::new();
        for chunk in batch.chunks(400) {
            let ids: Vec<&str> = chunk.iter().map(|(r, _)| r.id.as_str()).collect();
            local.push(refused::accepted(&def.name, &ids));
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
        if base == self.cursor(&def.name).await? {
            local.push(state::set(
                &state::cursor_key(&def.name),
                (base + batch.len() as i64).to_string(),
            ));
        }
        // The newest row it changed becomes the anchor, whether or not the
        // cursor skipped past it: a server restored to before this push
        // (even one this replica has not pulled up to) is noticed by it
        // (see `restored`).
        if let Some((seq, id)) = newest {
            local.push(state::raise(
                &state::anchor_key(&def.name),
                restored::anchor(seq, &id),
            ));
        }
        self.store.write(&local).await.map_err(Error::from)?;
        Ok(())
    }
}

/// What a push transaction of `n` rows took on the server: the counter
/// before it (its range is `(base, base + n]`) and the newest row in that
/// range, `(_seq, id)`, if any merge changed a row. Else what failed, and
/// in which merge statement.
fn landed_range(sent: &SentBatch, n: usize) -> Result<(i64, Option<(i64, String)>), PushFailure> {
    let SentBatch {
        out,
        merges,
        commit,
    } = sent;
    if out.results.get(*commit).is_none_or(Option::is_none) {
        let (step, error) = out
            .first_error_step()
            .unwrap_or_else(|| (0, Error::Protocol("push transaction did not commit".into())));
        // Step 0 is BEGIN; steps 1..=merges are the merge statements.
        let chunk = (1..=*merges).contains(&step).then(|| step - 1);
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
        .map(|counter| counter - n as i64)
        .ok_or_else(|| Error::Protocol("the push did not read the server counter".into()))?;
    let newest = cell(merges + 3).and_then(|r| match (r.first(), r.get(1)) {
        (Some(SqlValue::Text(id)), Some(SqlValue::Integer(seq))) => Some((*seq, id.clone())),
        _ => None,
    });
    Ok((base, newest))
}
