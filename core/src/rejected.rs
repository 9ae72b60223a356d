//! Rows the server refused: the bookkeeping and the public calls.
//!
//! A push batch the server refuses because of its rows (see
//! [`Error::is_row_refusal`]) is narrowed down by [`crate::sync`] to the
//! rows at fault; each is recorded in the replica's `_erth_rejected` table
//! with the server's code and message and the row's `_dirty` at that moment,
//! and stays pending. A refused row is skipped by later pushes while its
//! `_dirty` is unchanged: it is pushed again after a local change to the row
//! or after [`Database::retry_rejected`]; [`Database::discard_rejected`]
//! drops the local changes and takes the server's version of the row.

use crate::db::{persist_clock, Database};
use crate::error::{clip, Error, Result};
use crate::events::{ChangeEvent, ChangeOrigin};
use crate::merge;
use crate::row::SyncRow;
use crate::schema::{q, TableDef};
use crate::state::REJECTED;
use crate::value::{SqlValue, Statement};
use std::sync::atomic::Ordering;

/// A local row the server refused, with the server's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[cfg_attr(
    feature = "js",
    derive(serde::Serialize, tsify::Tsify),
    serde(rename_all = "camelCase")
)]
pub struct RejectedRow {
    pub table: String,
    pub id: String,
    /// The server's Hrana error code (e.g. `SQLITE_CONSTRAINT`; tursodb
    /// reports every failed step as `BATCH_STEP_ERROR`).
    pub code: String,
    /// The server's message (at most about 500 bytes).
    pub message: String,
    /// Wall-clock ms when the server refused it.
    #[cfg_attr(feature = "js", serde(rename = "rejectedAt"))]
    pub rejected_at_ms: u64,
}

/// A synced table this replica may not write (or read) with its token, as
/// of the last sync; its pending rows stay pending.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[cfg_attr(
    feature = "js",
    derive(serde::Serialize, tsify::Tsify),
    serde(rename_all = "camelCase")
)]
pub struct TableRefusal {
    pub table: String,
    /// `HTTP 403` for a token the server answered with 403 (sqld: a
    /// read-only token writing), else the server's Hrana code (`SQLITE_AUTH`).
    pub code: String,
    pub message: String,
}

/// `refusals` as kept in `_erth_state` (a JSON array of
/// `[table, code, message]`), so `status()` says why after a reopen too.
pub(crate) fn refusals_text(refusals: &[TableRefusal]) -> String {
    let list: Vec<[&str; 3]> = refusals
        .iter()
        .map(|r| [r.table.as_str(), r.code.as_str(), r.message.as_str()])
        .collect();
    serde_json::to_string(&list).unwrap_or_default()
}

/// [`refusals_text`] read back; anything unreadable reads as none.
pub(crate) fn refusals_from_text(text: &str) -> Vec<TableRefusal> {
    serde_json::from_str::<Vec<[String; 3]>>(text)
        .unwrap_or_default()
        .into_iter()
        .map(|[table, code, message]| TableRefusal {
            table,
            code,
            message,
        })
        .collect()
}

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

impl Database {
    /// The rows the server refused and that have not changed since, over
    /// all tables, oldest refusal first.
    pub async fn rejected_rows(&self) -> Result<Vec<RejectedRow>> {
        let mut out = Vec::new();
        for def in &self.config.tables {
            let rows = self
                .store
                .query(&Statement::new(
                    format!(
                        "SELECT r.\"id\", r.\"code\", r.\"message\", r.\"at_ms\" FROM {} r JOIN {} t ON t.\"id\" = r.\"id\" AND t.\"_dirty\" = r.\"dirty\" WHERE r.\"tbl\" = ? ORDER BY r.\"at_ms\", r.\"id\"",
                        q(REJECTED),
                        q(&def.local_name())
                    ),
                    vec![def.name.as_str().into()],
                ))
                .await?;
            for r in rows.rows {
                let text = |i: usize| r.get(i).and_then(SqlValue::as_str).unwrap_or("").to_owned();
                out.push(RejectedRow {
                    table: def.name.clone(),
                    id: text(0),
                    code: text(1),
                    message: text(2),
                    rejected_at_ms: r.get(3).and_then(SqlValue::as_i64).unwrap_or(0).max(0) as u64,
                });
            }
        }
        out.sort_by_key(|r| r.rejected_at_ms);
        Ok(out)
    }

