//! Purged history, the replica's side ([`crate::purge`] is the server's):
//! a purge physically removes old tombstones from the server and raises
//! the table's *purge mark* (`_erth_meta` key `purged:<table>`: the
//! highest `_seq` it removed). A replica that has not pulled those
//! tombstones would otherwise keep the deleted rows forever, and bring
//! them back with its next edit.
//!
//! - **Catching up** (each sync, after the restore check, which reads the
//!   marks with the counter): the replica keeps, per table, the mark it
//!   last caught up with and its pull cursor at that moment
//!   ([`state::purge_key`], `"<mark> <cursor>"`). Tombstones purged since
//!   then lie in `(old mark, new mark]`; those at or below that cursor were
//!   pulled before the purge could remove them. So when the new mark is
//!   above both, the replica *re-enumerates*: it pages through the ids it
//!   holds that the server had (`_seq` set: pulled, or acknowledged by a
//!   push), asks the server which of them it still holds (10,000 ids a
//!   request), and drops the rest, its pending edits of them included (the
//!   row was deleted elsewhere, and deletes win). Rows the server never had
//!   (`_seq` NULL) stay and are pushed as usual. For a partial table the
//!   cursor counted is the lower of the pull cursor and the eviction
//!   cursor (a filtered pull skips tombstones the eviction check reads).
//! - **The push guard**: every push transaction starts with [`guard`], a
//!   statement that fails (a NOT NULL violation on `_erth_meta`) when a
//!   mark of its tables rose past what this replica caught up with. A
//!   purge between the check and the push rolls the push back; the sync
//!   catches up and pushes again, so no edit of a purged row re-inserts
//!   it. A replica that never caught up (a fresh one) meets the guard the
//!   first time it pushes to a purged server.
//! - **Local tombstones**: once caught up, a replica drops its clean
//!   tombstones at or below the mark (its own acknowledged deletes, whose
//!   `_seq` it never pulled, hold 0: they go at the first purge; the
//!   replicas that pulled them keep them until a purge reaches them).
//!   Until then it keeps them: a server
//!   restored from a backup gets every local row pushed again
//!   (`restored`), tombstones included, so a restore does not bring a
//!   deleted row back.
//! - **A restore is told apart**: the restore check runs first; an anchor
//!   row gone at or below the mark was purged, not forgotten; and a sync
//!   that found a restore does not re-enumerate (it pushes everything
//!   again instead, which loses nothing).

use super::Syncer;
use crate::error::{Error, Result};
use crate::events::{ChangeEvent, ChangeOrigin};
use crate::hrana::Step;
use crate::merge::META_TABLE;
use crate::schema::{q, TableDef};
use crate::state;
use crate::subscription::leave_key;
use crate::value::{Rows, SqlValue, Statement};
use std::collections::{HashMap, HashSet};

/// Ids a re-enumeration asks the server about per statement.
const IDS_PER_STATEMENT: usize = 500;
/// Statements per request of a re-enumeration (10,000 ids, ~400 KB).
const STATEMENTS_PER_REQUEST: usize = 20;
/// Times one sync catches up with a purge that ran during it before it
/// gives up ([`Error::PurgedDuringSync`]; the next sync goes on).
pub(super) const MAX_CATCH_UPS: usize = 8;

/// The `_erth_meta` key of `table`'s purge mark.
pub(crate) fn mark_key(table: &str) -> String {
    format!("purged:{table}")
}

/// Per table, the server's purge mark (absent: never purged).
pub(crate) type Marks = HashMap<String, i64>;

/// The purge marks among `_erth_meta`'s `(k, v)` rows.
pub(crate) fn marks_from(meta: &Rows) -> Marks {
    meta.rows
        .iter()
        .filter_map(|r| {
            let table = r.first()?.as_str()?.strip_prefix("purged:")?;
            Some((table.to_owned(), r.get(1)?.as_i64()?))
        })
        .collect()
}

/// What a replica last caught up with: the mark, and its cursor then.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct CaughtUp {
    mark: i64,
    cursor: i64,
}

impl CaughtUp {
    fn parse(text: &str) -> Option<CaughtUp> {
        let (mark, cursor) = text.split_once(' ')?;
        Some(CaughtUp {
            mark: mark.parse().ok()?,
            cursor: cursor.parse().ok()?,
        })
    }

    fn text(self) -> String {
        format!("{} {}", self.mark, self.cursor)
    }

    /// Whether a server mark of `now` may have removed tombstones this
    /// replica never pulled.
    fn behind(self, now: i64) -> bool {
        now > self.mark && now > self.cursor
    }

    /// The mark above which a push must stop (see [`guard`]).
    fn floor(self) -> i64 {
        self.mark.max(self.cursor)
    }
}

