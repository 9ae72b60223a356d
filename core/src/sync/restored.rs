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

use super::purged::{marks_from, Marks};
use super::Syncer;
use crate::error::{Error, Result};
use crate::hrana::Step;
use crate::merge::META_TABLE;
use crate::schema::{q, TableDef};
use crate::state;
use crate::value::{SqlValue, Statement};

/// The anchor state value of row `id` at `seq` (`seq` zero-padded, so
/// text order is `_seq` order and [`state::raise`] keeps the highest).
pub(crate) fn anchor(seq: i64, id: &str) -> String {
    format!("{seq:020} {id}")
}

fn parse_anchor(text: &str) -> Option<(i64, &str)> {
    let (seq, id) = text.split_once(' ')?;
    Some((seq.parse().ok()?, id))
}

/// Statements that make a replica of `tables` push everything again and
/// pull from the start (a reset or restored server).
pub(crate) fn start_over(tables: &[TableDef]) -> Vec<Statement> {
    let mut stmts = Vec::new();
    for def in tables {
        stmts.push(state::set(&state::cursor_key(&def.name), "0".into()));
        stmts.push(state::delete(&state::anchor_key(&def.name)));
        stmts.push(state::delete(&state::backfill_key(&def.name)));
        stmts.push(super::stage::clear_stage(def));
        stmts.push(Statement::plain(format!(
            "UPDATE {} SET \"_dirty\" = \"_dirty\" + 1",
            q(&def.local_name())
        )));
    }
    stmts.extend(crate::subscription::start_over());
    stmts
}

impl Syncer<'_> {
    /// [`start_over`] of this replica's tables, noted in what the sync found.
    pub(super) fn start_over(&self) -> Vec<Statement> {
        self.found().started_over = true;
        start_over(&self.config.tables)
    }

    /// Checks whether the server forgot rows this replica saw (see the
    /// module docs) and, if so, makes this sync push everything and pull
    /// from the start. Returns the server's purge marks, read in the same
    /// request (`purged`), and whether it started over; `None` when there
    /// was nothing to check (a replica that never pulled).
    ///
    /// Errors: the request's ([`Error::Network`], [`Error::Server`], ...).
    pub(super) async fn recover_if_server_forgot(&self) -> Result<Option<(Marks, bool)>> {
        let kv = state::read_state(self.store).await?;
        let seen: Vec<Seen> = self
            .config
            .tables
            .iter()
            .map(|def| Seen {
                table: def.name.clone(),
                cursor: kv
                    .get(&state::cursor_key(&def.name))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                anchor: kv
                    .get(&state::anchor_key(&def.name))
                    .and_then(|v| parse_anchor(v))
                    .map(|(seq, id)| (seq, id.to_owned())),
            })
            .collect();
        if seen.iter().all(|s| s.anchor.is_none() && s.cursor == 0) {
            return Ok(None);
        }
        let out = self.remote.client.batch(&check_steps(&seen)).await?;
        // A table this token may not read is not checked (its pull is
        // refused, and reported, as the table's); any other error fails.
        let unreadable = |i: usize| {
            out.errors
                .get(i)
                .and_then(Option::as_ref)
                .is_some_and(|(code, _)| i > 0 && code == "SQLITE_AUTH")
        };
        if let Some((i, e)) = out.first_error_step() {
            if !unreadable(i) {
                return Err(e);
            }
        }
        let meta = out
            .results
            .first()
            .and_then(Option::as_ref)
            .ok_or_else(|| Error::Protocol("the restore check has no answer".into()))?;
        let marks = marks_from(meta);
        let server_seq = meta
            .rows
            .iter()
            .find(|r| r.first().and_then(SqlValue::as_str) == Some("seq"))
            .and_then(|r| r.get(1))
            .and_then(SqlValue::as_i64)
            .ok_or_else(|| Error::Protocol("server _erth_meta has no seq".into()))?;
        let answers = out.results.iter().enumerate().skip(1).map(|(i, r)| {
            (!unreadable(i)).then(|| {
                r.as_ref()
                    .and_then(|r| r.rows.first())
                    .and_then(|r| r.first())
                    .and_then(SqlValue::as_i64)
            })
        });
        let Some(why) = forgotten(server_seq, &marks, &seen, answers) else {
            return Ok(Some((marks, false)));
        };
        tracing::warn!(
            reason = %why,
            "the server forgot changes (restored from a backup?): pushing everything again and pulling from the start"
        );
        self.store.write(&self.start_over()).await?;
        Ok(Some((marks, true)))
    }
}

