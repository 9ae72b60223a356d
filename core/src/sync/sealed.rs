//! The engine's side of end-to-end encrypted columns ([`crate::encrypted`]):
//! pushed rows are sealed for the server database (its `db_id`, read from
//! the replica's state once per sync) as the push encodes them; pulled
//! pages are opened as they are read, before anything is staged: a value
//! that does not open is quarantined with its row, a value sealed with a
//! key this replica lacks stops the sync ([`crate::Error::UnknownColumnKey`]),
//! and so does, before anything is pushed, a server whose newest sealed
//! values were sealed with a key this replica lacks (a replica given a
//! wrong key must not push values the other devices cannot open).

use super::pull_sql::{Page, Quarantined};
use super::Syncer;
use crate::encrypted::{open_row, seal_row, sealed_key_id, SEALED_PREFIX};
use crate::error::{Error, Result};
use crate::hrana::Step;
use crate::row::SyncRow;
use crate::schema::{q, TableDef};
use crate::state;
use crate::value::{SqlValue, Statement};
use std::sync::atomic::Ordering;

impl Syncer<'_> {
    /// Reads the server database's id (the associated data's first part).
    pub(super) async fn load_server_db(&self) -> Result<()> {
        if self.config.column_keys.is_none() {
            return Ok(());
        }
        let kv = state::read_state(self.store).await?;
        *self.server_db.lock().unwrap_or_else(|p| p.into_inner()) =
            kv.get(state::KEY_SERVER_DB).cloned().unwrap_or_default();
        Ok(())
    }

    /// Before a replica's first push in this session: the newest sealed
    /// value of each encrypted column on the server must be sealed with
    /// one of this replica's keys, so a replica given a wrong key stops
    /// with [`crate::Error::UnknownColumnKey`] instead of pushing values
    /// the other devices cannot open. One request per session.
    ///
    /// Errors: that, and the request's.
    pub(super) async fn check_keys(&self) -> Result<()> {
        let Some(keys) = &self.config.column_keys else {
            return Ok(());
        };
        if self.remote.keys_checked.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut steps = Vec::new();
        let mut asked = Vec::new();
        for def in &self.config.tables {
            for col in def.columns.iter().filter(|c| c.encrypted) {
                let c = q(&col.name);
                steps.push(Step {
                    cond: None,
                    stmt: Statement::new(
                        format!(
                            "SELECT {c} FROM {} WHERE substr({c}, 1, 3) = ? ORDER BY \"_seq\" DESC LIMIT 1",
                            q(&def.name)
                        ),
                        vec![SEALED_PREFIX.into()],
                    ),
                });
                asked.push(def);
            }
        }
        if steps.is_empty() {
            return Ok(());
        }
        let out = self.remote.client.batch(&steps).await?;
        if let Some((_, e)) = out.first_error_step() {
            return Err(e);
        }
        for (def, rows) in asked.into_iter().zip(&out.results) {
            let newest = rows
                .as_ref()
                .and_then(|r| r.rows.first())
                .and_then(|r| r.first())
                .and_then(SqlValue::as_str);
            if let Some(key) = newest.and_then(sealed_key_id) {
                if !keys.ids().contains(&key) {
                    return Err(Error::UnknownColumnKey {
                        table: def.name.clone(),
                        key_id: format!("{key:08x}"),
                    });
                }
            }
        }
        self.remote.keys_checked.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn server_db(&self) -> String {
        self.server_db
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `row` of `def` as it is pushed: its encrypted columns sealed.
    pub(super) fn seal(&self, def: &TableDef, row: SyncRow) -> Result<SyncRow> {
        match &self.config.column_keys {
            Some(keys) if def.columns.iter().any(|c| c.encrypted) => {
                seal_row(def, keys, &self.server_db(), row)
            }
            _ => Ok(row),
        }
    }

    /// A pulled `page` of `def` with its encrypted columns opened; rows
    /// whose values do not open join the page's quarantined rows.
    ///
    /// Errors: [`crate::Error::UnknownColumnKey`].
    pub(super) fn open_page(&self, def: &TableDef, page: Page) -> Result<Page> {
        let Some(keys) = &self.config.column_keys else {
            return Ok(page);
        };
        if !def.columns.iter().any(|c| c.encrypted) {
            return Ok(page);
        }
        let db = self.server_db();
        let mut out = Page {
            quarantined: page.quarantined,
            ..Page::default()
        };
        for (row, seq) in page.rows.into_iter().zip(page.seqs) {
            let id = row.id.clone();
            match open_row(def, keys, &db, row)? {
                Ok(row) => {
                    out.rows.push(row);
                    out.seqs.push(seq);
                }
                Err(reason) => out.quarantined.push(Quarantined { seq, id, reason }),
            }
        }
        Ok(out)
    }

    /// One pulled row of `def` at `seq` with its encrypted columns opened.
    ///
    /// Errors: [`crate::Error::UnknownColumnKey`].
    pub(super) fn open_one(
        &self,
        def: &TableDef,
        row: SyncRow,
        seq: i64,
    ) -> Result<std::result::Result<SyncRow, Quarantined>> {
        let page = self.open_page(
            def,
            Page {
                rows: vec![row],
                seqs: vec![seq],
                quarantined: Vec::new(),
            },
        )?;
        Ok(
            match (
                page.rows.into_iter().next(),
                page.quarantined.into_iter().next(),
            ) {
                (Some(row), _) => Ok(row),
                (None, Some(q)) => Err(q),
                (None, None) => unreachable_row(seq, def),
            },
        )
    }
}

/// A row that neither opened nor was refused cannot happen; refuse it
/// rather than panic.
fn unreachable_row(seq: i64, def: &TableDef) -> std::result::Result<SyncRow, Quarantined> {
    Err(Quarantined {
        seq,
        id: String::new(),
        reason: format!("a row of {} was lost while opening it", def.name),
    })
}
