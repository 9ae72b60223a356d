//! Partial sync: what a replica pulls of a table, as subscriptions. A
//! subscription is a name, a table and an SQL filter with bound
//! parameters; the filter runs on the server inside the pull's own
//! statements (`WHERE _seq > ? AND (<filter>)`: no server code). This
//! module owns their records in the file (`_erth_subscriptions` and the
//! parameters' `_erth_subscription_params`, in SQLite's own types), the
//! check of a filter's text ([`check_filter`]) and a table's combined
//! filter ([`Filter`]). The engine's steps with them (backfill, eviction,
//! sweep) are `sync::subscribed`; the public calls are
//! `Database::add_subscription` and its neighbours (`subscribe.rs`).
//!
//! A table is **partial** once it had a subscription (the state key
//! [`leave_key`], the cursor of its eviction check, marks it): it then
//! pulls the rows of its subscriptions only, and nothing when it has none.
//! A table that never had one pulls everything, as before.

use crate::schema::q;
use crate::value::{SqlValue, Statement};

/// The subscriptions (one row each; `phase` is [`Phase`]).
pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS \"_erth_subscriptions\" (\"name\" TEXT PRIMARY KEY NOT NULL, \"tbl\" TEXT NOT NULL, \"filter\" TEXT NOT NULL, \"reads\" TEXT NOT NULL DEFAULT '', \"expires_ms\" INTEGER, \"phase\" INTEGER NOT NULL, \"after\" INTEGER NOT NULL DEFAULT 0, \"upto\" INTEGER NOT NULL DEFAULT 0, \"rows\" INTEGER NOT NULL DEFAULT 0)";
/// Their parameters, in order, as the values themselves.
pub const CREATE_PARAMS: &str = "CREATE TABLE IF NOT EXISTS \"_erth_subscription_params\" (\"name\" TEXT NOT NULL, \"i\" INTEGER NOT NULL, \"value\", PRIMARY KEY (\"name\", \"i\"))";
const TABLE: &str = "_erth_subscriptions";
const PARAMS: &str = "_erth_subscription_params";

/// The longest filter text accepted (bytes).
pub const MAX_FILTER_BYTES: usize = 10_000;
/// The longest subscription name accepted (bytes).
pub const MAX_NAME_BYTES: usize = 200;

/// Where a subscription's rows stand on this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Added; its backfill's range is fixed by the next sync.
    Pending = 0,
    /// Its rows up to `upto` are being pulled, after `after`.
    Backfilling = 1,
    /// Its rows were pulled, and show once the sync applies them.
    Filled = 2,
    /// Its rows are on the device (as of the last sync).
    Ready = 3,
}

impl Phase {
    fn from_i64(v: i64) -> Phase {
        match v {
            1 => Phase::Backfilling,
            2 => Phase::Filled,
            3 => Phase::Ready,
            _ => Phase::Pending,
        }
    }
}

/// One subscription as `Database::subscriptions` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[cfg_attr(
    feature = "js",
    derive(serde::Serialize, tsify::Tsify),
    serde(rename_all = "camelCase")
)]
pub struct SyncSubscription {
    pub name: String,
    pub table: String,
    /// The filter as given (an SQL expression over the table's columns).
    pub filter: String,
    /// Wall-clock ms after which the subscription ends (its rows are
    /// evicted at the next sync), if it was given a time to live.
    #[cfg_attr(feature = "js", serde(rename = "expiresAt"))]
    pub expires_at_ms: Option<u64>,
    /// Its rows are on the device: its first backfill completed and was
    /// applied (`Database::wait_for_subscription`).
    pub ready: bool,
    /// Rows its backfill pulled so far (rows that arrived through the
    /// table's own pull count there: `SyncProgress::Pulled`).
    pub backfilled_rows: u64,
}

/// A subscription as the file holds it.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) name: String,
    pub(crate) table: String,
    pub(crate) filter: String,
    pub(crate) params: Vec<SqlValue>,
    /// The other synced tables the filter reads (its parents).
    pub(crate) reads: Vec<String>,
    pub(crate) expires_ms: Option<u64>,
    pub(crate) phase: Phase,
    pub(crate) after: i64,
    pub(crate) upto: i64,
    pub(crate) rows: u64,
}

