//! [`Replica`]: one open database, exported to JS. Records cross as the
//! core serializes them (its feature `js`: the package's field names, with
//! TypeScript types generated into `erth_wasm.d.ts`), as plain objects the
//! worker can `postMessage` unchanged; errors as `ErthError`s. Options are
//! read by serde into [`ReplicaOptions`].

use crate::error::{console_error, invalid, to_js};
use crate::transaction::WriteTx;
use crate::values::{js, params_from_js, statements_from_js};
use erth_core::store::browser::{self, Storage};
use erth_core::transport::browser::{describe_js, BrowserTransport};
use erth_core::{AutoSync, AutoSyncOptions, ChangeEvent, Config, Database, LiveQuery, Rows};
use js_sys::Function;
use serde::Deserialize;
use std::cell::{Cell, RefCell};
use std::sync::Arc;

/// Most rows in one pull page in a browser: a page is decoded and checked
/// in the Worker's one thread, and reads wait meanwhile (10,000-row pages,
/// the native default, held a tab's reads for up to 120 ms; measured by
/// `cargo xtask bench --only browser-sync`, 2026-12-07).
const BROWSER_PULL_PAGE_ROWS: usize = 2_500;
use wasm_bindgen::prelude::*;

/// Options of [`Replica::open`] (no `Debug`: they hold the token); the
/// main thread's `OpenOptions` are these.
#[derive(Deserialize, tsify::Tsify)]
#[serde(rename_all = "camelCase")]
#[tsify(missing_as_null)]
struct ReplicaOptions {
    /// Database name: 1-64 of `A-Z a-z 0-9 . _ -`, not starting with `.`.
    name: String,
    /// Absent (default): OPFS, or IndexedDB where the browser has no OPFS
    /// sync access handles (WebKitGTK, private windows); both need a secure
    /// context (https, or http://localhost). `"opfs"`: OPFS or fail (only in
    /// a dedicated Worker); `"indexeddb"`: IndexedDB (see the README for
    /// what it relaxes); `"memory"`: gone when closed.
    #[serde(default)]
    storage: Option<StorageOption>,
    /// Server URL: `libsql://…`, `https://…`, or `http://` for local and
    /// private servers. `""`, `null` or omitted: local-only.
    #[serde(default)]
    url: Option<String>,
    /// The synced tables: the schema's JSON text (handed to the core
    /// unchanged). Omitted: the built-in `todos` table.
    #[serde(default)]
    schema: Option<String>,
    /// Bearer token (also accepted as an `authToken` query parameter of
    /// `url`). Never logged.
    #[serde(default)]
    auth_token: Option<String>,
    /// Key of a database encrypted with your own key (Turso Cloud): sent as
    /// `x-turso-encryption-key` on every request. Never logged.
    #[serde(default)]
    encryption_key: Option<String>,
    /// The keys of the schema's end-to-end encrypted columns
    /// (`"encrypted": true`), the one that seals new values first: each 64
    /// hex digits (32 bytes) or a recovery phrase
    /// (`ErthDb.newRecoveryPhrase()`). Required when a column is
    /// encrypted. Never logged.
    #[serde(default)]
    column_keys: Option<Vec<String>>,
    /// The key of the database's file in OPFS, encrypted at rest (SQLCipher
    /// 4, the native files' format): 64 hex digits (32 bytes) or a recovery
    /// phrase (`ErthDb.newRecoveryPhrase()`; the file key it gives is not
    /// the same phrase's column key). A new database is created encrypted;
    /// an existing one opens only with its key (`WrongKey` otherwise, the
    /// file untouched). Needs OPFS: with `storage: "indexeddb"` or
    /// `"memory"`, or where OPFS is missing, opening fails (`InvalidInput`).
    /// Never logged.
    #[serde(default)]
    file_key: Option<String>,
    /// Allow `http://` to a public host (the token would travel in clear text).
    #[serde(default)]
    allow_insecure_http: Option<bool>,
    /// How long (ms) to wait for the tab holding this database before
    /// `DatabaseLocked` (default 5000; 0: fail at once).
    #[serde(default)]
    lock_timeout_ms: Option<u32>,
    /// Per-request timeout (ms, default 30000): a request the server has
    /// not answered by then fails with `Network` ("timed out").
    #[serde(default)]
    request_timeout_ms: Option<u32>,
    /// Whole-sync timeout (ms, default 600000; 0: none): a sync still
    /// running then stops with `Network` ("took longer than its limit");
    /// what it committed stays and the next sync resumes there.
    #[serde(default)]
    sync_timeout_ms: Option<u32>,
    /// Sync by itself after local writes (debounced), on an interval and
    /// when the network returns (default off); `true`: with the defaults.
    #[serde(default)]
    auto_sync: Option<AutoSyncOption>,
}

