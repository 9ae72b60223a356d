//! Rows the server refused, and rows from the server this replica would
//! not apply: the public calls that list, retry and discard them.
//!
//! A push batch the server refuses because of its rows (see
//! [`Error::is_row_refusal`]) is narrowed down by the sync engine to the
//! rows at fault; each is recorded in the replica's `_erth_rejected` table
//! with the server's code and message and the row's `_dirty` at that moment,
//! and stays pending. A refused row is skipped by later pushes while its
//! `_dirty` is unchanged: it is pushed again after a local change to the row
//! or after [`Database::retry_rejected`]; [`Database::discard_rejected`]
//! drops the local changes and takes the server's version of the row.

use crate::db::Database;
use crate::error::{Error, Result};
use crate::events::{ChangeEvent, ChangeOrigin};
use crate::merge;
use crate::row::SyncRow;
use crate::schema::{q, TableDef};
use crate::state::{QUARANTINED, REJECTED};
use crate::status::{QuarantinedRow, RejectedRow};
use crate::value::{SqlValue, Statement};
use std::sync::atomic::Ordering;

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
        let turn = self.store.turn().await?;
        let mut hlc = self.clock.lock().await;
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
            stmts.push(crate::state::persist_clock(&hlc));
        }
        turn.write(&stmts).await?;
        drop(hlc);
        drop(turn);
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

impl Database {
    /// Rows pulled from the server that this replica would not apply (see
    /// [`QuarantinedRow`]), oldest first.
    pub async fn quarantined_rows(&self) -> Result<Vec<QuarantinedRow>> {
        let rows = self
            .store
            .query(&Statement::plain(format!(
                "SELECT \"tbl\", \"id\", \"seq\", \"reason\", \"at_ms\" FROM {} ORDER BY \"at_ms\", \"tbl\", \"seq\"",
                q(QUARANTINED)
            )))
            .await?;
        Ok(rows
            .rows
            .into_iter()
            .map(|r| {
                let text = |i: usize| r.get(i).and_then(SqlValue::as_str).unwrap_or("").to_owned();
                let int = |i: usize| r.get(i).and_then(SqlValue::as_i64).unwrap_or(0);
                QuarantinedRow {
                    table: text(0),
                    id: text(1),
                    seq: int(2),
                    reason: text(3),
                    quarantined_at_ms: int(4).max(0) as u64,
                }
            })
            .collect())
    }

    /// Empties the list of quarantined rows (they stay unapplied: a row
    /// comes again only when it changes on the server). Returns how many
    /// there were.
    pub async fn forget_quarantined(&self) -> Result<u64> {
        let n = self.quarantined_count().await?;
        self.store
            .write(&[Statement::plain(format!("DELETE FROM {}", q(QUARANTINED)))])
            .await?;
        Ok(n)
    }

    /// How many rows [`Database::quarantined_rows`] lists.
    pub async fn quarantined_count(&self) -> Result<u64> {
        let rows = self
            .store
            .query(&Statement::plain(format!(
                "SELECT count(*) FROM {}",
                q(QUARANTINED)
            )))
            .await?;
        Ok(rows
            .rows
            .first()
            .and_then(|r| r.first())
            .and_then(SqlValue::as_i64)
            .unwrap_or(0)
            .max(0) as u64)
    }
}