impl Record {
    pub(crate) fn public(&self) -> SyncSubscription {
        SyncSubscription {
            name: self.name.clone(),
            table: self.table.clone(),
            filter: self.filter.clone(),
            expires_at_ms: self.expires_ms,
            ready: self.phase == Phase::Ready,
            backfilled_rows: self.rows,
        }
    }

    /// The subscription's own filter.
    pub(crate) fn filter(&self) -> Filter {
        Filter {
            sql: format!("({})", self.filter),
            args: self.params.clone(),
        }
    }
}

/// An SQL condition over a server table's row, with its arguments (bound
/// in order after the statement's own).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Filter {
    pub(crate) sql: String,
    pub(crate) args: Vec<SqlValue>,
}

impl Filter {
    /// Matches no row.
    pub(crate) fn nothing() -> Filter {
        Filter {
            sql: "0".into(),
            args: Vec::new(),
        }
    }

    /// Rows any of `filters` matches (none: [`Filter::nothing`]).
    pub(crate) fn any(filters: impl IntoIterator<Item = Filter>) -> Filter {
        let mut sql = Vec::new();
        let mut args = Vec::new();
        for f in filters {
            sql.push(f.sql);
            args.extend(f.args);
        }
        if sql.is_empty() {
            return Filter::nothing();
        }
        Filter {
            sql: format!("({})", sql.join(" OR ")),
            args,
        }
    }

    /// Rows this filter does not match, a NULL counting as no match.
    pub(crate) fn not(&self) -> Filter {
        Filter {
            sql: format!("NOT coalesce({}, 0)", self.sql),
            args: self.args.clone(),
        }
    }

    /// Rows both match.
    pub(crate) fn and(&self, other: &Filter) -> Filter {
        let mut args = self.args.clone();
        args.extend(other.args.iter().cloned());
        Filter {
            sql: format!("({} AND {})", self.sql, other.sql),
            args,
        }
    }
}

/// The key of a partial table's eviction cursor: the server `_seq` up to
/// which rows that left its filter were looked for. Present exactly when
/// the table is partial.
pub(crate) fn leave_key(table: &str) -> String {
    format!("leave:{table}")
}

/// The key of a table's pending sweep (its held rows checked against its
/// filter, after a subscription ended): the last id checked.
pub(crate) fn sweep_key(table: &str) -> String {
    format!("sweep:{table}")
}

/// The key of the last `_seq` of the tables a partial table's filters
/// read (`parent=seq,...`), to notice rows moving in or out through them.
pub(crate) fn reads_key(table: &str) -> String {
    format!("reads:{table}")
}

/// Every subscription, with its parameters (two statements).
pub(crate) fn select_all() -> [Statement; 2] {
    [
        Statement::plain(format!(
            "SELECT \"name\", \"tbl\", \"filter\", \"reads\", \"expires_ms\", \"phase\", \"after\", \"upto\", \"rows\" FROM {} ORDER BY \"name\"",
            q(TABLE)
        )),
        Statement::plain(format!(
            "SELECT \"name\", \"value\" FROM {} ORDER BY \"name\", \"i\"",
            q(PARAMS)
        )),
    ]
}

/// The records in the answers of [`select_all`].
pub(crate) fn records(subs: &crate::value::Rows, params: &crate::value::Rows) -> Vec<Record> {
    let text = |v: Option<&SqlValue>| v.and_then(SqlValue::as_str).unwrap_or("").to_owned();
    let int = |v: Option<&SqlValue>| v.and_then(SqlValue::as_i64).unwrap_or(0);
    subs.rows
        .iter()
        .map(|r| {
            let name = text(r.first());
            let reads = text(r.get(3));
            Record {
                params: params
                    .rows
                    .iter()
                    .filter(|p| p.first().and_then(SqlValue::as_str) == Some(name.as_str()))
                    .map(|p| p.get(1).cloned().unwrap_or(SqlValue::Null))
                    .collect(),
                table: text(r.get(1)),
                filter: text(r.get(2)),
                reads: reads
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                expires_ms: r.get(4).and_then(SqlValue::as_i64).map(|v| v as u64),
                phase: Phase::from_i64(int(r.get(5))),
                after: int(r.get(6)),
                upto: int(r.get(7)),
                rows: int(r.get(8)).max(0) as u64,
                name,
            }
        })
        .collect()
}

