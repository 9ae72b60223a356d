//! Where a push takes its batches from: the pending rows of every table
//! that are not set aside, table after table in the schema's order and in
//! id order within a table, cut into batches of at most the link's push
//! budget in bytes and `push_batch_rows` rows. A batch takes rows of
//! several tables when they fit, so that a local transaction across tables
//! (a project and its notes) reaches the server as one server transaction
//! and other devices apply it whole; one larger than a batch is split.

use super::plan::joins_batch;
use super::push_tx::{Batch, Rows};
use super::refused;
use super::Syncer;
use crate::error::{Error, Result};
use crate::row::SyncRow;
use crate::schema::{q, TableDef};
use crate::store::{StoreError, StoreErrorKind};
use crate::value::{SqlValue, Statement};
use std::collections::VecDeque;

/// The push's place in the pending rows.
#[derive(Debug)]
pub(super) struct Pending<'d> {
    tables: &'d [TableDef],
    /// The table being read.
    table: usize,
    /// The last id read in it.
    after: String,
    /// Rows read and not yet in a batch.
    page: VecDeque<(SyncRow, i64)>,
    /// The table has no pending rows past `page`.
    exhausted: bool,
    /// Tables the server refused in this sync: not read any more.
    skip: Vec<String>,
}

impl<'d> Pending<'d> {
    pub(super) fn new(tables: &'d [TableDef]) -> Pending<'d> {
        Pending {
            tables,
            table: 0,
            after: String::new(),
            page: VecDeque::new(),
            exhausted: false,
            skip: Vec::new(),
        }
    }

    /// Reads no more of `table` (the server refused it).
    pub(super) fn skip(&mut self, table: &str) {
        self.skip.push(table.to_owned());
        if self.tables.get(self.table).is_some_and(|d| d.name == table) {
            self.page.clear();
            self.exhausted = true;
        }
    }
}

impl Syncer<'_> {
    /// The next push batch, `None` when every pending row is in one.
    pub(super) async fn next_batch<'d>(&self, src: &mut Pending<'d>) -> Result<Option<Batch<'d>>> {
        let budget = self.remote.budgets.push();
        let max = self.config.push_batch_rows;
        let mut batch = Batch::default();
        let (mut rows, mut bytes) = (0, 0);
        loop {
            if src.page.is_empty() {
                if src.exhausted {
                    src.table += 1;
                    src.after.clear();
                    src.exhausted = false;
                }
                let Some(def) = src.tables.get(src.table) else {
                    break;
                };
                if src.skip.contains(&def.name) {
                    src.exhausted = true;
                    continue;
                }
                let page = self.pending_page(def, &src.after).await?;
                src.exhausted = page.len() < max;
                if let Some((row, _)) = page.last() {
                    src.after = row.id.clone();
                }
                src.page = page.into();
                continue;
            }
            let def = &src.tables[src.table];
            let size = src.page.front().map_or(0, |(row, _)| row.approx_size());
            if !joins_batch(rows, bytes, size, budget, max) {
                break;
            }
            if let Some(row) = src.page.pop_front() {
                batch.push(def, row);
                rows += 1;
                bytes += size;
            }
        }
        Ok((rows > 0).then_some(batch))
    }

    /// The next pending rows of `def` after id `after`, in id order (at
    /// most `push_batch_rows`), each with its `_dirty` value.
    async fn pending_page(&self, def: &TableDef, after: &str) -> Result<Rows> {
        let rows = self
            .store
            .query(&Statement::new(
                format!(
                    "SELECT {}, t.\"_dirty\" FROM {} t WHERE t.\"_dirty\" > 0 AND t.\"id\" > ? AND {} ORDER BY t.\"id\" LIMIT ?",
                    def.row_column_list(),
                    q(&def.local_name()),
                    refused::NOT_SET_ASIDE,
                ),
                vec![
                    SqlValue::Text(after.to_owned()),
                    def.name.as_str().into(),
                    SqlValue::Integer(self.config.push_batch_rows as i64),
                ],
            ))
            .await?;
        let mut page = Vec::with_capacity(rows.rows.len());
        for cells in &rows.rows {
            let row = SyncRow::from_cells(def, cells)
                .map_err(|e| Error::Storage(StoreError::new(StoreErrorKind::Corrupt, e)))?;
            let dirty = cells.last().and_then(SqlValue::as_i64).unwrap_or(0);
            page.push((row, dirty));
        }
        Ok(page)
    }
}
