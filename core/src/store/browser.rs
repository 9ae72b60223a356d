//! Browser store: the [`SqliteStore`] on `sqlite-wasm-rs`, persisted in the
//! Origin Private File System through the `sahpool` VFS (OPFS sync access
//! handles, which exist only in a dedicated Worker), in IndexedDB where
//! those are missing, or in memory. [`Storage`] names which.
//!
//! IndexedDB fallback ([`open_indexeddb`]; WebKitGTK has no sync access
//! handles, and private windows may have no OPFS): the database runs in
//! memory and its whole serialized file is saved under its name in the
//! IndexedDB database `erth-sync` (object store `files`) after each write
//! transaction, in order; every write resolves once its save is committed
//! (`durability: "strict"`; the synchronous writes through
//! [`Store::persisted`], which the engine awaits after them). What it
//! relaxes: speed (each save writes the whole file: fine for the few MB such
//! a database usually holds, slow beyond) and isolation from a crash between
//! the in-memory commit and the save (the write then rejects or is lost,
//! never half-applied).
//!
//! One owner per database: [`open_opfs`] first takes the Web Lock
//! `erth-sync:<name>` (waiting up to `lock_timeout_ms`, then failing with
//! [`Error::DatabaseLocked`]), so a second tab or worker never touches the
//! OPFS files; dropping the store closes the connection, releases the OPFS
//! handles and then the lock, so the next owner can open at once.
//!
//! Each database gets its own pool directory (`.erth-sync/<name>`) and VFS
//! name. Journal: WAL under `locking_mode = EXCLUSIVE` (the sahpool VFS has
//! no shared memory; SQLite then keeps the WAL index in heap memory, which
//! is fine with one connection per database, as the Web Lock guarantees),
//! with `synchronous = FULL`: a commit appends its pages to the WAL and
//! flushes it (one OPFS `flush()`) before it returns, so it survives a
//! reload, a browser or worker crash and a power loss. Measured on Debian's
//! Chromium 156 on a 2-core VM (BENCHMARKS.md, section 5, `cargo xtask bench
//! --only browser`): the official SQLite WASM build on the same VFS does a
//! one-row insert transaction in this mode in about 1.0 ms in the page,
//! against 1.2 ms on an idle disk and about 8 ms on a disk other processes
//! were writing to in the rollback journal (`TRUNCATE`, `synchronous =
//! FULL`) used before, which flushes the journal and the database file on
//! every commit. `synchronous = NORMAL` would take about 0.5 ms but give up
//! durability against power loss (a commit would reach the OS, not the
//! disk).

use super::sqlite::{err, SqliteStore};
use super::{
    AppContext, AppTx, AppWrite, Store, StoreError, StoreErrorKind, WriteBuilder, OPFS_PRAGMAS,
};
use crate::error::{Error, LockHolder, Result};
use crate::transport::browser::describe_js;
use crate::value::{Rows, SqlValue, Statement};
use js_sys::futures::JsFuture;
use js_sys::{Function, Promise};
use sqlite_wasm_rs::vfs::transfer::DbTransfer;
use sqlite_wasm_rs::vfs::VfsFilesManager;
use sqlite_wasm_vfs::sahpool::{self, OpfsSAHError, OpfsSAHPoolCfgBuilder, OpfsSAHPoolUtil};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(inline_js = r#"
export function erth_acquire_lock(name, timeoutMs) {
  const locks = globalThis.navigator && globalThis.navigator.locks;
  if (!locks) {
    return Promise.reject(new Error("the Web Locks API (navigator.locks) is not available here"));
  }
  return new Promise((resolve, reject) => {
    let release;
    const held = new Promise((r) => { release = r; });
    const options = timeoutMs > 0
      ? { signal: AbortSignal.timeout(timeoutMs) }
      : { ifAvailable: true };
    locks.request(name, options, (lock) => {
      if (!lock) {
        resolve(null);
        return undefined;
      }
      resolve(() => release());
      return held;
    }).catch((e) => {
      if (e && (e.name === "TimeoutError" || e.name === "AbortError")) {
        resolve(null);
      } else {
        reject(e);
      }
    });
  });
}
"#)]
extern "C" {
    /// Resolves to a release function once the lock is held, or to `null`
    /// when it stayed taken for `timeout_ms` (0 = do not wait).
    fn erth_acquire_lock(name: &str, timeout_ms: u32) -> Promise;
}

/// Where a browser database is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// OPFS through sync access handles (`sahpool`): durable per commit.
    Opfs,
    /// In memory, saved to IndexedDB after every write (module docs).
    IndexedDb,
    /// In memory only: gone when closed.
    Memory,
}

