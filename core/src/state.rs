//! The replica's own bookkeeping in the `_erth_state` table of the same
//! database (node id, last clock, pull cursor per table, the server it last
//! synced with), the rows the server refused (`_erth_rejected`), and the
//! local schema version in `PRAGMA user_version`.
//!
//! Keys and values are bound as parameters; cursors are updated in the same
//! transaction as the page they acknowledge.

use crate::error::Result;
use crate::hlc::HybridClock;
use crate::shared_store::SharedStore;
use crate::store::Store;
use crate::value::{Rows, SqlValue, Statement};
use std::collections::HashMap;

/// Local schema format this build writes (`PRAGMA user_version`): 3 adds
/// the engine tables' first-pull mark (`schema::local::HIDDEN_COLUMN`),
/// which an older build would not keep out of the app's sight.
pub const LOCAL_SCHEMA_VERSION: i64 = 3;

pub const CREATE: &str = crate::schema::local::STATE_TABLE_SQL;

/// Rows the server refused ([`crate::sync`]): which local version
/// (`dirty`, the row's `_dirty` when it was refused), and the server's code
/// and message. A row is set aside while its `_dirty` still equals `dirty`:
/// a local change makes it pending again.
pub const CREATE_REJECTED: &str = "CREATE TABLE IF NOT EXISTS \"_erth_rejected\" (\"tbl\" TEXT NOT NULL, \"id\" TEXT NOT NULL, \"dirty\" INTEGER NOT NULL, \"code\" TEXT NOT NULL, \"message\" TEXT NOT NULL, \"at_ms\" INTEGER NOT NULL, PRIMARY KEY (\"tbl\", \"id\"))";

/// Name of the table of [`CREATE_REJECTED`].
pub const REJECTED: &str = "_erth_rejected";

/// Rows pulled from the server that this replica would not apply (they
/// break the row layout: a value of the wrong type, a bad id or clock):
/// the table, the row's `_seq` on the server, its id as the server had it
/// (clipped, maybe not an id at all), why, and when. The pull moves past
/// them; a row that arrives valid later (changed on the server, at a new
/// `_seq`) leaves this table.
pub const CREATE_QUARANTINED: &str = "CREATE TABLE IF NOT EXISTS \"_erth_quarantined\" (\"tbl\" TEXT NOT NULL, \"seq\" INTEGER NOT NULL, \"id\" TEXT NOT NULL, \"reason\" TEXT NOT NULL, \"at_ms\" INTEGER NOT NULL, PRIMARY KEY (\"tbl\", \"seq\"))";

/// Name of the table of [`CREATE_QUARANTINED`].
pub const QUARANTINED: &str = "_erth_quarantined";

pub const KEY_NODE: &str = "node";
pub const KEY_HLC: &str = "hlc";
pub const KEY_SERVER_DB: &str = "server_db_id";
pub const KEY_LAST_SYNC: &str = "last_sync_at";
/// The tables the server refused at the last push (JSON, see
/// [`crate::status::TableRefusal`]).
pub const KEY_REFUSED_TABLES: &str = "refused_tables";

/// The cursor key of a table.
pub fn cursor_key(table: &str) -> String {
    format!("cursor:{table}")
}

/// The key of a table's anchor: the row with the highest `_seq` this
/// replica saw (see [`crate::sync::restored`]).
pub fn anchor_key(table: &str) -> String {
    format!("anchor:{table}")
}

/// The key of what a replica last caught up with of a table's purged
/// history (see [`crate::sync::purged`]).
pub fn purge_key(table: &str) -> String {
    format!("purge:{table}")
}

/// The key of a table's pending backfill (see [`crate::migrate`]).
pub fn backfill_key(table: &str) -> String {
    format!("backfill:{table}")
}

/// Deletes a key.
pub fn delete(key: &str) -> Statement {
    Statement::new(
        "DELETE FROM \"_erth_state\" WHERE \"k\" = ?",
        vec![key.into()],
    )
}

/// `INSERT` a key unless it exists.
pub fn init(key: &str, value: String) -> Statement {
    Statement::new(
        "INSERT INTO \"_erth_state\" (\"k\", \"v\") VALUES (?, ?) ON CONFLICT (\"k\") DO NOTHING",
        vec![key.into(), SqlValue::Text(value)],
    )
}

/// Reads one key (`v` in one row, or no row).
pub fn get(key: &str) -> Statement {
    Statement::new(
        "SELECT \"v\" FROM \"_erth_state\" WHERE \"k\" = ?",
        vec![key.into()],
    )
}

/// Sets a key to `value` unless it holds a greater one (text order; for
/// fixed-width hex such as the clock, numeric order).
pub fn raise(key: &str, value: String) -> Statement {
    Statement::new(
        "INSERT INTO \"_erth_state\" (\"k\", \"v\") VALUES (?, ?) ON CONFLICT (\"k\") DO UPDATE SET \"v\" = MAX(\"v\", excluded.\"v\")",
        vec![key.into(), SqlValue::Text(value)],
    )
}

/// Sets a key.
pub fn set(key: &str, value: String) -> Statement {
    Statement::new(
        "INSERT INTO \"_erth_state\" (\"k\", \"v\") VALUES (?, ?) ON CONFLICT (\"k\") DO UPDATE SET \"v\" = excluded.\"v\"",
        vec![key.into(), SqlValue::Text(value)],
    )
}

/// Reads every key.
pub fn select_all() -> Statement {
    Statement::plain("SELECT \"k\", \"v\" FROM \"_erth_state\"")
}

/// Persists the clock; never lowers it (another process sharing the file
/// may have persisted a later one).
pub(crate) fn persist_clock(hlc: &HybridClock) -> Statement {
    raise(KEY_HLC, format!("{:016x}", hlc.last()))
}

/// The clock value in the rows of [`get`]`(KEY_HLC)` (0 when missing).
pub(crate) fn persisted_clock(rows: &Rows) -> u64 {
    rows.rows
        .first()
        .and_then(|r| r.first())
        .and_then(SqlValue::as_str)
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .unwrap_or(0)
}

pub(crate) async fn read_state(store: &SharedStore) -> Result<HashMap<String, String>> {
    read_state_in(&*store.turn().await?).await
}

/// [`read_state`] on the store itself (while opening, before it is shared).
pub(crate) async fn read_state_in(store: &dyn Store) -> Result<HashMap<String, String>> {
    let rows = store.query(&select_all()).await?;
    Ok(rows
        .rows
        .into_iter()
        .filter_map(|r| match (r.first(), r.get(1)) {
            (Some(SqlValue::Text(k)), Some(SqlValue::Text(v))) => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect())
}
