//! The sync planner: pure decisions about sizes and order, free of I/O,
//! time and the store, so that each rule is unit-tested on its own
//! (quinn-proto's shape: the network and store calls sit in a thin loop
//! around it, in [`super::push`] and [`super::pull`]).
//!
//! - **Byte budgets** of pull pages and push batches ([`Budgets`]): a page
//!   slower than [`TARGET_PAGE_MS`] shrinks the page budget in proportion,
//!   one four times faster (and at least half full) doubles it; a page or
//!   batch that times out is asked again at half its size, and pages never
//!   grow back to a size that timed out on this link. Budgets live with
//!   the remote, across syncs.
//! - **Pull plans** ([`PullPlan`]): what size probes said about the next
//!   rows (one entry per row, or one aggregate entry for many), cut into
//!   pages that fit the budget, at least one entry per page, so every sync
//!   progresses for any row size the engine accepts. The page that empties
//!   the plan also asks how many rows follow ([`PageAsk::probe_next`]).
//! - **Push splits**: which pending rows join a batch within the push
//!   budget ([`joins_batch`]), and where to cut a refused or timed-out
//!   batch ([`narrowed`], [`halved`]).

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Approximate request body of one push batch at first; halved (down to
/// [`MIN_BATCH_BYTES`]) when a push times out, for the link's later syncs.
pub(crate) const PUSH_BATCH_BYTES: usize = 4_000_000;
/// Answer size of one pull page at first; adapted to the link between
/// [`MIN_BATCH_BYTES`] and [`MAX_PAGE_BYTES`]. 4 MB holds 10,000 `todos`
/// rows as a JSON page (2.1 MB) with room to spare, so a fresh device gets
/// them in one page; a link slower than 1 MB/s shrinks it after the first
/// page (see [`next_page_budget`]).
pub(crate) const PULL_PAGE_BYTES: usize = 4_000_000;
/// sqld refuses answers over 10 MB (`RESPONSE_TOO_LARGE`); JSON adds to the
/// row bytes counted here.
pub(crate) const MAX_PAGE_BYTES: usize = 6_000_000;
/// The smallest page or batch budget.
pub(crate) const MIN_BATCH_BYTES: usize = 64 * 1024;
/// A page should arrive within this many ms: a slower one shrinks the
/// budget in proportion, one four times faster doubles it.
pub(crate) const TARGET_PAGE_MS: u64 = 4_000;

/// The next page budget after a page of `page_bytes` (asked with `budget`)
/// arrived in `elapsed_ms`: slower than [`TARGET_PAGE_MS`], in proportion
/// to what the link delivered; four times faster with at least half the
/// budget used, double; else the same. Within
/// [`MIN_BATCH_BYTES`]..=[`MAX_PAGE_BYTES`] (the caller also keeps it under
/// the link's ceiling).
pub(crate) fn next_page_budget(budget: usize, page_bytes: usize, elapsed_ms: u64) -> usize {
    let next = if elapsed_ms > TARGET_PAGE_MS {
        (page_bytes as u128 * TARGET_PAGE_MS as u128 / elapsed_ms as u128) as usize
    } else if elapsed_ms * 4 < TARGET_PAGE_MS && page_bytes * 2 > budget {
        budget.saturating_mul(2)
    } else {
        budget
    };
    next.clamp(MIN_BATCH_BYTES, MAX_PAGE_BYTES)
}

/// The byte budgets of one link (a remote), adapted to what it delivers and
/// kept across syncs. Shared by reference; each value is read and written
/// whole.
#[derive(Debug)]
pub(crate) struct Budgets {
    page: AtomicUsize,
    /// The most a page may grow to: half of the smallest page that timed out.
    page_ceiling: AtomicUsize,
    push: AtomicUsize,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            page: AtomicUsize::new(PULL_PAGE_BYTES),
            page_ceiling: AtomicUsize::new(MAX_PAGE_BYTES),
            push: AtomicUsize::new(PUSH_BATCH_BYTES),
        }
    }
}