#[derive(Deserialize, tsify::Tsify)]
#[serde(rename_all = "lowercase")]
enum StorageOption {
    Opfs,
    IndexedDb,
    Memory,
}

#[derive(Deserialize, tsify::Tsify)]
#[serde(untagged)]
enum AutoSyncOption {
    On(bool),
    With(AutoSyncOptions),
}

/// Options the messages of bad ones never show (only the option's name).
const SECRETS: &[&str] = &["authToken", "encryptionKey", "columnKeys", "fileKey"];

impl ReplicaOptions {
    fn from_js(options: JsValue) -> Result<ReplicaOptions, JsValue> {
        let de = serde_wasm_bindgen::Deserializer::from(options);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.inner().to_string();
            let why = inner.trim_start_matches("Error: ");
            match path.as_str() {
                "." => invalid(format!("options must be an object with a name: {why}")),
                secret if SECRETS.contains(&secret) => {
                    invalid(format!("option {secret} must be a string"))
                }
                _ => invalid(format!("option {path}: {why}")),
            }
        })
    }
}

/// One open database. Methods are async and may run concurrently: local
/// reads and writes never wait for a running sync.
#[wasm_bindgen]
pub struct Replica {
    /// Dropped first: auto-sync stops before the database closes.
    auto_sync: RefCell<Option<AutoSync>>,
    db: Arc<Database>,
    storage: Storage,
    /// Dropped after the database: this worker no longer has it open.
    _open_here: OpenHere,
}

thread_local! {
    /// The persistent databases this worker (so this tab) has open, by
    /// name: when a second open of one of them cannot get its lock, the
    /// error says this tab holds it, not another.
    static OPEN_HERE: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// A name in [`OPEN_HERE`] while its [`Replica`] lives (`None`: in memory).
struct OpenHere(Option<String>);

impl OpenHere {
    fn take(name: &str) -> OpenHere {
        OPEN_HERE.with(|open| open.borrow_mut().push(name.to_owned()));
        OpenHere(Some(name.to_owned()))
    }

    /// `e`, saying this tab holds database `name` when it does.
    fn locked_here(e: erth_core::Error, name: &str) -> erth_core::Error {
        let here = OPEN_HERE.with(|open| open.borrow().iter().any(|n| n == name));
        match e {
            erth_core::Error::DatabaseLocked(_) if here => {
                erth_core::Error::DatabaseLocked(erth_core::LockHolder::ThisTab {
                    name: name.to_owned(),
                })
            }
            other => other,
        }
    }
}

impl Drop for OpenHere {
    fn drop(&mut self) {
        if let Some(name) = self.0.take() {
            OPEN_HERE.with(|open| {
                let mut open = open.borrow_mut();
                if let Some(i) = open.iter().position(|n| *n == name) {
                    open.remove(i);
                }
            });
        }
    }
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").field("db", &self.db).finish()
    }
}

/// Maps a core result's error to an `ErthError`.
macro_rules! core {
    ($call:expr) => {
        $call.await.map_err(|e| to_js(&e))
    };
}