/// What a replica saw of one table: its pull cursor and its anchor
/// (`_seq`, id), if any.
struct Seen {
    table: String,
    cursor: i64,
    anchor: Option<(i64, String)>,
}

/// The check's request: `_erth_meta` (the counter and the purge marks),
/// then the `_seq` of each table's anchor row (for the tables that have
/// one, in order).
fn check_steps(seen: &[Seen]) -> Vec<Step> {
    let mut steps = vec![Step {
        cond: None,
        stmt: Statement::plain(format!("SELECT \"k\", \"v\" FROM {}", q(META_TABLE))),
    }];
    for s in seen {
        if let Some((_, id)) = &s.anchor {
            steps.push(Step {
                cond: None,
                stmt: Statement::new(
                    format!("SELECT \"_seq\" FROM {} WHERE \"id\" = ?", q(&s.table)),
                    vec![id.as_str().into()],
                ),
            });
        }
    }
    steps
}

/// Why the server forgot what this replica saw, if it did: its counter
/// `server_seq` is below a cursor, or an anchor row is gone (unless a
/// purge of its table reached its `_seq`: `marks`) or at a lower `_seq`
/// (`anchors_now`: the anchor rows' `_seq` on the server, in the order of
/// [`check_steps`]; `None` for one this token may not read).
fn forgotten(
    server_seq: i64,
    marks: &Marks,
    seen: &[Seen],
    mut anchors_now: impl Iterator<Item = Option<Option<i64>>>,
) -> Option<String> {
    let mut why = seen.iter().find(|s| s.cursor > server_seq).map(|s| {
        format!(
            "its sequence counter ({server_seq}) is below this replica's cursor ({})",
            s.cursor
        )
    });
    for s in seen {
        let Some((seq, _)) = &s.anchor else { continue };
        let table = &s.table;
        let Some(now) = anchors_now.next().unwrap_or(Some(None)) else {
            continue;
        };
        match now {
            Some(now) if now >= *seq => {}
            Some(now) => {
                why = Some(format!(
                    "the last row this replica saw in {table} went from _seq {seq} back to {now}"
                ))
            }
            None if marks.get(table).is_some_and(|m| m >= seq) => {}
            None => {
                why = Some(format!(
                    "the last row this replica saw in {table} (_seq {seq}) is gone"
                ))
            }
        }
    }
    why
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

    #[test]
    fn a_server_forgot_when_its_counter_or_an_anchor_went_back() {
        let seen = |cursor, anchor: Option<i64>| Seen {
            table: "t".into(),
            cursor,
            anchor: anchor.map(|seq| (seq, "id".into())),
        };
        let none = Marks::new();
        let one = [seen(10, Some(10))];
        // The same or later: nothing forgotten.
        assert_eq!(
            forgotten(10, &none, &one, [Some(Some(10))].into_iter()),
            None
        );
        assert_eq!(
            forgotten(50, &none, &one, [Some(Some(12))].into_iter()),
            None
        );
        // The counter below the cursor; the anchor lower, or gone.
        assert!(forgotten(9, &none, &one, [Some(Some(10))].into_iter())
            .is_some_and(|w| w.contains("counter (9)")));
        assert!(forgotten(50, &none, &one, [Some(Some(9))].into_iter())
            .is_some_and(|w| w.contains("back to 9")));
        assert!(forgotten(50, &none, &one, [Some(None)].into_iter())
            .is_some_and(|w| w.contains("gone")));
        // Anchors are matched in order, skipping tables without one.
        let two = [seen(0, None), seen(5, Some(5))];
        assert_eq!(forgotten(5, &none, &two, [Some(Some(5))].into_iter()), None);
        assert_eq!(check_steps(&two).len(), 2);
        assert!(forgotten(5, &none, &two, [Some(Some(4))].into_iter()).is_some());
        // An anchor a purge reached was purged, not forgotten; one above
        // the mark was forgotten.
        let purged: Marks = [("t".to_owned(), 10)].into();
        assert_eq!(forgotten(50, &purged, &one, [Some(None)].into_iter()), None);
        let purged_below: Marks = [("t".to_owned(), 9)].into();
        assert!(forgotten(50, &purged_below, &one, [Some(None)].into_iter()).is_some());
        // An anchor this token may not read is not taken for gone.
        assert_eq!(forgotten(50, &none, &one, [None].into_iter()), None);
    }
}
