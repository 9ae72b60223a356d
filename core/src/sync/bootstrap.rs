//! Bootstrap: the server's schema (the engine tables, `_erth_meta` and, when
//! asked, the guard's triggers), read first and created or migrated only
//! when something is missing, so a read-only token can pull (sqld answers
//! 403 to DDL from it); and the
//! server's identity (`_erth_meta.db_id`, random per server database): a
//! replica that sees a different one (a new URL, a reset server) pushes
//! everything again and pulls from the start.

use super::Syncer;
use crate::error::{Error, Result};
use crate::hrana::{self, Step};
use crate::merge::META_TABLE;
use crate::schema::guard::{self, GUARD_PREFIX};
use crate::schema::{q, TableDef};
use crate::state;
use crate::value::{Rows, SqlValue, Statement};
use std::sync::atomic::Ordering;

/// `_erth_meta` and its rows, unless they exist.
fn meta_bootstrap() -> Vec<Statement> {
    vec![
        Statement::plain(format!(
            "CREATE TABLE IF NOT EXISTS {} (\"k\" TEXT PRIMARY KEY NOT NULL, \"v\" INTEGER NOT NULL)",
            q(META_TABLE)
        )),
        Statement::new(
            format!("INSERT INTO {} (\"k\", \"v\") VALUES ('seq', 0), ('schema_version', 1), ('db_id', ?) ON CONFLICT (\"k\") DO NOTHING", q(META_TABLE)),
            vec![SqlValue::Integer((crate::ids::new_uuid().as_u128() as i64) & i64::MAX)],
        ),
    ]
}

/// `SELECT k, v FROM _erth_meta`.
fn select_meta() -> Statement {
    Statement::plain(format!("SELECT \"k\", \"v\" FROM {}", q(META_TABLE)))
}

/// The `db_id` in the rows of [`select_meta`].
fn db_id_of(meta: &Rows) -> Option<i64> {
    meta.rows
        .iter()
        .find(|r| r.first().and_then(SqlValue::as_str) == Some("db_id"))
        .and_then(|r| r.get(1).and_then(SqlValue::as_i64))
}

/// `stmts` as batch steps, each running only if the one before succeeded.
fn chained(stmts: Vec<Statement>) -> Vec<Step> {
    stmts
        .into_iter()
        .enumerate()
        .map(|(i, stmt)| Step {
            cond: (i > 0).then(|| hrana::ok(i - 1)),
            stmt,
        })
        .collect()
}