#[wasm_bindgen]
impl Replica {
    /// Opens (creating if needed) a database. `storage: "opfs"` persists
    /// it in the Origin Private File System and works only in a dedicated
    /// Worker; it fails with `DatabaseLocked` when another tab keeps the
    /// database open for longer than `lockTimeoutMs`. `InvalidInput` names
    /// a bad option (never showing a token's or key's value).
    pub async fn open(
        #[wasm_bindgen(unchecked_param_type = "ReplicaOptions")] options: JsValue,
    ) -> Result<Replica, JsValue> {
        let o = ReplicaOptions::from_js(options)?;
        let defaults = Config::default();
        let mut config = Config {
            url: o.url,
            auth_token: o.auth_token,
            encryption_key: o.encryption_key,
            allow_insecure_http: o.allow_insecure_http.unwrap_or(false),
            lock_timeout_ms: o
                .lock_timeout_ms
                .map_or(defaults.lock_timeout_ms, u64::from),
            request_timeout_ms: o
                .request_timeout_ms
                .map_or(defaults.request_timeout_ms, u64::from),
            sync_timeout_ms: o
                .sync_timeout_ms
                .map_or(defaults.sync_timeout_ms, u64::from),
            auto_sync: match o.auto_sync {
                None | Some(AutoSyncOption::On(false)) => None,
                Some(AutoSyncOption::On(true)) => Some(AutoSyncOptions::default()),
                Some(AutoSyncOption::With(options)) => Some(options),
            },
            pull_page_rows: BROWSER_PULL_PAGE_ROWS,
            column_keys: match &o.column_keys {
                None => None,
                Some(keys) => {
                    Some(erth_core::encrypted::ColumnKeys::from_text(keys).map_err(|e| to_js(&e))?)
                }
            },
            ..defaults
        };
        if let Some(schema) = &o.schema {
            config = config.with_schema_json(schema).map_err(|e| to_js(&e))?;
        }
        let (name, lock_ms) = (o.name.as_str(), config.lock_timeout_ms as u32);
        let file_key = match &o.file_key {
            None => None,
            Some(text) => {
                if matches!(
                    o.storage,
                    Some(StorageOption::IndexedDb | StorageOption::Memory)
                ) {
                    return Err(to_js(&erth_core::Error::InvalidInput(
                        "fileKey (encryption at rest) needs OPFS storage".into(),
                    )));
                }
                let key = erth_core::file_key::FileKey::from_text(text).map_err(|e| to_js(&e))?;
                Some(*key.as_bytes())
            }
        };
        let store = match o.storage {
            None => browser::open_persistent(name, lock_ms, file_key).await,
            Some(StorageOption::Opfs) => browser::open_opfs(name, lock_ms, file_key).await,
            Some(StorageOption::IndexedDb) => browser::open_indexeddb(name, lock_ms).await,
            Some(StorageOption::Memory) => {
                browser::check_name(name).and_then(|()| browser::open_memory())
            }
        }
        .map_err(|e| to_js(&OpenHere::locked_here(e, name)))?;
        let open_here = match o.storage {
            Some(StorageOption::Memory) => OpenHere(None),
            _ => OpenHere::take(name),
        };
        let storage = store.storage();
        let transport = BrowserTransport::new(config.request_timeout_ms as u32);
        // Core takes `Arc<dyn Store>` on every target; wasm has one thread.
        #[allow(clippy::arc_with_non_send_sync)]
        let (store, transport) = (Arc::new(store), Arc::new(transport));
        let db = core!(Database::open(
            store,
            transport,
            Arc::new(erth_core::SystemClock),
            config
        ))?;
        #[allow(clippy::arc_with_non_send_sync)]
        let db = Arc::new(db);
        Ok(Replica {
            auto_sync: RefCell::new(None),
            db,
            storage,
            _open_here: open_here,
        })
    }

