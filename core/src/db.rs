//! [`Database`]: one replica — a local store, an optional remote, a hybrid
//! logical clock and subscribers. Local reads and writes never touch the
//! network; [`Database::sync`] (in [`crate::sync`]) does.
//!
//! Writes are serialized in a process by one async lock that also guards
//! the clock; each write reads the persisted clock inside its write
//! transaction, catches up with it, ticks and persists the new value in the
//! same transaction ([`Database::clocked_write`]), so a reopened replica —
//! or another process sharing the file — never reissues a clock value.
//!
//! **A copied replica stays itself.** A replica file can be copied (a phone
//! restored from a backup, a cloned browser profile or VM): two copies then
//! hold the same persisted clock. Every open therefore draws a new random
//! node id (64 bits) while the clock value carries on. A clock is
//! `(hlc, node)`, so two copies — or two sessions of one file — never issue
//! the same clock, and two different values of one column always have
//! different clocks: the merge's last-writer-wins picks the same winner
//! everywhere. (The node id only breaks ties; nothing else is keyed on it.)

use crate::endpoint::{AuthToken, EncryptionKey, Endpoint};
use crate::error::{Error, Result};
use crate::events::{ChangeEvent, ChangeOrigin, Listener, Registry, Subscription};
use crate::hlc::{Clock, HybridClock, NodeId, Timestamp};
use crate::hrana::{HranaClient, RetryPolicy};
use crate::row::SyncRow;
use crate::schema::{q, todos_table, TableDef};
use crate::state;
use crate::store::{Store, StoreError, StoreErrorKind};
use crate::transport::Transport;
use crate::value::{Rows, SqlValue, Statement};
use futures::lock::Mutex as AsyncMutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// How a replica is set up. `Debug` redacts the token and the key.
#[derive(Clone)]
pub struct Config {
    /// Server URL (`libsql://`, `https://`, or `http://` for local servers); `None` = local-only.
    pub url: Option<String>,
    /// Bearer token; also taken from an `authToken` query parameter of `url`.
    pub auth_token: Option<String>,
    /// Key of a database encrypted with the customer's own key (Turso
    /// Cloud): sent as `x-turso-encryption-key` on every request, never
    /// logged or shown.
    pub encryption_key: Option<String>,
    /// Allow `http://` to non-private hosts (the token would travel in clear text).
    pub allow_insecure_http: bool,
    /// Synced tables (default: the built-in `todos`); [`Config::with_schema_json`]
    /// sets them from the schema format every face uses.
    pub tables: Vec<TableDef>,
    /// Rows per push round trip (one server transaction).
    pub push_batch_rows: usize,
    /// Rows per `INSERT` statement inside a push batch.
    pub rows_per_statement: usize,
    /// Most rows per pull page; pages are sized in bytes within that (see
    /// [`crate::sync`]), so this also bounds how many rows one size probe
    /// plans. 10,000 `todos` rows are about 2.1 MB as a JSON page
    /// ([`crate::page`]), within the first page budget (4 MB).
    pub pull_page_rows: usize,
    /// How far ahead of local time a remote clock may pull the local clock (see [`crate::hlc`]).
    pub max_clock_drift_ms: u64,
    /// How long a sync waits for another process sharing the replica file
    /// to finish its sync before failing with [`Error::DatabaseLocked`].
    pub sync_lock_timeout_ms: u64,
    pub retry: RetryPolicy,
    /// Sync in the background: after local writes, on an interval, when
    /// the network returns ([`crate::autosync`]; started by
    /// [`crate::autosync::AutoSync::start`]). `None` (the default): only
    /// when [`Database::sync`] is called.
    pub auto_sync: Option<crate::autosync::AutoSyncOptions>,
}

impl Config {
    /// Declares the synced tables from the JSON schema format
    /// ([`crate::schema::json`]).
    ///
    /// Errors: [`Error::InvalidSchema`] naming the table and column at fault.
    pub fn with_schema_json(mut self, schema: &str) -> Result<Config> {
        self.tables = crate::schema::Schema::from_json(schema)?.tables;
        Ok(self)
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("Config")
            .field("url", &self.url)
            .field("auth_token", &redacted(&self.auth_token))
            .field("encryption_key", &redacted(&self.encryption_key))
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("tables", &self.tables)
            .field("push_batch_rows", &self.push_batch_rows)
            .field("rows_per_statement", &self.rows_per_statement)
            .field("pull_page_rows", &self.pull_page_rows)
            .field("max_clock_drift_ms", &self.max_clock_drift_ms)
            .field("sync_lock_timeout_ms", &self.sync_lock_timeout_ms)
            .field("retry", &self.retry)
            .field("auto_sync", &self.auto_sync)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: None,
            auth_token: None,
            encryption_key: None,
            allow_insecure_http: false,
            tables: vec![todos_table()],
            push_batch_rows: 2_000,
            rows_per_statement: 200,
            pull_page_rows: 10_000,
            max_clock_drift_ms: 3_600_000,
            sync_lock_timeout_ms: 60_000,
            retry: RetryPolicy::default(),
            auto_sync: None,
        }
    }
}

