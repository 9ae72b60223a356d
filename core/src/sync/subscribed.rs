//! Partial sync in the engine ([`crate::subscription`]): what one sync does
//! for the subscriptions, around the pull.
//!
//! - **Before the pull** (`prepare_shares`): ended subscriptions (past
//!   their time to live) go, and their table is swept; a subscription
//!   whose filter reads another table (its parent) that changed on the
//!   server since the last sync is backfilled again (rows may have moved
//!   in through the parent) and its table swept (or out); a new one gets
//!   its backfill range, the rows up to the table's cursor; a partial
//!   table that holds no row yet starts its eviction cursor at the
//!   server's last `_seq` (a fresh device lists no leavers). Each partial
//!   table's pull then runs with its **share**, the filters of all its
//!   subscriptions joined by `OR`, inside the pull's own statements.
//! - **In the pull** (`backfill_subscriptions`): each backfill is a pull
//!   range `(after, upto]` with the subscription's filter, leaving out
//!   rows of the table's subscriptions that are ready (the device holds
//!   them), resumable by its own cursor; its rows are staged and applied
//!   with the rest of the sync, then the subscription is ready.
//! - **After the apply** (`finish_shares`): rows that left the share on the
//!   server (changed since the table's eviction cursor and no longer
//!   matching, tombstones included) are **evicted**: deleted from the
//!   engine table without a tombstone, unless they hold changes not yet
//!   pushed or the device holds a newer version; then pending sweeps check
//!   the held rows, 500 ids a request, against the share. Live queries hear
//!   of every evicted row.

use super::pull_sql::PullRange;
use super::Syncer;
use crate::error::{Error, Result};
use crate::events::{ChangeEvent, ChangeOrigin};
use crate::schema::{q, TableDef};
use crate::state;
use crate::subscription::{self as sub, Filter, Phase, Record};
use crate::value::{SqlValue, Statement};
use std::collections::HashMap;

/// Ids listed per request by the eviction check and the sweep.
const IDS_PER_REQUEST: usize = 500;
/// Ids of rows that left a share listed per request (about 60 bytes each).
const LEAVERS_PER_REQUEST: usize = 5_000;

/// The server's change counter (`_erth_meta.seq`), at or past every
/// table's last `_seq`. Read rather than `max("_seq")`, which tursodb
/// answered by scanning the table: a 1% device's 10-row sync took 151 ms
/// at 1,000,000 rows against 32 ms at 1,000 (`cargo xtask bench`,
/// 2026-12-07).
const SERVER_SEQ: &str =
    "coalesce((SELECT CAST(\"v\" AS INTEGER) FROM \"_erth_meta\" WHERE \"k\" = 'seq'), 0)";

