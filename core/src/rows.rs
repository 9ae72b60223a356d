//! The generic row API on [`Database`]: insert, update and delete rows of a
//! synced table by id, read one row or every row of a table; and
//! `Database::clocked_write`, the one path by which these local writes
//! (and the typed todo API on top, [`crate::todos`]) take their clock.
//!
//! Every write reads the persisted clock inside its write transaction,
//! catches the in-memory clock up to it, ticks, and persists the new value
//! in the same transaction, so a reopened replica, or another process
//! sharing the file, never reissues a clock value. Each changed column takes
//! [`crate::hlc::clock_after`] of the transaction's clock and its own.

use crate::db::Database;
use crate::error::{Error, Result};
use crate::hlc::HybridClock;
use crate::row::SyncRow;
use crate::schema::{q, TableDef};
use crate::state;
use crate::store::{StoreError, StoreErrorKind};
use crate::value::{Rows, SqlValue, Statement};

fn corrupt(what: String) -> Error {
    Error::Storage(StoreError::new(StoreErrorKind::Corrupt, what))
}

impl Database {
    /// Inserts a new row; `values` name user columns (missing ones take their
    /// default, or NULL when nullable). Returns the new id.
    pub async fn insert(&self, table: &str, values: &[(&str, SqlValue)]) -> Result<String> {
        Ok(self.insert_row(table, values).await?.id)
    }

    /// [`Database::insert`], returning the whole new row.
    pub async fn insert_row(&self, table: &str, values: &[(&str, SqlValue)]) -> Result<SyncRow> {
        let def = self.table(table)?;
        for (name, _) in values {
            def.column(name).ok_or_else(|| {
                Error::InvalidInput(format!("table {table} has no column {name:?}"))
            })?;
        }
        let mut cells = Vec::with_capacity(def.columns.len());
        for c in &def.columns {
            let v = match values.iter().rev().find(|(n, _)| *n == c.name) {
                Some((_, v)) => v.clone(),
                None => match (&c.default, c.nullable) {
                    (Some(d), _) => d.clone(),
                    (None, true) => SqlValue::Null,
                    (None, false) => {
                        return Err(Error::InvalidInput(format!(
                            "column {} of {table} needs a value",
                            c.name
                        )))
                    }
                },
            };
            c.check(&v).map_err(Error::InvalidInput)?;
            cells.push(v);
        }
        let placeholders = vec!["?"; def.row_columns().len()].join(", ");
        let (_, row) = self
            .clocked_write(Vec::new(), |hlc, _| {
                let ts = hlc.tick(self.now_ms());
                let ms = ts.physical_ms() as i64;
                let row = SyncRow {
                    id: crate::ids::new_id(),
                    values: cells.clone(),
                    is_deleted: false,
                    created_at: ms,
                    updated_at: ms,
                    clocks: vec![ts; def.columns.len() + 1],
                };
                let insert = Statement::new(
                    format!(
                        "INSERT INTO {} ({}, \"_seq\", \"_dirty\") VALUES ({placeholders}, NULL, 1)",
                        q(&def.local_name()),
                        def.row_column_list()
                    ),
                    row.to_cells(),
                );
                Ok((vec![insert], row))
            })
            .await?;
        self.after_local_write(table, vec![row.id.clone()]);
        Ok(row)
    }

