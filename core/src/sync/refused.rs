//! The bookkeeping of rows and tables the server refused, as SQL on the
//! replica's `_erth_rejected` table ([`crate::state::CREATE_REJECTED`]): a
//! refused row is set aside with the server's code and message and its
//! `_dirty` at that moment, skipped by pushes while `_dirty` is unchanged,
//! and forgotten once the server accepts it. The public calls that list,
//! retry and discard refused rows are in [`crate::rejected`].

use crate::error::{clip, Error};
use crate::schema::q;
use crate::state::REJECTED;
use crate::status::TableRefusal;
use crate::value::{SqlValue, Statement};

/// `(tbl, id, dirty)` of the rows a push must skip, as a SQL condition on
/// the engine table aliased `t` (one argument: the table name).
pub(crate) const NOT_SET_ASIDE: &str = "NOT EXISTS (SELECT 1 FROM \"_erth_rejected\" r WHERE r.\"tbl\" = ? AND r.\"id\" = t.\"id\" AND r.\"dirty\" = t.\"_dirty\")";

/// Records that the server refused version `dirty` of row `id`.
pub(crate) fn set_aside(
    table: &str,
    id: &str,
    dirty: i64,
    error: &Error,
    now_ms: u64,
) -> Statement {
    let (code, message) = match error {
        Error::Server { code, message } => (code.clone(), message.clone()),
        Error::Http { status, .. } => (format!("HTTP {status}"), error.to_string()),
        e if e.is_timeout() => (
            "TIMEOUT".to_owned(),
            "the row alone did not reach the server within the request timeout".to_owned(),
        ),
        other => (format!("{:?}", other.kind()), other.to_string()),
    };
    Statement::new(
        format!(
            "INSERT INTO {} (\"tbl\", \"id\", \"dirty\", \"code\", \"message\", \"at_ms\") VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (\"tbl\", \"id\") DO UPDATE SET \"dirty\" = excluded.\"dirty\", \"code\" = excluded.\"code\", \
             \"message\" = excluded.\"message\", \"at_ms\" = excluded.\"at_ms\"",
            q(REJECTED)
        ),
        vec![
            table.into(),
            id.into(),
            SqlValue::Integer(dirty),
            SqlValue::Text(code),
            SqlValue::Text(clip(&message, 500)),
            SqlValue::Integer(now_ms as i64),
        ],
    )
}

/// Forgets the refusals of rows the server has now accepted.
pub(crate) fn accepted(table: &str, ids: &[&str]) -> Statement {
    let tuples = vec!["(?)"; ids.len()].join(", ");
    let mut args = vec![SqlValue::from(table)];
    args.extend(ids.iter().map(|id| SqlValue::from(*id)));
    Statement::new(
        format!(
            "DELETE FROM {} WHERE \"tbl\" = ? AND \"id\" IN (VALUES {tuples})",
            q(REJECTED)
        ),
        args,
    )
}

/// The refusal of a whole table in a push's error: the server's authorizer
/// (`SQLITE_AUTH`, a token restricted per table), or HTTP 403 (sqld answers
/// it to a read-only token writing). 401 (a missing or bad token) is not:
/// it fails the sync.
pub(crate) fn table_refusal(table: &str, error: &Error) -> Option<TableRefusal> {
    match error {
        Error::Auth { status: 403 } => Some(TableRefusal {
            table: table.to_owned(),
            code: "HTTP 403".into(),
            message: "the server answered HTTP 403: this token may not write (read-only)".into(),
        }),
        Error::Server { code, message } if error.is_table_refusal() => Some(TableRefusal {
            table: table.to_owned(),
            code: code.clone(),
            message: clip(message, 500),
        }),
        _ => None,
    }
}
