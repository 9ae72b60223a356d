//! Pull: a table's rows after its cursor, in pages sized in bytes (see the
//! [module docs](super)), each merged into the stage in one local
//! transaction with the new cursor and clock; and the backfill of columns
//! this replica added after pulling rows ([`crate::migrate`]). The SQL and
//! the checks of answers are in [`super::pull_sql`], the page plan in
//! [`super::plan`], the stage and its apply in [`super::stage`]; this module
//! is the loop that sends, waits and stages.

use super::opening::Opening;
use super::plan::{PageAsk, PullPlan};
use super::pull_sql::{Page, PullQueries, PullRange, Quarantined};
use super::{arrived, restored, stage, Syncer};
use crate::error::{Error, Result};
use crate::hlc::Observed;
use crate::hrana::{BatchOutcome, Step};
use crate::migrate::Backfill;
use crate::row::SyncRow;
use crate::schema::{q, TableDef};
use crate::state;
use crate::status::{SyncProgress, TableRefusal};
use crate::store::Store;
use crate::value::{Rows, SqlValue, Statement};
use futures::future::MaybeDone;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

/// The answer of a page request and how long it took (ms).
type PageAnswer = Result<(Vec<Option<Rows>>, u64)>;

/// A page that arrived: the server's rows, decoded once the next page is
/// asked for, or a page already made (a row too large for a page, pulled
/// by itself).
enum Arrived {
    Answer(Rows),
    Made(Page),
}

/// Where one pull range stands.
struct Pulling<'q> {
    def: &'q TableDef,
    queries: PullQueries,
    plan: PullPlan,
    /// The `_seq` the rows pulled so far end at.
    after: i64,
    /// Rows pulled in this range.
    pulled: u64,
    /// The budget of the next ask after a page failed (under the link's).
    limit: Option<usize>,
    /// Pages that failed in a row.
    failures: u32,
}

/// Pages of one range that may fail in a row before the sync gives up:
/// each failure halves the page (a budget of 6 MB reaches one row in about
/// 23 halvings), then the row comes in pieces.
const MAX_PAGE_FAILURES: u32 = 32;

/// A page is merged in local transactions of at most this share of the
/// page size in rows (`Config::pull_page_rows`; see `Syncer::stage_page`):
/// 2,000 rows natively, 500 in a browser, where one transaction of 2,000
/// rows into a 1,000,000-row table took about 90 ms and a second tab's read,
/// which needs several turns of the owner's Worker, waited through three
/// of them (270 ms; `cargo xtask bench`, 2026-12-07).
const CHUNKS_PER_PAGE: usize = 5;