impl Budgets {
    /// Bytes a pull page may hold now.
    pub(crate) fn page(&self) -> usize {
        self.page.load(Ordering::Relaxed)
    }

    /// Bytes a push batch may hold now.
    pub(crate) fn push(&self) -> usize {
        self.push.load(Ordering::Relaxed)
    }

    /// A page of about `page_bytes`, asked with `budget`, arrived in
    /// `elapsed_ms`: the next budget follows the link ([`next_page_budget`]),
    /// under the link's ceiling.
    pub(crate) fn page_arrived(&self, budget: usize, page_bytes: usize, elapsed_ms: u64) {
        let next = next_page_budget(budget, page_bytes, elapsed_ms)
            .min(self.page_ceiling.load(Ordering::Relaxed))
            .max(MIN_BATCH_BYTES);
        self.page.store(next, Ordering::Relaxed);
    }

    /// A page of about `page_bytes`, asked with `budget`, did not arrive
    /// (a timeout, or an answer too large): ask for half of it next, and
    /// never grow back to it on this link. Returns the new budget.
    pub(crate) fn page_failed(&self, budget: usize, page_bytes: usize) -> usize {
        let smaller = (page_bytes / 2).max(MIN_BATCH_BYTES).min(budget);
        self.page.store(smaller, Ordering::Relaxed);
        self.page_ceiling.fetch_min(smaller, Ordering::Relaxed);
        smaller
    }

    /// A push batch did not arrive (a timeout, or HTTP 413): halve the push
    /// budget, down to [`MIN_BATCH_BYTES`].
    pub(crate) fn push_failed(&self) {
        let budget = self.push.load(Ordering::Relaxed);
        self.push
            .store((budget / 2).max(MIN_BATCH_BYTES), Ordering::Relaxed);
    }
}

/// Rows of a pull's plan: one row, or (from an aggregate size probe) `rows`
/// rows ending at `_seq` `seq`, about `bytes` long in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Planned {
    pub(crate) seq: i64,
    pub(crate) bytes: usize,
    pub(crate) rows: usize,
}

/// One pull page to ask for: the first `take` entries of the plan, up to
/// `_seq` `upto`, about `bytes` long, asked with page budget `budget`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageAsk {
    pub(crate) take: usize,
    pub(crate) upto: i64,
    pub(crate) bytes: usize,
    pub(crate) budget: usize,
    /// The request also asks how many of the next this-many rows there are
    /// and how big they are (an aggregate probe).
    pub(crate) probe_next: Option<usize>,
}

/// The next rows of a pull, as size probes described them, to be cut into
/// pages.
#[derive(Debug, Clone)]
pub(crate) struct PullPlan {
    entries: VecDeque<Planned>,
    /// Most rows one listing probe plans (`Config::pull_page_rows`).
    page_rows: usize,
}