impl Storage {
    /// `"opfs"`, `"indexeddb"` or `"memory"` (the package's option values).
    pub fn as_str(self) -> &'static str {
        match self {
            Storage::Opfs => "opfs",
            Storage::IndexedDb => "indexeddb",
            Storage::Memory => "memory",
        }
    }
}

#[wasm_bindgen(inline_js = r#"
let opened = null;
let saving = Promise.resolve();
let last = Promise.resolve();
function files() {
  if (!opened) {
    opened = new Promise((resolve, reject) => {
      if (!globalThis.indexedDB) {
        reject(new Error("IndexedDB is not available here"));
        return;
      }
      const req = indexedDB.open("erth-sync", 1);
      req.onupgradeneeded = () => req.result.createObjectStore("files");
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
      req.onblocked = () => reject(new Error("IndexedDB erth-sync is blocked by an older version open elsewhere"));
    });
    opened.catch(() => { opened = null; });
  }
  return opened;
}
export function erth_idb_load(name) {
  return files().then((db) => new Promise((resolve, reject) => {
    const req = db.transaction("files", "readonly").objectStore("files").get(name);
    req.onsuccess = () => resolve(req.result instanceof Uint8Array ? req.result : null);
    req.onerror = () => reject(req.error);
  }));
}
export function erth_idb_save(name, bytes) {
  const done = saving.then(() => files()).then((db) => new Promise((resolve, reject) => {
    const tx = db.transaction("files", "readwrite", { durability: "strict" });
    tx.objectStore("files").put(bytes, name);
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error("the IndexedDB transaction was aborted"));
  }));
  saving = done.catch(() => {});
  last = done;
  return done;
}
export function erth_idb_saved() {
  return last;
}
"#)]
extern "C" {
    /// The saved bytes of database `name` (a `Uint8Array`), or `null`.
    fn erth_idb_load(name: &str) -> Promise;
    /// Saves `bytes` as database `name`, after every earlier save.
    fn erth_idb_save(name: &str, bytes: js_sys::Uint8Array) -> Promise;
    /// Settles when the last save started has (rejecting if it failed).
    fn erth_idb_saved() -> Promise;
}

/// What a store owns besides its connection; released in this order on drop.
struct Owner {
    pool: Option<OpfsSAHPoolUtil>,
    release_lock: Option<Function>,
    /// The IndexedDB key the database is saved under (IndexedDB storage).
    saved_as: Option<String>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        // The connection is closed by now (`BrowserStore::inner` drops
        // first): give the OPFS handles back, then the lock.
        if let Some(pool) = &self.pool {
            if let Err(e) = pool.pause() {
                tracing::warn!(error = %e, "could not release the OPFS handles");
            }
        }
        release(self.release_lock.as_ref());
    }
}

/// A browser database: [`SqliteStore`] plus what keeps it exclusive.
pub struct BrowserStore {
    // Fields drop in order: the connection closes before `owner` lets go.
    inner: SqliteStore,
    owner: Owner,
    /// A save that could not even start (serializing failed), reported by
    /// the next [`Store::persisted`].
    save_error: std::cell::RefCell<Option<StoreError>>,
}

impl std::fmt::Debug for BrowserStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserStore")
            .field("storage", &self.storage())
            .finish_non_exhaustive()
    }
}

impl BrowserStore {
    /// Where this database is kept.
    pub fn storage(&self) -> Storage {
        if self.owner.pool.is_some() {
            Storage::Opfs
        } else if self.owner.saved_as.is_some() {
            Storage::IndexedDb
        } else {
            Storage::Memory
        }
    }