    /// Where the database is kept: `"opfs"`, `"indexeddb"` or `"memory"`.
    #[wasm_bindgen(
        getter,
        unchecked_return_type = "\"opfs\" | \"indexeddb\" | \"memory\""
    )]
    pub fn storage(&self) -> String {
        self.storage.as_str().to_owned()
    }

    /// Starts the core's auto-sync if the options asked for it (`autoSync`):
    /// once now, then after local writes (debounced), on the interval and
    /// when back online. `listener(true)` when one starts, `listener(false)`
    /// when it ended (its outcome is in `status()`). Stops when freed.
    #[wasm_bindgen(js_name = startAutoSync)]
    pub fn start_auto_sync(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(syncing: boolean) => void")] listener: Function,
    ) -> Result<(), JsValue> {
        #[allow(clippy::arc_with_non_send_sync)]
        let observer: erth_core::autosync::SyncObserver = Arc::new(move |syncing: bool| {
            if let Err(e) = listener.call1(&JsValue::NULL, &syncing.into()) {
                console_error(&format!(
                    "erth-sync: a sync listener threw: {}",
                    describe_js(&e)
                ));
            }
        });
        let auto_sync = AutoSync::start(&self.db, Some(observer)).map_err(|e| to_js(&e))?;
        *self.auto_sync.borrow_mut() = Some(auto_sync);
        Ok(())
    }

    /// Adds a todo; resolves to it.
    #[wasm_bindgen(js_name = addTodo, unchecked_return_type = "Todo")]
    pub async fn add_todo(&self, title: String) -> Result<JsValue, JsValue> {
        js(&core!(self.db.add_todo(&title))?)
    }

    /// Live todos, newest first.
    #[wasm_bindgen(js_name = listActive, unchecked_return_type = "Todo[]")]
    pub async fn list_active(&self) -> Result<JsValue, JsValue> {
        js(&core!(self.db.list_active_todos())?)
    }

    /// The todo with that id; `NotFound` when unknown or deleted.
    #[wasm_bindgen(js_name = getTodo, unchecked_return_type = "Todo")]
    pub async fn get_todo(&self, id: String) -> Result<JsValue, JsValue> {
        js(&core!(self.db.get_todo(&id))?)
    }

    /// Renames a todo; resolves to it.
    #[wasm_bindgen(js_name = renameTodo, unchecked_return_type = "Todo")]
    pub async fn rename_todo(&self, id: String, title: String) -> Result<JsValue, JsValue> {
        js(&core!(self.db.rename_todo(&id, &title))?)
    }

    /// Marks a todo completed or not; resolves to it.
    #[wasm_bindgen(js_name = setCompleted, unchecked_return_type = "Todo")]
    pub async fn set_completed(&self, id: String, completed: bool) -> Result<JsValue, JsValue> {
        js(&core!(self.db.set_todo_completed(&id, completed))?)
    }

    /// Deletes a todo (a tombstone that syncs); `false` when it was missing
    /// or already deleted.
    #[wasm_bindgen(js_name = deleteTodo)]
    pub async fn delete_todo(&self, id: String) -> Result<bool, JsValue> {
        core!(self.db.delete_todo(&id))
    }

    /// Runs one statement of the app's SQL (positional `?` parameters) as
    /// its own transaction: `{ rowsAffected, rows }`.
    #[wasm_bindgen(unchecked_return_type = "ExecuteResult")]
    pub async fn execute(
        &self,
        sql: String,
        #[wasm_bindgen(unchecked_param_type = "SqlParam[] | undefined")] params: JsValue,
    ) -> Result<JsValue, JsValue> {
        let params = params_from_js(&params)?;
        js(&core!(self.db.execute(&sql, &params))?)
    }

    /// Runs one read-only statement: its rows as objects keyed by column
    /// name. `call` is the app's name for the call (`"getAll"`), which an
    /// error names (`getAll() runs read-only statements; ...`); default
    /// `query`.
    #[wasm_bindgen(unchecked_return_type = "Row[]")]
    pub async fn query(
        &self,
        sql: String,
        #[wasm_bindgen(unchecked_param_type = "SqlParam[] | undefined")] params: JsValue,
        call: Option<String>,
    ) -> Result<JsValue, JsValue> {
        let params = params_from_js(&params)?;
        let call = format!("{}()", call.as_deref().unwrap_or("query"));
        let rows = self
            .db
            .query(&sql, &params)
            .await
            .map_err(|e| to_js(&e.for_call(&call)))?;
        js(&rows)
    }

    /// Runs `statements` (`[{ sql, params }]`) as one local transaction:
    /// all commit or none; resolves to each statement's result.
    #[wasm_bindgen(unchecked_return_type = "ExecuteResult[]")]
    pub async fn transaction(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Statement[]")] statements: JsValue,
    ) -> Result<JsValue, JsValue> {
        let statements = statements_from_js(&statements)?;
        js(&core!(self.db.transaction(&statements))?)
    }

    /// Opens an interactive write transaction (see [`WriteTx`]): waits
    /// until no other one is open (`DatabaseLocked` after `lockTimeoutMs`).
    #[wasm_bindgen(js_name = writeTransaction)]
    pub async fn write_transaction(&self) -> Result<WriteTx, JsValue> {
        Ok(WriteTx::new(core!(self.db.write_transaction())?))
    }

    /// Starts a live query: `listener(rows)` now (before this returns), then
    /// after each committed change to a table it reads, when the rows
    /// differ. Ends when the returned handle is stopped or freed.
    pub fn watch(
        &self,
        sql: String,
        #[wasm_bindgen(unchecked_param_type = "SqlParam[] | undefined")] params: JsValue,
        #[wasm_bindgen(unchecked_param_type = "(rows: Row[]) => void")] listener: Function,
    ) -> Result<Watch, JsValue> {
        let params = params_from_js(&params)?;
        let deliver = move |rows: &Rows| {
            if let Err(e) = js(rows).and_then(|rows| listener.call1(&JsValue::NULL, &rows)) {
                console_error(&format!(
                    "erth-sync: a live query listener failed: {}",
                    describe_js(&e)
                ));
            }
        };
        let live = self
            .db
            .watch(&sql, &params, Arc::new(deliver))
            .map_err(|e| to_js(&e))?;
        Ok(Watch(Cell::new(Some(live))))
    }

    /// Pushes local changes, then pulls remote ones.
    #[wasm_bindgen(unchecked_return_type = "SyncReport")]
    pub async fn sync(&self) -> Result<JsValue, JsValue> {
        js(&core!(self.db.sync())?)
    }

    /// Pending changes, last sync, last error (its kind and the server's
    /// code), syncing, online, auto-sync, remote.
    #[wasm_bindgen(unchecked_return_type = "SyncStatus")]
    pub async fn status(&self) -> Result<JsValue, JsValue> {
        js(&core!(self.db.status())?)
    }

    /// The rows the server refused (set aside, still pending), oldest first.
    #[wasm_bindgen(js_name = rejectedRows, unchecked_return_type = "RejectedRow[]")]
    pub async fn rejected_rows(&self) -> Result<JsValue, JsValue> {
        js(&core!(self.db.rejected_rows())?)
    }

    /// Resolves once this database has completed a sync (at once if one
    /// ever did); never on its own while offline.
    #[wasm_bindgen(js_name = waitForFirstSync)]
    pub async fn wait_for_first_sync(&self) -> Result<(), JsValue> {
        core!(self.db.wait_for_first_sync())
    }

    /// Subscribes this database to the rows of `table` that `filter` (one
    /// SQL expression with `?` parameters, run on the server) selects:
    /// partial sync (see the core's `Database::add_subscription`). `ttlMs`:
    /// it ends that many ms from now. `InvalidInput` for a refused name,
    /// filter or time to live.
    #[wasm_bindgen(js_name = addSubscription)]
    pub async fn add_subscription(
        &self,
        name: String,
        table: String,
        filter: String,
        #[wasm_bindgen(unchecked_param_type = "SqlParam[] | undefined")] params: JsValue,
        #[wasm_bindgen(js_name = ttlMs)] ttl_ms: Option<f64>,
    ) -> Result<(), JsValue> {
        let params = params_from_js(&params)?;
        let ttl_ms = match ttl_ms {
            Some(ms) if !(ms.is_finite() && ms >= 0.0 && ms <= u64::MAX as f64) => {
                return Err(invalid("ttlMs is a number of milliseconds, 0 or more"))
            }
            ms => ms.map(|ms| ms as u64),
        };
        core!(self
            .db
            .add_subscription(&name, &table, &filter, &params, ttl_ms))
    }

    /// Ends a subscription (its rows leave at the next sync unless another
    /// holds them); resolves to whether it existed.
    #[wasm_bindgen(js_name = removeSubscription)]
    pub async fn remove_subscription(&self, name: String) -> Result<bool, JsValue> {
        core!(self.db.remove_subscription(&name))
    }

    /// Removes from the server the tombstones whose delete is more than
    /// `olderThanMs` ms old (default 30 days; 0: all), in batches syncs
    /// running meanwhile do not notice; replicas behind it catch up by
    /// comparing ids at their next sync. Resolves to what it removed.
    #[wasm_bindgen(unchecked_return_type = "PurgeReport")]
    pub async fn purge(
        &self,
        #[wasm_bindgen(js_name = olderThanMs)] older_than_ms: Option<f64>,
    ) -> Result<JsValue, JsValue> {
        let ms = match older_than_ms {
            Some(ms) if !(ms.is_finite() && ms >= 0.0 && ms <= u64::MAX as f64) => {
                return Err(invalid(
                    "olderThanMs is a number of milliseconds, 0 or more",
                ))
            }
            Some(ms) => ms as u64,
            None => erth_core::purge::DEFAULT_PURGE_AGE_MS,
        };
        js(&core!(self.db.purge(ms))?)
    }

    /// This database's subscriptions, by name.
    #[wasm_bindgen(unchecked_return_type = "SyncSubscription[]")]
    pub async fn subscriptions(&self) -> Result<JsValue, JsValue> {
        js(&core!(self.db.subscriptions())?)
    }

    /// Resolves once the subscription's rows are here, syncing as needed;
    /// offline it keeps trying. `NotFound` for an unknown name.
    #[wasm_bindgen(js_name = waitForSubscription)]
    pub async fn wait_for_subscription(&self, name: String) -> Result<(), JsValue> {
        core!(self.db.wait_for_subscription(&name))
    }

    /// Rows from the server this database would not apply (they break the
    /// row layout), with why; the others synced.
    #[wasm_bindgen(js_name = quarantinedRows, unchecked_return_type = "QuarantinedRow[]")]
    pub async fn quarantined_rows(&self) -> Result<JsValue, JsValue> {
        js(&core!(self.db.quarantined_rows())?)
    }

    /// Empties the list of quarantined rows (they stay unapplied); resolves
    /// to how many there were.
    #[wasm_bindgen(js_name = forgetQuarantined)]
    pub async fn forget_quarantined(&self) -> Result<f64, JsValue> {
        Ok(core!(self.db.forget_quarantined())? as f64)
    }

    /// Makes every refused row pending again (the next sync pushes them);
    /// resolves to how many there were.
    #[wasm_bindgen(js_name = retryRejected)]
    pub async fn retry_rejected(&self) -> Result<f64, JsValue> {
        Ok(core!(self.db.retry_rejected())? as f64)
    }

    /// Drops the local changes of a refused row and takes the server's
    /// version (a row the server never had is removed).
    #[wasm_bindgen(js_name = discardRejected)]
    pub async fn discard_rejected(&self, table: String, id: String) -> Result<(), JsValue> {
        core!(self.db.discard_rejected(&table, &id))
    }

    /// Replaces the auth token for the next requests (`null` removes it).
    #[wasm_bindgen(js_name = setAuthToken)]
    pub fn set_auth_token(&self, token: Option<String>) -> Result<(), JsValue> {
        self.db.set_auth_token(token.as_deref());
        Ok(())
    }

    /// Sets the server (`null` makes the database local-only); local
    /// changes made meanwhile sync later. The encryption key is sent to
    /// `url` only if it has the origin the key was given for.
    #[wasm_bindgen(js_name = setRemote)]
    pub fn set_remote(&self, url: Option<String>, token: Option<String>) -> Result<(), JsValue> {
        self.db
            .set_remote(url.as_deref(), token.as_deref())
            .map_err(|e| to_js(&e))
    }

    /// `setRemote` with the encryption key of that server (`null`: none),
    /// sent to that origin only; `InvalidInput` for a key with a plain
    /// `http://` URL to another machine.
    #[wasm_bindgen(js_name = setRemoteWithKey)]
    pub fn set_remote_with_key(
        &self,
        url: Option<String>,
        token: Option<String>,
        encryption_key: Option<String>,
    ) -> Result<(), JsValue> {
        self.db
            .set_remote_with_key(url.as_deref(), token.as_deref(), encryption_key.as_deref())
            .map_err(|e| to_js(&e))
    }

    /// Switches network use off (`sync()` rejects with `Network`, auto-sync
    /// waits) or on (auto-sync syncs at once).
    #[wasm_bindgen(js_name = setOnline)]
    pub fn set_online(&self, online: bool) {
        self.db.set_online(online);
    }

    /// Calls `listener(event)` after every committed change (local writes
    /// and pulled rows) until the subscription is dropped or unsubscribed.
    /// A listener that throws is reported on the console.
    pub fn subscribe(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(event: ChangeEvent) => void")] listener: Function,
    ) -> Result<Subscription, JsValue> {
        let sub = self.db.subscribe(Arc::new(move |event: &ChangeEvent| {
            if let Err(e) = js(event).and_then(|e| listener.call1(&JsValue::NULL, &e)) {
                console_error(&format!(
                    "erth-sync: a change listener threw: {}",
                    describe_js(&e)
                ));
            }
        }));
        Ok(Subscription(Cell::new(Some(sub))))
    }
}

