//! The stage: where a pull keeps what it downloaded until it has caught up
//! with the server, so that another device's transaction is never seen in
//! part. Each synced table has a stage table `_erth_stage_<table>` of the
//! same row layout; a page is merged into it (with the cursor, anchor and
//! clock, in one local transaction: a crash loses nothing and the next sync
//! goes on from there), and once every table has caught up in one snapshot
//! of the server, everything staged is merged into the engine tables in one
//! local transaction (`Syncer::apply_staged`): the app sees the server's
//! state as of that snapshot, whole, and its live queries hear of it once.
//!
//! Why staging and not per page: rows move (a row another transaction
//! changes takes a new, higher `_seq`), so the rows up to some `_seq` are
//! not a state the server ever had; the state after catching up is (every
//! row at its latest version as of the last check).
//!
//! A table's first pull (no `released:<table>` in the replica's state)
//! goes into the engine table itself: a new row is inserted marked
//! [`crate::schema::local::HIDDEN_COLUMN`], which the view and the typed
//! API leave out, and the apply records `released:<table>` in the same
//! transaction as the rest, so the marked rows show at once, whole,
//! without being written a second time. A row whose id the app already
//! sees is staged as above (merged in place, its change would show early).

use super::Syncer;
use crate::error::{Error, Result};
use crate::events::{ChangeEvent, ChangeOrigin};
use crate::merge::{self, Target};
use crate::row::SyncRow;
use crate::schema::{q, TableDef};
use crate::state;
use crate::value::{SqlValue, Statement};

/// An apply tells subscribers the ids of at most this many changed rows
/// per table; past it (a large first pull) the event carries no ids, and
/// a subscriber that needs them reads the table (the ids of a million rows
/// would hold tens of megabytes).
pub(crate) const EVENT_IDS: i64 = 10_000;

/// Rounds of "pull what moved, then check again" a pull may take before it
/// is applied, against a server that keeps changing: the sync's deadline
/// bounds it too.
const MAX_ROUNDS: usize = 32;

/// Merges pulled `rows` (with their `_seq`) into `def`'s stage table, in
/// statements of at most `per` rows.
pub(crate) fn stage_rows(
    def: &TableDef,
    rows: &[SyncRow],
    seqs: &[i64],
    per: usize,
) -> Vec<Statement> {
    let stage = def.stage_name();
    rows.chunks(per)
        .zip(seqs.chunks(per))
        .map(|(r, s)| merge::upsert_into(&stage, def, r, s, Target::Staged))
        .collect()
}

/// Merges pulled `rows` (with their `_seq`) of a first pull straight into
/// `def`'s engine table, marked hidden where they are new
/// ([`Target::Hidden`]), in statements of at most `per` rows.
pub(crate) fn hide_rows(
    def: &TableDef,
    rows: &[SyncRow],
    seqs: &[i64],
    per: usize,
) -> Vec<Statement> {
    let table = def.local_name();
    rows.chunks(per)
        .zip(seqs.chunks(per))
        .map(|(r, s)| merge::upsert_into(&table, def, r, s, Target::Hidden))
        .collect()
}

/// The ids among `rows` of engine rows the app sees: a first pull stages
/// those (merged into them in place they would show before the pull is
/// applied) and hides the rest.
pub(crate) fn visible_ids(def: &TableDef, rows: &[SyncRow]) -> Statement {
    Statement::new(
        format!(
            "SELECT \"id\" FROM {} WHERE \"id\" IN ({}) AND \"{}\" = 0",
            q(&def.local_name()),
            vec!["?"; rows.len()].join(", "),
            crate::schema::local::HIDDEN_COLUMN
        ),
        rows.iter().map(|r| SqlValue::from(r.id.as_str())).collect(),
    )
}

/// `SELECT count(*)` of `def`'s staged rows.
pub(crate) fn count_staged(def: &TableDef) -> Statement {
    Statement::plain(format!("SELECT count(*) FROM {}", q(&def.stage_name())))
}

