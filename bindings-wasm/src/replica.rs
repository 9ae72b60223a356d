//! [`Replica`]: one open database, exported to JS. Values cross as plain JS
//! objects (so the worker can `postMessage` them unchanged); errors as
//! `ErthError`s.

use crate::error::{console_error, invalid, to_js};
use crate::values::{params_from_js, result_js, rows_js, statements_from_js};
use erth_core::store::browser::{open_indexeddb, open_memory, open_opfs, open_persistent, Storage};
use erth_core::transport::browser::BrowserTransport;
use erth_core::{
    ChangeEvent, ChangeOrigin, Config, Database, ErrorKind, LiveQuery, RejectedRow, Rows,
    SyncReport, SyncStatus, SystemClock, Todo,
};
use js_sys::{Array, Function, Object, Reflect};
use std::cell::Cell;
use std::sync::Arc;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** Options of `Replica.open`. */
export interface ReplicaOptions {
  /** Database name: 1-64 of `A-Z a-z 0-9 . _ -`, not starting with `.`. */
  name: string;
  /**
   * Absent (default): OPFS, or IndexedDB where this browser has no OPFS sync access handles.
   * `"opfs"`: OPFS only (dedicated Worker). `"indexeddb"`: IndexedDB. `"memory"`: kept nowhere.
   */
  storage?: "opfs" | "indexeddb" | "memory";
  /** Server URL (`libsql://`, `https://`, or `http://` for local servers); `""` or absent: local-only. */
  url?: string | null;
  /** The synced tables: the schema's JSON text (passed to the core unchanged); absent: the built-in `todos` table. */
  schema?: string | null;
  authToken?: string | null;
  /** Key of a database encrypted with your own key (Turso Cloud), sent as `x-turso-encryption-key`; never logged. */
  encryptionKey?: string | null;
  /** Allow `http://` to non-private hosts (the token would travel in clear text). */
  allowInsecureHttp?: boolean;
  /** How long to wait for another tab to close the database (default 5000; 0 = fail at once). */
  lockTimeoutMs?: number;
  /** Per-request timeout (default 30000). */
  requestTimeoutMs?: number;
}
export interface Todo { id: string; title: string; completed: boolean; createdAt: number; updatedAt: number; }
export interface SyncReport { pushed: number; pulled: number; durationMs: number; }
export interface ReplicaStatus {
  pendingChanges: number;
  lastSyncAt: number | null;
  lastError: string | null;
  lastErrorCode: string | null;
  syncing: boolean;
  remoteUrl: string | null;
  clockAheadMs: number | null;
  unknownServerColumns: string[];
  rejected: number;
  refusedTables: TableRefusal[];
}
/** A row the server refused (see `rejectedRows`). */
export interface RejectedRow { table: string; id: string; code: string; message: string; rejectedAt: number; }
/** A table the server would not take changes to with this token, as of the last sync. */
export interface TableRefusal { table: string; code: string; message: string; }
/** One result row: column name to value. */
export type Row = Record<string, null | number | bigint | string | Uint8Array>;
/** A parameter: integers as `number` or `bigint`, booleans as 1/0, `undefined` as NULL. */
export type SqlParam = null | undefined | boolean | number | bigint | string | Uint8Array | ArrayBuffer;
export interface ExecuteResult { rowsAffected: number; rows: Row[]; }
export interface Statement { sql: string; params?: SqlParam[]; }
export interface ChangeEvent { table: string; ids: string[]; origin: "local" | "remote"; }
"#;

const DEFAULT_LOCK_TIMEOUT_MS: u32 = 5_000;
const DEFAULT_REQUEST_TIMEOUT_MS: u32 = 30_000;

/// Sets `key` on a fresh plain object (which cannot throw).
fn set(obj: &Object, key: &str, value: JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), &value);
}

fn nullable<T: Into<JsValue>>(value: Option<T>) -> JsValue {
    value.map_or(JsValue::NULL, Into::into)
}