    /// Starts saving the database's bytes to IndexedDB (IndexedDB storage;
    /// after every save started before); [`Store::persisted`] waits for it.
    fn start_save(&self) {
        let Some(key) = &self.owner.saved_as else {
            return;
        };
        match self
            .inner
            .with_snapshot(|bytes| js_sys::Uint8Array::from(bytes))
        {
            // The promise runs by itself; `erth_idb_saved` reports its end.
            Ok(bytes) => drop(erth_idb_save(key, bytes)),
            Err(e) => {
                self.save_error.replace(Some(e));
            }
        }
    }
}

fn save_failed(e: &JsValue) -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        format!(
            "the change is made in memory but could not be saved to IndexedDB: {}",
            describe_js(e)
        ),
    )
}

/// Checks a database name: 1-64 ASCII letters, digits, `.`, `_`, `-`, not
/// starting with `.` (it names an OPFS directory and a Web Lock).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "database name {:?}: use 1-64 ASCII letters, digits, '.', '_' or '-', not starting with '.'",
            crate::error::clip(name, 80)
        )))
    }
}

fn opfs_error(e: OpfsSAHError) -> Error {
    let text = e.to_string();
    match e {
        OpfsSAHError::NotSupported => Error::Storage(StoreError::new(
            StoreErrorKind::Other,
            format!(
                "{NO_OPFS}: they need a dedicated Worker in a secure context (https or localhost)"
            ),
        )),
        // WebKitGTK: `createSyncAccessHandle()` always rejects; an ephemeral
        // profile: `getDirectory()` rejects.
        OpfsSAHError::Opfs { .. }
            if ["NotSupportedError", "UnknownError", "SecurityError"]
                .iter()
                .any(|name| text.contains(name)) =>
        {
            Error::Storage(StoreError::new(
                StoreErrorKind::Other,
                format!("{NO_OPFS}: {text}"),
            ))
        }
        // Another tab's worker holds the sync access handles.
        OpfsSAHError::Opfs { .. } if text.contains("NoModificationAllowedError") => {
            Error::DatabaseLocked(LockHolder::OtherTab)
        }
        OpfsSAHError::DirectoryInUse(_) | OpfsSAHError::FileInUse(_) | OpfsSAHError::Busy => {
            Error::DatabaseLocked(LockHolder::OtherTab)
        }
        _ => Error::Storage(StoreError::new(StoreErrorKind::Other, text)),
    }
}

/// Takes the Web Lock `erth-sync:<name>`, waiting up to `lock_timeout_ms`.
async fn lock_database(name: &str, lock_timeout_ms: u32) -> Result<Function> {
    let lock = JsFuture::from(erth_acquire_lock(
        &format!("erth-sync:{name}"),
        lock_timeout_ms,
    ))
    .await
    .map_err(|e| {
        Error::Storage(StoreError::new(
            StoreErrorKind::Other,
            format!("Web Lock: {}", describe_js(&e)),
        ))
    })?;
    lock.dyn_into::<Function>()
        .map_err(|_| Error::DatabaseLocked(LockHolder::OtherTab))
}

/// Opens (creating if needed) the persistent database `name`: in OPFS
/// ([`open_opfs`]), or, where this browser has no OPFS sync access handles
/// (WebKitGTK; Safari and Firefox private windows), in IndexedDB
/// ([`open_indexeddb`]).
///
/// `file_key`: the file is encrypted at rest (see [`open_opfs`]); there is
/// no IndexedDB fallback then, the IndexedDB store keeping a plain copy:
/// without OPFS it fails with [`Error::InvalidInput`].
pub async fn open_persistent(
    name: &str,
    lock_timeout_ms: u32,
    file_key: Option<[u8; 32]>,
) -> Result<BrowserStore> {
    check_name(name)?;
    let release_lock = lock_database(name, lock_timeout_ms).await?;
    match opfs_store(name, release_lock, file_key).await {
        Ok(store) => Ok(store),
        Err((Error::Storage(e), Some(release_lock)))
            if e.message.starts_with(NO_OPFS) && file_key.is_some() =>
        {
            release(Some(&release_lock));
            Err(Error::InvalidInput(format!(
                "a file key needs OPFS (encryption at rest), and {e}: open without fileKey to \
                 keep the database in IndexedDB, unencrypted"
            )))
        }
        // The lock is still held (no OPFS handle was taken): keep it.
        Err((Error::Storage(e), Some(release_lock))) if e.message.starts_with(NO_OPFS) => {
            tracing::info!(reason = %e, "no OPFS sync access handles here: keeping the database in IndexedDB");
            indexeddb_store(name, release_lock).await
        }
        Err((e, release_lock)) => {
            release(release_lock.as_ref());
            Err(e)
        }
    }
}