impl Syncer<'_> {
    /// Pulls `def`'s pending backfill, then its rows after the cursor.
    /// Returns how many rows arrived.
    pub(super) async fn pull_table(&self, def: &TableDef) -> Result<u64> {
        let mut pulled = self.backfill_table(def).await?;
        pulled += self.backfill_subscriptions(def).await?;
        let cursor_key = state::cursor_key(&def.name);
        let range = PullRange {
            after: self.cursor(&def.name).await?,
            upto: None,
            clocked: Vec::new(),
            probe_columns: true,
            filter: self.share(&def.name),
        };
        pulled += self
            .pull_range(def, range, pulled, &|last, _| {
                state::set(&cursor_key, last.to_string())
            })
            .await?;
        Ok(pulled)
    }

    /// Pulls every table of `tables` (see the module docs): pending
    /// backfills first, then one opening request for all of them, then the
    /// pages of those with more rows. Returns the rows pulled, the tables
    /// the server refused reading, and whether every table caught up in
    /// the opening's one snapshot (no check they caught up together needed).
    pub(super) async fn pull_tables(
        &self,
        tables: &[&TableDef],
    ) -> Result<(u64, Vec<TableRefusal>, bool)> {
        let mut pulled = 0;
        for def in tables {
            pulled += self.backfill_table(def).await?;
            pulled += self.backfill_subscriptions(def).await?;
        }
        let (openings, snapshot) = self.open_pull(tables).await?;
        let mut together = snapshot;
        let mut refused = Vec::new();
        for (def, opening) in openings {
            let cursor_key = state::cursor_key(&def.name);
            let cursor = |last: i64, _| state::set(&cursor_key, last.to_string());
            match opening {
                Opening::Refused(refusal) => refused.push(refusal),
                Opening::CaughtUp(page, last) => {
                    let n = page.rows.len() as u64;
                    if let Some(last) = last {
                        self.stage_page(def, page, cursor(last, n)).await?;
                        (self.progress)(SyncProgress::Pulled {
                            table: def.name.clone(),
                            rows: n,
                        });
                    }
                    pulled += n;
                }
                Opening::Plan(queries, plan, after) => {
                    together = false;
                    let p = Pulling {
                        def,
                        queries,
                        plan,
                        after,
                        pulled: 0,
                        limit: None,
                        failures: 0,
                    };
                    pulled += self.pull_pages(p, 0, &cursor).await?;
                }
            }
        }
        Ok((pulled, refused, together))
    }

    /// Pulls again the rows a column added since they were pulled is
    /// missing (see [`crate::migrate`]): rows up to the cursor of the upgrade
    /// whose new columns carry a clock. Resumable: its own cursor moves with
    /// every page.
    async fn backfill_table(&self, def: &TableDef) -> Result<u64> {
        let key = state::backfill_key(&def.name);
        let Some(backfill) = state::read_state(self.store)
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
            filter: self.share(&def.name),
        };
        let pulled = if range.clocked.is_empty() {
            0
        } else {
            self.pull_range(def, range, 0, &|last, _| {
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

    /// Pulls the pages of `range` and merges each with `cursor(last _seq,
    /// rows of the range so far)` in one local transaction. `pulled_before`
    /// only offsets progress.
    ///
    /// A page that does not arrive (a timeout, or an answer the server
    /// will not build or send) is asked again at half its size, after a
    /// backoff, down to one row; one row that does not arrive alone comes
    /// by itself in pieces (`large_row`). At most [`MAX_PAGE_FAILURES`]
    /// failures in a row, then the sync fails with the last one: every
    /// sync ends.
    pub(super) async fn pull_range(
        &self,
        def: &TableDef,
        range: PullRange,
        pulled_before: u64,
        cursor: &(dyn Fn(i64, u64) -> Statement + Sync),
    ) -> Result<u64> {
        let mut p = Pulling {
            def,
            queries: PullQueries::new(def, &range, self.config.pull_page_rows),
            plan: PullPlan::new(self.config.pull_page_rows),
            after: range.after,
            pulled: 0,
            limit: None,
            failures: 0,
        };
        self.first_probe(&mut p, range.probe_columns).await?;
        self.pull_pages(p, pulled_before, cursor).await
    }

    /// The pages of a range whose first probe made `p`'s plan (see
    /// [`Syncer::pull_range`]).
    async fn pull_pages(
        &self,
        mut p: Pulling<'_>,
        pulled_before: u64,
        cursor: &(dyn Fn(i64, u64) -> Statement + Sync),
    ) -> Result<u64> {
        let def = p.def;
        // The page requested while the previous one was being applied.
        let mut prefetched: Option<(PageAsk, _)> = None;
        while !p.plan.is_empty() {
            if prefetched.is_none() && p.plan.needs_detail(self.budget(&p)) {
                let answer = self.remote.client.execute(p.queries.sizes(p.after)).await?;
                p.plan.listed(&p.queries.read_sizes(def, &answer)?);
                continue;
            }
            let (ask, request) = match prefetched.take() {
                Some(sent) => sent,
                None => match p.plan.next_page(self.budget(&p)) {
                    Some(ask) => (ask, self.fetch(&p.queries, p.after, ask)),
                    None => break,
                },
            };
            let arrived_page = match arrived(request).await? {
                Ok((mut answer, elapsed)) => {
                    (p.failures, p.limit) = (0, None);
                    self.remote
                        .budgets
                        .page_arrived(ask.budget, ask.bytes, elapsed);
                    let page = take_result(&mut answer, 0, "the page has no result")?;
                    p.plan.page_done(&ask);
                    if ask.probe_next.is_some() {
                        let probe =
                            take_result(&mut answer, 1, "the page's size probe has no result")?;
                        self.plan_aggregate(&mut p, &probe)?;
                    }
                    Arrived::Answer(page)
                }
                Err(e) if too_big(&e) || (p.queries.json() && e.is_row_refusal()) => {
                    match self.page_failed(&mut p, &ask, e).await? {
                        Some(page) => Arrived::Made(page),
                        None => continue,
                    }
                }
                Err(e) => return Err(e),
            };
            // Ask for the next page before decoding and applying this one:
            // its request leaves now (polled once) and the server builds it
            // while this page is decoded, its sealed values opened and its
            // rows merged. (Its `elapsed` then includes that work,
            // milliseconds against the seconds that change a page budget.)
            if !p.plan.needs_detail(self.budget(&p)) {
                if let Some(next) = p.plan.next_page(self.budget(&p)) {
                    let mut request = self.fetch(&p.queries, ask.upto, next);
                    let _ = futures::poll!(&mut request);
                    prefetched = Some((next, request));
                }
            }
            let page = match arrived_page {
                Arrived::Made(page) => page,
                Arrived::Answer(rows) => {
                    let page = p.queries.read_page(def, rows, p.after, ask.upto)?;
                    self.open_page(def, page)?
                }
            };
            let through = cursor(ask.upto, p.pulled + page.rows.len() as u64);
            self.stage_pulled(&mut p, page, through, pulled_before)
                .await?;
            // Rows of the plan missing from the page were changed since and
            // come later with a new `_seq`: the cursor moves to the page's end.
            p.after = ask.upto;
        }
        Ok(p.pulled)
    }

    /// The page budget of this range now: the link's, or less after a
    /// failure, and never over what one page of this table may hold.
    fn budget(&self, p: &Pulling<'_>) -> usize {
        p.limit
            .unwrap_or_else(|| self.remote.budgets.page())
            .min(p.queries.max_page_bytes())
    }

    /// Page `ask` did not arrive with `error`: too big for the link or the
    /// server, or (a JSON page) the server could not build it because of a
    /// row (a value JSON cannot hold, written by a buggy or hostile client).
    /// After a backoff, the next ask is half its size (`None`); a page of
    /// one row comes by itself, in pieces and as Hrana values (`Some`: the
    /// row, or its quarantine when it breaks the layout).
    ///
    /// Errors: `error`, after [`MAX_PAGE_FAILURES`] failures in a row; the
    /// large row's errors.
    async fn page_failed(
        &self,
        p: &mut Pulling<'_>,
        ask: &PageAsk,
        error: Error,
    ) -> Result<Option<Page>> {
        p.failures += 1;
        if p.failures > MAX_PAGE_FAILURES {
            return Err(error);
        }
        if p.plan.can_shrink(ask) {
            let smaller = self.remote.budgets.page_failed(ask.budget, ask.bytes);
            // Under the link's smallest budget too, down to one row.
            p.limit = Some((ask.bytes / 2).max(1));
            tracing::debug!(error = %error, bytes = smaller, "pull page too big for the link; shrinking");
            self.remote
                .client
                .sleep(self.config.retry.delay(p.failures - 1))
                .await;
            return Ok(None);
        }
        tracing::debug!(error = %error, table = %p.def.name, seq = ask.upto, "a row that does not come in a page; pulling it by itself");
        let mut page = Page::default();
        match self.pull_large_row(p.def, ask.upto).await? {
            Some(Ok(row)) => {
                page.rows.push(row);
                page.seqs.push(ask.upto);
            }
            Some(Err(refused)) => page.quarantined.push(refused),
            None => {}
        }
        p.plan.page_done(ask);
        if let Some(limit) = ask.probe_next {
            let probe = p.queries.aggregate(ask.upto, limit);
            let answer = self.remote.client.execute(probe).await?;
            self.plan_aggregate(p, &answer)?;
        }
        (p.failures, p.limit) = (0, None);
        Ok(Some(page))
    }

    /// The range's first size probe, an aggregate one (rows small enough to
    /// fit the budget together are never listed one by one), with the
    /// server table's columns when `columns` (one request).
    async fn first_probe(&self, p: &mut Pulling<'_>, columns: bool) -> Result<()> {
        let limit = self.config.pull_page_rows;
        let first = p.queries.aggregate(p.after, limit);
        let answer = if columns {
            self.probe_with_columns(p.def, first).await?
        } else {
            self.remote.client.execute(first).await?
        };
        self.plan_aggregate(p, &answer)
    }

    /// Adds an aggregate probe's answer to the plan.
    fn plan_aggregate(&self, p: &mut Pulling<'_>, answer: &Rows) -> Result<()> {
        let (count, bytes, last) = p.queries.read_aggregate(p.def, answer)?;
        p.plan
            .add_aggregate(count, bytes, last)
            .map_err(|reason| Error::InvalidRemoteRow {
                table: p.def.name.clone(),
                reason: reason.into(),
            })
    }

    /// Sends the request of page `ask` after `after`; its future resolves to
    /// the answer and how long it took.
    fn fetch<'r>(
        &'r self,
        queries: &PullQueries,
        after: i64,
        ask: PageAsk,
    ) -> MaybeDone<Pin<Box<impl Future<Output = PageAnswer> + 'r>>> {
        let steps = queries.page(after, &ask);
        let started = self.clock.now_ms();
        futures::future::maybe_done(Box::pin(async move {
            let out: BatchOutcome = self.remote.client.batch(&steps).await?;
            match out.first_error() {
                Some(e) => Err(e),
                None => Ok((out.results, self.clock.now_ms().saturating_sub(started))),
            }
        }))
    }

    /// Stages a page, counts it and reports progress.
    async fn stage_pulled(
        &self,
        p: &mut Pulling<'_>,
        page: Page,
        cursor: Statement,
        pulled_before: u64,
    ) -> Result<()> {
        let n = page.rows.len() as u64;
        self.stage_page(p.def, page, cursor).await?;
        p.pulled += n;
        (self.progress)(SyncProgress::Pulled {
            table: p.def.name.clone(),
            rows: pulled_before + p.pulled,
        });
        Ok(())
    }

    /// The first size probe of a pull together with the server table's
    /// columns (one request); notes the columns this replica does not declare.
    async fn probe_with_columns(&self, def: &TableDef, probe: Statement) -> Result<Rows> {
        let steps = [
            Step {
                cond: None,
                stmt: Statement::plain(def.probe_columns_sql(&def.name)),
            },
            Step {
                cond: None,
                stmt: probe,
            },
        ];
        let mut out = self.remote.client.batch(&steps).await?;
        if let Some(e) = out.first_error() {
            return Err(e);
        }
        if let Some(columns) = out.results.first().cloned().flatten() {
            self.note_columns(def, &columns.columns);
        }
        take_result(&mut out.results, 1, "the pull batch returned no page")
    }

    /// Merges a validated page into the stage (`stage`) and moves the
    /// cursor, with the clocks it brings observed and its refused rows
    /// quarantined. In the table's first pull the page goes into the engine
    /// table instead, hidden until the pull is applied (see
    /// [`Syncer::merge_chunk`]). The page is merged in transactions of a
    /// fifth of the page size ([`CHUNKS_PER_PAGE`]), the store left free
    /// between them for the app's reads and writes (one transaction of a
    /// 10,000-row page held a browser tab's reads for 70-140 ms, measured
    /// 2026-12-07); the last one moves the cursor, so a crash in between
    /// only merges some of the page's rows twice (the merge makes the
    /// repeat a no-op).
    async fn stage_page(&self, def: &TableDef, page: Page, cursor: Statement) -> Result<()> {
        let Page {
            rows,
            seqs,
            quarantined,
        } = page;
        if rows.len() != seqs.len() {
            return Err(Error::Protocol(
                "a page's rows and sequence numbers differ in count".into(),
            ));
        }
        let first = !state::read_state(self.store)
            .await?
            .contains_key(&def.released_key());
        let chunk = (self.config.pull_page_rows / CHUNKS_PER_PAGE).max(1);
        // Where the last chunk starts; the ones before it go first, alone.
        let last = rows.len().saturating_sub(1) / chunk * chunk;
        for start in (0..last).step_by(chunk) {
            let end = start + chunk;
            let turn = self.store.turn().await?;
            self.merge_chunk(
                &*turn,
                def,
                (&rows[start..end], &seqs[start..end]),
                first,
                Vec::new(),
            )
            .await?;
            drop(turn);
            // Lets what waits for the store (a read's message, in a
            // browser Worker) run before the next chunk.
            self.remote.client.sleep(0).await;
        }
        // The turn before the clock, as every holder of both takes them.
        let turn = self.store.turn().await?;
        let mut hlc = self.clock.lock().await;
        let now = self.clock.now_ms();
        for row in &rows {
            if let Some(max) = row.max_clock() {
                if let Observed::Clamped { ahead_ms } = hlc.observe(max, now) {
                    tracing::warn!(ahead_ms, row = %row.id, "remote clock far ahead; local clock clamped");
                    self.found().clock_ahead_ms = Some(ahead_ms);
                }
            }
        }
        let mut then = vec![state::persist_clock(&hlc), cursor];
        if let (Some(row), Some(seq)) = (rows.last(), seqs.last()) {
            then.push(state::raise(
                &state::anchor_key(&def.name),
                restored::anchor(*seq, &row.id),
            ));
        }
        then.extend(quarantine(def, &rows, &quarantined, now));
        self.merge_chunk(&*turn, def, (&rows[last..], &seqs[last..]), first, then)
            .await?;
        drop(hlc);
        Ok(())
    }

    /// Merges `rows` (with their `_seq`), then runs `then`, in one local
    /// transaction: into the stage; or, in the table's `first` pull, into
    /// the engine table marked hidden ([`crate::merge::Target::Hidden`]),
    /// except the rows whose id the app already sees there (its own rows
    /// coming back, mostly), which are staged: merged in place they would
    /// show before the pull is applied. Pulled tombstones that still held
    /// user data are marked for the apply, or pending at once.
    async fn merge_chunk(
        &self,
        store: &dyn Store,
        def: &TableDef,
        (rows, seqs): (&[SyncRow], &[i64]),
        first: bool,
        then: Vec<Statement>,
    ) -> Result<()> {
        let per = self.config.rows_per_statement;
        if !first || rows.is_empty() {
            let mut stmts = stage::stage_rows(def, rows, seqs, per);
            stmts.extend(stage::mark_uncleared_staged(
                def,
                &uncleared(def, rows),
                false,
            ));
            stmts.extend(then);
            store.write(&stmts).await?;
            return Ok(());
        }
        let mut then = Some(then);
        store.write_after_reads(&[stage::visible_ids(def, rows)], &mut |answers| {
            let seen: HashSet<&str> = answers
                .first()
                .map(|a| a.rows.iter().filter_map(|r| r.first()?.as_str()).collect())
                .unwrap_or_default();
            let mut stmts = Vec::new();
            if seen.is_empty() {
                stmts.extend(stage::hide_rows(def, rows, seqs, per));
                stmts.extend(stage::mark_uncleared_staged(
                    def,
                    &uncleared(def, rows),
                    true,
                ));
            } else {
                let (mut staged, mut hidden) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
                for (row, seq) in rows.iter().zip(seqs) {
                    let to = if seen.contains(row.id.as_str()) {
                        &mut staged
                    } else {
                        &mut hidden
                    };
                    to.0.push(row.clone());
                    to.1.push(*seq);
                }
                stmts.extend(stage::stage_rows(def, &staged.0, &staged.1, per));
                stmts.extend(stage::mark_uncleared_staged(
                    def,
                    &uncleared(def, &staged.0),
                    false,
                ));
                stmts.extend(stage::hide_rows(def, &hidden.0, &hidden.1, per));
                stmts.extend(stage::mark_uncleared_staged(
                    def,
                    &uncleared(def, &hidden.0),
                    true,
                ));
            }
            stmts.extend(then.take().unwrap_or_default());
            Ok(stmts)
        })?;
        store.persisted().await?;
        Ok(())
    }
}