fn todo_js(t: &Todo) -> JsValue {
    let o = Object::new();
    set(&o, "id", t.id.as_str().into());
    set(&o, "title", t.title.as_str().into());
    set(&o, "completed", t.is_completed.into());
    set(&o, "createdAt", (t.created_at as f64).into());
    set(&o, "updatedAt", (t.updated_at as f64).into());
    o.into()
}

fn report_js(r: &SyncReport) -> JsValue {
    let o = Object::new();
    set(&o, "pushed", (r.pushed as f64).into());
    set(&o, "pulled", (r.pulled as f64).into());
    set(&o, "durationMs", (r.duration_ms as f64).into());
    o.into()
}

fn status_js(s: &SyncStatus, last_error_code: Option<ErrorKind>) -> JsValue {
    let o = Object::new();
    set(&o, "pendingChanges", (s.pending_changes as f64).into());
    set(
        &o,
        "lastSyncAt",
        nullable(s.last_sync_at_ms.map(|v| v as f64)),
    );
    set(&o, "lastError", nullable(s.last_error.as_deref()));
    set(
        &o,
        "lastErrorCode",
        nullable(last_error_code.map(ErrorKind::as_str)),
    );
    set(&o, "syncing", s.syncing.into());
    set(&o, "remoteUrl", nullable(s.remote_url.as_deref()));
    set(
        &o,
        "clockAheadMs",
        nullable(s.clock_ahead_ms.map(|v| v as f64)),
    );
    let unknown: Array = s
        .unknown_server_columns
        .iter()
        .map(|c| JsValue::from_str(c))
        .collect();
    set(&o, "unknownServerColumns", unknown.into());
    set(&o, "rejected", (s.rejected as f64).into());
    let refused: Array = s
        .refused_tables
        .iter()
        .map(|t| {
            let r = Object::new();
            set(&r, "table", t.table.as_str().into());
            set(&r, "code", t.code.as_str().into());
            set(&r, "message", t.message.as_str().into());
            JsValue::from(r)
        })
        .collect();
    set(&o, "refusedTables", refused.into());
    o.into()
}

fn rejected_js(r: &RejectedRow) -> JsValue {
    let o = Object::new();
    set(&o, "table", r.table.as_str().into());
    set(&o, "id", r.id.as_str().into());
    set(&o, "code", r.code.as_str().into());
    set(&o, "message", r.message.as_str().into());
    set(&o, "rejectedAt", (r.rejected_at_ms as f64).into());
    o.into()
}

fn event_js(e: &ChangeEvent) -> JsValue {
    let o = Object::new();
    set(&o, "table", e.table.as_str().into());
    let ids: Array = e.ids.iter().map(|id| JsValue::from_str(id)).collect();
    set(&o, "ids", ids.into());
    let origin = match e.origin {
        ChangeOrigin::Local => "local",
        ChangeOrigin::Remote => "remote",
    };
    set(&o, "origin", origin.into());
    o.into()
}

/// Reads option `key`: absent/`null`/`undefined` is `None`. Messages name the
/// option, never its value (it may be the token).
fn option(options: &JsValue, key: &str) -> Result<Option<JsValue>, JsValue> {
    let v = Reflect::get(options, &JsValue::from_str(key))
        .map_err(|_| invalid(format!("cannot read option {key}")))?;
    Ok((!v.is_undefined() && !v.is_null()).then_some(v))
}

fn string_option(options: &JsValue, key: &str) -> Result<Option<String>, JsValue> {
    option(options, key)?
        .map(|v| {
            v.as_string()
                .ok_or_else(|| invalid(format!("option {key} must be a string")))
        })
        .transpose()
}

fn bool_option(options: &JsValue, key: &str) -> Result<Option<bool>, JsValue> {
    option(options, key)?
        .map(|v| {
            v.as_bool()
                .ok_or_else(|| invalid(format!("option {key} must be a boolean")))
        })
        .transpose()
}