/// Empties `def`'s stage table.
pub(crate) fn clear_stage(def: &TableDef) -> Statement {
    Statement::plain(format!("DELETE FROM {}", q(&def.stage_name())))
}

impl Syncer<'_> {
    /// Once every table's pull reached its end: unless every table caught
    /// up in one snapshot already (`check` false: the pull's opening),
    /// checks, in one snapshot of the server (one statement), that no table
    /// has rows past its cursor (none moved or arrived meanwhile); pulls
    /// what did and checks again; then applies everything staged in one
    /// local transaction. Tables in `skip` (the server refused them) are
    /// left out.
    pub(super) async fn settle_pull(&self, skip: &[String], check: bool) -> Result<u64> {
        let mut pulled = 0;
        for round in 0.. {
            if !check {
                break;
            }
            let tables: Vec<&TableDef> = self
                .config
                .tables
                .iter()
                .filter(|d| !skip.contains(&d.name))
                .collect();
            let behind = self.tables_behind(&tables).await?;
            if behind.is_empty() {
                break;
            }
            if round >= MAX_ROUNDS {
                tracing::warn!(rounds = round, "the server kept changing during the pull; applying what it held at the last page");
                break;
            }
            for def in behind {
                pulled += self.pull_table(def).await?;
            }
        }
        self.apply_staged(skip).await?;
        Ok(pulled)
    }

    /// The tables with rows past their cursor on the server, read in one
    /// statement (one snapshot).
    ///
    /// One table needs no check: its pull ended with a request that read
    /// its last page and found nothing after it (`plan`'s probe of what
    /// follows), and a transaction that wrote it in between would have left
    /// rows after it.
    async fn tables_behind<'d>(&self, tables: &[&'d TableDef]) -> Result<Vec<&'d TableDef>> {
        if tables.len() < 2 {
            return Ok(Vec::new());
        }
        let kv = state::read_state(self.store).await?;
        let mut counts = Vec::new();
        let mut args = Vec::new();
        for def in tables {
            let share = self.share(&def.name);
            counts.push(format!(
                "(SELECT count(*) FROM {} WHERE \"_seq\" > ?{})",
                q(&def.name),
                share
                    .as_ref()
                    .map_or(String::new(), |f| format!(" AND {}", f.sql))
            ));
            let cursor: i64 = kv
                .get(&state::cursor_key(&def.name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            args.push(SqlValue::Integer(cursor));
            args.extend(share.into_iter().flat_map(|f| f.args));
        }
        let answer = self
            .remote
            .client
            .execute(Statement::new(
                format!("SELECT {}", counts.join(", ")),
                args,
            ))
            .await?;
        let row = answer
            .rows
            .first()
            .filter(|r| r.len() == tables.len())
            .ok_or_else(|| Error::Protocol("the pull's check came back in another shape".into()))?;
        Ok(tables
            .iter()
            .zip(row)
            .filter(|(_, n)| n.as_i64().unwrap_or(1) > 0)
            .map(|(def, _)| *def)
            .collect())
    }

    /// Merges every staged row into the engine tables and empties the
    /// stage, and releases the rows of the tables whose first pull this
    /// was (records [`TableDef::released_key`]: their rows marked hidden
    /// show from then on), in one local transaction; pulled tombstones
    /// that still held user data are marked pending (this sync pushes them
    /// back cleared); subscribers hear of each table once.
    async fn apply_staged(&self, skip: &[String]) -> Result<()> {
        let tables: Vec<&TableDef> = self
            .config
            .tables
            .iter()
            .filter(|d| !skip.contains(&d.name))
            .collect();
        let kv = state::read_state(self.store).await?;
        let mut applying = Vec::new();
        for def in tables {
            let n = self
                .store
                .query(&count_staged(def))
                .await?
                .rows
                .first()
                .and_then(|r| r.first())
                .and_then(SqlValue::as_i64)
                .unwrap_or(0);
            // A first pull's rows, at most one past the ids an event lists.
            let hidden = if kv.contains_key(&def.released_key()) {
                None
            } else {
                Some(self.store.query(&hidden_ids(def)).await?.rows)
            };
            if n > 0 || hidden.is_some() {
                applying.push((def, n, hidden));
            }
        }
        if applying.is_empty() {
            return Ok(());
        }
        let mut stmts = Vec::new();
        for (def, n, hidden) in &applying {
            stmts.push(merge::upsert_from_table(
                &def.local_name(),
                def,
                &def.stage_name(),
                *n <= EVENT_IDS,
            ));
            stmts.push(Statement::plain("SELECT changes()"));
            stmts.push(mark_uncleared(def));
            stmts.push(clear_stage(def));
            if hidden.is_some() {
                stmts.push(state::set(&def.released_key(), "1".into()));
            }
        }
        let out = self.store.write(&stmts).await?;
        let mut at = 0;
        for (def, n, hidden) in &applying {
            let (merged, changes, uncleared) = (&out[at], &out[at + 1], &out[at + 2]);
            at += if hidden.is_some() { 5 } else { 4 };
            if !uncleared.rows.is_empty() {
                self.found().uncleared = true;
            }
            let changed = changes
                .rows
                .first()
                .and_then(|r| r.first())
                .and_then(SqlValue::as_i64)
                .unwrap_or(0);
            let shown = hidden.as_ref().map_or(0, |h| h.len() as i64);
            if *n + shown > EVENT_IDS && changed + shown > 0 {
                self.events.emit_many(&def.name, ChangeOrigin::Remote);
                continue;
            }
            let ids: Vec<String> = merged
                .rows
                .iter()
                .chain(hidden.iter().flatten())
                .filter_map(|r| r.first().and_then(SqlValue::as_str).map(str::to_owned))
                .collect();
            if ids.is_empty() && hidden.is_some() {
                continue;
            }
            self.events.emit(ChangeEvent {
                table: def.name.clone(),
                ids,
                origin: ChangeOrigin::Remote,
            });
        }
        Ok(())
    }
}

