//! [`Database`]: one replica — a local store, an optional remote, a hybrid
//! logical clock and subscribers. Local reads and writes never touch the
//! network; [`Database::sync`] does, on the engine in [`crate::sync`].
//!
//! Every call takes a turn of the store ([`crate::shared_store`]: shared,
//! or exclusive for a write transaction), and writes are serialized in a
//! process by one async lock that also guards the clock (`ReplicaClock`);
//! each write reads the persisted clock inside its write transaction,
//! catches up with it, ticks and persists the new value in the same
//! transaction (the row API in [`crate::rows`], the app's SQL in
//! [`crate::sql`]), so a reopened replica — or another process sharing the
//! file — never reissues a clock value.
//!
//! **A copied replica stays itself.** A replica file can be copied (a phone
//! restored from a backup, a cloned browser profile or VM): two copies then
//! hold the same persisted clock. Every open therefore draws a new random
//! node id (64 bits) while the clock value carries on. A clock is
//! `(hlc, node)`, so two copies — or two sessions of one file — never issue
//! the same clock, and two different values of one column always have
//! different clocks: the merge's last-writer-wins picks the same winner
//! everywhere. (The node id only breaks ties; nothing else is keyed on it.)

use crate::config::Config;
use crate::endpoint::{AuthToken, BoundKey, EncryptionKey, Endpoint};
use crate::error::{Error, Result};
use crate::events::{ChangeEvent, ChangeOrigin, Listener, Registry, Subscription};
use crate::hlc::{Clock, HybridClock, NodeId, ReplicaClock, Timestamp};
use crate::hrana::HranaClient;
use crate::schema::{q, TableDef};
use crate::shared_store::SharedStore;
use crate::state;
use crate::status::{refusals_from_text, SyncProgress, SyncReport, SyncStatus, TableRefusal};
use crate::store::{Store, StoreError, StoreErrorKind};
use crate::sync::{Found, Remote, Syncer};
use crate::transport::Transport;
use crate::value::{SqlValue, Statement};
use futures::lock::Mutex as AsyncMutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// How often a sync waiting for another process's sync checks again (ms).
const SYNC_LOCK_POLL_MS: u64 = 25;

/// What `status()` reports that is this process's own (the rest is read
/// from the file).
#[derive(Default)]
pub(crate) struct StatusState {
    pub(crate) last_sync_at_ms: Option<u64>,
    pub(crate) last_error: Option<String>,
    pub(crate) last_error_kind: Option<crate::error::ErrorKind>,
    pub(crate) last_error_server_code: Option<String>,
    pub(crate) syncing: bool,
    pub(crate) clock_ahead_ms: Option<u64>,
    pub(crate) unknown_server_columns: Vec<String>,
    pub(crate) refused_tables: Vec<TableRefusal>,
}

impl StatusState {
    /// The last sync's error (`None`: it succeeded), its kind and the
    /// server's code.
    fn note_error(&mut self, error: Option<&Error>) {
        // Server texts were clipped and redacted where they entered the
        // error; once more here, for any path that did not.
        self.last_error = error.map(|e| crate::error::clip(&e.to_string(), 2_000));
        self.last_error_kind = error.map(Error::kind);
        self.last_error_server_code = error.and_then(|e| e.server_code().map(str::to_owned));
    }

    /// Takes in what a sync found (see [`Found`]).
    fn note(&mut self, found: Found) {
        if found.clock_ahead_ms.is_some() {
            self.clock_ahead_ms = found.clock_ahead_ms;
        }
        for (table, columns) in found.unknown_columns {
            let prefix = format!("{table}.");
            self.unknown_server_columns
                .retain(|c| !c.starts_with(&prefix));
            self.unknown_server_columns
                .extend(columns.into_iter().map(|c| format!("{prefix}{c}")));
        }
        if let Some(refused) = found.refused_tables {
            self.refused_tables = refused;
        }
    }
}

/// `status().syncing` while a sync runs. A sync whose future is dropped
/// before it finished (the app cancelled it, e.g. `asyncio.wait_for`, or a
/// task was aborted) lowers it on drop and leaves [`Error::SyncCancelled`]
/// as the last error; its locks go with the future.
struct SyncingFlag<'a> {
    status: &'a Mutex<StatusState>,
    raised: bool,
}