fn ms_option(options: &JsValue, key: &str) -> Result<Option<u32>, JsValue> {
    option(options, key)?
        .map(|v| match v.as_f64() {
            Some(ms) if ms.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&ms) => {
                Ok(ms as u32)
            }
            _ => Err(invalid(format!(
                "option {key} must be a whole number of milliseconds"
            ))),
        })
        .transpose()
}

/// One open database. Methods are async and may run concurrently: local
/// reads and writes never wait for a running sync.
#[wasm_bindgen]
pub struct Replica {
    db: Database,
    storage: Storage,
    last_error_code: Cell<Option<ErrorKind>>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").field("db", &self.db).finish()
    }
}

#[wasm_bindgen]
impl Replica {
    /// Opens (creating if needed) a database. `storage: "opfs"` (the
    /// default) persists it in the Origin Private File System and works only
    /// in a dedicated Worker; it fails with `DatabaseLocked` when another tab
    /// keeps the database open for longer than `lockTimeoutMs`.
    pub async fn open(
        #[wasm_bindgen(unchecked_param_type = "ReplicaOptions")] options: JsValue,
    ) -> Result<Replica, JsValue> {
        if !options.is_object() {
            return Err(invalid("options must be an object with at least a name"));
        }
        let name =
            string_option(&options, "name")?.ok_or_else(|| invalid("option name is required"))?;
        let lock_timeout = ms_option(&options, "lockTimeoutMs")?.unwrap_or(DEFAULT_LOCK_TIMEOUT_MS);
        let request_timeout =
            ms_option(&options, "requestTimeoutMs")?.unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS);
        let mut config = Config {
            url: string_option(&options, "url")?,
            auth_token: string_option(&options, "authToken")?,
            encryption_key: string_option(&options, "encryptionKey")?,
            allow_insecure_http: bool_option(&options, "allowInsecureHttp")?.unwrap_or(false),
            ..Config::default()
        };
        if let Some(schema) = string_option(&options, "schema")? {
            config = config.with_schema_json(&schema).map_err(|e| to_js(&e))?;
        }
        let store = match string_option(&options, "storage")?.as_deref() {
            None => open_persistent(&name, lock_timeout).await,
            Some("opfs") => open_opfs(&name, lock_timeout).await,
            Some("indexeddb") => open_indexeddb(&name, lock_timeout).await,
            Some("memory") => {
                erth_core::store::browser::check_name(&name).and_then(|()| open_memory())
            }
            Some(_) => {
                return Err(invalid(
                    "option storage must be \"opfs\", \"indexeddb\" or \"memory\"",
                ))
            }
        }
        .map_err(|e| to_js(&e))?;
        let storage = store.storage();
        // Core takes `Arc<dyn Store>` on every target; wasm has one thread.
        #[allow(clippy::arc_with_non_send_sync)]
        let store = Arc::new(store);
        let db = Database::open(
            store,
            Arc::new(BrowserTransport::new(request_timeout)),
            Arc::new(SystemClock),
            config,
        )
        .await
        .map_err(|e| to_js(&e))?;
        Ok(Replica {
            db,
            storage,
            last_error_code: Cell::new(None),
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

    /// Adds a todo; resolves to it.
    #[wasm_bindgen(js_name = addTodo, unchecked_return_type = "Todo")]
    pub async fn add_todo(&self, title: String) -> Result<JsValue, JsValue> {
        let todo = self.db.add_todo(&title).await.map_err(|e| to_js(&e))?;
        Ok(todo_js(&todo))
    }

    /// Live todos, newest first.
    #[wasm_bindgen(js_name = listActive, unchecked_return_type = "Todo[]")]
    pub async fn list_active(&self) -> Result<JsValue, JsValue> {
        let todos = self.db.list_active_todos().await.map_err(|e| to_js(&e))?;
        Ok(todos.iter().map(todo_js).collect::<Array>().into())
    }

    /// The todo with that id; `NotFound` when unknown or deleted.
    #[wasm_bindgen(js_name = getTodo, unchecked_return_type = "Todo")]
    pub async fn get_todo(&self, id: String) -> Result<JsValue, JsValue> {
        let todo = self.db.get_todo(&id).await.map_err(|e| to_js(&e))?;
        Ok(todo_js(&todo))
    }

    /// Renames a todo; resolves to it.
    #[wasm_bindgen(js_name = renameTodo, unchecked_return_type = "Todo")]
    pub async fn rename_todo(&self, id: String, title: String) -> Result<JsValue, JsValue> {
        let todo = self
            .db
            .rename_todo(&id, &title)
            .await
            .map_err(|e| to_js(&e))?;
        Ok(todo_js(&todo))
    }

    /// Marks a todo completed or not; resolves to it.
    #[wasm_bindgen(js_name = setCompleted, unchecked_return_type = "Todo")]
    pub async fn set_completed(&self, id: String, completed: bool) -> Result<JsValue, JsValue> {
        let todo = self
            .db
            .set_todo_completed(&id, completed)
            .await
            .map_err(|e| to_js(&e))?;
        Ok(todo_js(&todo))
    }

    /// Deletes a todo (a tombstone that syncs); `false` when it was missing
    /// or already deleted.
    #[wasm_bindgen(js_name = deleteTodo)]
    pub async fn delete_todo(&self, id: String) -> Result<bool, JsValue> {
        self.db.delete_todo(&id).await.map_err(|e| to_js(&e))
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
        let out = self
            .db
            .execute(&sql, &params)
            .await
            .map_err(|e| to_js(&e))?;
        result_js(&out)
    }

    /// Runs one read-only statement: its rows as objects keyed by column name.
    #[wasm_bindgen(unchecked_return_type = "Row[]")]
    pub async fn query(
        &self,
        sql: String,
        #[wasm_bindgen(unchecked_param_type = "SqlParam[] | undefined")] params: JsValue,
    ) -> Result<JsValue, JsValue> {
        let params = params_from_js(&params)?;
        let rows = self.db.query(&sql, &params).await.map_err(|e| to_js(&e))?;
        rows_js(&rows)
    }

    /// Runs `statements` (`[{ sql, params }]`) as one local transaction:
    /// all commit or none; resolves to each statement's result.
    #[wasm_bindgen(unchecked_return_type = "ExecuteResult[]")]
    pub async fn transaction(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Statement[]")] statements: JsValue,
    ) -> Result<JsValue, JsValue> {
        let stmts = statements_from_js(&statements)?;
        let out = self.db.transaction(&stmts).await.map_err(|e| to_js(&e))?;
        let results = Array::new();
        for r in &out {
            results.push(&result_js(r)?);
        }
        Ok(results.into())
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
        let live = self
            .db
            .watch(
                &sql,
                &params,
                std::sync::Arc::new(move |rows: &Rows| {
                    let delivered = rows_js(rows)
                        .and_then(|rows| listener.call1(&JsValue::NULL, &rows).map(drop));
                    if let Err(e) = delivered {
                        console_error(&format!(
                            "erth-sync: a live query listener failed: {}",
                            erth_core::transport::browser::describe_js(&e)
                        ));
                    }
                }),
            )
            .map_err(|e| to_js(&e))?;
        Ok(Watch {
            inner: Cell::new(Some(live)),
        })
    }

    /// Pushes local changes, then pulls remote ones.
    #[wasm_bindgen(unchecked_return_type = "SyncReport")]
    pub async fn sync(&self) -> Result<JsValue, JsValue> {
        match self.db.sync().await {
            Ok(report) => {
                self.last_error_code.set(None);
                Ok(report_js(&report))
            }
            Err(e) => {
                self.last_error_code.set(Some(e.kind()));
                Err(to_js(&e))
            }
        }
    }

    /// Pending changes, last sync, last error, remote.
    #[wasm_bindgen(unchecked_return_type = "ReplicaStatus")]
    pub async fn status(&self) -> Result<JsValue, JsValue> {
        let status = self.db.status().await.map_err(|e| to_js(&e))?;
        Ok(status_js(&status, self.last_error_code.get()))
    }

    /// The rows the server refused (set aside, still pending), oldest first.
    #[wasm_bindgen(js_name = rejectedRows, unchecked_return_type = "RejectedRow[]")]
    pub async fn rejected_rows(&self) -> Result<JsValue, JsValue> {
        let rows = self.db.rejected_rows().await.map_err(|e| to_js(&e))?;
        Ok(rows.iter().map(rejected_js).collect::<Array>().into())
    }

    /// Makes every refused row pending again (the next sync pushes them);
    /// resolves to how many there were.
    #[wasm_bindgen(js_name = retryRejected)]
    pub async fn retry_rejected(&self) -> Result<f64, JsValue> {
        let n = self.db.retry_rejected().await.map_err(|e| to_js(&e))?;
        Ok(n as f64)
    }

    /// Drops the local changes of a refused row and takes the server's
    /// version (a row the server never had is removed).
    #[wasm_bindgen(js_name = discardRejected)]
    pub async fn discard_rejected(&self, table: String, id: String) -> Result<(), JsValue> {
        self.db
            .discard_rejected(&table, &id)
            .await
            .map_err(|e| to_js(&e))
    }

    /// Replaces the auth token for the next requests (`null` removes it).
    #[wasm_bindgen(js_name = setAuthToken)]
    pub fn set_auth_token(&self, token: Option<String>) -> Result<(), JsValue> {
        self.db.set_auth_token(token.as_deref());
        Ok(())
    }

    /// Sets the server (`null` makes the database local-only); local
    /// changes made meanwhile sync later.
    #[wasm_bindgen(js_name = setRemote)]
    pub fn set_remote(&self, url: Option<String>, token: Option<String>) -> Result<(), JsValue> {
        self.db
            .set_remote(url.as_deref(), token.as_deref())
            .map_err(|e| to_js(&e))?;
        self.last_error_code.set(None);
        Ok(())
    }

    /// Calls `listener(event)` after every committed change (local writes
    /// and pulled rows) until the subscription is dropped or unsubscribed.
    /// A listener that throws is reported on the console.
    pub fn subscribe(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(event: ChangeEvent) => void")] listener: Function,
    ) -> Result<Subscription, JsValue> {
        let sub = self.db.subscribe(Arc::new(move |event: &ChangeEvent| {
            if let Err(e) = listener.call1(&JsValue::NULL, &event_js(event)) {
                console_error(&format!(
                    "erth-sync: a change listener threw: {}",
                    erth_core::transport::browser::describe_js(&e)
                ));
            }
        }));
        Ok(Subscription {
            inner: Cell::new(Some(sub)),
        })
    }
}

/// A change subscription; `unsubscribe()` (or `free()`) ends it.
#[wasm_bindgen]
pub struct Subscription {
    inner: Cell<Option<erth_core::Subscription>>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

#[wasm_bindgen]
impl Subscription {
    /// Stops the listener now; calling it again does nothing.
    pub fn unsubscribe(&self) -> Result<(), JsValue> {
        drop(self.inner.take());
        Ok(())
    }
}

/// A live query; `stop()` (or `free()`) ends it.
#[wasm_bindgen]
pub struct Watch {
    inner: Cell<Option<LiveQuery>>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").finish_non_exhaustive()
    }
}

#[wasm_bindgen]
impl Watch {
    /// Stops the live query now: no listener call starts after this; calling it again does nothing.
    pub fn stop(&self) -> Result<(), JsValue> {
        drop(self.inner.take());
        Ok(())
    }
}