/// Statements that store `r` (replacing a subscription of its name).
pub(crate) fn insert(r: &Record) -> Vec<Statement> {
    let mut stmts = delete(&r.name);
    stmts.push(Statement::new(
        format!(
            "INSERT INTO {} (\"name\", \"tbl\", \"filter\", \"reads\", \"expires_ms\", \"phase\", \"after\", \"upto\", \"rows\") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            q(TABLE)
        ),
        vec![
            r.name.as_str().into(),
            r.table.as_str().into(),
            r.filter.as_str().into(),
            SqlValue::Text(r.reads.join(",")),
            r.expires_ms
                .map_or(SqlValue::Null, |v| SqlValue::Integer(v as i64)),
            SqlValue::Integer(r.phase as i64),
            SqlValue::Integer(r.after),
            SqlValue::Integer(r.upto),
            SqlValue::Integer(r.rows as i64),
        ],
    ));
    for (i, v) in r.params.iter().enumerate() {
        stmts.push(Statement::new(
            format!(
                "INSERT INTO {} (\"name\", \"i\", \"value\") VALUES (?, ?, ?)",
                q(PARAMS)
            ),
            vec![
                r.name.as_str().into(),
                SqlValue::Integer(i as i64),
                v.clone(),
            ],
        ));
    }
    stmts
}

/// Statements that delete the subscription `name`.
pub(crate) fn delete(name: &str) -> Vec<Statement> {
    [TABLE, PARAMS]
        .iter()
        .map(|t| {
            Statement::new(
                format!("DELETE FROM {} WHERE \"name\" = ?", q(t)),
                vec![name.into()],
            )
        })
        .collect()
}

/// Sets the subscription `name`'s backfill state.
pub(crate) fn set_phase(name: &str, phase: Phase, after: i64, upto: i64) -> Statement {
    Statement::new(
        format!(
            "UPDATE {} SET \"phase\" = ?, \"after\" = ?, \"upto\" = ? WHERE \"name\" = ?",
            q(TABLE)
        ),
        vec![
            SqlValue::Integer(phase as i64),
            SqlValue::Integer(after),
            SqlValue::Integer(upto),
            name.into(),
        ],
    )
}

/// Moves the subscription `name`'s backfill on: rows up to `after` were
/// pulled, `rows` in all.
pub(crate) fn backfilled(name: &str, after: i64, rows: u64) -> Statement {
    Statement::new(
        format!(
            "UPDATE {} SET \"after\" = ?, \"rows\" = ? WHERE \"name\" = ?",
            q(TABLE)
        ),
        vec![
            SqlValue::Integer(after),
            SqlValue::Integer(rows as i64),
            name.into(),
        ],
    )
}

/// Every filled subscription of a table not in `skip` is ready (its rows
/// were applied).
pub(crate) fn filled_are_ready(skip: &[String]) -> Statement {
    let mut args = vec![
        SqlValue::Integer(Phase::Ready as i64),
        SqlValue::Integer(Phase::Filled as i64),
    ];
    args.extend(skip.iter().map(|t| SqlValue::from(t.as_str())));
    let not_in = if skip.is_empty() {
        String::new()
    } else {
        format!(" AND \"tbl\" NOT IN ({})", vec!["?"; skip.len()].join(", "))
    };
    Statement::new(
        format!(
            "UPDATE {} SET \"phase\" = ? WHERE \"phase\" = ?{not_in}",
            q(TABLE)
        ),
        args,
    )
}

/// After a server reset: every subscription backfills again (from a
/// cursor of 0, an empty range), partial tables look for leavers from the
/// start, and their parents' marks are forgotten.
pub(crate) fn start_over() -> Vec<Statement> {
    vec![
        Statement::new(
            format!("UPDATE {} SET \"phase\" = ?", q(TABLE)),
            vec![SqlValue::Integer(Phase::Pending as i64)],
        ),
        Statement::plain(
            "UPDATE \"_erth_state\" SET \"v\" = '0' WHERE \"k\" LIKE 'leave:%'".to_owned(),
        ),
        Statement::plain("DELETE FROM \"_erth_state\" WHERE \"k\" LIKE 'reads:%'".to_owned()),
    ]
}