/// The push guard: fails when a purge mark of `tables` rose above its
/// floor (`(table, floor)`), by inserting a NULL into `_erth_meta`'s
/// NOT NULL column; inserts nothing otherwise.
pub(super) fn guard(floors: &[(String, i64)]) -> Statement {
    let mut args = Vec::with_capacity(floors.len() * 2);
    let mut any = Vec::with_capacity(floors.len());
    for (table, floor) in floors {
        any.push("(\"k\" = ? AND \"v\" > ?)");
        args.push(SqlValue::Text(mark_key(table)));
        args.push(SqlValue::Integer(*floor));
    }
    let meta = q(META_TABLE);
    Statement::new(
        format!(
            "INSERT INTO {meta} (\"k\", \"v\") SELECT 'purge_guard', NULL WHERE EXISTS (SELECT 1 FROM {meta} WHERE {})",
            any.join(" OR ")
        ),
        args,
    )
}

/// Whether `error` is the push guard's refusal (an error at the guard's
/// step; see [`guard`]).
pub(super) fn guard_refused(step: usize) -> bool {
    step == 1
}

impl Syncer<'_> {
    /// Per table, the mark above which this sync's pushes stop.
    pub(super) async fn purge_floors(&self) -> Result<HashMap<String, i64>> {
        let kv = state::read_state(self.store).await?;
        Ok(self
            .config
            .tables
            .iter()
            .map(|def| {
                let caught = kv
                    .get(&state::purge_key(&def.name))
                    .and_then(|v| CaughtUp::parse(v))
                    .unwrap_or_default();
                (def.name.clone(), caught.floor())
            })
            .collect())
    }

    /// Reads the server's purge marks and catches up with them (a push
    /// met the guard).
    ///
    /// Errors: the request's, the store's.
    pub(super) async fn check_purges(&self) -> Result<()> {
        let meta = self
            .remote
            .client
            .execute(Statement::plain(format!(
                "SELECT \"k\", \"v\" FROM {}",
                q(META_TABLE)
            )))
            .await?;
        self.catch_up_purges(&marks_from(&meta), false).await
    }

    /// Catches up with the server's purge `marks` (see the module docs):
    /// re-enumerates the tables that may hold purged rows (unless the
    /// server was just found `restored`), records what it caught up with,
    /// and drops the clean tombstones the marks cover.
    ///
    /// Errors: the requests', the store's.
    pub(super) async fn catch_up_purges(&self, marks: &Marks, restored: bool) -> Result<()> {
        let kv = state::read_state(self.store).await?;
        for def in &self.config.tables {
            let now = marks.get(&def.name).copied().unwrap_or(0);
            let key = state::purge_key(&def.name);
            let before = kv
                .get(&key)
                .and_then(|v| CaughtUp::parse(v))
                .unwrap_or_default();
            let cursor = |k: &str| kv.get(k).and_then(|v| v.parse::<i64>().ok());
            let pulled = cursor(&state::cursor_key(&def.name)).unwrap_or(0);
            let cursor = cursor(&leave_key(&def.name)).map_or(pulled, |l| l.min(pulled));
            if !restored && before.behind(now) {
                self.reenumerate(def, now).await?;
            }
            let after = CaughtUp { mark: now, cursor };
            let mut stmts = Vec::new();
            if after != before {
                stmts.push(state::set(&key, after.text()));
            }
            if now > 0 {
                stmts.push(Statement::new(
                    format!(
                        "DELETE FROM {} WHERE \"is_deleted\" = 1 AND \"_dirty\" = 0 AND \"_seq\" <= ?",
                        q(&def.local_name())
                    ),
                    vec![SqlValue::Integer(now)],
                ));
            }
            if !stmts.is_empty() {
                self.store.write(&stmts).await?;
            }
        }
        Ok(())
    }

    /// Drops the rows of `def` the server had and no longer holds (purged
    /// up to `mark`), paging through the ids this replica holds.
    async fn reenumerate(&self, def: &TableDef, mark: i64) -> Result<()> {
        tracing::info!(table = %def.name, mark, "the server purged history this replica has not seen; comparing ids");
        let page = (IDS_PER_STATEMENT * STATEMENTS_PER_REQUEST) as i64;
        let mut after = String::new();
        loop {
            let held = self
                .store
                .query(&Statement::new(
                    format!(
                        "SELECT \"id\" FROM (SELECT \"id\" FROM {} WHERE \"_seq\" IS NOT NULL AND \"id\" > ?1 UNION SELECT \"id\" FROM {} WHERE \"id\" > ?1) ORDER BY \"id\" LIMIT ?2",
                        q(&def.local_name()),
                        q(&def.stage_name())
                    ),
                    vec![after.as_str().into(), SqlValue::Integer(page)],
                ))
                .await?;
            let ids: Vec<String> = held
                .rows
                .iter()
                .filter_map(|r| r.first()?.as_str().map(str::to_owned))
                .collect();
            let Some(last) = ids.last().cloned() else {
                return Ok(());
            };
            let present = self.held_by_server(def, &ids).await?;
            let gone: Vec<&str> = ids
                .iter()
                .map(String::as_str)
                .filter(|id| !present.contains(*id))
                .collect();
            self.drop_purged(def, &gone).await?;
            if (ids.len() as i64) < page {
                return Ok(());
            }
            after = last;
        }
    }

    /// Which of `ids` the server's table `def` holds (one request).
    async fn held_by_server(&self, def: &TableDef, ids: &[String]) -> Result<HashSet<String>> {
        let steps: Vec<Step> = ids
            .chunks(IDS_PER_STATEMENT)
            .map(|chunk| Step {
                cond: None,
                stmt: Statement::new(
                    format!(
                        "SELECT \"id\" FROM {} WHERE \"id\" IN ({})",
                        q(&def.name),
                        vec!["?"; chunk.len()].join(", ")
                    ),
                    chunk.iter().map(|id| id.as_str().into()).collect(),
                ),
            })
            .collect();
        let out = self.remote.client.batch(&steps).await?;
        if let Some((_, e)) = out.first_error_step() {
            return Err(e);
        }
        if out.results.len() != steps.len() || out.results.iter().any(Option::is_none) {
            return Err(Error::Protocol(
                "the server answered the id comparison in another shape".into(),
            ));
        }
        Ok(out
            .results
            .iter()
            .flatten()
            .flat_map(|r| r.rows.iter())
            .filter_map(|r| r.first()?.as_str().map(str::to_owned))
            .collect())
    }

    /// Deletes the rows `gone` of `def` that the server had (its engine
    /// table's and its stage's), and their refusals, in one local
    /// transaction; live queries hear of the ones the app saw.
    async fn drop_purged(&self, def: &TableDef, gone: &[&str]) -> Result<()> {
        if gone.is_empty() {
            return Ok(());
        }
        let mut stmts = Vec::new();
        for chunk in gone.chunks(IDS_PER_STATEMENT) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let args: Vec<SqlValue> = chunk.iter().map(|id| (*id).into()).collect();
            stmts.push(Statement::new(
                format!(
                    "DELETE FROM {} WHERE \"id\" IN ({marks}) AND \"_seq\" IS NOT NULL RETURNING \"id\", \"is_deleted\"",
                    q(&def.local_name())
                ),
                args.clone(),
            ));
            stmts.push(Statement::new(
                format!(
                    "DELETE FROM {} WHERE \"id\" IN ({marks})",
                    q(&def.stage_name())
                ),
                args,
            ));
            stmts.push(super::refused::accepted(&def.name, chunk));
        }
        let out = self.store.write(&stmts).await?;
        let ids: Vec<String> = out
            .iter()
            .flat_map(|r| r.rows.iter())
            .filter(|r| r.get(1).and_then(SqlValue::as_i64) == Some(0))
            .filter_map(|r| r.first()?.as_str().map(str::to_owned))
            .collect();
        tracing::info!(table = %def.name, rows = gone.len(), live = ids.len(), "dropped rows the server purged");
        if !ids.is_empty() {
            self.events.emit(ChangeEvent {
                table: def.name.clone(),
                ids,
                origin: ChangeOrigin::Remote,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_is_behind_only_past_both_its_mark_and_its_cursor() {
        let caught = CaughtUp {
            mark: 10,
            cursor: 50,
        };
        assert!(!caught.behind(10));
        assert!(
            !caught.behind(50),
            "tombstones up to its cursor were pulled"
        );
        assert!(caught.behind(51));
        assert_eq!(caught.floor(), 50);
        let fresh = CaughtUp::default();
        assert!(!fresh.behind(0));
        assert!(fresh.behind(1));
        assert_eq!(CaughtUp::parse(&caught.text()), Some(caught));
        assert_eq!(CaughtUp::parse("x 1"), None);
        assert_eq!(CaughtUp::parse("1"), None);
    }

    #[test]
    fn marks_are_read_from_the_meta_rows() {
        let meta = Rows {
            columns: vec!["k".into(), "v".into()],
            rows: vec![
                vec!["seq".into(), SqlValue::Integer(90)],
                vec!["purged:todos".into(), SqlValue::Integer(40)],
                vec!["purged:".into(), SqlValue::Integer(1)],
                vec!["purged:notes".into(), SqlValue::Text("x".into())],
            ],
        };
        let marks = marks_from(&meta);
        assert_eq!(marks.get("todos"), Some(&40));
        assert_eq!(marks.get("notes"), None);
        assert_eq!(marks.len(), 2);
    }

    #[test]
    fn the_guard_names_every_table_with_its_floor() {
        let g = guard(&[("a".into(), 3), ("b".into(), 7)]);
        assert!(g
            .sql
            .contains("(\"k\" = ? AND \"v\" > ?) OR (\"k\" = ? AND \"v\" > ?)"));
        assert_eq!(
            g.args,
            vec![
                SqlValue::Text("purged:a".into()),
                SqlValue::Integer(3),
                SqlValue::Text("purged:b".into()),
                SqlValue::Integer(7)
            ]
        );
    }
}