/// How [`opfs_error`] starts the message when OPFS sync access handles cannot be had.
const NO_OPFS: &str = "OPFS sync access handles are not available here";

/// Opens (creating if needed) the persistent database `name` in OPFS.
///
/// Must run in a dedicated Worker. Waits up to `lock_timeout_ms` for another
/// owner (tab) to close it, then fails with [`Error::DatabaseLocked`].
///
/// `file_key`: the file (and its WAL) is encrypted at rest with SQLCipher 4
/// under this raw 32-byte key, as native files are
/// ([`crate::file_key`]); a new file is created encrypted, an existing one
/// must have this key, else [`Error::WrongFileKey`] before anything is
/// written.
pub async fn open_opfs(
    name: &str,
    lock_timeout_ms: u32,
    file_key: Option<[u8; 32]>,
) -> Result<BrowserStore> {
    check_name(name)?;
    let release_lock = lock_database(name, lock_timeout_ms).await?;
    opfs_store(name, release_lock, file_key)
        .await
        .map_err(|(e, release_lock)| {
            release(release_lock.as_ref());
            e
        })
}

/// Gives the Web Lock back.
fn release(release_lock: Option<&Function>) {
    if let Some(release) = release_lock {
        // The release function cannot fail; there is nothing to report.
        let _ = release.call0(&JsValue::NULL);
    }
}

/// [`open_opfs`] once the lock is held. When sahpool cannot even start (no
/// sync access handles), the error comes back with the lock, still held.
async fn opfs_store(
    name: &str,
    release_lock: Function,
    file_key: Option<[u8; 32]>,
) -> std::result::Result<BrowserStore, (Error, Option<Function>)> {
    let pool = match install_pool(name).await {
        Ok(pool) => pool,
        Err(e) => return Err((opfs_error(e), Some(release_lock))),
    };
    // From here on, dropping `owner` gives the handles back, then the lock.
    let owner = Owner {
        pool: Some(pool),
        release_lock: Some(release_lock),
        saved_as: None,
    };
    let opened = async {
        if let Some(pool) = &owner.pool {
            if pool.is_paused() {
                // Reopened in the same worker after a close: take the handles back.
                pool.resume().await.map_err(opfs_error)?;
            }
        }
        // Before SQLite may create the file afresh: a key change that was
        // interrupted after its commit point is finished first.
        if let Some(pool) = &owner.pool {
            finish_key_change(pool, name).map_err(opfs_error)?;
        }
        let conn = open_connection(name, file_key.as_ref())?;
        let store = SqliteStore::from_connection(conn, OPFS_PRAGMAS).map_err(Error::from)?;
        check_journal_mode(&store).await.map_err(Error::from)?;
        Ok(store)
    }
    .await;
    match opened {
        Ok(inner) => Ok(BrowserStore {
            inner,
            owner,
            save_error: Default::default(),
        }),
        Err(e) => Err((e, None)),
    }
}

/// Installs (or finds, in this worker) the sahpool VFS of database `name`:
/// its own VFS name and pool directory `.erth-sync/<name>`.
async fn install_pool(name: &str) -> std::result::Result<OpfsSAHPoolUtil, OpfsSAHError> {
    let cfg = OpfsSAHPoolCfgBuilder::new()
        .vfs_name(&format!("erth-opfs-{name}"))
        .directory(&format!(".erth-sync/{name}"))
        .build();
    sahpool::install::<sqlite_wasm_rs::WasmOsCallback>(&cfg, false).await
}

/// The pool's file of database `name` (SQLite adds `-wal` and `-journal`).
fn db_file(name: &str) -> String {
    format!("/{name}.sqlite3")
}

