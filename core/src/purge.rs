//! Purging history on the server: [`Database::purge`] removes the
//! tombstones whose delete is older than a horizon, so deleted rows stop
//! costing every fresh device's first pull and the server's disk.
//!
//! Each table is purged in transactions of at most [`PURGE_BATCH_ROWS`]
//! tombstones, oldest `_seq` first: one transaction raises the table's
//! purge mark (`_erth_meta` key `purged:<table>`) to the highest `_seq` it
//! removes and deletes those rows, so the mark always covers every row
//! purged. Replicas read the mark at the start of each sync and, when it
//! passed what they have pulled, compare their ids with the server's
//! before they push (see [`crate::sync::purged`]); every push carries a
//! guard that rolls it back if a purge overtook it, so a replica that has
//! not caught up never re-inserts a purged row.
//!
//! Only plain SQL runs on the server (no code of ours there): any token
//! that may write the tables can purge. On a server with the write guard
//! (`Config::server_guard`), which refuses physical deletes and changes of
//! `_erth_meta` but the counter's, each purge transaction drops the three
//! triggers in its way (the table's delete guard, `_erth_meta`'s insert
//! and update guards) and creates them again before it commits: no other
//! transaction ever runs without them, and it takes a token that may
//! change the schema (as installing the guard did).

use crate::db::Database;
use crate::error::{Error, Result};
use crate::hrana;
use crate::merge::META_TABLE;
use crate::schema::guard::{self, GUARD_PREFIX};
use crate::schema::{q, TableDef};
use crate::sync::purged::mark_key;
use crate::value::{SqlValue, Statement};

/// Tombstones one purge transaction removes at most: a transaction of a
/// few hundred KB of writes, short enough that the pushes it delays wait
/// only a moment.
pub const PURGE_BATCH_ROWS: i64 = 1_000;

/// The purge age the faces default to: 30 days (RxDB's default is 31
/// days, Ditto's 7 or 30).
pub const DEFAULT_PURGE_AGE_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// What [`Database::purge`] removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[cfg_attr(
    feature = "js",
    derive(serde::Serialize, tsify::Tsify),
    serde(rename_all = "camelCase")
)]
pub struct PurgeReport {
    /// Tombstones whose `updated_at` (ms since the epoch, the deleting
    /// device's clock) was below this were purged.
    pub horizon_ms: u64,
    /// Per synced table, in the schema's order.
    pub tables: Vec<TablePurge>,
}

/// One table's part of a [`PurgeReport`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[cfg_attr(
    feature = "js",
    derive(serde::Serialize, tsify::Tsify),
    serde(rename_all = "camelCase")
)]
pub struct TablePurge {
    pub table: String,
    /// Tombstones removed from the server.
    pub rows: u64,
    /// The table's purge mark afterwards: the highest `_seq` ever purged
    /// (0 when none was).
    pub mark: i64,
}

impl Database {
    /// Removes from the server every tombstone of the synced tables whose
    /// delete (`updated_at`) is more than `older_than_ms` ms before now
    /// (the faces default to [`DEFAULT_PURGE_AGE_MS`]; 0 purges every
    /// tombstone), in transactions of [`PURGE_BATCH_ROWS`] rows that syncs
    /// running meanwhile do not notice. Any `older_than_ms` is safe: a
    /// replica offline for longer catches up by comparing ids when it
    /// syncs again (one request per 10,000 rows it holds), so the horizon
    /// only sets how often that happens. Local tombstones are dropped by
    /// each replica's next sync once the purge covers them.
    ///
    /// Errors: [`Error::NoRemote`]; [`Error::Network`], [`Error::Auth`],
    /// [`Error::Server`] (e.g. a table the server does not have yet: sync
    /// once first; on a server with the write guard, a token that may not
    /// change the schema). A purge
    /// that fails part way keeps the batches it committed and can be run
    /// again.
    pub async fn purge(&self, older_than_ms: u64) -> Result<PurgeReport> {
        self.check_online()?;
        let remote = self.remote_handle().ok_or(Error::NoRemote)?;
        let horizon_ms = self.now_ms().saturating_sub(older_than_ms);
        let guarded = self.server_guarded(&remote.client).await?;
        let mut tables = Vec::new();
        for def in self.tables() {
            let mut done = TablePurge {
                table: def.name.clone(),
                ..TablePurge::default()
            };
            loop {
                let (rows, mark) = self
                    .purge_batch(&remote.client, def, horizon_ms, guarded)
                    .await?;
                done.rows += rows;
                done.mark = mark;
                if (rows as i64) < PURGE_BATCH_ROWS {
                    break;
                }
            }
            tracing::info!(table = %def.name, rows = done.rows, mark = done.mark, "purged tombstones");
            tables.push(done);
        }
        Ok(PurgeReport { horizon_ms, tables })
    }

    /// Whether the server has the write guard's triggers (one request).
    async fn server_guarded(&self, client: &hrana::HranaClient) -> Result<bool> {
        let answer = client
            .execute(Statement::new(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND substr(name, 1, ?) = ?",
                vec![
                    SqlValue::Integer(GUARD_PREFIX.len() as i64),
                    SqlValue::Text(GUARD_PREFIX.to_owned()),
                ],
            ))
            .await?;
        Ok(answer
            .rows
            .first()
            .and_then(|r| r.first())
            .and_then(SqlValue::as_i64)
            .is_some_and(|n| n > 0))
    }