/// The ids of `rows` that are tombstones still holding user data.
fn uncleared<'r>(def: &TableDef, rows: &'r [SyncRow]) -> Vec<&'r str> {
    rows.iter()
        .filter(|r| r.is_uncleared_tombstone(def))
        .map(|r| r.id.as_str())
        .collect()
}

/// A page that did not arrive because it was too big for the link or the
/// server: it timed out, the server would not build a string that long
/// (`SQLITE_TOOBIG`, sqld past 5,000,000 bytes), or send an answer that
/// large (`RESPONSE_TOO_LARGE`, sqld past 10 MB).
fn too_big(e: &Error) -> bool {
    e.is_timeout()
        || matches!(
            e.server_code(),
            Some("RESPONSE_TOO_LARGE" | "SQLITE_TOOBIG")
        )
}

/// The quarantine records of a page: its refused rows, with why, and the
/// rows that arrived valid leave the quarantine (they changed on the
/// server since it refused them).
fn quarantine(
    def: &TableDef,
    rows: &[SyncRow],
    refused: &[Quarantined],
    now_ms: u64,
) -> Vec<Statement> {
    let mut stmts = Vec::new();
    for row in refused {
        tracing::warn!(table = %def.name, seq = row.seq, id = %row.id, reason = %row.reason, "a row from the server breaks the row layout; quarantined");
        stmts.push(Statement::new(
            format!(
                "INSERT OR REPLACE INTO {} (\"tbl\", \"seq\", \"id\", \"reason\", \"at_ms\") VALUES (?, ?, ?, ?, ?)",
                q(state::QUARANTINED)
            ),
            vec![
                def.name.as_str().into(),
                SqlValue::Integer(row.seq),
                row.id.as_str().into(),
                SqlValue::Text(crate::error::clip(&row.reason, 500)),
                SqlValue::Integer(now_ms as i64),
            ],
        ));
    }
    for chunk in rows.chunks(500) {
        let mut args = vec![SqlValue::from(def.name.as_str())];
        args.extend(chunk.iter().map(|r| SqlValue::from(r.id.as_str())));
        stmts.push(Statement::new(
            format!(
                "DELETE FROM {} WHERE \"tbl\" = ? AND \"id\" IN ({})",
                q(state::QUARANTINED),
                vec!["?"; chunk.len()].join(", ")
            ),
            args,
        ));
    }
    stmts
}

/// The rows of step `i` of a batch's results (taken out).
fn take_result(results: &mut [Option<Rows>], i: usize, missing: &str) -> Result<Rows> {
    results
        .get_mut(i)
        .and_then(Option::take)
        .ok_or_else(|| Error::Protocol(missing.into()))
}