/// The copy [`change_file_key`] exports into (incomplete until published).
fn partial_copy(name: &str) -> String {
    format!("/{name}.erth-rekey-partial.sqlite3")
}

/// The complete copy [`change_file_key`] publishes before its commit point.
fn complete_copy(name: &str) -> String {
    format!("/{name}.erth-rekey.sqlite3")
}

/// Opens the connection to database `name` in its (installed, active) pool
/// with `file_key`, checked by a read ([`super::sqlite::apply_key`]) under
/// `locking_mode = EXCLUSIVE` (no shared memory in this VFS).
fn open_connection(name: &str, file_key: Option<&[u8; 32]>) -> Result<rusqlite::Connection> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
        | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let vfs = format!("erth-opfs-{name}");
    let conn = rusqlite::Connection::open_with_flags_and_vfs(db_file(name), flags, vfs.as_str())
        .map_err(|e| Error::from(err(e)))?;
    super::sqlite::apply_key(&conn, file_key, &["PRAGMA locking_mode = EXCLUSIVE"])?;
    Ok(conn)
}

/// Removes pool file `file` and its journal and WAL, where present.
fn remove_with_sidecars(
    pool: &OpfsSAHPoolUtil,
    file: &str,
) -> std::result::Result<(), OpfsSAHError> {
    for sidecar in [format!("{file}-wal"), format!("{file}-journal")] {
        pool.remove(&sidecar)?;
    }
    pool.remove(file).map(drop)
}

/// Finishes or undoes a [`change_file_key`] that was interrupted (a closed
/// tab, a crash): its partial copy goes; its complete copy replaces the
/// database if the database file was already removed (past the commit
/// point), and goes otherwise (the change did not happen).
fn finish_key_change(pool: &OpfsSAHPoolUtil, name: &str) -> std::result::Result<(), OpfsSAHError> {
    remove_with_sidecars(pool, &partial_copy(name))?;
    let copy = complete_copy(name);
    if !pool.contains(&copy)? {
        return Ok(());
    }
    if !pool.contains(&db_file(name))? {
        tracing::info!("finishing a file key change that was interrupted after its commit point");
        let bytes = pool.export_db(&copy)?;
        remove_with_sidecars(pool, &db_file(name))?;
        pool.import_db_unchecked(&db_file(name), &bytes)?;
    }
    pool.remove(&copy).map(drop)
}

