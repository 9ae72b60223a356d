//! The records a replica reports about its syncs: [`SyncReport`] (what one
//! sync did), [`SyncProgress`] (a running sync), [`SyncStatus`] (where the
//! replica stands), [`RejectedRow`] and [`TableRefusal`] (what the server
//! refused), [`QuarantinedRow`] (what this replica would not apply from the
//! server). Plain data, shared by every face.

/// What one [`crate::Database::sync`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[cfg_attr(
    feature = "js",
    derive(serde::Serialize, tsify::Tsify),
    serde(rename_all = "camelCase")
)]
pub struct SyncReport {
    /// Local rows sent to the server.
    pub pushed: u64,
    /// Server rows received.
    pub pulled: u64,
    /// Wall-clock milliseconds the sync took.
    pub duration_ms: u64,
}

/// Where a replica stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[cfg_attr(
    feature = "js",
    derive(serde::Serialize, tsify::Tsify),
    serde(rename_all = "camelCase"),
    tsify(missing_as_null)
)]
pub struct SyncStatus {
    /// Rows with local changes not yet acknowledged by the server.
    pub pending_changes: u64,
    /// Wall-clock ms of the last successful sync (persisted).
    #[cfg_attr(feature = "js", serde(rename = "lastSyncAt"))]
    pub last_sync_at_ms: Option<u64>,
    /// The last sync's error, cleared by a successful sync.
    pub last_error: Option<String>,
    /// The kind of the last sync's error (`None` with `last_error`).
    #[cfg_attr(feature = "js", serde(rename = "lastErrorCode"))]
    pub last_error_kind: Option<crate::error::ErrorKind>,
    /// The server's Hrana error code of the last sync's error, when the
    /// server sent one (`SQLITE_BUSY`, ...; see [`crate::Error::server_code`]).
    pub last_error_server_code: Option<String>,
    /// A sync is running (one of this process's: another process's sync of
    /// a shared file is not seen).
    pub syncing: bool,
    /// The server URL, without credentials.
    pub remote_url: Option<String>,
    /// Set when a pulled clock was further ahead than `max_clock_drift_ms` (how far).
    pub clock_ahead_ms: Option<u64>,
    /// Columns the server's tables have and this replica's schema does not
    /// (`table.column`), as of the last sync: newer replicas added them.
    /// This replica leaves them alone; declaring them backfills their values.
    pub unknown_server_columns: Vec<String>,
    /// False while [`crate::Database::set_online`]`(false)` is in effect:
    /// syncs fail with `Network` and auto-sync waits.
    pub online: bool,
    /// Auto-sync is on (`Config::auto_sync`).
    pub auto_sync: bool,
    /// Rows the server refused, set aside until they change or
    /// [`crate::Database::retry_rejected`] (listed by [`crate::Database::rejected_rows`]).
    /// They count in `pending_changes` too.
    pub rejected: u64,
    /// Rows pulled from the server that this replica would not apply (they
    /// break the row layout), set aside while the others sync; listed by
    /// [`crate::Database::quarantined_rows`].
    pub quarantined: u64,
    /// Tables whose changes the server would not take with this token, as
    /// of the last push (a read-only token: every table, `HTTP 403`; kept
    /// across reopens); their changes stay pending and the other tables sync.
    pub refused_tables: Vec<TableRefusal>,
}

/// Progress of a running sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncProgress {
    Pushed { table: String, rows: u64 },
    Pulled { table: String, rows: u64 },
}

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

/// A row pulled from the server that this replica would not apply, with
/// why: it breaks the row layout (a value of the wrong type or over 5 MB,
/// an id that is not a UUIDv7, a clock that is not a clock). It was
/// written by a buggy or hostile client; the pull moved past it, and it
/// leaves this list when it arrives valid (changed on the server).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[cfg_attr(
    feature = "js",
    derive(serde::Serialize, tsify::Tsify),
    serde(rename_all = "camelCase")
)]
pub struct QuarantinedRow {
    pub table: String,
    /// The row's id as the server has it (clipped; it may not be an id).
    pub id: String,
    /// The row's `_seq` on the server.
    pub seq: i64,
    /// Why it was not applied.
    pub reason: String,
    /// Wall-clock ms when it was pulled.
    #[cfg_attr(feature = "js", serde(rename = "quarantinedAt"))]
    pub quarantined_at_ms: u64,
}