    /// How many rows [`Database::rejected_rows`] lists.
    pub async fn rejected_count(&self) -> Result<u64> {
        let mut total = 0;
        for def in &self.config.tables {
            let rows = self
                .store
                .query(&Statement::new(
                    format!(
                        "SELECT count(*) FROM {} r JOIN {} t ON t.\"id\" = r.\"id\" AND t.\"_dirty\" = r.\"dirty\" WHERE r.\"tbl\" = ?",
                        q(REJECTED),
                        q(&def.local_name())
                    ),
                    vec![def.name.as_str().into()],
                ))
                .await?;
            total += rows
                .rows
                .first()
                .and_then(|r| r.first())
                .and_then(SqlValue::as_i64)
                .unwrap_or(0) as u64;
        }
        Ok(total)
    }

    /// Makes every refused row pending again: the next sync pushes them
    /// (and sets aside again those the server still refuses). Returns how
    /// many rows were refused.
    pub async fn retry_rejected(&self) -> Result<u64> {
        let n = self.rejected_count().await?;
        self.store
            .write(&[Statement::plain(format!("DELETE FROM {}", q(REJECTED)))])
            .await?;
        // A sync that started before this call must not stand in for one after.
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.sync_soon();
        Ok(n)
    }

    /// Drops the local changes of a refused row and takes the server's
    /// version of it (one request to the server); a row the server never
    /// had is removed. Subscribers see the change as remote.
    ///
    /// Errors: [`Error::NotFound`] when the row is not refused (see
    /// [`Database::rejected_rows`]); [`Error::NoRemote`]; network, auth and
    /// server errors of the request (nothing local changed then);
    /// [`Error::InvalidRemoteRow`] when the server's row breaks the layout.
    pub async fn discard_rejected(&self, table: &str, id: &str) -> Result<()> {
        let def = self.table(table)?;
        crate::ids::parse_id(id).map_err(Error::InvalidInput)?;
        if !self
            .rejected_rows()
            .await?
            .iter()
            .any(|r| r.table == table && r.id == id)
        {
            return Err(Error::NotFound {
                table: table.to_owned(),
                id: id.to_owned(),
            });
        }
        let remote = self.remote_handle().ok_or(Error::NoRemote)?;
        let server = remote
            .client
            .execute(Statement::new(
                format!(
                    "SELECT {}, \"_seq\" FROM {} WHERE \"id\" = ?",
                    def.row_column_list(),
                    q(&def.name)
                ),
                vec![id.into()],
            ))
            .await?;
        let server_row = server
            .rows
            .first()
            .map(|cells| server_version(def, cells))
            .transpose()?;
        let mut hlc = self.hlc.lock().await;
        let mut stmts = vec![
            Statement::new(
                format!("DELETE FROM {} WHERE \"id\" = ?", q(&def.local_name())),
                vec![id.into()],
            ),
            Statement::new(
                format!(
                    "DELETE FROM {} WHERE \"tbl\" = ? AND \"id\" = ?",
                    q(REJECTED)
                ),
                vec![table.into(), id.into()],
            ),
        ];
        if let Some((row, seq)) = &server_row {
            if let Some(max) = row.max_clock() {
                hlc.observe(max, self.now_ms());
            }
            stmts.push(merge::upsert_into(
                &def.local_name(),
                def,
                std::slice::from_ref(row),
                &[*seq],
                merge::Target::Replica,
            ));
            stmts.push(persist_clock(&hlc));
        }
        self.store.write(&stmts).await?;
        drop(hlc);
        self.events.emit(ChangeEvent {
            table: table.to_owned(),
            ids: vec![id.to_owned()],
            origin: ChangeOrigin::Remote,
        });
        Ok(())
    }
}

/// A server row and its `_seq`, validated.
fn server_version(def: &TableDef, cells: &[SqlValue]) -> Result<(SyncRow, i64)> {
    let invalid = |reason: String| Error::InvalidRemoteRow {
        table: def.name.clone(),
        reason,
    };
    let row = SyncRow::from_cells(def, cells).map_err(invalid)?;
    let seq = cells
        .get(def.row_columns().len())
        .and_then(SqlValue::as_i64)
        .ok_or_else(|| invalid(format!("row {}: _seq is not an integer", row.id)))?;
    Ok((row, seq))
}