/// Changes the key the OPFS database `name` is encrypted with at rest,
/// where `None` is a plain database: encrypts a plain one, decrypts an
/// encrypted one, or changes the key. Every row, clock, sync state and the
/// `user_version` migration counter are kept; the next open takes `new`.
/// The browser's counterpart of the native `file_key::change_file_key`.
///
/// The database must be closed in every tab: this takes its Web Lock
/// (`erth-sync:<name>`), waiting up to `lock_timeout_ms` for the tab that
/// has it open, then fails with [`Error::DatabaseLocked`].
///
/// How (the sahpool VFS has no rename): the database is opened with `old`
/// (checked before anything is written) and exported with SQLCipher's
/// `sqlcipher_export` into the pool file `<name>.erth-rekey-partial`; once
/// that copy is complete and closed, its bytes are published whole as
/// `<name>.erth-rekey` (a sahpool import writes and flushes the bytes and
/// names the file last, so that name never shows a part). Then the database
/// file is removed (its WAL checkpointed and gone by then) and the copy
/// imported under its name. Removing it is the commit point: interrupted
/// before, the old database stays as it was (the copies are removed at the
/// next open); after, the next open or change imports the copy first.
/// Memory: the database's bytes are held once, during the two imports.
///
/// Errors: [`Error::WrongFileKey`] if `old` does not open the database (its
/// bytes unchanged); [`Error::InvalidInput`] without OPFS sync access handles
/// (WebKitGTK; private windows: a database kept in IndexedDB is never
/// encrypted); [`Error::Storage`] if there is no database `name` in OPFS, or
/// for a storage error (before the commit point, the old database stays).
pub async fn change_file_key(
    name: &str,
    lock_timeout_ms: u32,
    old: Option<[u8; 32]>,
    new: Option<[u8; 32]>,
) -> Result<()> {
    check_name(name)?;
    let release_lock = lock_database(name, lock_timeout_ms).await?;
    let pool = match install_pool(name).await {
        Ok(pool) => pool,
        Err(e) => {
            release(Some(&release_lock));
            return Err(match opfs_error(e) {
                Error::Storage(e) if e.message.starts_with(NO_OPFS) => {
                    Error::InvalidInput(format!("encryption at rest needs OPFS, and {e}"))
                }
                e => e,
            });
        }
    };
    // Dropped last: gives the OPFS handles back, then the lock.
    let owner = Owner {
        pool: Some(pool.clone()),
        release_lock: Some(release_lock),
        saved_as: None,
    };
    if pool.is_paused() {
        pool.resume().await.map_err(opfs_error)?;
    }
    // The database, its WAL and journal, the copy and its journal, the
    // published copy.
    pool.ensure_capacity(8).await.map_err(opfs_error)?;
    finish_key_change(&pool, name).map_err(opfs_error)?;
    if !pool.contains(&db_file(name)).map_err(opfs_error)? {
        return Err(Error::Storage(StoreError::new(
            StoreErrorKind::Other,
            format!("there is no database {name:?} in this origin's OPFS to change the key of"),
        )));
    }
    let partial = partial_copy(name);
    let exported = open_connection(name, old.as_ref()).and_then(|conn| {
        Ok(super::sqlite::export_rekeyed(
            &conn,
            &partial,
            new.as_ref(),
        )?)
    });
    if let Err(e) = exported {
        // The connection is closed: its copy can go (the change did not happen).
        if let Err(cleanup) = remove_with_sidecars(&pool, &partial) {
            tracing::warn!(error = %cleanup, "could not remove the partial copy of a failed key change");
        }
        return Err(e);
    }
    // Before the commit point: a failure leaves the old database as it was.
    let publish = || -> std::result::Result<Vec<u8>, OpfsSAHError> {
        let bytes = pool.export_db(&partial)?;
        pool.import_db_unchecked(&complete_copy(name), &bytes)?;
        pool.remove(&partial)?;
        Ok(bytes)
    };
    let bytes = publish().map_err(opfs_error)?;
    let mut committed = false;
    let mut finish = || -> std::result::Result<(), OpfsSAHError> {
        remove_with_sidecars(&pool, &db_file(name))?;
        // The commit point: the old database is gone.
        committed = true;
        pool.import_db_unchecked(&db_file(name), &bytes)?;
        pool.remove(&complete_copy(name)).map(drop)
    };
    let finished = finish().map_err(|e| match committed {
        false => opfs_error(e),
        true => Error::Storage(StoreError::new(
            StoreErrorKind::Other,
            format!(
                "the file key change is committed but not finished ({e}): the next open of \
                 {name:?} finishes it, with the new key"
            ),
        )),
    });
    drop(owner);
    finished
}

/// The journal mode [`OPFS_PRAGMAS`] asks for. SQLite answers a
/// `journal_mode` it cannot switch to with the mode it keeps, silently.
const OPFS_JOURNAL_MODE: &str = "wal";

/// Fails unless SQLite really runs the database in [`OPFS_JOURNAL_MODE`]
/// (the durability and speed the module docs state depend on it).
async fn check_journal_mode(store: &SqliteStore) -> std::result::Result<(), StoreError> {
    let rows = store
        .query(&Statement::plain("PRAGMA journal_mode"))
        .await?;
    let mode = rows.rows.first().and_then(|row| row.first());
    if mode.is_some_and(|m| *m == SqlValue::from(OPFS_JOURNAL_MODE)) {
        Ok(())
    } else {
        Err(StoreError::new(
            StoreErrorKind::Other,
            format!(
                "SQLite runs this OPFS database in journal mode {mode:?}, not \
                 {OPFS_JOURNAL_MODE:?} (the sahpool VFS refused it)"
            ),
        ))
    }
}

/// Opens (creating if needed) database `name` kept in IndexedDB (see the
/// module docs for what this relaxes). Works in any worker or page with
/// IndexedDB; takes the same Web Lock as [`open_opfs`].
pub async fn open_indexeddb(name: &str, lock_timeout_ms: u32) -> Result<BrowserStore> {
    check_name(name)?;
    let release_lock = lock_database(name, lock_timeout_ms).await?;
    indexeddb_store(name, release_lock).await
}

