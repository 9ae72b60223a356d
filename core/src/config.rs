//! [`Config`]: how a replica is set up (server, credentials, synced tables,
//! batch and page sizes, clock drift bound, lock and retry policies).
//! Plain data; every face builds one.

use crate::error::Result;
use crate::hrana::RetryPolicy;
use crate::schema::{todos_table, TableDef};

/// How a replica is set up. `Debug` redacts the token and the key.
#[derive(Clone)]
pub struct Config {
    /// Server URL (`libsql://`, `https://`, or `http://` for a server on
    /// this machine); `None` = local-only. Parameters that look like
    /// secrets are dropped from it (see [`crate::Endpoint::parse`]).
    pub url: Option<String>,
    /// Bearer token; also taken from an `authToken` query parameter of `url`
    /// (any case).
    pub auth_token: Option<String>,
    /// Key of a database encrypted with the customer's own key (Turso
    /// Cloud): sent as `x-turso-encryption-key` on every request to `url`'s
    /// origin (scheme, host, port) and nowhere else (not to another server
    /// set later by [`crate::Database::set_remote`]; unused without `url`),
    /// never over plain `http://` to a host that is not loopback (opening
    /// fails with [`crate::Error::InvalidInput`]), never logged or shown.
    pub encryption_key: Option<String>,
    /// Allow plain `http://` to hosts that are not loopback (anything but
    /// `127.0.0.0/8`, `::1`, `localhost`): the token then travels in clear
    /// text. The encryption key never does. Default off.
    pub allow_insecure_http: bool,
    /// Synced tables (default: the built-in `todos`); [`Config::with_schema_json`]
    /// sets them from the schema format every face uses.
    pub tables: Vec<TableDef>,
    /// Rows per push round trip (one server transaction).
    pub push_batch_rows: usize,
    /// Rows per `INSERT` statement inside a push batch.
    pub rows_per_statement: usize,
    /// Most rows per pull page; pages are sized in bytes within that (see
    /// the sync engine), so this also bounds how many rows one size probe
    /// plans. 10,000 `todos` rows are about 2.1 MB as a JSON page
    /// ([`crate::page`]), within the first page budget (4 MB).
    pub pull_page_rows: usize,
    /// How far ahead of local time a remote clock may pull the local clock (see [`crate::hlc`]).
    pub max_clock_drift_ms: u64,
    /// How long a sync waits for another process sharing the replica file
    /// to finish its sync before failing with [`crate::Error::DatabaseLocked`].
    pub sync_lock_timeout_ms: u64,
    /// How long a local read or write waits (ms) for a writer before failing
    /// with [`crate::Error::DatabaseLocked`]: another task's open write
    /// transaction ([`crate::Database::write_transaction`]), and, natively,
    /// another process's write lock on the file (SQLite's busy timeout).
    /// Default 5,000.
    pub lock_timeout_ms: u64,
    /// Install the server's guard at bootstrap (`schema::guard`): triggers
    /// that refuse what no honest replica writes (far-future clocks, rows
    /// going back, rewrites of `_erth_meta`, rows that break the layout,
    /// physical deletes). Needs a token that may change the schema once;
    /// app tokens that may not then cannot drop it. Default off.
    pub server_guard: bool,
    /// How long one request to the server may take (ms) before it fails
    /// with a timeout (native transport; the browser's is set where the
    /// browser store is opened). A request that times out is not sent again
    /// as it was: a pull page or push batch is asked again smaller, anything
    /// else fails the sync. Default 30,000.
    pub request_timeout_ms: u64,
    /// The most one sync may take (ms), waiting for another process's sync
    /// included; then it stops with [`crate::Error::SyncTimeout`], keeping
    /// what it committed (pages and batches are each committed whole), and
    /// the next sync resumes. `0`: no limit. Default 600,000 (10 minutes: a
    /// fresh device's first pull of a large database on a slow link may
    /// need several syncs).
    pub sync_timeout_ms: u64,
    pub retry: RetryPolicy,
    /// Sync in the background: after local writes, on an interval, when
    /// the network returns ([`crate::autosync`]; started by
    /// [`crate::autosync::AutoSync::start`]). `None` (the default): only
    /// when [`crate::Database::sync`] is called.
    pub auto_sync: Option<crate::autosync::schedule::AutoSyncOptions>,
    /// The keys of the schema's encrypted columns (see
    /// [`crate::encrypted`]): required when a column is encrypted. Never
    /// shown by `Debug` (its key ids are).
    pub column_keys: Option<crate::encrypted::ColumnKeys>,
    /// The key of the replica's file, encrypted at rest
    /// ([`crate::file_key`]): a new file is created encrypted, an existing
    /// one must have been encrypted with this key
    /// ([`crate::Error::WrongFileKey`] otherwise, the file untouched).
    /// Applied by [`crate::Database::open_native`]; `None` (the default): a
    /// plain file. Never shown by `Debug`.
    pub file_key: Option<crate::file_key::FileKey>,
}

impl Config {
    /// Declares the synced tables from the JSON schema format
    /// ([`crate::schema::json`]).
    ///
    /// Errors: [`crate::Error::InvalidSchema`] naming the table and column at fault.
    pub fn with_schema_json(mut self, schema: &str) -> Result<Config> {
        self.tables = crate::schema::json::Schema::from_json(schema)?.tables;
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
            .field("lock_timeout_ms", &self.lock_timeout_ms)
            .field("server_guard", &self.server_guard)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("sync_timeout_ms", &self.sync_timeout_ms)
            .field("retry", &self.retry)
            .field("auto_sync", &self.auto_sync)
            .field("column_keys", &self.column_keys)
            .field("file_key", &self.file_key)
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
            lock_timeout_ms: 5_000,
            server_guard: false,
            request_timeout_ms: 30_000,
            sync_timeout_ms: 600_000,
            retry: RetryPolicy::default(),
            auto_sync: None,
            column_keys: None,
            file_key: None,
        }
    }
}