impl<'a> SyncingFlag<'a> {
    fn raise(status: &'a Mutex<StatusState>) -> SyncingFlag<'a> {
        status.lock().unwrap_or_else(|p| p.into_inner()).syncing = true;
        SyncingFlag {
            status,
            raised: true,
        }
    }

    /// Lowers the flag at the end of a sync; the status, to note its outcome.
    fn lower(&mut self) -> std::sync::MutexGuard<'a, StatusState> {
        self.raised = false;
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.syncing = false;
        status
    }
}

impl Drop for SyncingFlag<'_> {
    fn drop(&mut self) {
        if self.raised {
            let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
            status.syncing = false;
            status.note_error(Some(&Error::SyncCancelled));
        }
    }
}

/// A local replica, optionally synced with a server.
pub struct Database {
    /// The store, shared in turns with interactive write transactions.
    pub(crate) store: Arc<SharedStore>,
    pub(crate) transport: Arc<dyn Transport>,
    /// The wall clock and the hybrid logical clock it drives.
    pub(crate) clock: ReplicaClock,
    pub(crate) config: Config,
    pub(crate) remote: RwLock<Option<Arc<Remote>>>,
    /// The encryption key and the origin it was given for (sent there only).
    encryption_key: Mutex<Option<BoundKey>>,
    pub(crate) sync_lock: AsyncMutex<()>,
    pub(crate) status: Mutex<StatusState>,
    pub(crate) events: Arc<Registry>,
    /// Bumped by every local write (for coalescing concurrent syncs).
    pub(crate) writes: Arc<AtomicU64>,
    /// `(writes seen at start, report)` of the last successful sync.
    pub(crate) last_sync: Mutex<Option<(u64, u64, SyncReport)>>,
    pub(crate) syncs_done: AtomicU64,
    /// Calls waiting for the first complete sync ([`Database::wait_for_first_sync`]).
    first_sync: Mutex<Vec<futures::channel::oneshot::Sender<()>>>,
    /// The network switch and the auto-sync driver's inbox.
    pub(crate) auto_sync: crate::autosync::link::Link,
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
        if config.file_key.is_some() {
            return Err(Error::InvalidInput(
                "a file key is applied where the file is opened: by open_native, or by \
                 SqliteStore::open_keyed for a store opened by hand (encryption at rest is \
                 native only)"
                    .into(),
            ));
        }
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
        if let Some(t) = config
            .tables
            .iter()
            .find(|t| t.columns.iter().any(|c| c.encrypted))
        {
            if config.column_keys.is_none() {
                return Err(Error::InvalidInput(format!(
                    "table {} has encrypted columns: give the column keys (nothing was opened)",
                    t.name
                )));
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
        let store = Arc::new(SharedStore::new(
            store,
            transport.clone(),
            config.lock_timeout_ms,
        ));
        let kv = state::read_state(&store).await?;
        let last = kv
            .get(state::KEY_HLC)
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .ok_or_else(|| corrupt("clock missing from _erth_state".into()))?;
        let status = StatusState {
            last_sync_at_ms: kv.get(state::KEY_LAST_SYNC).and_then(|v| v.parse().ok()),
            refused_tables: kv
                .get(state::KEY_REFUSED_TABLES)
                .map(|v| refusals_from_text(v))
                .unwrap_or_default(),
            ..StatusState::default()
        };
        let db = Database {
            store,
            transport,
            clock: ReplicaClock::new(
                clock,
                HybridClock::new(NodeId(node), last, config.max_clock_drift_ms),
            ),
            config: config.clone(),
            remote: RwLock::new(None),
            encryption_key: Mutex::new(None),
            sync_lock: AsyncMutex::new(()),
            status: Mutex::new(status),
            events: Arc::new(Registry::default()),
            writes: Arc::new(AtomicU64::new(0)),
            last_sync: Mutex::new(None),
            syncs_done: AtomicU64::new(0),
            first_sync: Mutex::new(Vec::new()),
            auto_sync: Default::default(),
            _file_claim: None,
        };
        if let Some(url) = &config.url {
            // `Config::encryption_key` belongs to `Config::url`; without a
            // URL it is sent nowhere.
            db.set_remote_with_key(
                Some(url),
                config.auth_token.as_deref(),
                config.encryption_key.as_deref(),
            )?;
        }
        Ok(db)
    }

    /// Sets (or with `None` or `""` removes) the server and its token
    /// (`None`: the URL's `authToken` parameter, else none; the previous
    /// server's token is never carried over). Local changes made while
    /// there was no server are pushed by the next sync.
    ///
    /// The encryption key stays with the origin (scheme, host, port) it was
    /// given for (`Config::encryption_key` with `Config::url`, or
    /// [`Database::set_remote_with_key`]): it is sent to `url` only if `url`
    /// has that origin. A server elsewhere needs the key given again.
    ///
    /// Errors: [`Error::InvalidInput`] for a URL [`Endpoint::parse`]
    /// refuses; nothing changes then.
    pub fn set_remote(&self, url: Option<&str>, auth_token: Option<&str>) -> Result<()> {
        self.replace_remote(url, auth_token, None)
    }

    /// [`Database::set_remote`] with the encryption key for this server
    /// (`None` or `""`: none), tied to `url`'s origin from now on.
    ///
    /// Errors: [`Error::InvalidInput`] for a URL [`Endpoint::parse`]
    /// refuses, or a key with a plain `http://` URL to a host that is not
    /// loopback (the key never travels in clear text, even with
    /// `allow_insecure_http`); nothing changes then.
    pub fn set_remote_with_key(
        &self,
        url: Option<&str>,
        auth_token: Option<&str>,
        encryption_key: Option<&str>,
    ) -> Result<()> {
        self.replace_remote(url, auth_token, Some(encryption_key))
    }

    /// The remote of `url`; `key`: `None` keeps the bound key, `Some` binds
    /// this one (or none) to `url`. Everything is checked before anything
    /// changes.
    fn replace_remote(
        &self,
        url: Option<&str>,
        auth_token: Option<&str>,
        key: Option<Option<&str>>,
    ) -> Result<()> {
        // An empty URL means local-only on every face (`url: ""`, `--remote ""`).
        let parsed = url
            .filter(|u| !u.trim().is_empty())
            .map(|u| Endpoint::parse(u, self.config.allow_insecure_http))
            .transpose()?;
        let mut bound = self
            .encryption_key
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let bound_next = match (key, &parsed) {
            (None, _) => bound.clone(),
            (Some(key), Some((endpoint, _))) => key
                .and_then(EncryptionKey::new)
                .map(|k| BoundKey::new(endpoint, k))
                .transpose()?,
            (Some(_), None) => None,
        };
        let remote = parsed.map(|(endpoint, url_token)| {
            let token = auth_token.and_then(AuthToken::new).or(url_token);
            let key = bound_next.as_ref().and_then(|b| b.key_for(&endpoint));
            if bound_next.is_some() && key.is_none() {
                tracing::info!(remote = %endpoint.display_url(), "the encryption key belongs to another server: not sent to this one");
            }
            let client = HranaClient::new(endpoint, token, self.transport.clone(), self.config.retry)
                .with_encryption_key(key);
            Arc::new(Remote::new(client))
        });
        *bound = bound_next;
        *self.remote.write().unwrap_or_else(|p| p.into_inner()) = remote;
        drop(bound);
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
        self.clock.lock().await.node()
    }

    /// Calls `listener` after every committed change until the subscription is dropped.
    pub fn subscribe(&self, listener: Listener) -> Subscription {
        self.events.add(listener)
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub(crate) fn after_local_write(&self, table: &str, ids: Vec<String>) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.events.emit(ChangeEvent {
            table: table.to_owned(),
            ids,
            origin: ChangeOrigin::Local,
        });
    }

    /// Pushes local changes, then pulls remote ones (see [`crate::sync`]).
    ///
    /// Calls that overlap coalesce: a caller that waited for a running sync
    /// reuses its report if that sync already saw all of the caller's
    /// writes. A sync in another process sharing the replica file is waited
    /// for, up to `Config::sync_lock_timeout_ms`.
    ///
    /// Errors: [`Error::NoRemote`]; [`Error::DatabaseLocked`] when another
    /// process kept syncing past the timeout; the network, server, auth and
    /// storage errors of the sync (also kept in `status().last_error`).
    pub async fn sync(&self) -> Result<SyncReport> {
        self.sync_with_progress(&|_| {}).await
    }

    /// [`Database::sync`], reporting progress after every batch and page.
    pub async fn sync_with_progress(
        &self,
        progress: &(dyn Fn(SyncProgress) + Sync),
    ) -> Result<SyncReport> {
        self.check_online()?;
        let remote = self.remote_handle().ok_or(Error::NoRemote)?;
        let writes_at_call = self.writes.load(Ordering::SeqCst);
        let done_at_call = self.syncs_done.load(Ordering::SeqCst);
        let _guard = self.sync_lock.lock().await;
        if self.syncs_done.load(Ordering::SeqCst) > done_at_call {
            let last = *self.last_sync.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((writes_seen, _, report)) = last {
                if writes_seen >= writes_at_call {
                    return Ok(report);
                }
            }
        }
        let mut flag = SyncingFlag::raise(&self.status);
        let started = self.now_ms();
        let result = self
            .within_deadline(async {
                // Another process sharing the file may be syncing it: wait for it.
                let _other_processes = self.lock_sync_across_processes().await?;
                let writes_at_start = self.writes.load(Ordering::SeqCst);
                let counts = self.sync_once(&remote, progress).await?;
                let finished = self.now_ms();
                self.store
                    .write(&[state::set(state::KEY_LAST_SYNC, finished.to_string())])
                    .await?;
                Ok((counts, writes_at_start, finished))
            })
            .await;
        let mut status = flag.lower();
        match result {
            Ok(((pushed, pulled), writes_at_start, finished)) => {
                let report = SyncReport {
                    pushed,
                    pulled,
                    duration_ms: finished.saturating_sub(started),
                };
                status.note_error(None);
                status.last_sync_at_ms = Some(finished);
                drop(status);
                for waiter in self
                    .first_sync
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .drain(..)
                {
                    let _ = waiter.send(());
                }
                *self.last_sync.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((writes_at_start, finished, report));
                self.syncs_done.fetch_add(1, Ordering::SeqCst);
                Ok(report)
            }
            Err(e) => {
                tracing::warn!(error = %e, "sync failed");
                status.note_error(Some(&e));
                Err(e)
            }
        }
    }

    /// `sync` within `Config::sync_timeout_ms` (none when 0): past it, the
    /// sync is dropped where it stands (every page and batch it committed
    /// stays) and [`Error::SyncTimeout`] returned.
    async fn within_deadline<T>(
        &self,
        sync: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let ms = self.config.sync_timeout_ms;
        if ms == 0 {
            return sync.await;
        }
        let sync = std::pin::pin!(sync);
        let timer = std::pin::pin!(self.transport.sleep(ms));
        match futures::future::select(sync, timer).await {
            futures::future::Either::Left((result, _)) => result,
            futures::future::Either::Right(((), _)) => Err(Error::SyncTimeout { ms }),
        }
    }

    /// Resolves once this replica has completed a sync (pushed, pulled every
    /// table to the server's end, and applied it): at once if one ever
    /// completed (by any process sharing the file), else when the next
    /// successful sync of this handle ends. It never fails and never times
    /// out on its own: offline, it waits until a sync completes (auto-sync,
    /// or the app's own `sync()`), so bound it with the app's timeout. A
    /// fresh device shows its lists after it, not empty ones.
    ///
    /// Errors: [`Error::Storage`] reading the file, or when the database
    /// is closed while waiting.
    pub async fn wait_for_first_sync(&self) -> Result<()> {
        if self.status_state().last_sync_at_ms.is_some() {
            return Ok(());
        }
        // Registered before looking, so a sync that ends in between is heard.
        let (tx, waiting) = futures::channel::oneshot::channel();
        self.first_sync
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        if self.first_sync_done().await? {
            return Ok(());
        }
        waiting.await.map_err(|_| {
            Error::Storage(StoreError::new(
                StoreErrorKind::Other,
                "the database was closed before its first sync",
            ))
        })
    }

    /// Whether a sync of this file ever completed (this process's, or
    /// another's sharing the file).
    async fn first_sync_done(&self) -> Result<bool> {
        if self.status_state().last_sync_at_ms.is_some() {
            return Ok(true);
        }
        let persisted = self.store.query(&state::get(state::KEY_LAST_SYNC)).await?;
        Ok(!persisted.rows.is_empty())
    }

    /// Runs the sync engine once on `remote`; what it found goes into the
    /// status whether it succeeded or not.
    async fn sync_once(
        &self,
        remote: &Remote,
        progress: &(dyn Fn(SyncProgress) + Sync),
    ) -> Result<(u64, u64)> {
        let syncer = Syncer::new(
            &self.store,
            remote,
            &self.config,
            &self.clock,
            &self.events,
            progress,
        );
        let result = syncer.run().await;
        let found = syncer.into_found();
        if found.started_over {
            // A sync that started before must not stand in for one after.
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        self.status_state().note(found);
        result
    }

    /// Waits (in steps of [`SYNC_LOCK_POLL_MS`], up to
    /// `Config::sync_lock_timeout_ms`) until no other process syncs this
    /// replica file, and holds that until the guard drops.
    ///
    /// Errors: [`Error::DatabaseLocked`] after the timeout.
    async fn lock_sync_across_processes(&self) -> Result<crate::store::SyncGuard> {
        let mut waited = 0;
        loop {
            if let Some(guard) = self.store.unshared().try_lock_sync()? {
                return Ok(guard);
            }
            if waited >= self.config.sync_lock_timeout_ms {
                return Err(Error::DatabaseLocked(
                    crate::error::LockHolder::OtherProcess,
                ));
            }
            self.transport.sleep(SYNC_LOCK_POLL_MS).await;
            waited += SYNC_LOCK_POLL_MS;
        }
    }

    pub(crate) fn status_state(&self) -> std::sync::MutexGuard<'_, StatusState> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
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
        let quarantined = self.quarantined_count().await?;
        let s = self.status_state();
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
            quarantined,
            online: self.auto_sync.is_online(),
            auto_sync: self.config.auto_sync.is_some(),
            refused_tables: s.refused_tables.clone(),
        })
    }

    /// The latest clock value this replica issued or observed.
    pub async fn last_clock(&self) -> Timestamp {
        let h = self.clock.lock().await;
        Timestamp {
            hlc: h.last(),
            node: h.node(),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Database {
    /// Opens a replica in a local file with the native store, HTTP transport and wall clock.
    ///
    /// Other processes may have the same file open (see `ARCHITECTURE.md`,
    /// "Several processes, one file"); inside one process a file has one
    /// `Database` (share it): a second open fails with
    /// [`Error::DatabaseLocked`] ([`crate::LockHolder::ThisProcess`]) until
    /// the first is dropped.
    pub async fn open_native(
        path: impl AsRef<std::path::Path>,
        mut config: Config,
    ) -> Result<Database> {
        let file_key = config.file_key.take();
        let claim = crate::store::sqlite::FileClaim::take(path.as_ref()).map_err(|e| {
            if e.is_locked() {
                Error::DatabaseLocked(crate::error::LockHolder::ThisProcess {
                    path: path.as_ref().display().to_string(),
                })
            } else {
                e.into()
            }
        })?;
        // One timeout for waiting on a writer, in this process or another.
        let store = crate::store::sqlite::SqliteStore::open_keyed(
            path,
            std::time::Duration::from_millis(config.lock_timeout_ms),
            file_key.as_ref().map(crate::file_key::FileKey::as_bytes),
        )?;
        let transport = crate::transport::native::NativeTransport::new(
            std::time::Duration::from_millis(config.request_timeout_ms),
        )?;
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