/// What one [`Database::sync`] did.
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
    /// server sent one (`SQLITE_BUSY`, ...; see [`Error::server_code`]).
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
    /// False while [`Database::set_online`]`(false)` is in effect: syncs
    /// fail with `Network` and auto-sync waits.
    pub online: bool,
    /// Auto-sync is on ([`Config::auto_sync`]).
    pub auto_sync: bool,
    /// Rows the server refused, set aside until they change or
    /// [`Database::retry_rejected`] (listed by [`Database::rejected_rows`]).
    /// They count in `pending_changes` too.
    pub rejected: u64,
    /// Tables whose changes the server would not take with this token, as
    /// of the last push (a read-only token: every table, `HTTP 403`; kept
    /// across reopens); their changes stay pending and the other tables sync.
    pub refused_tables: Vec<crate::rejected::TableRefusal>,
}

/// Progress of a running sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncProgress {
    Pushed { table: String, rows: u64 },
    Pulled { table: String, rows: u64 },
}

pub(crate) struct Remote {
    pub(crate) client: HranaClient,
    pub(crate) bootstrapped: AtomicBool,
    /// Byte budgets of a pull page and a push batch, adapted to what the
    /// link delivers (see [`crate::sync`]); kept across syncs.
    pub(crate) page_bytes: AtomicUsize,
    /// The most a page may grow to: half of the smallest page that timed out.
    pub(crate) page_ceiling: AtomicUsize,
    pub(crate) push_bytes: AtomicUsize,
}

#[derive(Default)]
pub(crate) struct StatusState {
    pub(crate) last_sync_at_ms: Option<u64>,
    pub(crate) last_error: Option<String>,
    pub(crate) last_error_kind: Option<crate::error::ErrorKind>,
    pub(crate) last_error_server_code: Option<String>,
    pub(crate) syncing: bool,
    pub(crate) clock_ahead_ms: Option<u64>,
    pub(crate) unknown_server_columns: Vec<String>,
    pub(crate) refused_tables: Vec<crate::rejected::TableRefusal>,
}

/// A local replica, optionally synced with a server.
pub struct Database {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: Config,
    pub(crate) hlc: AsyncMutex<HybridClock>,
    pub(crate) remote: RwLock<Option<Arc<Remote>>>,
    pub(crate) sync_lock: AsyncMutex<()>,
    pub(crate) status: Mutex<StatusState>,
    pub(crate) events: Arc<Registry>,
    /// Bumped by every local write (for coalescing concurrent syncs).
    pub(crate) writes: AtomicU64,
    /// `(writes seen at start, report)` of the last successful sync.
    pub(crate) last_sync: Mutex<Option<(u64, u64, SyncReport)>>,
    pub(crate) syncs_done: AtomicU64,
    /// A pull cleared tombstones that still held user data (see [`crate::sync`]).
    pub(crate) uncleared_pulled: AtomicBool,
    /// The network switch and the auto-sync driver's inbox.
    pub(crate) auto_sync: crate::autosync::Link,
    /// This process's claim on the file ([`Database::open_native`]), released on drop.
    _file_claim: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field(
                "tables",
                &self
                    .config
                    .tables
                    .iter()
                    .map(|t| &t.name)
                    .collect::<Vec<_>>(),
            )
            .field("remote", &self.remote_url())
            .finish_non_exhaustive()
    }
}

fn corrupt(what: String) -> Error {
    Error::Storage(StoreError::new(StoreErrorKind::Corrupt, what))
}

impl Database {
    /// Opens a replica on `store`, creating or migrating its tables.
    pub async fn open(
        store: Arc<dyn Store>,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
        config: Config,
    ) -> Result<Database> {
        for (i, t) in config.tables.iter().enumerate() {
            t.validate()?;
            if config.tables[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&t.name))
            {
                return Err(Error::InvalidSchema {
                    table: t.name.clone(),
                    column: None,
                    reason: "the table is declared twice".into(),
                });
            }
        }
        if config.push_batch_rows == 0
            || config.rows_per_statement == 0
            || config.pull_page_rows == 0
        {
            return Err(Error::InvalidInput(
                "batch and page sizes must be at least 1".into(),
            ));
        }
        let node = crate::migrate::open_local(store.as_ref(), &config.tables)
            .await?
            .0;

