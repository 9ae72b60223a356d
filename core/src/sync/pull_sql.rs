//! The SQL a pull sends for one table and range, and the checks on what
//! comes back: size probes (listing `(_seq, bytes)` per row, or aggregate
//! `count, bytes, last _seq`), pages (`WHERE _seq > ? AND _seq <= ?`), as
//! one JSON cell where that is exact ([`crate::page`]). Pure: statements
//! in, validated rows out; [`super::pull`] sends them.

use super::plan::PageAsk;
use crate::error::{Error, Result};
use crate::hrana::Step;
use crate::row::SyncRow;
use crate::schema::{q, TableDef, ZERO_CLOCK};
use crate::value::{Rows, SqlValue, Statement};

/// Which rows of a server table a pull asks for: `_seq` in `(after, upto]`,
/// and when `clocked` is not empty, only rows where one of those columns
/// carries a clock (a backfill).
#[derive(Debug, Clone)]
pub(crate) struct PullRange {
    pub(crate) after: i64,
    pub(crate) upto: Option<i64>,
    pub(crate) clocked: Vec<String>,
    /// Read the server table's columns with the first probe (same request),
    /// to report the ones this replica does not know.
    pub(crate) probe_columns: bool,
}

/// The statements of one pull range, built once.
#[derive(Debug)]
pub(crate) struct PullQueries {
    /// Listing probe: `(_seq, bytes)` of the next rows, as one JSON cell.
    sizes: String,
    /// Aggregate probe: count, total bytes and last `_seq` of the next rows.
    aggregate: String,
    /// A page: the rows in a `_seq` range (as one JSON cell when `json`).
    select: String,
    /// Arguments of the range's filter (backfill bound and clocks).
    fixed_args: Vec<SqlValue>,
    page_rows: usize,
    /// Pages travel as one JSON cell ([`crate::page::json_pages`]).
    json: bool,
    /// Cells of a page row: the row's columns and `_seq`.
    width: usize,
}

/// SQL for the approximate size in bytes of a server row in a page: its
/// user values plus a fixed share for the id, flags, timestamps and clocks,
/// which depends on the page's encoding ([`crate::page`]): as one JSON
/// cell, about 38 bytes per clock (a 33-character text) and 80 for the id,
/// flags and `_seq`; as Hrana value objects about 60 per cell. (Measured on
/// tursodb for the built-in `todos`: 208 and 463 bytes a row, estimated 212
/// and 430.)
pub(crate) fn row_bytes_sql(def: &TableDef, json: bool) -> String {
    let n = def.columns.len();
    let overhead = if json {
        82 + 38 * (n + 1) + 3 * n
    } else {
        60 * (n + 1 + 4)
    };
    let mut parts = vec![overhead.to_string()];
    parts.extend(
        def.columns
            .iter()
            .map(|c| format!("coalesce(length({}), 0)", q(&c.name))),
    );
    parts.join(" + ")
}

fn invalid_row(table: &str, reason: impl Into<String>) -> Error {
    Error::InvalidRemoteRow {
        table: table.to_owned(),
        reason: reason.into(),
    }
}

impl PullQueries {
    /// The statements for `range` of `def`; listing probes plan at most
    /// `page_rows` rows.
    pub(crate) fn new(def: &TableDef, range: &PullRange, page_rows: usize) -> PullQueries {
        let mut filter = String::new();
        let mut fixed_args = Vec::new();
        if let Some(upto) = range.upto {
            filter.push_str(" AND \"_seq\" <= ?");
            fixed_args.push(SqlValue::Integer(upto));
        }
        if !range.clocked.is_empty() {
            let any: Vec<String> = range
                .clocked
                .iter()
                .map(|c| format!("{} > ?", q(&format!("_clk_{c}"))))
                .collect();
            filter.push_str(&format!(" AND ({})", any.join(" OR ")));
            fixed_args.extend(range.clocked.iter().map(|_| SqlValue::from(ZERO_CLOCK)));
        }
        let json = crate::page::json_pages(def);
        let table = q(&def.name);
        let bytes = row_bytes_sql(def, json);
        let sizes = crate::page::as_one_cell(
            "\"_seq\", \"bytes\"",
            &format!(
                "SELECT \"_seq\", {bytes} AS \"bytes\" FROM {table} WHERE \"_seq\" > ?{filter} ORDER BY \"_seq\" LIMIT ?"
            ),
        );
        let aggregate = format!(
            "SELECT count(*), coalesce(sum(\"bytes\"), 0), max(\"_seq\") FROM (SELECT \"_seq\", {bytes} AS \"bytes\" FROM {table} WHERE \"_seq\" > ?{filter} ORDER BY \"_seq\" LIMIT ?)"
        );
        let columns = format!("{}, \"_seq\"", def.row_column_list());
        let mut select = format!(
            "SELECT {columns} FROM {table} WHERE \"_seq\" > ? AND \"_seq\" <= ?{filter} ORDER BY \"_seq\""
        );
        if json {
            select = crate::page::as_one_cell(&columns, &select);
        }
        PullQueries {
            sizes,
            aggregate,
            select,
            fixed_args,
            page_rows,
            json,
            width: def.row_columns().len() + 1,
        }
    }