impl PullPlan {
    /// An empty plan; probes list at most `page_rows` rows.
    pub(crate) fn new(page_rows: usize) -> PullPlan {
        PullPlan {
            entries: VecDeque::new(),
            page_rows: page_rows.max(1),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Replaces the plan by a listing probe's `(_seq, bytes)` per row.
    pub(crate) fn listed(&mut self, rows: &[(i64, i64)]) {
        self.entries = rows
            .iter()
            .map(|&(seq, bytes)| Planned {
                seq,
                bytes: server_size(bytes),
                rows: 1,
            })
            .collect();
    }

    /// Adds an aggregate probe's answer (`count` of the next rows, `bytes`
    /// long in all, the last at `_seq` `last`) as one entry.
    ///
    /// Errors: the reason, when the probe counts rows but gives no last `_seq`.
    pub(crate) fn add_aggregate(
        &mut self,
        count: i64,
        bytes: i64,
        last: Option<i64>,
    ) -> Result<(), &'static str> {
        if count <= 0 {
            return Ok(());
        }
        let seq = last.ok_or("a size probe's last _seq is not an integer")?;
        self.entries.push_back(Planned {
            seq,
            bytes: server_size(bytes),
            rows: server_size(count),
        });
        Ok(())
    }

    /// The first entry aggregates several rows that together exceed
    /// `budget`: they must be listed one by one before a page is asked.
    pub(crate) fn needs_detail(&self, budget: usize) -> bool {
        self.entries
            .front()
            .is_some_and(|p| p.rows > 1 && p.bytes > budget)
    }

    /// The next page: as many planned entries as `budget` holds, at least
    /// one; the page that empties the plan also asks, in the same request,
    /// how many rows follow and how big they are (one request per page
    /// instead of two), for about 90% of a budget's worth of rows the size
    /// of this page's: rows that arrived meanwhile are planned, and an
    /// answer of none means the table caught up as of that request. `None`
    /// when the plan is empty.
    pub(crate) fn next_page(&self, budget: usize) -> Option<PageAsk> {
        let mut bytes = 0usize;
        let take = self
            .entries
            .iter()
            .take_while(|p| {
                bytes = bytes.saturating_add(p.bytes);
                bytes <= budget
            })
            .count()
            .max(1);
        let last = self.entries.get(take - 1)?;
        let sum = |f: fn(&Planned) -> usize| {
            self.entries
                .iter()
                .take(take)
                .fold(0usize, |n, p| n.saturating_add(f(p)))
        };
        let (bytes, rows) = (sum(|p| p.bytes), sum(|p| p.rows));
        let per_row = (bytes / rows.max(1)).max(1);
        Some(PageAsk {
            take,
            upto: last.seq,
            bytes,
            budget,
            probe_next: (take == self.entries.len())
                .then(|| (budget / 10 * 9 / per_row).clamp(1, self.page_rows)),
        })
    }

    /// Whether a page asked as `ask` may be asked again smaller: it holds
    /// more than one row.
    pub(crate) fn can_shrink(&self, ask: &PageAsk) -> bool {
        ask.take > 1 || self.entries.front().is_some_and(|p| p.rows > 1)
    }

    /// The page asked as `ask` arrived: its entries leave the plan.
    pub(crate) fn page_done(&mut self, ask: &PageAsk) {
        let take = ask.take.min(self.entries.len());
        self.entries.drain(..take);
    }
}

/// A count or size the server gave, as a `usize`: negative is 0, and one
/// past `usize` (wasm32's is 32 bits) is `usize::MAX`, never truncated.
pub(crate) fn server_size(n: i64) -> usize {
    usize::try_from(n.max(0)).unwrap_or(usize::MAX)
}

/// Whether a pending row of `size` bytes joins a push batch that holds
/// `rows` rows of `bytes` bytes: the first row always does (whatever its
/// size: every sync progresses), the others while the batch stays within
/// `budget` bytes and `max_rows` rows.
pub(crate) fn joins_batch(
    rows: usize,
    bytes: usize,
    size: usize,
    budget: usize,
    max_rows: usize,
) -> bool {
    rows == 0 || (rows < max_rows && bytes + size <= budget)
}

/// Where to cut a batch of `len` rows the server refused because of some of
/// them: around the refused statement's chunk (`chunk`, of `per_statement`
/// rows each) when the answer named it, else in halves.
pub(crate) fn narrowed(
    len: usize,
    chunk: Option<usize>,
    per_statement: usize,
) -> Vec<Range<usize>> {
    match chunk {
        Some(c) if per_statement < len && c * per_statement < len => pieces(
            len,
            &[c * per_statement, ((c + 1) * per_statement).min(len)],
        ),
        _ => halved(len),
    }
}

/// A batch of `len` rows in two halves (the first may be the smaller).
pub(crate) fn halved(len: usize) -> Vec<Range<usize>> {
    pieces(len, &[len / 2])
}

/// `0..len` cut at `at` (out-of-range and repeated cuts ignored), in order,
/// without empty pieces.
fn pieces(len: usize, at: &[usize]) -> Vec<Range<usize>> {
    let mut bounds = vec![0];
    bounds.extend(at.iter().copied().filter(|&b| b > 0 && b < len));
    bounds.push(len);
    bounds
        .windows(2)
        .filter(|w| w[0] < w[1])
        .map(|w| w[0]..w[1])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const MB: usize = 1_000_000;

    #[test]
    fn page_budget_follows_the_link() {
        // A 2 MB page in 8 s (250 KB/s): the next one fits the 4 s target.
        assert_eq!(next_page_budget(2 * MB, 2 * MB, 8_000), MB);
        // Fast and full: doubles; fast but a short (last) page: stays.
        assert_eq!(next_page_budget(2 * MB, 2 * MB, 500), 4 * MB);
        assert_eq!(next_page_budget(2 * MB, 100_000, 500), 2 * MB);
        // Within the target: stays.
        assert_eq!(next_page_budget(2 * MB, 2 * MB, 2_000), 2 * MB);
        // Bounds: never under the minimum, never over what sqld answers.
        assert_eq!(
            next_page_budget(MIN_BATCH_BYTES, 10, 60_000),
            MIN_BATCH_BYTES
        );
        assert_eq!(
            next_page_budget(MAX_PAGE_BYTES, MAX_PAGE_BYTES, 1),
            MAX_PAGE_BYTES
        );
    }

    #[test]
    fn page_budget_boundaries_are_exact() {
        // Exactly the target is not slower than it; a quarter of it is not
        // "four times faster"; exactly half full is not "more than half".
        assert_eq!(next_page_budget(2 * MB, 2 * MB, TARGET_PAGE_MS), 2 * MB);
        assert_eq!(next_page_budget(2 * MB, 2 * MB, TARGET_PAGE_MS / 4), 2 * MB);
        assert_eq!(
            next_page_budget(2 * MB, 2 * MB, TARGET_PAGE_MS / 4 - 1),
            4 * MB
        );
        assert_eq!(next_page_budget(2 * MB, MB, 10), 2 * MB);
        assert_eq!(next_page_budget(2 * MB, MB + 1, 10), 4 * MB);
        assert_eq!(
            next_page_budget(2 * MB, 2 * MB, TARGET_PAGE_MS + 1),
            1_999_500
        );
    }

    #[test]
    fn budgets_shrink_on_failures_and_stay_under_the_ceiling() {
        let b = Budgets::default();
        assert_eq!((b.page(), b.push()), (PULL_PAGE_BYTES, PUSH_BATCH_BYTES));
        // A 3 MB page failed: half of it, and never back above it.
        assert_eq!(b.page_failed(PULL_PAGE_BYTES, 3 * MB), 1_500_000);
        assert_eq!(b.page(), 1_500_000);
        b.page_arrived(1_500_000, 1_500_000, 10);
        assert_eq!(b.page(), 1_500_000, "capped by the ceiling");
        // Failures never go under the minimum, nor above the budget asked.
        assert_eq!(b.page_failed(1_500_000, 10), MIN_BATCH_BYTES);
        assert_eq!(b.page_failed(100_000, 3 * MB), 100_000);
        b.page_arrived(MIN_BATCH_BYTES, 0, 60_000);
        assert_eq!(b.page(), MIN_BATCH_BYTES);
        b.push_failed();
        assert_eq!(b.push(), PUSH_BATCH_BYTES / 2);
        for _ in 0..100 {
            b.push_failed();
        }
        assert_eq!(b.push(), MIN_BATCH_BYTES);
    }

    fn plan_of(sizes: &[usize]) -> PullPlan {
        let mut plan = PullPlan::new(100);
        let rows: Vec<(i64, i64)> = sizes
            .iter()
            .enumerate()
            .map(|(i, &b)| (i as i64 + 1, b as i64))
            .collect();
        plan.listed(&rows);
        plan
    }

    #[test]
    fn pages_take_what_fits_and_at_least_one_row() {
        let plan = plan_of(&[400, 400, 400, 5_000]);
        let ask = plan.next_page(1_000).unwrap();
        assert_eq!((ask.take, ask.upto, ask.bytes), (2, 2, 800));
        assert_eq!(ask.probe_next, None, "the plan is not emptied");
        // A row larger than the whole budget still goes, alone.
        let big = plan_of(&[5_000, 1]);
        let ask = big.next_page(1_000).unwrap();
        assert_eq!((ask.take, ask.upto, ask.bytes), (1, 1, 5_000));
        assert!(!big.can_shrink(&ask), "one row cannot be asked smaller");
        // Exactly the budget fits.
        assert_eq!(plan_of(&[500, 500, 1]).next_page(1_000).unwrap().take, 2);
        assert!(PullPlan::new(10).next_page(1_000).is_none());
    }

    #[test]
    fn the_page_that_empties_a_full_plan_probes_what_follows() {
        let mut plan = PullPlan::new(3);
        plan.listed(&[(1, 100), (2, 100), (3, 100)]);
        let ask = plan.next_page(10_000).unwrap();
        assert_eq!(ask.take, 3);
        // 90% of the budget in rows of this page's size, at most page_rows.
        assert_eq!(ask.probe_next, Some(3));
        let ask = plan.next_page(500).unwrap();
        assert_eq!((ask.take, ask.probe_next), (3, Some(3)));
        // A plan that was not full still asks, to learn it caught up.
        let mut short = PullPlan::new(4);
        short.listed(&[(1, 100), (2, 100)]);
        assert_eq!(short.next_page(10_000).unwrap().probe_next, Some(4));
        assert_eq!(
            short.next_page(150).unwrap().probe_next,
            None,
            "not emptied"
        );
        let mut many = PullPlan::new(1_000);
        many.add_aggregate(1_000, 100_000, Some(1_000)).unwrap();
        // 100 bytes a row: a 1 MB budget would take 9,000, at most 1,000;
        // a 10,000-byte budget 90.
        assert_eq!(many.next_page(1_000_000).unwrap().probe_next, Some(1_000));
        assert_eq!(many.next_page(10_000).unwrap().probe_next, Some(90));
    }

    #[test]
    fn aggregates_are_listed_when_they_outgrow_the_budget() {
        let mut plan = PullPlan::new(10_000);
        plan.add_aggregate(0, 0, None).unwrap();
        assert!(plan.is_empty());
        plan.add_aggregate(5, 5_000, Some(42)).unwrap();
        assert!(plan.needs_detail(4_999));
        assert!(!plan.needs_detail(5_000));
        let ask = plan.next_page(5_000).unwrap();
        assert_eq!((ask.take, ask.upto), (1, 42));
        assert!(
            plan.can_shrink(&ask),
            "an aggregate entry holds several rows"
        );
        plan.page_done(&ask);
        assert!(plan.is_empty());
        assert_eq!(
            plan.add_aggregate(3, 10, None),
            Err("a size probe's last _seq is not an integer")
        );
        // One row alone never needs detail, whatever its size.
        plan.add_aggregate(1, 9_999_999, Some(7)).unwrap();
        assert!(!plan.needs_detail(1));
    }

    /// `sizes` cut into batches by [`joins_batch`]: their lengths.
    fn split_by_budget(sizes: &[usize], budget: usize, max_rows: usize) -> Vec<usize> {
        let mut parts = Vec::new();
        let (mut rows, mut bytes) = (0, 0);
        for &size in sizes {
            if !joins_batch(rows, bytes, size, budget, max_rows) {
                parts.push(rows);
                (rows, bytes) = (0, 0);
            }
            rows += 1;
            bytes += size;
        }
        if rows > 0 {
            parts.push(rows);
        }
        parts
    }

    #[test]
    fn push_batches_fit_the_budget_with_at_least_one_row() {
        assert_eq!(split_by_budget(&[], 100, 10), Vec::<usize>::new());
        assert_eq!(split_by_budget(&[40, 40, 40, 40], 100, 10), vec![2, 2]);
        assert_eq!(split_by_budget(&[50, 50, 50], 100, 10), vec![2, 1]);
        assert_eq!(split_by_budget(&[500, 10, 500], 100, 10), vec![1, 1, 1]);
        assert_eq!(split_by_budget(&[1; 5], 100, 10), vec![5]);
        // At most max_rows rows, whatever their size.
        assert_eq!(split_by_budget(&[1; 5], 100, 2), vec![2, 2, 1]);
        assert!(
            joins_batch(0, 0, usize::MAX, 1, 1),
            "a first row always joins"
        );
        assert!(!joins_batch(1, 0, 0, 100, 1));
    }

    #[test]
    fn refused_batches_narrow_to_the_named_chunk_or_halves() {
        // The answer names chunk 1 of 200-row statements in 1,000 rows.
        assert_eq!(
            narrowed(1_000, Some(1), 200),
            vec![0..200, 200..400, 400..1_000]
        );
        // The first and last chunk.
        assert_eq!(narrowed(1_000, Some(0), 200), vec![0..200, 200..1_000]);
        assert_eq!(narrowed(1_000, Some(4), 200), vec![0..800, 800..1_000]);
        // A chunk beyond the batch, or one statement for all: halves.
        assert_eq!(narrowed(1_000, Some(5), 200), vec![0..500, 500..1_000]);
        assert_eq!(narrowed(150, Some(0), 200), vec![0..75, 75..150]);
        assert_eq!(narrowed(7, None, 200), vec![0..3, 3..7]);
        assert_eq!(halved(2), vec![0..1, 1..2]);
        assert_eq!(halved(1), vec![0..1]);
    }

    /// The smallest budget is 64 KiB: failures and slow links never ask
    /// for less.
    #[test]
    fn the_smallest_budget_is_64_kib() {
        let b = Budgets::default();
        assert_eq!(b.page_failed(100_000, 10), 65_536);
        assert_eq!(next_page_budget(2 * MB, 1, 60_000), 65_536);
    }

    /// A page that took exactly the target time keeps the budget, even
    /// when it was not full (only a slower one shrinks it to what arrived).
    #[test]
    fn a_page_at_exactly_the_target_time_keeps_the_budget() {
        assert_eq!(next_page_budget(2 * MB, MB, TARGET_PAGE_MS), 2 * MB);
        assert_eq!(next_page_budget(2 * MB, MB, TARGET_PAGE_MS + 1), 999_750);
    }

    /// A page of several listed rows can be asked again smaller.
    #[test]
    fn a_page_of_several_rows_can_shrink() {
        let plan = plan_of(&[400, 400, 400]);
        let ask = plan.next_page(1_000).unwrap();
        assert_eq!(ask.take, 2);
        assert!(plan.can_shrink(&ask));
    }

    /// A refused batch that is one statement long (its chunk is the whole
    /// batch) is halved: narrowing to the chunk would send it unchanged,
    /// again and again.
    #[test]
    fn a_refused_batch_of_one_statement_is_halved() {
        assert_eq!(narrowed(200, Some(0), 200), vec![0..100, 100..200]);
        assert_eq!(narrowed(201, Some(0), 200), vec![0..200, 200..201]);
    }

    /// `pieces` ignores cuts out of range and repeated cuts: the pieces
    /// cover `0..len` exactly, in order, none empty.
    #[test]
    fn pieces_ignore_out_of_range_and_repeated_cuts() {
        assert_eq!(pieces(10, &[0, 10, 15]), vec![0..10]);
        assert_eq!(pieces(10, &[5, 5]), vec![0..5, 5..10]);
        assert_eq!(pieces(10, &[3, 7]), vec![0..3, 3..7, 7..10]);
    }
}