/// The canonical JSON text of a schema (`null`: the built-in `todos`
/// table), the core's: two tabs declare the same tables exactly when their
/// texts are equal. `InvalidInput` for a schema the core refuses.
#[wasm_bindgen(js_name = canonicalSchema)]
pub fn canonical_schema(schema: Option<String>) -> Result<String, JsValue> {
    match schema {
        None => Ok(erth_core::Schema::default().to_json()),
        Some(text) => erth_core::Schema::from_json(&text)
            .map(|s| s.to_json())
            .map_err(|e| to_js(&e)),
    }
}

/// The server URL as tabs compare it: the core's form of it (`libsql://` as
/// `https://`, no trailing `/`, no `authToken` query parameter, so it holds
/// no secret and can be shown to every tab), or `null` for local-only
/// (`""`, `null`). `InvalidInput` for a URL the core refuses (with
/// `allowInsecureHttp` as [`Replica::open`] reads it).
#[wasm_bindgen(js_name = canonicalRemote)]
pub fn canonical_remote(
    url: Option<String>,
    allow_insecure_http: Option<bool>,
) -> Result<Option<String>, JsValue> {
    match url.filter(|u| !u.trim().is_empty()) {
        None => Ok(None),
        Some(url) => erth_core::Endpoint::parse(&url, allow_insecure_http.unwrap_or(false))
            .map(|(endpoint, _token)| Some(endpoint.display_url()))
            .map_err(|e| to_js(&e)),
    }
}