    /// The listing probe of the rows after `after`.
    pub(crate) fn sizes(&self, after: i64) -> Statement {
        let mut args = vec![SqlValue::Integer(after)];
        args.extend(self.fixed_args.iter().cloned());
        args.push(SqlValue::Integer(self.page_rows as i64));
        Statement::new(self.sizes.clone(), args)
    }

    /// The aggregate probe of the next `limit` rows after `after`.
    pub(crate) fn aggregate(&self, after: i64, limit: usize) -> Statement {
        let mut args = vec![SqlValue::Integer(after)];
        args.extend(self.fixed_args.iter().cloned());
        args.push(SqlValue::Integer(limit as i64));
        Statement::new(self.aggregate.clone(), args)
    }

    /// The request of page `ask` after `after`: the page, and the aggregate
    /// probe of what follows when `ask` asks for it.
    pub(crate) fn page(&self, after: i64, ask: &PageAsk) -> Vec<Step> {
        let mut args = vec![SqlValue::Integer(after), SqlValue::Integer(ask.upto)];
        args.extend(self.fixed_args.iter().cloned());
        let mut steps = vec![Step {
            cond: None,
            stmt: Statement::new(self.select.clone(), args),
        }];
        if let Some(limit) = ask.probe_next {
            steps.push(Step {
                cond: None,
                stmt: self.aggregate(ask.upto, limit),
            });
        }
        steps
    }

    /// A listing probe's answer: `(_seq, bytes)` per row.
    ///
    /// Errors: [`Error::Protocol`] for an answer of another shape,
    /// [`Error::InvalidRemoteRow`] for a size that is not an integer.
    pub(crate) fn read_sizes(&self, def: &TableDef, answer: &Rows) -> Result<Vec<(i64, i64)>> {
        crate::page::decode(&def.name, answer, 2, 0)?
            .iter()
            .map(|r| match (r[0].as_i64(), r[1].as_i64()) {
                (Some(seq), Some(bytes)) => Ok((seq, bytes)),
                _ => Err(invalid_row(&def.name, "a row size is not an integer")),
            })
            .collect()
    }

    /// An aggregate probe's answer: `(count, bytes, last _seq)`.
    ///
    /// Errors: [`Error::Protocol`] unless it is one row of three values;
    /// [`Error::InvalidRemoteRow`] for a count or sum that is not an integer.
    pub(crate) fn read_aggregate(
        &self,
        def: &TableDef,
        answer: &Rows,
    ) -> Result<(i64, i64, Option<i64>)> {
        let row = match answer.rows.as_slice() {
            [row] if row.len() == 3 => row,
            _ => {
                return Err(Error::Protocol(
                    "the size probe is not one row of three values".into(),
                ))
            }
        };
        match (row[0].as_i64(), row[1].as_i64()) {
            (Some(count), Some(bytes)) => Ok((count, bytes, row[2].as_i64())),
            _ => Err(invalid_row(
                &def.name,
                "a size probe's count or sum is not an integer",
            )),
        }
    }