    /// Changes columns of a live row. Returns `false` when every value was
    /// already the same (nothing is written); `NotFound` when the row does
    /// not exist or is deleted.
    pub async fn update(
        &self,
        table: &str,
        id: &str,
        changes: &[(&str, SqlValue)],
    ) -> Result<bool> {
        let def = self.table(table)?;
        crate::ids::parse_id(id).map_err(Error::InvalidInput)?;
        for (name, value) in changes {
            let (_, col) = def.column(name).ok_or_else(|| {
                Error::InvalidInput(format!("table {table} has no column {name:?}"))
            })?;
            col.check(value).map_err(Error::InvalidInput)?;
        }
        let (_, written) = self
            .clocked_write(vec![self.select_row(def, id)], |hlc, rows| {
                let current = self.live_row_of(def, id, &rows[0])?;
                let mut sets = Vec::new();
                for (name, value) in changes {
                    if let Some((i, _)) = def.column(name) {
                        if current.values[i] != *value && !sets.iter().any(|(_, n, _)| n == name) {
                            sets.push((i, name.to_string(), value.clone()));
                        }
                    }
                }
                if sets.is_empty() {
                    return Ok((Vec::new(), false));
                }
                let ts = hlc.tick(self.now_ms());
                let mut assignments = Vec::new();
                let mut args = Vec::new();
                for (i, name, value) in sets {
                    let clock = crate::hlc::clock_after(ts, current.clocks[i]).ok_or_else(|| {
                        Error::InvalidInput(format!(
                            "column {name} of {table} holds the largest clock there is (year 10889): it cannot change any more"
                        ))
                    })?;
                    assignments.push(format!(
                        "{} = ?, {} = ?",
                        q(&name),
                        q(&format!("_clk_{name}"))
                    ));
                    args.push(value);
                    args.push(SqlValue::Text(clock.to_string()));
                }
                // `updated_at` from the write's own clock, as the views' triggers do.
                args.push(SqlValue::Integer(ts.physical_ms() as i64));
                args.push(SqlValue::Text(id.to_owned()));
                let sql = format!(
                    "UPDATE {} SET {}, \"updated_at\" = MAX(\"updated_at\", ?), \"_dirty\" = \"_dirty\" + 1 WHERE \"id\" = ? AND \"is_deleted\" = 0",
                    q(&def.local_name()),
                    assignments.join(", ")
                );
                Ok((vec![Statement::new(sql, args)], true))
            })
            .await?;
        if !written {
            return Ok(false);
        }
        self.after_local_write(table, vec![id.to_owned()]);
        Ok(true)
    }

    /// Deletes a row: a tombstone that syncs and never comes back. Its user
    /// columns are cleared at once ([`crate::schema::ColumnDef::cleared`]);
    /// it keeps its id, timestamps and clocks.
    /// Returns `false` when the row does not exist or is already deleted.
    pub async fn delete(&self, table: &str, id: &str) -> Result<bool> {
        let def = self.table(table)?;
        crate::ids::parse_id(id).map_err(Error::InvalidInput)?;
        let (out, _) = self
            .clocked_write(vec![self.select_row(def, id)], |hlc, rows| {
                let Some(current) = self.row_of(def, &rows[0])?.filter(|r| !r.is_deleted) else {
                    return Ok((Vec::new(), ()));
                };
                let now = hlc.tick(self.now_ms());
                // Past the largest clock, deletes still win: `is_deleted`
                // merges as max, and the clock stays (it cannot go back).
                let old = current.clocks[def.columns.len()];
                let ts = crate::hlc::clock_after(now, old).unwrap_or(old);
                let clear: String = def
                    .clear_user_data_sql()
                    .iter()
                    .map(|c| format!("{c}, "))
                    .collect();
                Ok((
                    vec![Statement::new(
                        format!(
                            "UPDATE {} SET {clear}\"is_deleted\" = 1, \"_clk_is_deleted\" = ?, \"updated_at\" = MAX(\"updated_at\", ?), \"_dirty\" = \"_dirty\" + 1 WHERE \"id\" = ? AND \"is_deleted\" = 0 RETURNING \"id\"",
                            q(&def.local_name()),
                        ),
                        vec![
                            SqlValue::Text(ts.to_string()),
                            SqlValue::Integer(now.physical_ms() as i64),
                            id.into(),
                        ],
                    )],
                    (),
                ))
            })
            .await?;
        let deleted = out.first().is_some_and(|r| !r.rows.is_empty());
        if deleted {
            self.after_local_write(table, vec![id.to_owned()]);
        }
        Ok(deleted)
    }

