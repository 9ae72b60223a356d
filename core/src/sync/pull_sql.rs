//! The SQL a pull sends for one table and range, and the checks on what
//! comes back: size probes (listing `(_seq, bytes)` per row, or aggregate
//! `count, bytes, last _seq`), pages (`WHERE _seq > ? AND _seq <= ?`), as
//! one JSON cell where that is exact ([`crate::page`]). Pure: statements
//! in, validated rows out; [`super::pull`] sends them.

use super::plan::PageAsk;
use crate::error::{clip, Error, Result};
use crate::hrana::Step;
use crate::row::SyncRow;
use crate::schema::{q, SqlType, TableDef, ZERO_CLOCK};
use crate::subscription::Filter;
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
    /// Only rows this filter matches (a partial table's subscriptions,
    /// [`crate::subscription`]).
    pub(crate) filter: Option<Filter>,
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
    /// The first rows after a `_seq`, when they are few and small
    /// ([`PullQueries::opening_page`]).
    opening: String,
    /// Arguments of the range's filter (backfill bound, clocks, the
    /// subscriptions' filter).
    fixed_args: Vec<SqlValue>,
    page_rows: usize,
    /// Pages travel as one JSON cell ([`crate::page::json_pages`]).
    json: bool,
    /// Cells of a page row: the row's columns and `_seq`.
    width: usize,
}

/// SQL for the size in bytes of a server row in a page, as the server will
/// build and send it: each `TEXT` value as the server's own JSON escaping
/// makes it (`length(CAST(json_quote(v) AS BLOB))`: a control character
/// takes 6 bytes, and on some servers a non-ASCII character up to 12),
/// an `INTEGER` or `REAL` by its digits, a `BLOB` in base64 (Hrana pages),
/// plus a fixed share for the id, flags, timestamps and clocks, which
/// depends on the page's encoding ([`crate::page`]): as one JSON cell,
/// about 38 bytes per clock (a 33-character text) and 80 for the id, flags
/// and `_seq`; as Hrana value objects about 60 per cell. (Measured on
/// tursodb for the built-in `todos`: 208 and 463 bytes a row.)
pub(crate) fn row_bytes_sql(def: &TableDef, json: bool) -> String {
    let n = def.columns.len();
    let overhead = if json {
        82 + 38 * (n + 1) + 3 * n
    } else {
        60 * (n + 1 + 4)
    };
    let mut parts = vec![overhead.to_string()];
    parts.extend(def.columns.iter().map(|c| {
        let col = q(&c.name);
        match c.sql_type {
            // A value of another type (a buggy or hostile client's) by its
            // length: json_quote of a blob would fail the whole probe.
            SqlType::Text => format!(
                "CASE typeof({col}) WHEN 'text' THEN length(CAST(json_quote({col}) AS BLOB)) ELSE coalesce(length({col}), 0) * 2 END"
            ),
            SqlType::Blob => format!("coalesce(length({col}), 0) * 4 / 3"),
            SqlType::Integer | SqlType::Real => format!("coalesce(length({col}), 0)"),
        }
    }));
    parts.join(" + ")
}

/// The most one JSON page may hold: sqld refuses any string a statement
/// builds over 5,000,000 bytes (`SQLITE_TOOBIG`, SQLite's default length
/// limit), and a JSON page is one string; with room for the array's commas
/// and the estimate's rounding.
pub(crate) const MAX_JSON_PAGE_BYTES: usize = 4_500_000;

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
        if let Some(f) = &range.filter {
            filter.push_str(&format!(" AND {}", f.sql));
            fixed_args.extend(f.args.iter().cloned());
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
        let first = format!(
            "SELECT {columns} FROM {table} WHERE \"_seq\" > ?{filter} ORDER BY \"_seq\" LIMIT ?"
        );
        let small = format!(
            "(SELECT coalesce(sum(\"bytes\"), 0) FROM (SELECT {bytes} AS \"bytes\" FROM {table} WHERE \"_seq\" > ?{filter} ORDER BY \"_seq\" LIMIT ?)) <= ?"
        );
        let mut opening = format!("SELECT {columns} FROM ({first}) WHERE {small}");
        if json {
            select = crate::page::as_one_cell(&columns, &select);
            opening = format!(
                "SELECT json_group_array(json_array({columns})) FROM ({first}) WHERE {small}"
            );
        }
        PullQueries {
            sizes,
            aggregate,
            select,
            opening,
            fixed_args,
            page_rows,
            json,
            width: def.row_columns().len() + 1,
        }
    }

    /// Pages of this table travel as one JSON cell ([`crate::page`]).
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    /// The most a page of this table may hold, whatever the link's budget:
    /// [`MAX_JSON_PAGE_BYTES`] for JSON pages, else sqld's answer limit
    /// margin ([`super::plan::MAX_PAGE_BYTES`]).
    pub(crate) fn max_page_bytes(&self) -> usize {
        if self.json {
            MAX_JSON_PAGE_BYTES
        } else {
            super::plan::MAX_PAGE_BYTES
        }
    }

    /// The first `rows` rows after `after` (a page, as [`PullQueries::page`]
    /// builds it, without an upper bound), or none at all when they are more
    /// than `bytes` long together: sent speculatively with a first probe,
    /// it holds every row a small sync needs.
    pub(crate) fn opening_page(&self, after: i64, rows: usize, bytes: usize) -> Statement {
        let mut args = vec![SqlValue::Integer(after)];
        args.extend(self.fixed_args.iter().cloned());
        args.push(SqlValue::Integer(rows as i64));
        args.push(SqlValue::Integer(after));
        args.extend(self.fixed_args.iter().cloned());
        args.push(SqlValue::Integer(rows as i64));
        args.push(SqlValue::Integer(bytes as i64));
        Statement::new(self.opening.clone(), args)
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

    /// A page's answer for `_seq` in `(after, upto]`: its valid rows with
    /// their `_seq`, and the rows that break the layout (types, ids,
    /// clocks, a `_seq` that is not an integer or does not rise), each with
    /// why, to be quarantined instead of stopping the pull.
    ///
    /// Errors: [`Error::Protocol`] for an answer of another shape or a row
    /// beyond the page's end (the server ignored the page's bounds).
    pub(crate) fn read_page(
        &self,
        def: &TableDef,
        page: Rows,
        after: i64,
        upto: i64,
    ) -> Result<Page> {
        let width = self.width;
        let cells = if self.json {
            crate::page::decode(&def.name, &page, width, width - 1)?
        } else {
            page.rows
        };
        let mut out = Page::default();
        let mut last = after;
        for cells in &cells {
            let seq = cells.get(width - 1).and_then(SqlValue::as_i64);
            let checked: std::result::Result<(SyncRow, i64), String> = match seq {
                _ if cells.len() != width => {
                    Err(format!("expected {width} columns, got {}", cells.len()))
                }
                None => Err("its _seq is not an integer".to_owned()),
                Some(seq) if seq <= last => {
                    Err(format!("its _seq {seq} does not rise after {last}"))
                }
                Some(seq) if seq > upto => {
                    return Err(Error::Protocol(format!(
                        "pull page of {}: _seq {seq} is beyond the page's end {upto}",
                        def.name
                    )))
                }
                Some(seq) => SyncRow::from_cells(def, cells).map(|row| (row, seq)),
            };
            match checked {
                Ok((row, seq)) => {
                    last = seq;
                    out.rows.push(row);
                    out.seqs.push(seq);
                }
                Err(reason) => out.quarantined.push(Quarantined {
                    seq: seq.unwrap_or(last),
                    id: cells
                        .first()
                        .map(|v| match v {
                            SqlValue::Text(t) => clip(t, 64),
                            other => format!("({})", other.type_name()),
                        })
                        .unwrap_or_default(),
                    reason,
                }),
            }
        }
        Ok(out)
    }
}