/// [`open_indexeddb`] once the lock is held (released if opening fails).
async fn indexeddb_store(name: &str, release_lock: Function) -> Result<BrowserStore> {
    let owner = Owner {
        pool: None,
        release_lock: Some(release_lock),
        saved_as: Some(name.to_owned()),
    };
    let storage_error = |what: &str, e: &JsValue| {
        Error::Storage(StoreError::new(
            StoreErrorKind::Other,
            format!("{what}: {}", describe_js(e)),
        ))
    };
    let saved = JsFuture::from(erth_idb_load(name))
        .await
        .map_err(|e| storage_error("reading the database from IndexedDB", &e))?;
    let mut conn = rusqlite::Connection::open_in_memory().map_err(|e| Error::from(err(e)))?;
    if let Some(bytes) = saved.dyn_ref::<js_sys::Uint8Array>() {
        let bytes = bytes.to_vec();
        conn.deserialize_read_exact(rusqlite::MAIN_DB, &bytes[..], bytes.len(), false)
            .map_err(|e| Error::from(err(e)))?;
    }
    Ok(BrowserStore {
        inner: SqliteStore::from_connection(conn, &["PRAGMA foreign_keys = ON"])?,
        owner,
        save_error: Default::default(),
    })
}

/// A database in memory (lost when dropped); works anywhere, Node included.
pub fn open_memory() -> Result<BrowserStore> {
    let conn = rusqlite::Connection::open_in_memory().map_err(|e| Error::from(err(e)))?;
    Ok(BrowserStore {
        inner: SqliteStore::from_connection(conn, &[])?,
        owner: Owner {
            pool: None,
            release_lock: None,
            saved_as: None,
        },
        save_error: Default::default(),
    })
}

#[async_trait::async_trait(?Send)]
impl Store for BrowserStore {
    async fn query(&self, stmt: &Statement) -> Result<Rows, StoreError> {
        self.inner.query(stmt).await
    }

    async fn write(&self, stmts: &[Statement]) -> Result<Vec<Rows>, StoreError> {
        let out = self.inner.write(stmts).await?;
        self.start_save();
        self.persisted().await?;
        Ok(out)
    }

    async fn persisted(&self) -> Result<(), StoreError> {
        if self.owner.saved_as.is_none() {
            return Ok(());
        }
        if let Some(e) = self.save_error.take() {
            return Err(e);
        }
        JsFuture::from(erth_idb_saved())
            .await
            .map(|_| ())
            .map_err(|e| save_failed(&e))
    }

    fn write_after_reads(
        &self,
        reads: &[Statement],
        then: &mut WriteBuilder<'_>,
    ) -> Result<Vec<Rows>, StoreError> {
        let out = self.inner.write_after_reads(reads, then)?;
        self.start_save();
        Ok(out)
    }

    fn write_app(&self, ctx: AppContext<'_>, stmts: &[Statement]) -> Result<AppWrite, StoreError> {
        let out = self.inner.write_app(ctx, stmts)?;
        self.start_save();
        Ok(out)
    }

    fn begin_app(&self, ctx: AppContext<'_>) -> Result<AppTx, StoreError> {
        self.inner.begin_app(ctx)
    }

    fn app_statement(&self, tx: &mut AppTx, stmt: &Statement) -> Result<(Rows, u64), StoreError> {
        self.inner.app_statement(tx, stmt)
    }

    fn commit_app(&self, tx: AppTx) -> Result<Vec<(String, Vec<i64>)>, StoreError> {
        let changed = self.inner.commit_app(tx)?;
        self.start_save();
        Ok(changed)
    }

    fn rollback_app(&self, tx: AppTx) -> Result<(), StoreError> {
        self.inner.rollback_app(tx)
    }

    fn query_app(&self, protected: &[String], stmt: &Statement) -> Result<Rows, StoreError> {
        self.inner.query_app(protected, stmt)
    }

    fn columns_read(&self, sql: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.inner.columns_read(sql)
    }
}