    /// Runs one local write whose clock is taken inside its write
    /// transaction: the clock another process sharing the file persisted is
    /// read first and the in-memory clock catches up, so clocks stay
    /// monotonic across processes and no two sessions issue the same one.
    /// `build` gets the clock and the rows of `reads` (read in the same
    /// transaction) and returns the statements (none: nothing is written)
    /// and a value; the clock is persisted with the statements.
    pub(crate) async fn clocked_write<T>(
        &self,
        reads: Vec<Statement>,
        mut build: impl FnMut(&mut HybridClock, Vec<Rows>) -> Result<(Vec<Statement>, T)>,
    ) -> Result<(Vec<Rows>, T)> {
        // The turn before the clock, as every holder of both takes them.
        let turn = self.store.turn().await?;
        let mut hlc = self.clock.lock().await;
        let mut all = vec![state::get(state::KEY_HLC)];
        all.extend(reads);
        let mut failure = None;
        let mut value = None;
        let out = turn.write_after_reads(&all, &mut |mut rows| {
            hlc.catch_up(state::persisted_clock(&rows.remove(0)));
            match build(&mut hlc, rows) {
                Ok((mut stmts, v)) => {
                    if !stmts.is_empty() {
                        stmts.push(state::persist_clock(&hlc));
                    }
                    value = Some(v);
                    Ok(stmts)
                }
                Err(e) => {
                    failure = Some(e);
                    Err(StoreError::new(StoreErrorKind::Other, "write abandoned"))
                }
            }
        });
        drop(hlc);
        drop(turn);
        self.store.persisted().await?;
        match (out, failure, value) {
            (_, Some(e), _) => Err(e),
            (Ok(rows), None, Some(v)) => Ok((rows, v)),
            (Err(e), None, _) => Err(e.into()),
            (Ok(_), None, None) => Err(Error::Storage(StoreError::new(
                StoreErrorKind::Other,
                "the write did not run",
            ))),
        }
    }

    /// `SELECT` of the full row with that id, if the app sees it (not a
    /// row of an unapplied first pull, [`TableDef::visible_sql`]).
    fn select_row(&self, def: &TableDef, id: &str) -> Statement {
        Statement::new(
            format!(
                "SELECT {} FROM {} WHERE \"id\" = ? AND {}",
                def.row_column_list(),
                q(&def.local_name()),
                def.visible_sql()
            ),
            vec![id.into()],
        )
    }

    /// The row [`Database::select_row`] read, if any.
    fn row_of(&self, def: &TableDef, rows: &Rows) -> Result<Option<SyncRow>> {
        rows.rows
            .first()
            .map(|cells| SyncRow::from_cells(def, cells).map_err(corrupt))
            .transpose()
    }

    /// The live row [`Database::select_row`] read; `NotFound` when missing or deleted.
    fn live_row_of(&self, def: &TableDef, id: &str, rows: &Rows) -> Result<SyncRow> {
        match self.row_of(def, rows)? {
            Some(r) if !r.is_deleted => Ok(r),
            _ => Err(Error::NotFound {
                table: def.name.clone(),
                id: id.to_owned(),
            }),
        }
    }

    /// The row with that id, deleted or not (`None` when unknown).
    pub async fn get_row(&self, table: &str, id: &str) -> Result<Option<SyncRow>> {
        let def = self.table(table)?;
        crate::ids::parse_id(id).map_err(Error::InvalidInput)?;
        let rows = self.store.query(&self.select_row(def, id)).await?;
        self.row_of(def, &rows)
    }

    /// Every row including tombstones, sorted by id (for comparing
    /// replicas); not the rows of a first pull not yet applied.
    pub async fn dump(&self, table: &str) -> Result<Vec<SyncRow>> {
        let def = self.table(table)?;
        self.select_rows(def, &format!("WHERE {} ORDER BY \"id\"", def.visible_sql()))
            .await
    }

    async fn select_rows(&self, def: &TableDef, tail: &str) -> Result<Vec<SyncRow>> {
        let rows = self
            .store
            .query(&Statement::plain(format!(
                "SELECT {} FROM {} {tail}",
                def.row_column_list(),
                q(&def.local_name())
            )))
            .await?;
        rows.rows
            .iter()
            .map(|cells| SyncRow::from_cells(def, cells).map_err(corrupt))
            .collect()
    }
}