    /// A page's answer for `_seq` in `(after, upto]`: its rows and their
    /// `_seq`, validated whole (layout, types, ids, clocks; `_seq` rising
    /// and within the range).
    ///
    /// Errors: [`Error::Protocol`] for an answer of another shape,
    /// [`Error::InvalidRemoteRow`] for a row that breaks the layout.
    pub(crate) fn read_page(
        &self,
        def: &TableDef,
        page: Rows,
        after: i64,
        upto: i64,
    ) -> Result<(Vec<SyncRow>, Vec<i64>)> {
        let width = self.width;
        let cells = if self.json {
            crate::page::decode(&def.name, &page, width, width - 1)?
        } else {
            page.rows
        };
        let mut rows = Vec::with_capacity(cells.len());
        let mut seqs = Vec::with_capacity(cells.len());
        let mut last = after;
        for cells in &cells {
            if cells.len() != width {
                return Err(invalid_row(
                    &def.name,
                    format!("expected {width} columns, got {}", cells.len()),
                ));
            }
            let row = SyncRow::from_cells(def, cells).map_err(|e| invalid_row(&def.name, e))?;
            let seq = cells[width - 1].as_i64().ok_or_else(|| {
                invalid_row(&def.name, format!("row {}: _seq is not an integer", row.id))
            })?;
            if seq <= last {
                return Err(invalid_row(
                    &def.name,
                    format!("_seq {seq} does not increase after {last}"),
                ));
            }
            last = seq;
            rows.push(row);
            seqs.push(seq);
        }
        if last > upto {
            return Err(invalid_row(
                &def.name,
                format!("_seq {last} is beyond the page's end {upto}"),
            ));
        }
        Ok((rows, seqs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn row_size_sql_counts_every_user_column() {
        let lengths = "coalesce(length(\"title\"), 0) + coalesce(length(\"is_completed\"), 0)";
        let todos = crate::schema::todos_table();
        assert_eq!(row_bytes_sql(&todos, false), format!("420 + {lengths}"));
        assert_eq!(row_bytes_sql(&todos, true), format!("202 + {lengths}"));
    }

    #[test]
    fn a_backfill_range_binds_its_bound_and_clocks_in_every_statement() {
        let todos = crate::schema::todos_table();
        let range = PullRange {
            after: 5,
            upto: Some(90),
            clocked: vec!["title".into()],
            probe_columns: false,
        };
        let queries = PullQueries::new(&todos, &range, 100);
        let zero = SqlValue::from(ZERO_CLOCK);
        let sizes = queries.sizes(5);
        assert_eq!(
            sizes.args,
            vec![5.into(), 90.into(), zero.clone(), 100.into()]
        );
        assert!(sizes.sql.contains("\"_seq\" <= ? AND (\"_clk_title\" > ?)"));
        let ask = PageAsk {
            take: 1,
            upto: 60,
            bytes: 10,
            budget: 100,
            probe_next: Some(7),
        };
        let steps = queries.page(5, &ask);
        assert_eq!(steps.len(), 2);
        assert_eq!(
            steps[0].stmt.args,
            vec![5.into(), 60.into(), 90.into(), zero.clone()]
        );
        assert_eq!(
            steps[1].stmt.args,
            vec![60.into(), 90.into(), zero, 7.into()]
        );
        let plain = PullQueries::new(
            &todos,
            &PullRange {
                after: 0,
                upto: None,
                clocked: Vec::new(),
                probe_columns: true,
            },
            100,
        );
        assert_eq!(plain.aggregate(3, 9).args, vec![3.into(), 9.into()]);
        assert_eq!(
            plain
                .page(
                    3,
                    &PageAsk {
                        probe_next: None,
                        ..ask
                    }
                )
                .len(),
            1
        );
    }

    #[test]
    fn probe_answers_of_the_wrong_shape_are_typed_errors() {
        let todos = crate::schema::todos_table();
        let queries = PullQueries::new(
            &todos,
            &PullRange {
                after: 0,
                upto: None,
                clocked: Vec::new(),
                probe_columns: false,
            },
            100,
        );
        let rows = |cells: Vec<Vec<SqlValue>>| Rows {
            columns: Vec::new(),
            rows: cells,
        };
        let ok = rows(vec![vec![3.into(), 600.into(), 9.into()]]);
        assert_eq!(
            queries.read_aggregate(&todos, &ok).unwrap(),
            (3, 600, Some(9))
        );
        let empty = rows(vec![vec![0.into(), 0.into(), SqlValue::Null]]);
        assert_eq!(
            queries.read_aggregate(&todos, &empty).unwrap(),
            (0, 0, None)
        );
        let two = rows(vec![vec![1.into(), 2.into()]]);
        assert!(matches!(
            queries.read_aggregate(&todos, &two),
            Err(Error::Protocol(_))
        ));
        let text = rows(vec![vec!["x".into(), 2.into(), 3.into()]]);
        assert!(matches!(
            queries.read_aggregate(&todos, &text),
            Err(Error::InvalidRemoteRow { .. })
        ));
        let sizes = rows(vec![vec!["[[2,100],[1,50]]".into()]]);
        assert_eq!(
            queries.read_sizes(&todos, &sizes).unwrap(),
            vec![(1, 50), (2, 100)]
        );
        let bad = rows(vec![vec!["[[1,\"x\"]]".into()]]);
        assert!(matches!(
            queries.read_sizes(&todos, &bad),
            Err(Error::InvalidRemoteRow { .. })
        ));
    }
}