/// A new recovery phrase for `columnKeys`: 24 lowercase English BIP-39
/// words separated by single spaces (256 random bits; the core's
/// `recovery` module says how a phrase becomes a key).
#[wasm_bindgen(js_name = newRecoveryPhrase)]
pub fn new_recovery_phrase() -> Result<String, JsValue> {
    erth_core::recovery::new_recovery_phrase().map_err(|e| to_js(&e))
}

/// Changes the key database `name` is encrypted with at rest in OPFS:
/// `oldKey` `null` encrypts a plain database, `newKey` `null` decrypts it;
/// each key is 64 hex digits or a recovery phrase (as `fileKey`). The
/// database must be closed in every tab (waits up to `lockTimeoutMs`, the
/// open default if absent, then `DatabaseLocked`); the core's
/// `store::browser::change_file_key` says how an interruption is survived.
/// `WrongKey` if `oldKey` does not open it (nothing changed);
/// `InvalidInput` for a malformed key (never showing it) or without OPFS.
#[wasm_bindgen(js_name = changeFileKey)]
pub async fn change_file_key(
    name: String,
    old_key: Option<String>,
    new_key: Option<String>,
    lock_timeout_ms: Option<u32>,
) -> Result<(), JsValue> {
    let key = |text: Option<String>, which: &str| -> Result<Option<[u8; 32]>, JsValue> {
        text.map(|text| {
            erth_core::file_key::FileKey::from_text(&text)
                .map(|key| *key.as_bytes())
                .map_err(|e| {
                    let why = e.to_string();
                    invalid(format!(
                        "{which}: {}",
                        why.trim_start_matches("invalid input: ")
                    ))
                })
        })
        .transpose()
    };
    let (old, new) = (key(old_key, "oldKey")?, key(new_key, "newKey")?);
    let lock_ms = lock_timeout_ms.unwrap_or(Config::default().lock_timeout_ms as u32);
    browser::change_file_key(&name, lock_ms, old, new)
        .await
        .map_err(|e| to_js(&e))
}

/// A change subscription; `unsubscribe()` (or `free()`) ends it.
#[wasm_bindgen]
pub struct Subscription(Cell<Option<erth_core::Subscription>>);

/// A live query; `stop()` (or `free()`) ends it.
#[wasm_bindgen]
pub struct Watch(Cell<Option<LiveQuery>>);

#[wasm_bindgen]
impl Subscription {
    /// Stops the listener now; calling it again does nothing.
    pub fn unsubscribe(&self) -> Result<(), JsValue> {
        drop(self.0.take());
        Ok(())
    }
}

#[wasm_bindgen]
impl Watch {
    /// Stops the live query now: no listener call starts after this;
    /// calling it again does nothing.
    pub fn stop(&self) -> Result<(), JsValue> {
        drop(self.0.take());
        Ok(())
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription")
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watch")
    }
}