impl Syncer<'_> {
    /// Creates or migrates the server tables (idempotent), and notices a new
    /// or reset server. Once per remote and session.
    pub(super) async fn bootstrap(&self) -> Result<()> {
        if self.remote.bootstrapped.load(Ordering::SeqCst) {
            return Ok(());
        }
        let db_id = match self.read_server_schema().await? {
            Some(db_id) => db_id,
            None => self.create_server_schema().await?,
        };
        self.note_server(db_id).await?;
        self.remote.bootstrapped.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// The server's `db_id` when its tables already have every declared
    /// column (`None` otherwise), read without writing anything.
    async fn read_server_schema(&self) -> Result<Option<i64>> {
        let mut steps = vec![Step {
            cond: None,
            stmt: select_meta(),
        }];
        steps.extend(self.config.tables.iter().map(|def| Step {
            cond: None,
            stmt: Statement::plain(def.probe_columns_sql(&def.name)),
        }));
        if self.config.server_guard {
            steps.push(Step {
                cond: None,
                stmt: Statement::plain(format!(
                    "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND substr(name, 1, {}) = '{GUARD_PREFIX}'",
                    GUARD_PREFIX.len()
                )),
            });
        }
        let out = self.remote.client.batch(&steps).await?;
        let Some(meta) = out.results.first().cloned().flatten() else {
            return Ok(None);
        };
        for (i, def) in self.config.tables.iter().enumerate() {
            match (&out.results[1 + i], &out.errors[1 + i]) {
                (Some(rows), _) if def.migration_sql(&def.name, &rows.columns)?.is_empty() => {}
                // A token that may not read the table: it exists (its pull
                // and push are refused, and reported, as the table's).
                (None, Some((code, _))) if code == "SQLITE_AUTH" => {}
                _ => return Ok(None),
            }
        }
        if self.config.server_guard {
            let guards = out
                .results
                .last()
                .and_then(Option::as_ref)
                .and_then(|r| r.rows.first())
                .and_then(|r| r.first())
                .and_then(SqlValue::as_i64)
                .unwrap_or(0);
            if guards < self.guard_sql().len() as i64 {
                return Ok(None);
            }
        }
        Ok(db_id_of(&meta))
    }

    /// Creates or migrates the server tables (idempotent); returns the
    /// server's `db_id`.
    async fn create_server_schema(&self) -> Result<i64> {
        let mut stmts = meta_bootstrap();
        for def in &self.config.tables {
            stmts.push(Statement::plain(def.create_table_sql()));
            stmts.extend(def.server_index_sql().into_iter().map(Statement::plain));
        }
        if self.config.server_guard {
            stmts.extend(self.guard_sql().into_iter().map(Statement::plain));
        }
        stmts.push(select_meta());
        let n = stmts.len();
        let out = self.remote.client.batch(&chained(stmts)).await?;
        if let Some(e) = out.first_error() {
            return Err(e);
        }
        let meta = out
            .results
            .get(n - 1)
            .cloned()
            .flatten()
            .ok_or_else(|| Error::Protocol("bootstrap returned no meta rows".into()))?;
        let db_id = db_id_of(&meta)
            .ok_or_else(|| Error::Protocol("server _erth_meta has no db_id".into()))?;
        for def in &self.config.tables {
            self.migrate_server_table(def).await?;
        }
        Ok(db_id)
    }

    /// The guard's triggers (`Config::server_guard`): each table's and
    /// `_erth_meta`'s.
    fn guard_sql(&self) -> Vec<String> {
        let mut sql = guard::meta_guard_sql(META_TABLE);
        for def in &self.config.tables {
            sql.extend(def.guard_sql(self.config.max_clock_drift_ms));
        }
        sql
    }

    /// Adds the columns `def` declares and the server's table lacks.
    async fn migrate_server_table(&self, def: &TableDef) -> Result<()> {
        let existing = self.server_columns(def).await?;
        let alters = def.migration_sql(&def.name, &existing)?;
        if alters.is_empty() {
            return Ok(());
        }
        let out = self
            .remote
            .client
            .batch(&chained(alters.into_iter().map(Statement::plain).collect()))
            .await?;
        if let Some(e) = out.first_error() {
            // Another replica may have migrated concurrently: re-check once.
            let existing = self.server_columns(def).await?;
            if !def.migration_sql(&def.name, &existing)?.is_empty() {
                return Err(e);
            }
        }
        Ok(())
    }

    /// The columns of `def`'s table on the server.
    async fn server_columns(&self, def: &TableDef) -> Result<Vec<String>> {
        Ok(self
            .remote
            .client
            .execute(Statement::plain(def.probe_columns_sql(&def.name)))
            .await?
            .columns)
    }

    /// Records the server's identity; a new or reset server makes the
    /// replica push everything again and pull from the start.
    async fn note_server(&self, db_id: i64) -> Result<()> {
        let kv = state::read_state(self.store).await?;
        let known = kv.get(state::KEY_SERVER_DB).cloned();
        if known.as_deref() != Some(&db_id.to_string()) {
            let mut stmts = vec![state::set(state::KEY_SERVER_DB, db_id.to_string())];
            if known.is_some() {
                tracing::info!("server changed or was reset: pushing everything again");
                stmts.extend(self.start_over());
            }
            self.store.write(&stmts).await?;
        }
        Ok(())
    }
}