impl Syncer<'_> {
    /// Every subscription in the file.
    pub(super) async fn subscriptions(&self) -> Result<Vec<Record>> {
        let [subs, params] = sub::select_all();
        let turn = self.store.turn().await?;
        let subs = turn.query(&subs).await?;
        let params = turn.query(&params).await?;
        Ok(sub::records(&subs, &params))
    }

    /// The share of `table` in this sync: `None` for a table that is not
    /// partial (it pulls everything).
    pub(super) fn share(&self, table: &str) -> Option<Filter> {
        self.shares().get(table).cloned()
    }

    fn shares(&self) -> std::sync::MutexGuard<'_, HashMap<String, Filter>> {
        self.shares.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Before the pull: see the module docs.
    pub(super) async fn prepare_shares(&self) -> Result<()> {
        let kv = state::read_state(self.store).await?;
        let partial: Vec<&TableDef> = self
            .config
            .tables
            .iter()
            .filter(|d| kv.contains_key(&sub::leave_key(&d.name)))
            .collect();
        if partial.is_empty() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let mut stmts = Vec::new();
        let mut records = Vec::new();
        for r in self.subscriptions().await? {
            if r.expires_ms.is_some_and(|e| e <= now) {
                tracing::debug!(name = %r.name, table = %r.table, "subscription expired");
                stmts.extend(sub::delete(&r.name));
                stmts.push(state::set(&sub::sweep_key(&r.table), String::new()));
            } else {
                records.push(r);
            }
        }
        stmts.extend(self.recheck_parents(&partial, &mut records, &kv).await?);
        stmts.extend(self.start_empty_tables(&partial).await?);
        for r in records.iter_mut().filter(|r| r.phase == Phase::Pending) {
            let upto = self.cursor(&r.table).await?;
            r.phase = if upto > 0 {
                Phase::Backfilling
            } else {
                Phase::Filled
            };
            stmts.push(sub::set_phase(&r.name, r.phase, 0, upto));
        }
        if !stmts.is_empty() {
            self.store.write(&stmts).await?;
        }
        let mut shares = self.shares();
        for def in partial {
            let mine = records.iter().filter(|r| r.table == def.name);
            shares.insert(def.name.clone(), Filter::any(mine.map(Record::filter)));
        }
        Ok(())
    }

    /// The subscriptions whose filters read a table that changed on the
    /// server since the last sync go back to [`Phase::Pending`] and their
    /// tables are swept: rows may have moved in or out through it.
    /// Returns the statements that record it.
    async fn recheck_parents(
        &self,
        partial: &[&TableDef],
        records: &mut [Record],
        kv: &HashMap<String, String>,
    ) -> Result<Vec<Statement>> {
        let mut parents: Vec<String> = records
            .iter()
            .flat_map(|r| r.reads.iter().cloned())
            .filter(|p| self.config.tables.iter().any(|d| &d.name == p))
            .collect();
        parents.sort();
        parents.dedup();
        if parents.is_empty() {
            return Ok(Vec::new());
        }
        let reads: Vec<String> = parents
            .iter()
            .map(|p| {
                format!(
                    "coalesce((SELECT \"_seq\" FROM {} ORDER BY \"_seq\" DESC LIMIT 1), 0)",
                    q(p)
                )
            })
            .collect();
        let answer = self
            .remote
            .client
            .execute(Statement::plain(format!("SELECT {}", reads.join(", "))))
            .await?;
        let row = answer
            .rows
            .first()
            .filter(|r| r.len() == parents.len())
            .ok_or_else(|| {
                Error::Protocol("the parents' check came back in another shape".into())
            })?;
        let seqs: HashMap<&str, i64> = parents
            .iter()
            .zip(row)
            .map(|(p, v)| (p.as_str(), v.as_i64().unwrap_or(0)))
            .collect();
        let mut stmts = Vec::new();
        for def in partial {
            let mine: Vec<String> = records
                .iter()
                .filter(|r| r.table == def.name)
                .flat_map(|r| r.reads.iter().cloned())
                .filter(|p| seqs.contains_key(p.as_str()))
                .collect();
            if mine.is_empty() {
                continue;
            }
            let marks = |p: &str| format!("{p}={}", seqs[p]);
            let now: Vec<String> = mine.iter().map(|p| marks(p)).collect();
            let key = sub::reads_key(&def.name);
            let before: Vec<&str> = kv.get(&key).map_or(Vec::new(), |v| v.split(',').collect());
            let moved: Vec<&str> = mine
                .iter()
                .map(String::as_str)
                .filter(|p| {
                    before
                        .iter()
                        .any(|b| b.split_once('=').map(|x| x.0) == Some(*p))
                })
                .filter(|p| !before.contains(&marks(p).as_str()))
                .collect();
            if !moved.is_empty() {
                tracing::debug!(table = %def.name, parents = ?moved, "a table a filter reads changed; checking the table's rows again");
                for r in records.iter_mut().filter(|r| {
                    r.table == def.name && r.reads.iter().any(|p| moved.contains(&p.as_str()))
                }) {
                    r.phase = Phase::Pending;
                    stmts.push(sub::set_phase(&r.name, Phase::Pending, 0, 0));
                }
                stmts.push(state::set(&sub::sweep_key(&def.name), String::new()));
            }
            let mut now = now;
            now.sort();
            now.dedup();
            stmts.push(state::set(&key, now.join(",")));
        }
        Ok(stmts)
    }

    /// The eviction cursor of each partial table that holds no row yet
    /// (a fresh device) moves to the server's last `_seq`, read before the
    /// pull: nothing it will pull changed before that, so the eviction
    /// check never lists the rows that did not match before this sync
    /// (99% of a table, for a device subscribed to 1%).
    async fn start_empty_tables(&self, partial: &[&TableDef]) -> Result<Vec<Statement>> {
        let mut empty = Vec::new();
        for def in partial {
            let held = self
                .store
                .query(&Statement::plain(format!(
                    "SELECT 1 FROM {} LIMIT 1",
                    q(&def.local_name())
                )))
                .await?;
            if held.rows.is_empty() {
                empty.push(*def);
            }
        }
        if empty.is_empty() {
            return Ok(Vec::new());
        }
        // One counter for every table: read once.
        let answer = self
            .remote
            .client
            .execute(Statement::plain(format!("SELECT {SERVER_SEQ}")))
            .await?;
        let seq = match answer.rows.first().map(Vec::as_slice) {
            Some([v]) => v.as_i64().unwrap_or(0),
            _ => {
                return Err(Error::Protocol(
                    "the server's change counter came back in another shape".into(),
                ))
            }
        };
        Ok(empty
            .iter()
            .map(|d| state::set(&sub::leave_key(&d.name), seq.to_string()))
            .collect())
    }

    /// Pulls the backfills of `def`'s subscriptions (see the module docs).
    /// Returns how many rows arrived.
    pub(super) async fn backfill_subscriptions(&self, def: &TableDef) -> Result<u64> {
        if self.share(&def.name).is_none() {
            return Ok(0);
        }
        let records: Vec<Record> = self
            .subscriptions()
            .await?
            .into_iter()
            .filter(|r| r.table == def.name)
            .collect();
        let ready = Filter::any(
            records
                .iter()
                .filter(|r| r.phase == Phase::Ready)
                .map(Record::filter),
        );
        let mut pulled = 0;
        for r in records.iter().filter(|r| r.phase == Phase::Backfilling) {
            let range = PullRange {
                after: r.after,
                upto: Some(r.upto),
                clocked: Vec::new(),
                probe_columns: false,
                filter: Some(r.filter().and(&ready.not())),
            };
            let (name, before) = (r.name.clone(), r.rows);
            pulled += self
                .pull_range(def, range, 0, &|last, rows| {
                    sub::backfilled(&name, last, before + rows)
                })
                .await?;
            self.store
                .write(&[sub::set_phase(&r.name, Phase::Filled, r.upto, r.upto)])
                .await?;
        }
        Ok(pulled)
    }

    /// After the apply: see the module docs. Tables in `skip` (the server
    /// refused them) are left out.
    pub(super) async fn finish_shares(&self, skip: &[String]) -> Result<()> {
        let shares: Vec<(String, Filter)> = self
            .shares()
            .iter()
            .filter(|(t, _)| !skip.contains(t))
            .map(|(t, f)| (t.clone(), f.clone()))
            .collect();
        if shares.is_empty() {
            return Ok(());
        }
        self.store.write(&[sub::filled_are_ready(skip)]).await?;
        for (table, share) in shares {
            let Some(def) = self.config.tables.iter().find(|d| d.name == table) else {
                continue;
            };
            self.evict_leavers(def, &share).await?;
            self.sweep(def, &share).await?;
        }
        Ok(())
    }

    /// Evicts the rows of `def` that changed on the server since its
    /// eviction cursor and no longer match `share`, and moves the cursor.
    /// When the device holds none of the table's rows there is nothing to
    /// evict: one request moves the cursor to the server's last `_seq`.
    async fn evict_leavers(&self, def: &TableDef, share: &Filter) -> Result<()> {
        let key = sub::leave_key(&def.name);
        let holds = !self
            .store
            .query(&Statement::plain(format!(
                "SELECT 1 FROM {} LIMIT 1",
                q(&def.local_name())
            )))
            .await?
            .rows
            .is_empty();
        loop {
            let kv = state::read_state(self.store).await?;
            let after: i64 = kv.get(&key).and_then(|v| v.parse().ok()).unwrap_or(0);
            let limit = if holds { LEAVERS_PER_REQUEST } else { 0 };
            let leaving = share.not();
            let table = q(&def.name);
            let mut args = vec![SqlValue::Integer(after)];
            args.extend(leaving.args);
            args.push(SqlValue::Integer(limit as i64));
            let answer = self
                .remote
                .client
                .execute(Statement::new(
                    format!(
                        "SELECT NULL, {SERVER_SEQ} UNION ALL SELECT * FROM (SELECT \"id\", \"_seq\" FROM {table} WHERE \"_seq\" > ? AND {} ORDER BY \"_seq\" LIMIT ?)",
                        leaving.sql
                    ),
                    args,
                ))
                .await?;
            let mut last = None;
            let mut left = Vec::new();
            for row in &answer.rows {
                match (row.first(), row.get(1).and_then(SqlValue::as_i64)) {
                    (Some(SqlValue::Null), seq) => last = Some(seq.unwrap_or(0)),
                    (Some(SqlValue::Text(id)), Some(seq)) => left.push((id.clone(), seq)),
                    _ => {
                        return Err(Error::Protocol(
                            "the eviction check came back in another shape".into(),
                        ))
                    }
                }
            }
            let full = limit > 0 && left.len() == limit;
            let moved = match (full, left.last(), last) {
                (true, Some((_, seq)), _) => *seq,
                (false, _, Some(max)) => max.max(after),
                _ => after,
            };
            self.evict(def, &left, state::set(&key, moved.to_string()))
                .await?;
            if !full {
                return Ok(());
            }
        }
    }

    /// Checks the held rows of `def` against `share` after a subscription
    /// ended (a pending sweep), resumable by the last id checked.
    async fn sweep(&self, def: &TableDef, share: &Filter) -> Result<()> {
        let key = sub::sweep_key(&def.name);
        let Some(mut after) = state::read_state(self.store).await?.get(&key).cloned() else {
            return Ok(());
        };
        loop {
            let held = self
                .store
                .query(&Statement::new(
                    format!(
                        "SELECT \"id\" FROM {} WHERE \"id\" > ? AND \"_dirty\" = 0 ORDER BY \"id\" LIMIT ?",
                        q(&def.local_name())
                    ),
                    vec![after.as_str().into(), SqlValue::Integer(IDS_PER_REQUEST as i64)],
                ))
                .await?;
            let ids: Vec<String> = held
                .rows
                .iter()
                .filter_map(|r| r.first()?.as_str().map(str::to_owned))
                .collect();
            let Some(last) = ids.last().cloned() else {
                self.store.write(&[state::delete(&key)]).await?;
                return Ok(());
            };
            let left: Vec<(String, i64)> = if *share == Filter::nothing() {
                ids.into_iter().map(|id| (id, i64::MAX)).collect()
            } else {
                let leaving = share.not();
                let mut args: Vec<SqlValue> = ids.iter().map(|i| i.as_str().into()).collect();
                args.extend(leaving.args);
                let answer = self
                    .remote
                    .client
                    .execute(Statement::new(
                        format!(
                            "SELECT \"id\", \"_seq\" FROM {} WHERE \"id\" IN ({}) AND {}",
                            q(&def.name),
                            vec!["?"; ids.len()].join(", "),
                            leaving.sql
                        ),
                        args,
                    ))
                    .await?;
                answer
                    .rows
                    .iter()
                    .filter_map(|r| Some((r.first()?.as_str()?.to_owned(), r.get(1)?.as_i64()?)))
                    .collect()
            };
            self.evict(def, &left, state::set(&key, last.clone()))
                .await?;
            after = last;
        }
    }

    /// Deletes the held rows `left` (id, the server's `_seq` where it no
    /// longer matches) of `def` that hold no pending change and no newer
    /// version, without a tombstone, and runs `then`, in one local
    /// transaction; live queries hear of them.
    async fn evict(&self, def: &TableDef, left: &[(String, i64)], then: Statement) -> Result<()> {
        let mut stmts: Vec<Statement> = left
            .iter()
            .map(|(id, seq)| {
                Statement::new(
                    format!(
                        "DELETE FROM {} WHERE \"id\" = ? AND \"_dirty\" = 0 AND coalesce(\"_seq\", 0) <= ? RETURNING \"id\"",
                        q(&def.local_name())
                    ),
                    vec![id.as_str().into(), SqlValue::Integer(*seq)],
                )
            })
            .collect();
        stmts.push(then);
        let out = self.store.write(&stmts).await?;
        let ids: Vec<String> = out
            .iter()
            .flat_map(|r| r.rows.iter())
            .filter_map(|r| r.first()?.as_str().map(str::to_owned))
            .collect();
        if !ids.is_empty() {
            tracing::debug!(table = %def.name, rows = ids.len(), "evicted rows that left the table's subscriptions");
            self.events.emit(ChangeEvent {
                table: def.name.clone(),
                ids,
                origin: ChangeOrigin::Remote,
            });
        }
        Ok(())
    }
}
