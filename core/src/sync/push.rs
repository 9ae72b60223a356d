//! Push: every table's pending rows (those not set aside), in batches read
//! by `pending` (rows of several tables share a batch, so a local
//! transaction across tables lands as one server transaction), each one
//! server transaction (`push_tx`). Batches are pipelined, one server
//! transaction at a time: while batch N runs on the server, the next
//! pending rows are read and batch N+1 is encoded; N+1 leaves as soon as
//! N's answer is back, and N's answer (clearing `_dirty`, the echo skip) is
//! read while N+1 runs. A batch that did not land is retried whole while
//! the server reports contention, then pushed table by table and narrowed
//! down to the rows at fault (the first attempt counts).

use super::pending::Pending;
use super::plan::{halved, narrowed};
use super::push_tx::{Batch, PushFailure, Rows, SentBatch};
use super::refused::{self, table_refusal};
use super::{arrived, Syncer};
use crate::error::{Error, Result};
use crate::hrana;
use crate::merge::META_TABLE;
use crate::row::SyncRow;
use crate::schema::{q, TableDef};
use crate::status::{SyncProgress, TableRefusal};
use crate::value::Statement;
use std::collections::HashMap;

/// What a push has done so far.
#[derive(Debug, Default)]
pub(super) struct Pushed {
    /// Rows that landed, per table.
    rows: HashMap<String, u64>,
    /// Tables the server refused as a whole (their rows stay pending).
    pub(super) refused: Vec<TableRefusal>,
}

impl Pushed {
    /// Rows that landed, over all tables.
    pub(super) fn total(&self) -> u64 {
        self.rows.values().sum()
    }
}

/// A batch sent ahead, with what its request gave.
type Landed<'d> = (Batch<'d>, Result<SentBatch, PushFailure>);

impl Syncer<'_> {
    /// Pushes every table's pending rows that are not set aside; a table
    /// the server refuses as a whole is skipped (and reported).
    pub(super) async fn push_all(&self) -> Result<Pushed> {
        let mut pushed = Pushed::default();
        let mut source = Pending::new(&self.config.tables);
        // The last batch sent: its request runs on the server while the
        // next batch is read, and its answer is read while the next runs.
        // Batches still commit one at a time, in order: the next request
        // leaves only once the previous answer is back.
        let mut inflight = None;
        loop {
            let next = match self.next_batch(&mut source).await? {
                Some(batch) => {
                    let prepared = self.prepare_push(&batch).map_err(|f| f.error)?;
                    Some((batch, prepared))
                }
                None => None,
            };
            let landed = match inflight.take() {
                Some(request) => Some(arrived(request).await?),
                None => None,
            };
            if let Some((batch, prepared)) = next {
                let mut request = futures::future::maybe_done(Box::pin(async move {
                    let sent = self.send_prepared(prepared).await;
                    (batch, sent)
                }));
                let _ = futures::poll!(&mut request);
                inflight = Some(request);
            }
            if let Some(landed) = landed {
                self.settle(landed, &mut pushed, &mut source).await?;
            }
            if inflight.is_none() {
                return Ok(pushed);
            }
        }
    }

    /// Reads the answer of a batch sent ahead; one that did not land is
    /// retried whole for contention, then pushed table by table.
    async fn settle(
        &self,
        (batch, sent): Landed<'_>,
        pushed: &mut Pushed,
        source: &mut Pending<'_>,
    ) -> Result<()> {
        let failure = match sent {
            Ok(sent) => match self.finish_batch(&batch, sent).await {
                Ok(()) => {
                    self.count_pushed(&batch, pushed);
                    return Ok(());
                }
                Err(f) => f,
            },
            Err(f) => f,
        };
        let failure = if batch.groups.len() > 1 && failure.error.is_contention() {
            match self.push_batch(&batch, Some(failure)).await {
                Ok(()) => {
                    self.count_pushed(&batch, pushed);
                    return Ok(());
                }
                Err(f) => f,
            }
        } else {
            failure
        };
        // A batch of several tables is split only for what its rows caused:
        // a refusal (of a row or of a table), a batch too large for the
        // link (timeout, HTTP 413). Any other failure (the network, the
        // server as a whole, contention outlasting the retries above) fails
        // the sync with every row pending: sending its tables one by one
        // would commit part of a local transaction, which another device
        // could pull before the rest arrives. (One table's batch goes on to
        // `push_rows`, which retries contention and fails on the rest.)
        let error = &failure.error;
        let narrows = error.is_row_refusal()
            || table_refusal("", error).is_some()
            || error.is_timeout()
            || matches!(error, Error::Http { status: 413, .. });
        if batch.groups.len() > 1 && !narrows {
            return Err(failure.error);
        }
        // One table: narrow from this failure on; several: each table alone.
        let mut first = (batch.groups.len() == 1).then_some(failure);
        for (def, rows) in batch.groups {
            if pushed.refused.iter().any(|r| r.table == def.name) {
                continue;
            }
            if let Some(refusal) = self.push_rows(def, rows, first.take(), pushed).await? {
                source.skip(&def.name);
                pushed.refused.push(refusal);
            }
        }
        Ok(())
    }

    fn count_pushed(&self, batch: &Batch<'_>, pushed: &mut Pushed) {
        for (def, rows) in &batch.groups {
            let n = pushed.rows.entry(def.name.clone()).or_default();
            *n += rows.len() as u64;
            (self.progress)(SyncProgress::Pushed {
                table: def.name.clone(),
                rows: *n,
            });
        }
    }

    /// Pushes `rows` of one table, narrowing a refused batch down to the
    /// rows at fault: the part the server's answer names (the refused
    /// statement's chunk), else halves, until a single refused row is set
    /// aside with the server's reason. A batch that times out (or is
    /// answered HTTP 413, too large) is halved too, and the link's push
    /// budget with it; one row the link cannot carry is set aside like a
    /// refused one. A row is set aside only if the server takes other
    /// writes (`server_takes_writes`); otherwise the fault is the server's
    /// and the sync fails, every row still pending. `failed` is how `rows`
    /// already failed, when they were sent before. Returns the refusal of
    /// the whole table, if the server refused that (a token that may not
    /// write it).
    async fn push_rows(
        &self,
        def: &TableDef,
        rows: Rows,
        mut failed: Option<PushFailure>,
        pushed: &mut Pushed,
    ) -> Result<Option<TableRefusal>> {
        let mut stack = vec![rows];
        while let Some(part) = stack.pop() {
            let batch = Batch::single(def, part);
            let failure = match self.push_batch(&batch, failed.take()).await {
                Ok(()) => {
                    self.count_pushed(&batch, pushed);
                    continue;
                }
                Err(f) => f,
            };
            let Some((_, part)) = batch.groups.into_iter().next() else {
                continue;
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
                let chunk = failure.chunk.map(|(_, c)| c);
                narrowed(part.len(), chunk, self.config.rows_per_statement)
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
}
