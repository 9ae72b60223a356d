//! The opening of a pull: one request for every table at once, in one
//! snapshot of the server (a read transaction when there are several
//! tables). For each table it asks the server table's columns (the ones
//! this replica does not declare are reported), how many rows follow the
//! cursor and how big they are (the first size probe), and, speculatively,
//! the first [`OPENING_ROWS`] of them when they are small together
//! ([`OPENING_BYTES`]). A table whose rows all came in that page has caught
//! up as of the snapshot: a small sync pulls every table in one request,
//! and, when every table did, needs no check that they caught up together
//! (`stage`). Any other table goes on with pages from the plan the probe
//! made.

use super::plan::PullPlan;
use super::pull_sql::{Page, PullQueries, PullRange};
use super::Syncer;
use crate::error::{Error, Result};
use crate::hrana::{BatchOutcome, Step};
use crate::schema::TableDef;
use crate::state;
use crate::status::TableRefusal;
use crate::value::{Rows, Statement};

/// Rows of a table sent along with its first probe.
pub(super) const OPENING_ROWS: usize = 100;
/// The most those rows may be together, or none are sent (bytes as they
/// travel; see `pull_sql::row_bytes_sql`).
pub(super) const OPENING_BYTES: usize = 256 * 1024;

/// How a table's pull opened.
pub(super) enum Opening {
    /// Every row after the cursor came (maybe none): stage them, and the
    /// table has caught up as of the opening's snapshot.
    CaughtUp(Page, Option<i64>),
    /// More rows follow: go on with pages from this plan.
    Plan(PullQueries, PullPlan, i64),
    /// The server refused reading the table.
    Refused(TableRefusal),
}

/// The steps of one table in the opening request, after the step `base`.
struct Steps {
    columns: usize,
    first: usize,
    probe: usize,
}

impl Syncer<'_> {
    /// The opening of every table's pull (see the module docs), and whether
    /// the request read one snapshot of the server.
    pub(super) async fn open_pull<'d>(
        &self,
        tables: &[&'d TableDef],
    ) -> Result<(Vec<(&'d TableDef, Opening)>, bool)> {
        let kv = state::read_state(self.store).await?;
        let several = tables.len() > 1;
        let mut steps = Vec::new();
        if several {
            steps.push(Step {
                cond: None,
                stmt: Statement::plain("BEGIN"),
            });
        }
        let mut plans = Vec::new();
        for def in tables {
            let after: i64 = kv
                .get(&state::cursor_key(&def.name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let range = PullRange {
                after,
                upto: None,
                clocked: Vec::new(),
                probe_columns: true,
                filter: self.share(&def.name),
            };
            let queries = PullQueries::new(def, &range, self.config.pull_page_rows);
            let at = steps.len();
            let plain = |stmt| Step { cond: None, stmt };
            steps.push(plain(Statement::plain(def.probe_columns_sql(&def.name))));
            // The page first, then the probe: a probe that counts as many
            // rows, ending at the same `_seq`, proves no row arrived or moved
            // in between.
            steps.push(plain(queries.opening_page(
                after,
                OPENING_ROWS,
                OPENING_BYTES,
            )));
            steps.push(plain(queries.aggregate(after, self.config.pull_page_rows)));
            plans.push((
                *def,
                queries,
                after,
                Steps {
                    columns: at,
                    first: at + 1,
                    probe: at + 2,
                },
            ));
        }
        if several {
            steps.push(Step {
                cond: None,
                stmt: Statement::plain("COMMIT"),
            });
        }
        let mut out = self.remote.client.batch(&steps).await?;
        let snapshot = !several || out.errors.first().is_some_and(Option::is_none);
        let mut openings = Vec::with_capacity(plans.len());
        for (def, queries, after, at) in plans {
            let opening = self.opened(def, queries, after, &at, &mut out)?;
            openings.push((def, opening));
        }
        Ok((openings, snapshot))
    }

    /// One table's opening, read from the answer `out`.
    fn opened(
        &self,
        def: &TableDef,
        queries: PullQueries,
        after: i64,
        at: &Steps,
        out: &mut BatchOutcome,
    ) -> Result<Opening> {
        for step in [at.columns, at.first, at.probe] {
            let Some(Some((code, message))) = out.errors.get(step) else {
                continue;
            };
            // A first page the server could not build (a value JSON cannot
            // hold) is no page: the rows come from the plan.
            if step == at.first && code != "SQLITE_AUTH" {
                continue;
            }
            let error = Error::Server {
                code: code.clone(),
                message: message.clone(),
            };
            return match super::read_refusal(&def.name, &error) {
                Some(refusal) => Ok(Opening::Refused(refusal)),
                None => Err(error),
            };
        }
        let mut take = |step: usize| -> Result<Rows> {
            out.results
                .get_mut(step)
                .and_then(Option::take)
                .ok_or_else(|| Error::Protocol("the pull's opening has no result".into()))
        };
        self.note_columns(def, &take(at.columns)?.columns);
        let first = take(at.first).ok();
        let (count, bytes, last) = queries.read_aggregate(def, &take(at.probe)?)?;
        if count <= 0 {
            return Ok(Opening::CaughtUp(Page::default(), None));
        }
        let mut plan = PullPlan::new(self.config.pull_page_rows);
        plan.add_aggregate(count, bytes, last)
            .map_err(|reason| Error::InvalidRemoteRow {
                table: def.name.clone(),
                reason: reason.into(),
            })?;
        // The probe counted every row after the cursor (it stops at
        // `pull_page_rows`), and the page could hold them all.
        let count = super::plan::server_size(count);
        let all = count < self.config.pull_page_rows && count <= OPENING_ROWS;
        if let (Some(upto), Some(first)) = (last.filter(|_| all), first) {
            let page = self.open_page(def, queries.read_page(def, first, after, upto)?)?;
            let got = page.rows.len() + page.quarantined.len();
            let ends = page
                .seqs
                .last()
                .copied()
                .max(page.quarantined.iter().map(|q| q.seq).max());
            if got == count && ends == Some(upto) {
                return Ok(Opening::CaughtUp(page, Some(upto)));
            }
        }
        Ok(Opening::Plan(queries, plan, after))
    }

    /// Notes the columns of the server's table that this replica does not
    /// declare (reported by `status()`).
    pub(super) fn note_columns(&self, def: &TableDef, columns: &[String]) {
        let unknown = columns
            .iter()
            .filter(|c| !crate::schema::is_system_column(c) && def.column(c).is_none())
            .cloned()
            .collect();
        let mut found = self.found();
        found.unknown_columns.retain(|(t, _)| *t != def.name);
        found.unknown_columns.push((def.name.clone(), unknown));
    }
}
