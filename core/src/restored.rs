//! A server that forgets: a server database restored from an older backup
//! keeps its `db_id`, but its rows and its sequence counter go back. Rows
//! replicas pushed after the backup are gone, and new pushes reuse sequence
//! numbers replicas have already pulled past, so without a check the
//! replicas split for good.
//!
//! Detection, at the start of every sync of a replica that has pulled
//! before (one request for all tables): the server forgot when
//! - its counter (`_erth_meta.seq`) is below the replica's pull cursor of a
//!   table, or
//! - the replica's *anchor* of a table — the row with the highest `_seq`
//!   it saw (the last row of a pulled page, or the last row of its own push
//!   that its cursor skipped past) — is gone from the server or carries a
//!   lower `_seq` (a row only ever takes higher ones).
//!
//! Recovery is the one a reset server gets: every local row is marked
//! pending (re-pushed: the merge makes a row the server still has a no-op,
//! and puts back a row it lost) and the cursors start over (re-pulled: the
//! rows pushed after the restore, whatever sequence numbers they took).
//! Nothing is lost and, since merging is idempotent, nothing is duplicated.

use crate::db::{read_state, Database, Remote};
use crate::error::{Error, Result};
use crate::hrana::Step;
use crate::merge::META_TABLE;
use crate::schema::q;
use crate::state;
use crate::value::{SqlValue, Statement};
use std::sync::atomic::Ordering;

/// The anchor state value of row `id` at `seq` (`seq` zero-padded, so
/// text order is `_seq` order and [`state::raise`] keeps the highest).
pub(crate) fn anchor(seq: i64, id: &str) -> String {
    format!("{seq:020} {id}")
}

fn parse_anchor(text: &str) -> Option<(i64, &str)> {
    let (seq, id) = text.split_once(' ')?;
    Some((seq.parse().ok()?, id))
}

/// Statements that make a replica push everything again and pull from the
/// start (a reset or restored server).
pub(crate) fn start_over(db: &Database) -> Vec<Statement> {
    let mut stmts = Vec::new();
    for def in &db.config.tables {
        stmts.push(state::set(&state::cursor_key(&def.name), "0".into()));
        stmts.push(state::delete(&state::anchor_key(&def.name)));
        stmts.push(state::delete(&state::backfill_key(&def.name)));
        stmts.push(Statement::plain(format!(
            "UPDATE {} SET \"_dirty\" = \"_dirty\" + 1",
            q(&def.local_name())
        )));
    }
    db.writes.fetch_add(1, Ordering::SeqCst);
    stmts
}

impl Database {
    /// Checks whether the server forgot rows this replica saw (see the
    /// module docs) and, if so, makes this sync push everything and pull
    /// from the start. Returns whether it did.
    ///
    /// Errors: the request's ([`Error::Network`], [`Error::Server`], ...).
    pub(crate) async fn recover_if_server_forgot(&self, remote: &Remote) -> Result<bool> {
        let kv = read_state(self.store.as_ref()).await?;
        let mut steps = vec![Step {
            cond: None,
            stmt: Statement::plain(format!(
                "SELECT \"v\" FROM {} WHERE \"k\" = 'seq'",
                q(META_TABLE)
            )),
        }];
        let mut cursors = Vec::new();
        let mut anchors = Vec::new();
        for def in &self.config.tables {
            let cursor: i64 = kv
                .get(&state::cursor_key(&def.name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            cursors.push(cursor);
            if let Some((seq, id)) = kv
                .get(&state::anchor_key(&def.name))
                .and_then(|v| parse_anchor(v))
            {
                anchors.push((def.name.clone(), seq, steps.len()));
                steps.push(Step {
                    cond: None,
                    stmt: Statement::new(
                        format!("SELECT \"_seq\" FROM {} WHERE \"id\" = ?", q(&def.name)),
                        vec![id.into()],
                    ),
                });
            }
        }
        if anchors.is_empty() && cursors.iter().all(|c| *c == 0) {
            return Ok(false);
        }
        let out = remote.client.batch(&steps).await?;
        if let Some(e) = out.first_error() {
            return Err(e);
        }
        let single = |i: usize| {
            out.results
                .get(i)
                .and_then(Option::as_ref)
                .and_then(|r| r.rows.first())
                .and_then(|r| r.first())
                .and_then(SqlValue::as_i64)
        };
        let server_seq =
            single(0).ok_or_else(|| Error::Protocol("server _erth_meta has no seq".into()))?;
        let mut why = None;
        if let Some(c) = cursors.iter().find(|c| **c > server_seq) {
            why = Some(format!(
                "its sequence counter ({server_seq}) is below this replica's cursor ({c})"
            ));
        }
        for (table, seq, i) in &anchors {
            match single(*i) {
                Some(now) if now >= *seq => {}
                Some(now) => {
                    why = Some(format!(
                    "the last row this replica saw in {table} went from _seq {seq} back to {now}"
                ))
                }
                None => {
                    why = Some(format!(
                        "the last row this replica saw in {table} (_seq {seq}) is gone"
                    ))
                }
            }
        }
        let Some(why) = why else {
            return Ok(false);
        };
        tracing::warn!(
            reason = %why,
            "the server forgot changes (restored from a backup?): pushing everything again and pulling from the start"
        );
        self.store.write(&start_over(self)).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_sort_by_seq_and_round_trip() {
        let id = "0190a3b4-0000-7000-8000-000000000000";
        assert!(anchor(9, id) < anchor(10, id));
        assert!(anchor(99_999, id) < anchor(100_000, "0"));
        assert_eq!(parse_anchor(&anchor(42, id)), Some((42, id)));
        assert_eq!(parse_anchor("x y"), None);
    }
}
