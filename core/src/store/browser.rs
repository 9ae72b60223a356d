//! Browser store: the [`SqliteStore`] on `sqlite-wasm-rs`, persisted in the
//! Origin Private File System through the `sahpool` VFS (OPFS sync access
//! handles, which exist only in a dedicated Worker), or in memory.
//!
//! One owner per database: [`open_opfs`] first takes the Web Lock
//! `erth-sync:<name>` (waiting up to `lock_timeout_ms`, then failing with
//! [`Error::DatabaseLocked`]), so a second tab or worker never touches the
//! OPFS files; dropping the store closes the connection, releases the OPFS
//! handles and then the lock, so the next owner can open at once.
//!
//! Each database gets its own pool directory (`.erth-sync/<name>`) and VFS
//! name. The sahpool VFS has no shared memory, so the journal is a rollback
//! journal (`TRUNCATE`, which keeps the journal's pool slot), with
//! `synchronous = FULL`: a commit is on disk (flushed) before it returns, and
//! survives a reload, a browser restart or a crash.

use super::sqlite::{err, SqliteStore};
use super::{AppContext, AppWrite, Store, StoreError, StoreErrorKind, WriteBuilder};
use crate::error::{Error, Result};
use crate::transport::browser::describe_js;
use crate::value::{Rows, Statement};
use js_sys::futures::JsFuture;
use js_sys::{Function, Promise};
use sqlite_wasm_vfs::sahpool::{self, OpfsSAHError, OpfsSAHPoolCfgBuilder, OpfsSAHPoolUtil};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// Pragmas of an OPFS database (see the module docs).
pub const OPFS_PRAGMAS: &[&str] = &[
    "PRAGMA locking_mode = EXCLUSIVE",
    "PRAGMA journal_mode = TRUNCATE",
    "PRAGMA synchronous = FULL",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA foreign_keys = ON",
];

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

/// What a store owns besides its connection; released in this order on drop.
struct Owner {
    pool: Option<OpfsSAHPoolUtil>,
    release_lock: Option<Function>,
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
        if let Some(release) = &self.release_lock {
            // The release function cannot fail; there is nothing to report.
            let _ = release.call0(&JsValue::NULL);
        }
    }
}

/// A browser database: [`SqliteStore`] plus what keeps it exclusive.
pub struct BrowserStore {
    // Fields drop in order: the connection closes before `owner` lets go.
    inner: SqliteStore,
    owner: Owner,
}

impl std::fmt::Debug for BrowserStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserStore")
            .field("persistent", &self.owner.pool.is_some())
            .finish_non_exhaustive()
    }
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
            "persistent storage (OPFS) needs a dedicated Worker in a secure context (https or localhost)",
        )),
        // Another tab's worker holds the sync access handles.
        OpfsSAHError::Opfs { .. } if text.contains("NoModificationAllowedError") => {
            Error::DatabaseLocked
        }
        OpfsSAHError::DirectoryInUse(_) | OpfsSAHError::FileInUse(_) | OpfsSAHError::Busy => {
            Error::DatabaseLocked
        }
        _ => Error::Storage(StoreError::new(StoreErrorKind::Other, text)),
    }
}

/// Opens (creating if needed) the persistent database `name` in OPFS.
///
/// Must run in a dedicated Worker. Waits up to `lock_timeout_ms` for another
/// owner (tab) to close it, then fails with [`Error::DatabaseLocked`].
pub async fn open_opfs(name: &str, lock_timeout_ms: u32) -> Result<BrowserStore> {
    check_name(name)?;
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
    let release_lock = lock
        .dyn_into::<Function>()
        .map_err(|_| Error::DatabaseLocked)?;
    let mut owner = Owner {
        pool: None,
        release_lock: Some(release_lock),
    };
    let cfg = OpfsSAHPoolCfgBuilder::new()
        .vfs_name(&format!("erth-opfs-{name}"))
        .directory(&format!(".erth-sync/{name}"))
        .build();
    let pool = sahpool::install::<sqlite_wasm_rs::WasmOsCallback>(&cfg, false)
        .await
        .map_err(opfs_error)?;
    if pool.is_paused() {
        // Reopened in the same worker after a close: take the handles back.
        pool.resume().await.map_err(opfs_error)?;
    }
    owner.pool = Some(pool);
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
        | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let vfs = format!("erth-opfs-{name}");
    let conn = rusqlite::Connection::open_with_flags_and_vfs(
        format!("/{name}.sqlite3"),
        flags,
        vfs.as_str(),
    )
    .map_err(|e| Error::from(err(e)))?;
    let inner = SqliteStore::from_connection(conn, OPFS_PRAGMAS)?;
    Ok(BrowserStore { inner, owner })
}

/// A database in memory (lost when dropped); works anywhere, Node included.
pub fn open_memory() -> Result<BrowserStore> {
    let conn = rusqlite::Connection::open_in_memory().map_err(|e| Error::from(err(e)))?;
    Ok(BrowserStore {
        inner: SqliteStore::from_connection(conn, &[])?,
        owner: Owner {
            pool: None,
            release_lock: None,
        },
    })
}

#[async_trait::async_trait(?Send)]
impl Store for BrowserStore {
    async fn query(&self, stmt: &Statement) -> Result<Rows, StoreError> {
        self.inner.query(stmt).await
    }

    async fn write(&self, stmts: &[Statement]) -> Result<Vec<Rows>, StoreError> {
        self.inner.write(stmts).await
    }

    fn write_after_reads(
        &self,
        reads: &[Statement],
        then: &mut WriteBuilder<'_>,
    ) -> Result<Vec<Rows>, StoreError> {
        self.inner.write_after_reads(reads, then)
    }

    fn write_app(&self, ctx: AppContext<'_>, stmts: &[Statement]) -> Result<AppWrite, StoreError> {
        self.inner.write_app(ctx, stmts)
    }

    fn query_app(&self, protected: &[String], stmt: &Statement) -> Result<Rows, StoreError> {
        self.inner.query_app(protected, stmt)
    }

    fn tables_read(&self, sql: &str) -> Result<Vec<String>, StoreError> {
        self.inner.tables_read(sql)
    }
}
