//! One push transaction: a [`Batch`] of pending rows, from one table or
//! several, encoded as one server transaction (`BEGIN IMMEDIATE`, the merge
//! upserts, the counter bump, a read-back of the counter and of each
//! table's newest row, `COMMIT` only if all succeeded, else `ROLLBACK`),
//! sent, and its answer read: on a commit, `_dirty` is cleared where it
//! still equals the pushed value, each table's cursor skips the push's own
//! `_seq` range when it directly follows (the echo skip) and its anchor
//! rises to the newest row it changed. A transaction the server rolled
//! back for contention is run again with backoff and jitter, so it lands
//! exactly once.

use super::refused;
use super::{purged, restored, Syncer};
use crate::error::{Error, Result};
use crate::hrana;
use crate::merge::{self, Target, META_TABLE};
use crate::row::SyncRow;
use crate::schema::{q, TableDef};
use crate::state;
use crate::value::{SqlValue, Statement};

/// Pending rows of one table, each with its `_dirty` value when read.
pub(super) type Rows = Vec<(SyncRow, i64)>;

/// The rows of one push transaction: per table, in the schema's order.
#[derive(Debug, Default)]
pub(super) struct Batch<'d> {
    pub(super) groups: Vec<(&'d TableDef, Rows)>,
}

impl<'d> Batch<'d> {
    /// A batch of one table's rows.
    pub(super) fn single(def: &'d TableDef, rows: Rows) -> Batch<'d> {
        Batch {
            groups: vec![(def, rows)],
        }
    }

    pub(super) fn rows(&self) -> usize {
        self.groups.iter().map(|(_, rows)| rows.len()).sum()
    }

    /// Adds `row` to the batch, after the rows of its table.
    pub(super) fn push(&mut self, def: &'d TableDef, row: (SyncRow, i64)) {
        match self.groups.last_mut() {
            Some((last, rows)) if std::ptr::eq(*last, def) => rows.push(row),
            _ => self.groups.push((def, vec![row])),
        }
    }
}

/// A push transaction encoded, not yet sent ([`Syncer::prepare_push`]).
pub(super) struct PreparedPush {
    batch: hrana::PreparedBatch,
    merges: Vec<(usize, usize)>,
    commit: usize,
}

/// A push transaction's answer, not yet read ([`Syncer::finish_batch`]).
pub(super) struct SentBatch {
    out: hrana::BatchOutcome,
    /// Per merge statement after `BEGIN`: its group and chunk.
    merges: Vec<(usize, usize)>,
    /// The step of `COMMIT`.
    commit: usize,
}

/// Why a push of some rows did not land.
pub(super) struct PushFailure {
    pub(super) error: Error,
    /// Which merge statement the server refused, when its answer says so:
    /// the group (table) and chunk (of `rows_per_statement` rows) in it.
    pub(super) chunk: Option<(usize, usize)>,
}

impl From<Error> for PushFailure {
    fn from(error: Error) -> Self {
        PushFailure { error, chunk: None }
    }
}

impl Syncer<'_> {
    /// One push transaction, run again with backoff and jitter while the
    /// server reports contention (busy, locked, an MVCC commit conflict):
    /// the transaction rolled back, so it lands exactly once. A push whose
    /// answer was lost after the commit is safe to repeat too: the merge
    /// makes the repeat a no-op. `first`: how the first attempt already
    /// went (sent ahead), so it counts as one of the retry policy's attempts.
    pub(super) async fn push_batch(
        &self,
        batch: &Batch<'_>,
        first: Option<PushFailure>,
    ) -> Result<(), PushFailure> {
        let mut attempt = 0;
        let mut result = match first {
            Some(failure) => Err(failure),
            None => self.push_batch_once(batch).await,
        };
        loop {
            match result {
                Err(f) if f.error.is_contention() && attempt + 1 < self.config.retry.attempts => {
                    let delay = self.config.retry.delay(attempt);
                    tracing::debug!(error = %f.error, attempt, delay, "push met contention; retrying");
                    self.remote.client.sleep(delay).await;
                    attempt += 1;
                    result = self.push_batch_once(batch).await;
                }
                other => return other,
            }
        }
    }