        let kv = read_state(store.as_ref()).await?;
        let last = kv
            .get(state::KEY_HLC)
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .ok_or_else(|| corrupt("clock missing from _erth_state".into()))?;
        let status = StatusState {
            last_sync_at_ms: kv.get(state::KEY_LAST_SYNC).and_then(|v| v.parse().ok()),
            refused_tables: kv
                .get(state::KEY_REFUSED_TABLES)
                .map(|v| crate::rejected::refusals_from_text(v))
                .unwrap_or_default(),
            ..StatusState::default()
        };
        let db = Database {
            store,
            transport,
            clock,
            hlc: AsyncMutex::new(HybridClock::new(
                NodeId(node),
                last,
                config.max_clock_drift_ms,
            )),
            config: config.clone(),
            remote: RwLock::new(None),
            sync_lock: AsyncMutex::new(()),
            status: Mutex::new(status),
            events: Arc::new(Registry::default()),
            writes: AtomicU64::new(0),
            last_sync: Mutex::new(None),
            syncs_done: AtomicU64::new(0),
            uncleared_pulled: AtomicBool::new(false),
            auto_sync: Default::default(),
            _file_claim: None,
        };
        if let Some(url) = &config.url {
            db.set_remote(Some(url), config.auth_token.as_deref())?;
        }
        Ok(db)
    }

    /// Sets (or with `None` removes) the server. Local changes made while
    /// there was no server are pushed by the next sync.
    pub fn set_remote(&self, url: Option<&str>, auth_token: Option<&str>) -> Result<()> {
        // An empty URL means local-only on every face (`url: ""`, `--remote ""`).
        let remote = match url.filter(|u| !u.trim().is_empty()) {
            None => None,
            Some(url) => {
                let (endpoint, url_token) = Endpoint::parse(url, self.config.allow_insecure_http)?;
                let token = auth_token.and_then(AuthToken::new).or(url_token);
                let key = self
                    .config
                    .encryption_key
                    .clone()
                    .and_then(EncryptionKey::new);
                let client =
                    HranaClient::new(endpoint, token, self.transport.clone(), self.config.retry)
                        .with_encryption_key(key);
                Some(Arc::new(Remote {
                    client,
                    bootstrapped: AtomicBool::new(false),
                    page_bytes: AtomicUsize::new(crate::sync::PULL_PAGE_BYTES),
                    page_ceiling: AtomicUsize::new(crate::sync::MAX_PAGE_BYTES),
                    push_bytes: AtomicUsize::new(crate::sync::PUSH_BATCH_BYTES),
                }))
            }
        };
        *self.remote.write().unwrap_or_else(|p| p.into_inner()) = remote;
        self.sync_soon();
        Ok(())
    }

    /// Replaces the auth token used by the next requests.
    pub fn set_auth_token(&self, token: Option<&str>) {
        if let Some(r) = self.remote_handle() {
            r.client.set_token(token.and_then(AuthToken::new));
        }
        self.sync_soon();
    }

    pub(crate) fn remote_handle(&self) -> Option<Arc<Remote>> {
        self.remote
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn remote_url(&self) -> Option<String> {
        self.remote_handle()
            .map(|r| r.client.endpoint().display_url())
    }

    /// The synced tables, as declared.
    pub fn tables(&self) -> &[TableDef] {
        &self.config.tables
    }

    /// The declared table with that name.
    pub fn table(&self, name: &str) -> Result<&TableDef> {
        self.config
            .tables
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::InvalidInput(format!("no synced table named {name:?}")))
    }

    /// The node id of this replica.
    pub async fn node_id(&self) -> NodeId {
        self.hlc.lock().await.node()
    }

    /// Calls `listener` after every committed change until the subscription is dropped.
    pub fn subscribe(&self, listener: Listener) -> Subscription {
        self.events.add(listener)
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

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

    pub(crate) fn after_local_write(&self, table: &str, ids: Vec<String>) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.events.emit(ChangeEvent {
            table: table.to_owned(),
            ids,
            origin: ChangeOrigin::Local,
        });
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
        let mut hlc = self.hlc.lock().await;
        let mut all = vec![state::get(state::KEY_HLC)];
        all.extend(reads);
        let mut failure = None;
        let mut value = None;
        let out = self.store.write_after_reads(&all, &mut |mut rows| {
            hlc.catch_up(persisted_clock(&rows.remove(0)));
            match build(&mut hlc, rows) {
                Ok((mut stmts, v)) => {
                    if !stmts.is_empty() {
                        stmts.push(persist_clock(&hlc));
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

    /// `SELECT` of the full row with that id.
    fn select_row(&self, def: &TableDef, id: &str) -> Statement {
        Statement::new(
            format!(
                "SELECT {} FROM {} WHERE \"id\" = ?",
                def.row_column_list(),
                q(&def.local_name())
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

    /// Live rows, newest first.
    pub async fn list_live(&self, table: &str) -> Result<Vec<SyncRow>> {
        let def = self.table(table)?;
        self.select_rows(
            def,
            "WHERE \"is_deleted\" = 0 ORDER BY \"is_deleted\", \"created_at\" DESC, \"id\" DESC",
        )
        .await
    }

    /// Every row including tombstones, sorted by id (for comparing replicas).
    pub async fn dump(&self, table: &str) -> Result<Vec<SyncRow>> {
        let def = self.table(table)?;
        self.select_rows(def, "ORDER BY \"id\"").await
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

    /// Rows with changes the server has not acknowledged, over all tables.
    pub async fn pending_changes(&self) -> Result<u64> {
        let mut total = 0;
        for def in &self.config.tables {
            let rows = self
                .store
                .query(&Statement::plain(format!(
                    "SELECT count(*) FROM {} WHERE \"_dirty\" > 0",
                    q(&def.local_name())
                )))
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

    /// Pending count, last sync, last error, remote.
    pub async fn status(&self) -> Result<SyncStatus> {
        let pending_changes = self.pending_changes().await?;
        // Another process sharing the file may have synced since.
        let persisted_sync = self
            .store
            .query(&state::get(state::KEY_LAST_SYNC))
            .await?
            .rows
            .first()
            .and_then(|r| r.first())
            .and_then(SqlValue::as_str)
            .and_then(|v| v.parse::<u64>().ok());
        let rejected = self.rejected_count().await?;
        let s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        Ok(SyncStatus {
            pending_changes,
            last_sync_at_ms: s.last_sync_at_ms.max(persisted_sync),
            last_error: s.last_error.clone(),
            last_error_kind: s.last_error_kind,
            last_error_server_code: s.last_error_server_code.clone(),
            syncing: s.syncing,
            remote_url: self.remote_url(),
            clock_ahead_ms: s.clock_ahead_ms,
            unknown_server_columns: s.unknown_server_columns.clone(),
            rejected,
            refused_tables: s.refused_tables.clone(),
            online: self.auto_sync.is_online(),
            auto_sync: self.config.auto_sync.is_some(),
        })
    }

    /// The latest clock value this replica issued or observed.
    pub async fn last_clock(&self) -> Timestamp {
        let h = self.hlc.lock().await;
        Timestamp {
            hlc: h.last(),
            node: h.node(),
        }
    }
}

/// Persists the clock; never lowers it (another process sharing the file
/// may have persisted a later one).
pub(crate) fn persist_clock(hlc: &HybridClock) -> Statement {
    state::raise(state::KEY_HLC, format!("{:016x}", hlc.last()))
}

/// The clock value in the rows of `state::get(KEY_HLC)` (0 when missing).
pub(crate) fn persisted_clock(rows: &Rows) -> u64 {
    rows.rows
        .first()
        .and_then(|r| r.first())
        .and_then(SqlValue::as_str)
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .unwrap_or(0)
}

pub(crate) async fn read_state(store: &dyn Store) -> Result<HashMap<String, String>> {
    let rows = store.query(&state::select_all()).await?;
    Ok(rows
        .rows
        .into_iter()
        .filter_map(|r| match (r.first(), r.get(1)) {
            (Some(SqlValue::Text(k)), Some(SqlValue::Text(v))) => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect())
}

#[cfg(not(target_arch = "wasm32"))]
impl Database {
    /// Opens a replica in a local file with the native store, HTTP transport and wall clock.
    ///
    /// Other processes may have the same file open (see `ARCHITECTURE.md`,
    /// "Several processes, one file"); inside one process a file has one
    /// `Database` (share it): a second open fails with
    /// [`Error::DatabaseLocked`] until the first is dropped.
    pub async fn open_native(
        path: impl AsRef<std::path::Path>,
        config: Config,
    ) -> Result<Database> {
        let claim = crate::store::sqlite::FileClaim::take(path.as_ref())?;
        let store = crate::store::sqlite::SqliteStore::open(path)?;
        let transport =
            crate::transport::native::NativeTransport::new(std::time::Duration::from_secs(30))?;
        let mut db = Database::open(
            Arc::new(store),
            Arc::new(transport),
            Arc::new(crate::hlc::SystemClock),
            config,
        )
        .await?;
        db._file_claim = Some(Box::new(claim));
        Ok(db)
    }
}