/// The rows of one pull page, read.
#[derive(Debug, Default)]
pub(crate) struct Page {
    pub(crate) rows: Vec<SyncRow>,
    pub(crate) seqs: Vec<i64>,
    pub(crate) quarantined: Vec<Quarantined>,
}

/// A row of a page this replica will not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Quarantined {
    pub(crate) seq: i64,
    pub(crate) id: String,
    pub(crate) reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn row_size_sql_counts_every_user_column_as_it_travels() {
        let lengths = "CASE typeof(\"title\") WHEN 'text' THEN length(CAST(json_quote(\"title\") AS BLOB)) ELSE coalesce(length(\"title\"), 0) * 2 END + coalesce(length(\"is_completed\"), 0)";
        let todos = crate::schema::todos_table();
        assert_eq!(row_bytes_sql(&todos, false), format!("420 + {lengths}"));
        assert_eq!(row_bytes_sql(&todos, true), format!("202 + {lengths}"));
        let blobs = TableDef::new(
            "b",
            vec![
                crate::ColumnDef::new("data", SqlType::Blob).nullable(),
                crate::ColumnDef::new("x", SqlType::Real),
            ],
        )
        .unwrap();
        assert_eq!(
            row_bytes_sql(&blobs, false),
            "420 + coalesce(length(\"data\"), 0) * 4 / 3 + coalesce(length(\"x\"), 0)"
        );
    }

    #[test]
    fn the_json_size_estimate_is_what_sqlite_builds() {
        // The estimate of a text value is the length of its JSON form, in
        // bytes: control characters and non-ASCII text are counted as sent.
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for text in ["plain", "\u{1}\u{2}\u{1f}", "😀😀", "é\"\\\n", ""] {
            let (estimate, built): (i64, i64) = conn
                .query_row(
                    "SELECT length(CAST(json_quote(?1) AS BLOB)), length(CAST(json_array(?1) AS BLOB)) - 2",
                    [text],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!(estimate, built, "{text:?}");
        }
    }

    #[test]
    fn a_backfill_range_binds_its_bound_and_clocks_in_every_statement() {
        let todos = crate::schema::todos_table();
        let range = PullRange {
            after: 5,
            upto: Some(90),
            clocked: vec!["title".into()],
            probe_columns: false,
            filter: None,
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
                filter: None,
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
    fn a_subscribed_range_binds_its_filter_after_the_range_in_every_statement() {
        let todos = crate::schema::todos_table();
        let filter = Filter {
            sql: "((title = ?) OR (is_completed = ?))".into(),
            args: vec!["a".into(), 1.into()],
        };
        let range = PullRange {
            after: 5,
            upto: Some(90),
            clocked: Vec::new(),
            probe_columns: false,
            filter: Some(filter),
        };
        let queries = PullQueries::new(&todos, &range, 100);
        let sizes = queries.sizes(5);
        assert!(sizes
            .sql
            .contains("\"_seq\" <= ? AND ((title = ?) OR (is_completed = ?)) ORDER BY"));
        assert_eq!(
            sizes.args,
            vec![5.into(), 90.into(), "a".into(), 1.into(), 100.into()]
        );
        let opening = queries.opening_page(5, 10, 1000);
        assert_eq!(opening.sql.matches('?').count(), opening.args.len());
        let ask = PageAsk {
            take: 1,
            upto: 60,
            bytes: 10,
            budget: 100,
            probe_next: Some(7),
        };
        for step in queries.page(5, &ask) {
            assert_eq!(step.stmt.sql.matches('?').count(), step.stmt.args.len());
            assert!(step.stmt.sql.contains("(title = ?) OR (is_completed = ?)"));
        }
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
                filter: None,
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