/// The ids of `def`'s engine rows that its first pull wrote (marked
/// hidden), at most one more than an event lists ([`EVENT_IDS`]).
fn hidden_ids(def: &TableDef) -> Statement {
    Statement::plain(format!(
        "SELECT \"id\" FROM {} WHERE \"{}\" = 1 LIMIT {}",
        q(&def.local_name()),
        crate::schema::local::HIDDEN_COLUMN,
        EVENT_IDS + 1
    ))
}

/// Marks pending the engine rows whose pulled (server) version was a
/// tombstone that still held user data (an earlier release wrote it; the
/// stage marks them with `_dirty`, see [`mark_uncleared_staged`]): merged,
/// the local row is cleared, and this sync pushes it back, which clears it
/// on the server. Returns their ids.
fn mark_uncleared(def: &TableDef) -> Statement {
    Statement::plain(format!(
        "UPDATE {} SET \"_dirty\" = \"_dirty\" + 1 WHERE \"id\" IN (SELECT \"id\" FROM {} WHERE \"_dirty\" > 0) RETURNING \"id\"",
        q(&def.local_name()),
        q(&def.stage_name())
    ))
}

/// Marks the staged rows of `ids` (pulled tombstones that still held user
/// data, cleared as they were staged) so the apply marks them pending; or,
/// `hidden`, the engine rows a first pull merged them into, pending at once.
pub(crate) fn mark_uncleared_staged(
    def: &TableDef,
    ids: &[&str],
    hidden: bool,
) -> Option<Statement> {
    if ids.is_empty() {
        return None;
    }
    let (table, dirty) = if hidden {
        (def.local_name(), "\"_dirty\" + 1")
    } else {
        (def.stage_name(), "1")
    };
    Some(Statement::new(
        format!(
            "UPDATE {} SET \"_dirty\" = {dirty} WHERE \"id\" IN ({})",
            q(&table),
            vec!["?"; ids.len()].join(", ")
        ),
        ids.iter().map(|id| SqlValue::from(*id)).collect(),
    ))
}