/// Checks a filter's text and counts its parameters: one SQL expression
/// (parentheses balanced outside literals, no `;`, no comments), only
/// positional `?` parameters, and no name of the engine's (`_erth…`,
/// `sqlite_…`). What it reads is checked by preparing it on the replica.
///
/// Errors: why the text is refused.
pub fn check_filter(filter: &str) -> Result<usize, String> {
    if filter.trim().is_empty() {
        return Err("the filter is empty".into());
    }
    if filter.len() > MAX_FILTER_BYTES {
        return Err(format!(
            "the filter is {} bytes long; at most {MAX_FILTER_BYTES}",
            filter.len()
        ));
    }
    let b = filter.as_bytes();
    let (mut depth, mut params, mut i) = (0usize, 0usize, 0usize);
    let engine = |name: &str| {
        let n = name.to_ascii_lowercase();
        n.starts_with("_erth") || n.starts_with("sqlite_")
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' | b'"' | b'`' | b'[' => {
                let close = if c == b'[' { b']' } else { c };
                let start = i + 1;
                let mut j = start;
                loop {
                    match b.get(j) {
                        None => return Err("a quoted string or name is not closed".into()),
                        Some(&x) if x == close => {
                            if c != b'[' && b.get(j + 1) == Some(&close) {
                                j += 2;
                                continue;
                            }
                            break;
                        }
                        Some(_) => j += 1,
                    }
                }
                if c != b'\'' && engine(&filter[start..j]) {
                    return Err(format!(
                        "the filter names `{}`, which is the engine's",
                        &filter[start..j]
                    ));
                }
                i = j + 1;
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => return Err("comments are not allowed".into()),
            b'/' if b.get(i + 1) == Some(&b'*') => return Err("comments are not allowed".into()),
            b';' => return Err("the filter is one expression: no `;`".into()),
            b'(' => depth += 1,
            b')' => {
                if depth == 0 {
                    return Err("a `)` closes what the filter did not open".into());
                }
                depth -= 1;
            }
            b'?' => {
                if b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    return Err("parameters are plain `?` (numbered ones are not allowed)".into());
                }
                params += 1;
            }
            b':' | b'@' | b'$' => {
                return Err("parameters are plain `?` (named ones are not allowed)".into())
            }
            _ if c == b'_' || c.is_ascii_alphabetic() => {
                let start = i;
                while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                if engine(&filter[start..i]) {
                    return Err(format!(
                        "the filter names `{}`, which is the engine's",
                        &filter[start..i]
                    ));
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if depth != 0 {
        return Err("a `(` is not closed".into());
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_is_one_expression_with_plain_parameters() {
        assert_eq!(check_filter("done = 0"), Ok(0));
        assert_eq!(
            check_filter("list_id IN (SELECT id FROM lists WHERE owner = ?) AND n > ?"),
            Ok(2)
        );
        assert_eq!(
            check_filter("title = 'a '')?; -- (' OR \"x\"\"?\" = 1"),
            Ok(0)
        );
        for bad in [
            "",
            "  ",
            "1) UNION SELECT * FROM lists WHERE (1",
            "a = 1; DROP TABLE x",
            "a = 1 -- comment",
            "a = /* c */ 1",
            "(a = 1",
            "a = ?1",
            "a = :me",
            "a = @me",
            "id IN (SELECT id FROM _erth_rows_lists)",
            "id IN (SELECT id FROM \"_ERTH_state\")",
            "id IN (SELECT name FROM sqlite_schema)",
            "title = 'open",
        ] {
            assert!(check_filter(bad).is_err(), "{bad:?} passed");
        }
        assert!(check_filter(&"1 OR ".repeat(3000)).is_err());
    }

    #[test]
    fn filters_combine_with_their_arguments_in_order() {
        let a = Filter {
            sql: "(x = ?)".into(),
            args: vec![SqlValue::Integer(1)],
        };
        let b = Filter {
            sql: "(y = ?)".into(),
            args: vec![SqlValue::Integer(2)],
        };
        let any = Filter::any([a.clone(), b.clone()]);
        assert_eq!(any.sql, "((x = ?) OR (y = ?))");
        assert_eq!(any.args, vec![SqlValue::Integer(1), SqlValue::Integer(2)]);
        let both = b.and(&a.not());
        assert_eq!(both.sql, "((y = ?) AND NOT coalesce((x = ?), 0))");
        assert_eq!(both.args, vec![SqlValue::Integer(2), SqlValue::Integer(1)]);
        assert_eq!(Filter::any([]), Filter::nothing());
    }
}