    async fn push_batch_once(&self, batch: &Batch<'_>) -> Result<(), PushFailure> {
        let prepared = self.prepare_push(batch)?;
        let sent = self.send_prepared(prepared).await?;
        self.finish_batch(batch, sent).await
    }

    /// The push transaction for `batch`, encoded (the CPU work of a push
    /// request, done while the previous batch runs on the server).
    pub(super) fn prepare_push(&self, batch: &Batch<'_>) -> Result<PreparedPush, PushFailure> {
        let n = batch.rows() as i64;
        // First, the purge guard (`purged`): the transaction stops if the
        // server purged history of these tables this replica has not seen.
        let floors = self.floors();
        let mut stmts = vec![purged::guard(
            &batch
                .groups
                .iter()
                .map(|(def, _)| {
                    (
                        def.name.clone(),
                        floors.get(&def.name).copied().unwrap_or(0),
                    )
                })
                .collect::<Vec<_>>(),
        )];
        let mut merges = Vec::new();
        let mut offset = 0;
        for (g, (def, rows)) in batch.groups.iter().enumerate() {
            for (c, chunk) in rows.chunks(self.config.rows_per_statement).enumerate() {
                let rows: Vec<SyncRow> = chunk
                    .iter()
                    .map(|(r, _)| self.seal(def, r.clone()))
                    .collect::<Result<_>>()?;
                let offs: Vec<i64> = (offset + 1..=offset + rows.len() as i64).collect();
                offset += rows.len() as i64;
                stmts.push(merge::upsert(def, &rows, &offs, Target::Server));
                merges.push((g, c));
            }
        }
        stmts.push(Statement::new(
            format!(
                "UPDATE {} SET \"v\" = \"v\" + ? WHERE \"k\" = 'seq'",
                q(META_TABLE)
            ),
            vec![SqlValue::Integer(n)],
        ));
        // The range this push took, `(counter - n, counter]`, and each
        // table's newest row in it (none when every merge was a no-op), read
        // inside the transaction: the upserts return nothing (see
        // `merge::upsert`).
        let counter = format!("SELECT \"v\" FROM {} WHERE \"k\" = 'seq'", q(META_TABLE));
        stmts.push(Statement::plain(counter.clone()));
        for (def, _) in &batch.groups {
            stmts.push(Statement::new(
                format!(
                    "SELECT \"id\", \"_seq\" FROM {} WHERE \"_seq\" > ({counter}) - ? ORDER BY \"_seq\" DESC LIMIT 1",
                    q(&def.name)
                ),
                vec![SqlValue::Integer(n)],
            ));
        }
        let (steps, commit) = hrana::transaction(stmts);
        Ok(PreparedPush {
            batch: self.remote.client.prepare(&steps)?,
            merges,
            commit,
        })
    }

    /// Sends a prepared push transaction; returns the answer, unread.
    pub(super) async fn send_prepared(
        &self,
        prepared: PreparedPush,
    ) -> Result<SentBatch, PushFailure> {
        let out = self.remote.client.send(&prepared.batch).await?;
        Ok(SentBatch {
            out,
            merges: prepared.merges,
            commit: prepared.commit,
        })
    }