    /// One purge transaction of `def` (around the guard's triggers when
    /// `guarded`), retried with backoff while the server reports
    /// contention. Returns the rows removed and the mark.
    async fn purge_batch(
        &self,
        client: &hrana::HranaClient,
        def: &TableDef,
        horizon_ms: u64,
        guarded: bool,
    ) -> Result<(u64, i64)> {
        let (before, after) = if guarded {
            guard_around(def, self.config.max_clock_drift_ms)
        } else {
            (Vec::new(), Vec::new())
        };
        let first = before.len() + 1; // after BEGIN
        let mut stmts = before;
        stmts.extend(batch_statements(def, horizon_ms));
        stmts.extend(after);
        let (steps, commit) = hrana::transaction(stmts);
        let mut attempt = 0;
        loop {
            let out = client.batch(&steps).await?;
            if out.results.get(commit).is_some_and(Option::is_some) {
                // Steps from `first`: the mark's row, the mark, the delete,
                // the read-back.
                let rows = out.results.get(first + 2).and_then(Option::as_ref);
                let mark = out
                    .results
                    .get(first + 3)
                    .and_then(Option::as_ref)
                    .and_then(|r| r.rows.first())
                    .and_then(|r| r.first())
                    .and_then(SqlValue::as_i64);
                return match (rows, mark) {
                    (Some(rows), Some(mark)) => Ok((rows.rows.len() as u64, mark)),
                    _ => Err(Error::Protocol(
                        "the purge's transaction came back in another shape".into(),
                    )),
                };
            }
            let error = out
                .first_error_step()
                .map(|(_, e)| e)
                .unwrap_or_else(|| Error::Protocol("the purge did not commit".into()));
            if !error.is_contention() || attempt + 1 >= self.config.retry.attempts {
                return Err(error);
            }
            client.sleep(self.config.retry.delay(attempt)).await;
            attempt += 1;
        }
    }
}

/// The guard's triggers a purge of `def` must lift (the table's delete
/// guard, `_erth_meta`'s insert and update guards): `DROP` statements to
/// run first and the same `CREATE` statements as the bootstrap's to run
/// last, in the purge's transaction.
fn guard_around(def: &TableDef, max_drift_ms: u64) -> (Vec<Statement>, Vec<Statement>) {
    let meta = guard::meta_guard_sql(META_TABLE);
    let table = def.guard_sql(max_drift_ms);
    let creates = [&meta[0], &meta[1], &table[2]];
    let names = [
        format!("{GUARD_PREFIX}meta_insert"),
        format!("{GUARD_PREFIX}meta_update"),
        format!("{GUARD_PREFIX}{}_delete", def.name),
    ];
    let drops = names
        .iter()
        .map(|n| Statement::plain(format!("DROP TRIGGER IF EXISTS {}", q(n))))
        .collect();
    let creates = creates
        .iter()
        .map(|sql| Statement::plain((*sql).clone()))
        .collect();
    (drops, creates)
}

/// One purge transaction's statements (inside `BEGIN`/`COMMIT`): the
/// mark's row, the mark raised to the batch's highest `_seq`, the delete
/// of the same batch (`RETURNING` one value per row), the mark read back.
/// The batch is the same query twice in one transaction: the oldest
/// [`PURGE_BATCH_ROWS`] tombstones older than the horizon.
fn batch_statements(def: &TableDef, horizon_ms: u64) -> Vec<Statement> {
    let t = q(&def.name);
    let meta = q(META_TABLE);
    let key = SqlValue::Text(mark_key(&def.name));
    let horizon = SqlValue::Integer(i64::try_from(horizon_ms).unwrap_or(i64::MAX));
    let limit = SqlValue::Integer(PURGE_BATCH_ROWS);
    let batch = |what: &str| {
        format!(
            "SELECT {what} FROM {t} WHERE \"is_deleted\" = 1 AND \"updated_at\" < ? ORDER BY \"_seq\" LIMIT ?"
        )
    };
    vec![
        Statement::new(
            format!("INSERT INTO {meta} (\"k\", \"v\") VALUES (?, 0) ON CONFLICT (\"k\") DO NOTHING"),
            vec![key.clone()],
        ),
        Statement::new(
            format!(
                "UPDATE {meta} SET \"v\" = max(\"v\", coalesce((SELECT max(\"_seq\") FROM ({}) AS \"b\"), 0)) WHERE \"k\" = ?",
                batch("\"_seq\"")
            ),
            vec![horizon.clone(), limit.clone(), key.clone()],
        ),
        Statement::new(
            format!(
                "DELETE FROM {t} WHERE \"id\" IN ({}) RETURNING \"_seq\"",
                batch("\"id\"")
            ),
            vec![horizon, limit],
        ),
        Statement::new(
            format!("SELECT \"v\" FROM {meta} WHERE \"k\" = ?"),
            vec![key],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::todos_table;

    #[test]
    fn a_purge_lifts_exactly_the_guards_in_its_way_and_puts_back_the_same() {
        let def = todos_table();
        let (drops, creates) = guard_around(&def, 3_600_000);
        let dropped: Vec<&str> = drops.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            dropped,
            [
                "DROP TRIGGER IF EXISTS \"_erth_guard_v1_meta_insert\"",
                "DROP TRIGGER IF EXISTS \"_erth_guard_v1_meta_update\"",
                "DROP TRIGGER IF EXISTS \"_erth_guard_v1_todos_delete\"",
            ]
        );
        // Each trigger dropped is created again, as the bootstrap does.
        for (drop, create) in drops.iter().zip(&creates) {
            let name = drop.sql.trim_start_matches("DROP TRIGGER IF EXISTS ");
            assert!(
                create
                    .sql
                    .starts_with(&format!("CREATE TRIGGER IF NOT EXISTS {name} ")),
                "{}",
                create.sql
            );
        }
        let all = guard::meta_guard_sql(META_TABLE);
        assert!(creates
            .iter()
            .all(|c| all.contains(&c.sql) || def.guard_sql(3_600_000).contains(&c.sql)));
    }
}