    /// Reads a push transaction's answer: on a commit, clears `_dirty` of
    /// the rows still as pushed, skips each table's cursor past the push's
    /// own `_seq` range when it directly follows, and raises its anchor;
    /// else says what failed.
    pub(super) async fn finish_batch(
        &self,
        batch: &Batch<'_>,
        sent: SentBatch,
    ) -> Result<(), PushFailure> {
        let n = batch.rows() as i64;
        let (base, newest) = landed_range(&sent, n, batch.groups.len())?;
        let mut local = Vec::new();
        for ((def, rows), newest) in batch.groups.iter().zip(newest) {
            local.extend(accepted(def, rows));
            // Echo skip: the sequence numbers this push took directly follow
            // the cursor, so the table's rows in them are what this replica
            // just sent (the other tables' rows in the range are theirs).
            if base == self.cursor(&def.name).await? {
                local.push(state::set(
                    &state::cursor_key(&def.name),
                    (base + n).to_string(),
                ));
            }
            // The newest row it changed becomes the anchor, whether or not
            // the cursor skipped past it: a server restored to before this
            // push (even one this replica has not pulled up to) is noticed
            // by it (see `restored`).
            if let Some((seq, id)) = newest {
                local.push(state::raise(
                    &state::anchor_key(&def.name),
                    restored::anchor(seq, &id),
                ));
            }
        }
        self.store.write(&local).await?;
        Ok(())
    }
}

/// Clears `_dirty` of `rows` where it is still the pushed value (edits
/// made meanwhile stay pending), forgets their refusals, and marks the
/// rows the server now holds: a `_seq` of 0 where there was none ("on the
/// server, at a `_seq` not pulled"; a row with a `_seq` is one the server
/// had, see `purged`). Not the `_seq` the upsert took: a repeated push
/// changes nothing and takes none, and a local `_seq` above the server's
/// would keep an eviction (`subscribed`) from matching the row.
fn accepted(def: &TableDef, rows: &[(SyncRow, i64)]) -> Vec<Statement> {
    let mut local = Vec::new();
    for chunk in rows.chunks(400) {
        let ids: Vec<&str> = chunk.iter().map(|(r, _)| r.id.as_str()).collect();
        local.push(Statement::new(
            format!(
                "UPDATE {} SET \"_seq\" = 0 WHERE \"_seq\" IS NULL AND \"id\" IN ({})",
                q(&def.local_name()),
                vec!["?"; ids.len()].join(", ")
            ),
            ids.iter().map(|id| SqlValue::from(*id)).collect(),
        ));
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
    local
}

/// The newest row a push changed in one table: `(_seq, id)`.
type Newest = Option<(i64, String)>;

/// What a push transaction of `n` rows in `groups` tables took on the
/// server: the counter before it (its range is `(base, base + n]`) and each
/// table's newest row in that range, if a merge changed one. Else what
/// failed, and in which merge statement.
fn landed_range(
    sent: &SentBatch,
    n: i64,
    groups: usize,
) -> Result<(i64, Vec<Newest>), PushFailure> {
    let SentBatch {
        out,
        merges,
        commit,
    } = sent;
    if out.results.get(*commit).is_none_or(Option::is_none) {
        let (step, error) = out
            .first_error_step()
            .unwrap_or_else(|| (0, Error::Protocol("push transaction did not commit".into())));
        if purged::guard_refused(step) {
            return Err(PushFailure {
                error: Error::PurgedDuringSync { times: 1 },
                chunk: None,
            });
        }
        // Step 0 is BEGIN, 1 the guard; then the merge statements.
        let chunk = step.checked_sub(2).and_then(|m| merges.get(m)).copied();
        return Err(PushFailure { error, chunk });
    }
    // Steps: BEGIN, the guard, the merges, the counter bump, the counter,
    // each table's newest row.
    let cell = |step: usize| {
        out.results
            .get(step)
            .and_then(Option::as_ref)
            .and_then(|r| r.rows.first())
    };
    let m = merges.len();
    let base = cell(m + 3)
        .and_then(|r| r.first())
        .and_then(SqlValue::as_i64)
        .and_then(|counter| counter.checked_sub(n))
        .ok_or_else(|| Error::Protocol("the push did not read the server counter".into()))?;
    let newest = (0..groups)
        .map(|g| {
            cell(m + 4 + g).and_then(|r| match (r.first(), r.get(1)) {
                (Some(SqlValue::Text(id)), Some(SqlValue::Integer(seq))) => {
                    Some((*seq, id.clone()))
                }
                _ => None,
            })
        })
        .collect();
    Ok((base, newest))
}
