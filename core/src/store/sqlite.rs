//! The SQLite store: `rusqlite` on one connection, natively on a bundled
//! SQLite file and in the browser on `sqlite-wasm-rs` (opened on the OPFS
//! VFS by [`super::browser`]). One implementation for both targets, so the
//! conformance suite proves the same code on each.
//!
//! SQLite playbook for files: WAL journal (readers never wait for the
//! writer), `synchronous = NORMAL` (durable against process crashes; the
//! last commits may be lost on power loss), temporary storage in memory
//! (statement journals of trigger-driven writes never go to a temp file),
//! normal locking so several
//! processes can share one file (an app's UI process, its background sync
//! process, the CLI), every write a short `BEGIN IMMEDIATE` transaction
//! that waits up to the busy timeout for the file's write lock and then
//! fails as [`StoreErrorKind::Locked`] (no read lock is ever upgraded, so
//! two processes cannot deadlock), and one connection behind a mutex per
//! process (statements never interleave). Syncs of different processes are
//! kept apart by an OS file lock on `<file>-erth-sync`
//! ([`Store::try_lock_sync`]), which the OS releases when a process dies.
//! Local statements take microseconds, so they run inline on the caller's
//! task.
//!
//! App SQL ([`Store::write_app`], [`Store::query_app`]) runs on the same
//! connection with three extras installed once at open: the engine's SQL
//! functions (`erth_clock()`, `erth_clock_after(old)`, `erth_now_ms()`,
//! `erth_new_id(id)`, called by the views' `INSTEAD OF` triggers, see
//! [`crate::schema::local`], and the public `uuid7()`), an authorizer that
//! holds app statements to [`crate::access::check_access`], and an update hook
//! that records which rows app statements changed. All three read one small
//! shared state that says whose statement is being prepared or run.
//!
//! Why not the `libsql` crate natively: `libsql` 0.10 reads TEXT through a
//! C string (`value.rs`, `CStr::from_ptr(..).to_str().unwrap()`), which
//! truncates text at the first NUL and panics on invalid UTF-8; rusqlite
//! reads text by length.

#[cfg(not(target_arch = "wasm32"))]
use super::SyncGuard;
use super::{AppContext, AppTx, AppWrite, Store, StoreError, StoreErrorKind, WriteBuilder};
use crate::access::{check_access, Access};
use crate::hlc::Timestamp;
use crate::value::{Rows, SqlValue, Statement};
use rusqlite::functions::FunctionFlags;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::{ToSqlOutput, ValueRef};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// A process's claim on a replica file: inside one process a file has one
/// owner (one in-memory clock, one set of subscribers); other processes
/// share it through SQLite's locks. Released when dropped.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug)]
pub struct FileClaim(std::path::PathBuf);

#[cfg(not(target_arch = "wasm32"))]
static CLAIMED: Mutex<Vec<std::path::PathBuf>> = Mutex::new(Vec::new());

#[cfg(not(target_arch = "wasm32"))]
impl FileClaim {
    /// Claims `path` for this process.
    ///
    /// Errors: [`StoreErrorKind::Locked`] while this process holds a claim
    /// on the same file (by any path that resolves to it).
    pub fn take(path: &std::path::Path) -> Result<FileClaim, StoreError> {
        // The file may not exist yet: resolve its directory.
        let resolved = match (path.parent(), path.file_name()) {
            (Some(dir), Some(name)) => {
                let dir = if dir.as_os_str().is_empty() {
                    std::path::Path::new(".")
                } else {
                    dir
                };
                std::fs::canonicalize(dir).map(|d| d.join(name))
            }
            _ => std::fs::canonicalize(path),
        }
        .map_err(|e| {
            StoreError::new(
                StoreErrorKind::Other,
                format!("cannot open {}: {e}", path.display()),
            )
        })?;
        let mut claimed = CLAIMED.lock().unwrap_or_else(|p| p.into_inner());
        if claimed.contains(&resolved) {
            return Err(StoreError::new(
                StoreErrorKind::Locked,
                format!(
                    "{} is already open in this process: share that handle",
                    path.display()
                ),
            ));
        }
        claimed.push(resolved.clone());
        Ok(FileClaim(resolved))
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Drop for FileClaim {
    fn drop(&mut self) {
        CLAIMED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| *p != self.0);
    }
}

/// `path` made absolute, so that a name starting with `file:` is a file's
/// name and never an SQLite URI (`file:x.db?mode=memory` would otherwise be
/// an in-memory database, `?vfs=` another VFS), with the file created
/// owner-only (mode 0600 on Unix) when it does not exist yet. SQLite creates
/// `-wal` and `-shm` with the main file's mode, so they are 0600 too. An
/// existing file keeps its mode (the owner chose it).
#[cfg(not(target_arch = "wasm32"))]
fn prepare_file(path: &std::path::Path) -> Result<std::path::PathBuf, StoreError> {
    let io = |e: std::io::Error| {
        StoreError::new(
            StoreErrorKind::Other,
            format!("cannot open {}: {e}", path.display()),
        )
    };
    let path = std::path::absolute(path).map_err(io)?;
    let mut create = std::fs::OpenOptions::new();
    create.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut create, 0o600);
    match create.open(&path) {
        Ok(_) => Ok(path),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(path),
        Err(e) => Err(io(e)),
    }
}

/// Gives `conn` its file key (none: a plain file) and proves it with a read
/// of the schema, before any statement that writes (the WAL pragma writes
/// the header of a new file). SQLCipher checks each page's HMAC, so a wrong
/// key, a missing key or a key for a plain file all fail here with
/// SQLITE_NOTADB, which becomes [`StoreErrorKind::WrongKey`]. Without a
/// key, SQLITE_NOTADB means an encrypted file or bytes that are no
/// database at all, which SQLite cannot tell apart: the message says both.
///
/// `before_read`: pragmas that must precede the first read and write
/// nothing (the browser's `locking_mode = EXCLUSIVE`: its OPFS VFS has no
/// shared memory, so a WAL file can only be read in exclusive mode).
pub(crate) fn apply_key(
    conn: &rusqlite::Connection,
    key: Option<&[u8; 32]>,
    before_read: &[&str],
) -> Result<(), StoreError> {
    set_key(conn, key)?;
    for pragma in before_read {
        conn.execute_batch(pragma).map_err(err)?;
    }
    check_key(conn, key, "SELECT count(*) FROM sqlite_master")
}

fn set_key(conn: &rusqlite::Connection, key: Option<&[u8; 32]>) -> Result<(), StoreError> {
    // SQLCipher writes its own errors (a failed HMAC on a wrong key) to
    // stderr by default; the caller gets them as typed errors instead.
    conn.execute_batch("PRAGMA cipher_log_level = NONE")
        .map_err(err)?;
    if let Some(key) = key {
        // A raw key (`x'…'`, SQLCipher's "raw key data"): no PBKDF2 at
        // open, the key being 256 random or derived bits already. Built
        // from our own hex digits only, so nothing is interpolated.
        conn.execute_batch(&format!(
            "PRAGMA key = \"x'{}'\"",
            crate::value::to_hex(key)
        ))
        .map_err(|_| StoreError::new(StoreErrorKind::Other, "setting the file key failed"))?;
    }
    Ok(())
}

/// Runs `read` (statements that read the schema) and reports SQLITE_NOTADB
/// as [`StoreErrorKind::WrongKey`].
fn check_key(
    conn: &rusqlite::Connection,
    key: Option<&[u8; 32]>,
    read: &str,
) -> Result<(), StoreError> {
    match conn.execute_batch(read) {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.extended_code & 0xff == 26 => {
            Err(StoreError::new(
                StoreErrorKind::WrongKey,
                match key {
                    Some(_) => "this file key does not open it (a wrong key, or a file that is not encrypted, or not a database)",
                    None => "the file is encrypted (or is not a database): open it with its file key",
                },
            ))
        }
        Err(e) => Err(err(e)),
    }
}

/// Copies the database `conn` holds (opened with its key, under
/// `locking_mode = EXCLUSIVE`) into the new file `dest`, encrypted under
/// `new` (`None`: plain), with SQLCipher's `sqlcipher_export`: every table,
/// index, trigger and view, and the `user_version` migration counter.
/// First takes the database out of WAL mode (checkpointing it), so closing
/// `conn` afterwards leaves no `-wal` beside the file that would be applied
/// to its replacement. Removing `dest` after a failure is the caller's.
pub(crate) fn export_rekeyed(
    conn: &rusqlite::Connection,
    dest: &str,
    new: Option<&[u8; 32]>,
) -> Result<(), StoreError> {
    conn.execute_batch("PRAGMA journal_mode = DELETE")
        .map_err(err)?;
    let user_version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    let new_key = new
        .map(|k| format!("x'{}'", crate::value::to_hex(k)))
        .unwrap_or_default();
    conn.execute(
        "ATTACH DATABASE ?1 AS rekeyed KEY ?2",
        rusqlite::params![dest, new_key],
    )
    .map_err(err)?;
    let exported = conn
        .query_row("SELECT sqlcipher_export('rekeyed')", [], |_| Ok(()))
        .and_then(|()| {
            conn.execute_batch(&format!(
                "PRAGMA rekeyed.user_version = {user_version}; DETACH DATABASE rekeyed"
            ))
        });
    if let Err(e) = exported {
        let _ = conn.execute_batch("DETACH DATABASE rekeyed");
        return Err(err(e));
    }
    Ok(())
}

/// Rewrites the file at `path` from key `old` to key `new` (`None`: plain);
/// the steps and guarantees are [`crate::file_key::change_file_key`]'s, which
/// calls it with the file claimed in this process.
#[cfg(not(target_arch = "wasm32"))]
pub fn rekey_file(
    path: &std::path::Path,
    old: Option<&[u8; 32]>,
    new: Option<&[u8; 32]>,
) -> Result<(), StoreError> {
    let other = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::new(
            StoreErrorKind::Other,
            format!("{what} {}: {e}", path.display()),
        )
    };
    let path = std::path::absolute(path).map_err(|e| other("cannot open", &e))?;
    if !path.is_file() {
        return Err(other("cannot rekey", &"no such file"));
    }
    let mut name = path.as_os_str().to_owned();
    name.push(".erth-rekey");
    let tmp = std::path::PathBuf::from(name);
    let tmp_text = tmp
        .to_str()
        .ok_or_else(|| other("cannot rekey", &"the path is not UTF-8"))?
        .to_owned();
    for leftover in [tmp.clone(), format!("{tmp_text}-journal").into()] {
        match std::fs::remove_file(&leftover) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(other("cannot remove a leftover of", &e))
            }
            _ => {}
        }
    }
    // The copy is created by us, owner-only, before SQLite writes into it
    // (a decrypted copy must not be readable by others even for a moment);
    // it takes the file's own permissions before the rename.
    let permissions = std::fs::metadata(&path)
        .map_err(|e| other("cannot read", &e))?
        .permissions();
    let mut create = std::fs::OpenOptions::new();
    create.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut create, 0o600);
    create
        .open(&tmp)
        .map_err(|e| other("cannot create the rewritten copy of", &e))?;
    // CREATE for the attached copy; the file itself exists (checked above).
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
        | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(&path, flags).map_err(err)?;
    set_key(&conn, old)?;
    // Exclusive before the first read: in WAL mode the lock is then only
    // granted when no other connection has the file open (each holds the
    // shared-memory index), and it is kept until this one closes.
    conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE")
        .map_err(err)?;
    check_key(
        &conn,
        old,
        "BEGIN EXCLUSIVE; SELECT count(*) FROM sqlite_master; COMMIT",
    )?;
    if let Err(e) = export_rekeyed(&conn, &tmp_text, new) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::set_permissions(&tmp, permissions)
        .and_then(|()| std::fs::File::open(&tmp))
        .and_then(|f| f.sync_all())
        .map_err(|e| other("cannot sync the rewritten copy of", &e))?;
    std::fs::rename(&tmp, &path).map_err(|e| other("cannot replace", &e))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| other("cannot sync the folder of", &e))?;
    }
    drop(conn);
    Ok(())
}

/// How long a native store waits for another process's write lock
/// (SQLite's busy timeout) before an operation fails as locked.
pub const DEFAULT_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A replica database on one SQLite connection.
pub struct SqliteStore {
    conn: Mutex<rusqlite::Connection>,
    hooks: Arc<Mutex<Hooks>>,
    /// The file whose OS lock keeps syncs of processes sharing a replica
    /// file apart (`<file>-erth-sync`); `None` for a single-owner database.
    #[cfg(not(target_arch = "wasm32"))]
    sync_lock_path: Option<std::path::PathBuf>,
}

/// Whose statement the connection is preparing or running.
#[derive(Debug, Default)]
enum Mode {
    /// The engine's own SQL: everything allowed, nothing recorded.
    #[default]
    Engine,
    /// The app's SQL, held to the access rules; `protected` are the synced tables' names.
    App { protected: Vec<String> },
    /// Preparing a live query to learn the tables it reads.
    Probe,
}

/// An app transaction's clock and its text, formatted once: the triggers
/// call `erth_clock()` for every clocked column of every row they write.
#[derive(Debug, Clone)]
struct TxClock {
    clock: Timestamp,
    text: String,
}

impl TxClock {
    fn new(clock: Timestamp) -> TxClock {
        TxClock {
            clock,
            text: clock.to_string(),
        }
    }
}

/// State the SQL functions, the authorizer and the update hook share.
#[derive(Debug, Default)]
struct Hooks {
    mode: Mode,
    /// The clock of the running app transaction.
    clock: Option<TxClock>,
    /// Rows changed by app statements: (table, rowid).
    changes: Vec<(String, i64)>,
    /// Why the authorizer refused the last statement.
    denied: Option<String>,
    /// (table, column) pairs read by the probed statement.
    reads: BTreeSet<(String, String)>,
    /// The app statement being prepared writes a synced table's view.
    writes_view: bool,
}

/// The prefix that keeps app statements apart from the engine's in the
/// connection's statement cache: an engine statement is never served to the
/// app without the app's checks.
const APP_CACHE_PREFIX: &str = "/*app*/ ";

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

pub(crate) fn err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(code, msg) => StoreError::from_sqlite_code(
            code.extended_code,
            msg.clone().unwrap_or_else(|| e.to_string()),
        ),
        _ => StoreError::new(StoreErrorKind::Other, e.to_string()),
    }
}

/// A statement argument, bound by reference (SQLite copies it when binding).
fn to_sql(v: &SqlValue) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(match v {
        SqlValue::Null => ValueRef::Null,
        SqlValue::Integer(i) => ValueRef::Integer(*i),
        SqlValue::Real(r) => ValueRef::Real(*r),
        SqlValue::Text(t) => ValueRef::Text(t.as_bytes()),
        SqlValue::Blob(b) => ValueRef::Blob(b),
    })
}

fn from_sql(v: ValueRef<'_>) -> Result<SqlValue, StoreError> {
    Ok(match v {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) => SqlValue::Integer(i),
        ValueRef::Real(r) => SqlValue::Real(r),
        ValueRef::Text(t) => SqlValue::Text(String::from_utf8(t.to_vec()).map_err(|_| {
            StoreError::new(StoreErrorKind::Corrupt, "text column holds invalid UTF-8")
        })?),
        ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
    })
}

impl SqliteStore {
    /// Wraps an open connection, applying `pragmas` (each may return a row).
    pub fn from_connection(
        conn: rusqlite::Connection,
        pragmas: &[&str],
    ) -> Result<SqliteStore, StoreError> {
        for pragma in pragmas {
            let mut stmt = conn.prepare(pragma).map_err(err)?;
            let mut rows = stmt.query([]).map_err(err)?;
            while rows.next().map_err(err)?.is_some() {}
        }
        let mut conn = conn;
        let hooks = Arc::new(Mutex::new(Hooks::default()));
        install(&mut conn, &hooks).map_err(err)?;
        let store = SqliteStore {
            conn: Mutex::new(conn),
            hooks,
            #[cfg(not(target_arch = "wasm32"))]
            sync_lock_path: None,
        };
        // Take the write lock once now: a file that cannot be written (or an
        // owner that holds it past the busy timeout) fails at open.
        store.write_sync(&[])?;
        Ok(store)
    }

    /// Opens (creating if needed) a database file with the playbook above
    /// and [`DEFAULT_BUSY_TIMEOUT`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with_timeout(path, DEFAULT_BUSY_TIMEOUT)
    }

    /// [`SqliteStore::open`] waiting up to `busy_timeout` for another
    /// process's write lock (then [`StoreErrorKind::Locked`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open_with_timeout(
        path: impl AsRef<std::path::Path>,
        busy_timeout: std::time::Duration,
    ) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_keyed(path, busy_timeout, None)
    }

    /// [`SqliteStore::open_with_timeout`] of a file encrypted at rest with
    /// `key` (SQLCipher 4, raw 256-bit key: see [`crate::file_key`]); a new
    /// file is created encrypted. `None`: a plain file.
    ///
    /// The key is checked by a read before anything is written: a wrong or
    /// missing key, or a key for a plain file, fails with
    /// [`StoreErrorKind::WrongKey`] and leaves the file's bytes as they were.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open_keyed(
        path: impl AsRef<std::path::Path>,
        busy_timeout: std::time::Duration,
        key: Option<&[u8; 32]>,
    ) -> Result<SqliteStore, StoreError> {
        let path = &prepare_file(path.as_ref())?;
        // Without SQLITE_OPEN_URI (rusqlite's default has it): a name is a
        // file's name. The bundled SQLite is also built with
        // SQLITE_USE_URI, which reads names starting with `file:` as URIs
        // whatever the flags: `prepare_file` made the path absolute, so it
        // never starts with `file:`.
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(err)?;
        conn.busy_timeout(busy_timeout).map_err(err)?;
        apply_key(&conn, key, &[])?;
        let mut store = SqliteStore::from_connection(
            conn,
            &[
                "PRAGMA journal_mode = WAL",
                "PRAGMA synchronous = NORMAL",
                "PRAGMA foreign_keys = ON",
                // Statement journals in memory: every app write through a
                // view runs a trigger, so SQLite journals each page it
                // touches per statement (to undo that statement alone);
                // past 64 KiB in one statement the journal moves to a
                // temporary file for the rest of the transaction, and a
                // 10,000-row transaction then spent over half its time in
                // `pwrite` (perf, `bench --only local`). The browser's
                // store does the same.
                "PRAGMA temp_store = MEMORY",
            ],
        )?;
        let mut lock = path.as_os_str().to_owned();
        lock.push("-erth-sync");
        store.sync_lock_path = Some(lock.into());
        Ok(store)
    }

    /// An in-memory database (tests, benchmarks).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn memory() -> Result<SqliteStore, StoreError> {
        SqliteStore::from_connection(rusqlite::Connection::open_in_memory().map_err(err)?, &[])
    }

    /// Calls `f` with the main database's bytes (SQLite's serialization of
    /// it, the same bytes as its file), while no statement runs. Used by the
    /// browser's IndexedDB store to save in-memory databases.
    #[cfg(target_arch = "wasm32")]
    pub fn with_snapshot<T>(&self, f: impl FnOnce(&[u8]) -> T) -> Result<T, StoreError> {
        let mut conn = self.lock();
        let data = conn.serialize(rusqlite::MAIN_DB).map_err(err)?;
        Ok(f(&data))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        // A panic while holding the lock cannot leave SQLite mid-transaction
        // in a way the next BEGIN would not report; keep serving.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write_sync(&self, stmts: &[Statement]) -> Result<Vec<Rows>, StoreError> {
        let conn = self.lock();
        in_write_tx(&conn, || {
            stmts.iter().map(|stmt| run(&conn, stmt)).collect()
        })
    }

    fn write_after_reads_sync(
        &self,
        reads: &[Statement],
        then: &mut WriteBuilder<'_>,
    ) -> Result<Vec<Rows>, StoreError> {
        let conn = self.lock();
        in_write_tx(&conn, || {
            let rows = reads
                .iter()
                .map(|stmt| run(&conn, stmt))
                .collect::<Result<Vec<_>, _>>()?;
            then(rows)?.iter().map(|stmt| run(&conn, stmt)).collect()
        })
    }

    /// Sets whose statements run next and clears what the last ones left
    /// (recorded changes, a refusal reason, probed reads).
    fn set_mode(&self, mode: Mode, clock: Option<Timestamp>) {
        let mut g = lock_hooks(&self.hooks);
        g.mode = mode;
        g.clock = clock.map(TxClock::new);
        g.changes.clear();
        g.denied = None;
        g.reads.clear();
    }

    /// An app statement's error: the authorizer's reason when it refused.
    fn app_error(&self, e: rusqlite::Error) -> StoreError {
        let denied = lock_hooks(&self.hooks).denied.take();
        match denied {
            Some(why) => StoreError::new(StoreErrorKind::Refused, why),
            None => match e {
                rusqlite::Error::MultipleStatement => StoreError::new(
                    StoreErrorKind::Other,
                    "one statement per call: use a transaction for several",
                ),
                // SQLite's message about the app's text, without the cache prefix.
                rusqlite::Error::SqlInputError { msg, offset, .. } => StoreError::new(
                    StoreErrorKind::Other,
                    format!(
                        "{msg} (at byte {})",
                        (offset.max(0) as usize).saturating_sub(APP_CACHE_PREFIX.len())
                    ),
                ),
                e => err(e),
            },
        }
    }

    /// Prepares an app statement (cached apart from the engine's) and checks
    /// its parameter count.
    fn prepare_app<'c>(
        &self,
        conn: &'c rusqlite::Connection,
        stmt: &Statement,
    ) -> Result<rusqlite::CachedStatement<'c>, StoreError> {
        lock_hooks(&self.hooks).writes_view = false;
        let prepared = conn
            .prepare_cached(&format!("{APP_CACHE_PREFIX}{}", stmt.sql))
            .map_err(|e| self.app_error(e))?;
        // A first prepare ran the authorizer; a cached statement passed it before.
        let writes_view = std::mem::take(&mut lock_hooks(&self.hooks).writes_view);
        if writes_view && prepared.column_count() > 0 {
            prepared.discard();
            return Err(StoreError::new(
                StoreErrorKind::Refused,
                "RETURNING does not work on synced tables (SQLite runs their writes in INSTEAD OF triggers and returns NULLs): read the row afterwards, passing your own id (e.g. uuid7())",
            ));
        }
        let wanted = prepared.parameter_count();
        if wanted != stmt.args.len() {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                format!(
                    "the statement takes {wanted} parameter(s) but {} were given",
                    stmt.args.len()
                ),
            ));
        }
        Ok(prepared)
    }

    /// [`Store::write_app`]: one app transaction, begun, run and ended in
    /// one hold of the connection.
    fn write_app_sync(
        &self,
        ctx: AppContext<'_>,
        stmts: &[Statement],
    ) -> Result<AppWrite, StoreError> {
        let conn = self.lock();
        let mut tx = self.begin_app_on(&conn, ctx)?;
        let mut results = Vec::with_capacity(stmts.len());
        for stmt in stmts {
            match self.app_statement_on(&conn, &mut tx, stmt) {
                Ok(out) => results.push(out),
                Err(e) => {
                    rollback_on(&conn);
                    return Err(e);
                }
            }
        }
        let changed = commit_on(&conn, tx)?;
        Ok(AppWrite { results, changed })
    }

    /// [`Store::begin_app`] on a held connection.
    fn begin_app_on(
        &self,
        conn: &rusqlite::Connection,
        mut ctx: AppContext<'_>,
    ) -> Result<AppTx, StoreError> {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
        let begun = run(conn, &ctx.read)
            .and_then(|rows| (ctx.clock)(rows))
            .and_then(|(clock, engine)| {
                for stmt in &engine {
                    run(conn, stmt)?;
                }
                Ok(clock)
            });
        match begun {
            Ok(clock) => Ok(AppTx {
                clock,
                protected: ctx.protected.to_vec(),
                changes: Vec::new(),
                lost: None,
            }),
            Err(e) => {
                rollback_on(conn);
                Err(e)
            }
        }
    }

    /// [`Store::app_statement`] on a held connection.
    fn app_statement_on(
        &self,
        conn: &rusqlite::Connection,
        tx: &mut AppTx,
        stmt: &Statement,
    ) -> Result<(Rows, u64), StoreError> {
        check_open(conn, tx)?;
        self.set_mode(
            Mode::App {
                protected: tx.protected.clone(),
            },
            Some(tx.clock),
        );
        let out = self.prepare_app(conn, stmt).and_then(|mut prepared| {
            rows_of(&mut prepared, stmt).map_err(|e| {
                let denied = lock_hooks(&self.hooks).denied.take();
                denied.map_or(e, |why| StoreError::new(StoreErrorKind::Refused, why))
            })
        });
        let changes = std::mem::take(&mut lock_hooks(&self.hooks).changes);
        self.set_mode(Mode::Engine, None);
        match out {
            Ok(rows) => {
                let changed = changes.len() as u64;
                tx.changes.extend(changes);
                Ok((rows, changed))
            }
            Err(e) => {
                if conn.is_autocommit() {
                    // SQLite rolled the whole transaction back
                    // (<https://sqlite.org/lang_transaction.html>, "Response
                    // To Errors Within A Transaction").
                    tx.lost = Some(e.message.clone());
                }
                Err(e)
            }
        }
    }

    fn query_app_sync(&self, protected: &[String], stmt: &Statement) -> Result<Rows, StoreError> {
        let conn = self.lock();
        self.set_mode(
            Mode::App {
                protected: protected.to_vec(),
            },
            None,
        );
        let result = self.prepare_app(&conn, stmt).and_then(|mut prepared| {
            if !prepared.readonly() {
                return Err(StoreError::new(
                    StoreErrorKind::NotReadOnly,
                    "the statement writes",
                ));
            }
            rows_of(&mut prepared, stmt)
        });
        self.set_mode(Mode::Engine, None);
        result
    }

    fn columns_read_sync(&self, sql: &str) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.lock();
        self.set_mode(Mode::Probe, None);
        // Not the statement cache: a cached statement is not prepared again,
        // so the authorizer would not see it.
        let prepared = conn.prepare(sql).map(|p| p.readonly());
        let reads = std::mem::take(&mut lock_hooks(&self.hooks).reads);
        self.set_mode(Mode::Engine, None);
        match prepared {
            Ok(true) => Ok(reads.into_iter().collect()),
            Ok(false) => Err(StoreError::new(
                StoreErrorKind::NotReadOnly,
                "the statement writes",
            )),
            Err(e) => Err(err(e)),
        }
    }
}

/// Runs `body` in a write transaction (`BEGIN IMMEDIATE`, waiting up to the
/// busy timeout for another connection's write lock): commits when it
/// succeeds, rolls back and returns its error when it fails.
fn in_write_tx<T>(
    conn: &rusqlite::Connection,
    body: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
    let out = body().and_then(|v| conn.execute_batch("COMMIT").map_err(err).map(|()| v));
    if out.is_err() && !conn.is_autocommit() {
        // The statement's error matters more than a failed rollback.
        let _ = conn.execute_batch("ROLLBACK");
    }
    out
}

/// Fails when SQLite ended `tx`'s transaction on its own: the connection
/// is outside every transaction, and a statement now would commit alone.
fn check_open(conn: &rusqlite::Connection, tx: &AppTx) -> Result<(), StoreError> {
    match &tx.lost {
        Some(why) => Err(StoreError::new(
            StoreErrorKind::Other,
            format!(
                "the transaction was rolled back by SQLite after an error ({why}); nothing it wrote remains"
            ),
        )),
        None if conn.is_autocommit() => Err(StoreError::new(
            StoreErrorKind::Other,
            "the transaction is no longer open; nothing it wrote remains",
        )),
        None => Ok(()),
    }
}

/// [`Store::commit_app`] on a held connection.
fn commit_on(
    conn: &rusqlite::Connection,
    tx: AppTx,
) -> Result<Vec<(String, Vec<i64>)>, StoreError> {
    check_open(conn, &tx)?;
    if let Err(e) = conn.execute_batch("COMMIT") {
        rollback_on(conn);
        return Err(err(e));
    }
    Ok(super::group_changes(tx.changes))
}

/// Rolls back the connection's open transaction, if it has one. A failed
/// rollback leaves SQLite to roll back when the connection closes; the
/// error that led here matters more.
fn rollback_on(conn: &rusqlite::Connection) {
    if !conn.is_autocommit() {
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::warn!(error = %e, "rollback failed");
        }
    }
}

fn lock_hooks(hooks: &Mutex<Hooks>) -> std::sync::MutexGuard<'_, Hooks> {
    hooks.lock().unwrap_or_else(|p| p.into_inner())
}

fn user_error(message: impl Into<String>) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(message.into().into())
}

/// The engine's SQL functions, the authorizer and the update hook (see the module docs).
fn install(conn: &mut rusqlite::Connection, hooks: &Arc<Mutex<Hooks>>) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8;
    // Each function reads what it needs under the lock and lets go at once.
    fn with_clock<T>(hooks: &Mutex<Hooks>, f: impl FnOnce(&TxClock) -> T) -> rusqlite::Result<T> {
        lock_hooks(hooks).clock.as_ref().map(f).ok_or_else(|| {
            user_error("the engine's clock functions run only inside its write triggers")
        })
    }
    let h = hooks.clone();
    conn.create_scalar_function("erth_clock", 0, flags, move |_| {
        with_clock(&h, |c| c.text.clone())
    })?;
    let h = hooks.clone();
    conn.create_scalar_function("erth_now_ms", 0, flags, move |_| {
        with_clock(&h, |c| c.clock.physical_ms() as i64)
    })?;
    let h = hooks.clone();
    conn.create_scalar_function("erth_clock_after", 1, flags, move |ctx| {
        let old: String = ctx.get(0)?;
        let old = Timestamp::parse(&old).map_err(user_error)?;
        with_clock(&h, |now| match crate::hlc::clock_after(now.clock, old) {
            Some(c) if c == now.clock => Ok(now.text.clone()),
            Some(c) => Ok(c.to_string()),
            None => Err(user_error(
                "a column holds the largest clock there is (year 10889): it cannot change any more",
            )),
        })?
    })?;
    conn.create_scalar_function("erth_new_id", 1, flags, |ctx| match ctx.get_raw(0) {
        ValueRef::Null => Ok(crate::ids::new_id()),
        ValueRef::Text(t) => {
            let text = std::str::from_utf8(t).map_err(|_| user_error("id is not UTF-8"))?;
            crate::ids::parse_id(text).map_err(|e| user_error(format!("bad id: {e}")))?;
            Ok(text.to_owned())
        }
        other => Err(user_error(format!(
            "bad id: ids are UUIDv7 text, not {:?}",
            other.data_type()
        ))),
    })?;
    conn.create_scalar_function("uuid7", 0, flags, |_| Ok(crate::ids::new_id()))?;
    let h = hooks.clone();
    conn.update_hook(Some(move |_action, _db: &str, table: &str, rowid: i64| {
        let mut g = lock_hooks(&h);
        if matches!(g.mode, Mode::App { .. }) {
            g.changes.push((table.to_owned(), rowid));
        }
    }))?;
    let h = hooks.clone();
    conn.authorizer(Some(move |ctx: AuthContext<'_>| authorize(&h, ctx)))?;
    Ok(())
}

fn authorize(hooks: &Mutex<Hooks>, ctx: AuthContext<'_>) -> Authorization {
    let mut g = lock_hooks(hooks);
    match &g.mode {
        Mode::Engine => Authorization::Allow,
        Mode::Probe => {
            if let AuthAction::Read {
                table_name,
                column_name,
            } = ctx.action
            {
                g.reads
                    .insert((table_name.to_owned(), column_name.to_owned()));
            }
            Authorization::Allow
        }
        Mode::App { protected } => {
            let access = access_of(&ctx.action);
            let writes_view = matches!((access, ctx.accessor), (Access::Write(t), None)
                if protected.iter().any(|p| p.eq_ignore_ascii_case(t)));
            let checked = check_access(access, ctx.accessor, protected);
            g.writes_view |= writes_view;
            match checked {
                Ok(()) => Authorization::Allow,
                Err(why) => {
                    g.denied = Some(why);
                    Authorization::Deny
                }
            }
        }
    }
}

/// The authorizer's action in the engine's terms ([`Access`]).
fn access_of<'a>(action: &AuthAction<'a>) -> Access<'a> {
    use AuthAction as A;
    match *action {
        A::Insert { table_name } | A::Delete { table_name } => Access::Write(table_name),
        A::Update { table_name, .. } => Access::Write(table_name),
        A::Read { table_name, .. } => Access::Read(table_name),
        A::CreateIndex {
            index_name: object,
            table_name: table,
        }
        | A::CreateTempIndex {
            index_name: object,
            table_name: table,
        }
        | A::DropIndex {
            index_name: object,
            table_name: table,
        }
        | A::DropTempIndex {
            index_name: object,
            table_name: table,
        }
        | A::CreateTrigger {
            trigger_name: object,
            table_name: table,
        }
        | A::CreateTempTrigger {
            trigger_name: object,
            table_name: table,
        }
        | A::DropTrigger {
            trigger_name: object,
            table_name: table,
        }
        | A::DropTempTrigger {
            trigger_name: object,
            table_name: table,
        } => Access::SchemaObject { object, table },
        A::CreateTable { table_name }
        | A::CreateTempTable { table_name }
        | A::DropTable { table_name }
        | A::DropTempTable { table_name }
        | A::AlterTable { table_name, .. }
        | A::CreateVtable { table_name, .. }
        | A::DropVtable { table_name, .. } => Access::Schema(table_name),
        A::CreateView { view_name }
        | A::CreateTempView { view_name }
        | A::DropView { view_name }
        | A::DropTempView { view_name } => Access::Schema(view_name),
        A::Attach { .. } | A::Detach { .. } => Access::Attach,
        A::Transaction { .. } | A::Savepoint { .. } => Access::Transaction,
        A::Pragma {
            pragma_name,
            pragma_value,
        } => Access::Pragma(pragma_name, pragma_value),
        A::Function { function_name } => Access::Function(function_name),
        _ => Access::Other,
    }
}

fn run(conn: &rusqlite::Connection, stmt: &Statement) -> Result<Rows, StoreError> {
    let mut prepared = conn.prepare_cached(&stmt.sql).map_err(err)?;
    rows_of(&mut prepared, stmt)
}

fn rows_of(prepared: &mut rusqlite::Statement<'_>, stmt: &Statement) -> Result<Rows, StoreError> {
    let columns: Vec<String> = prepared.column_names().map(str::to_owned).collect();
    let n = columns.len();
    let params = rusqlite::params_from_iter(stmt.args.iter().map(to_sql));
    let mut rows = prepared.query(params).map_err(err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(err)? {
        let mut cells = Vec::with_capacity(n);
        for i in 0..n {
            cells.push(from_sql(row.get_ref(i).map_err(err)?)?);
        }
        out.push(cells);
    }
    Ok(Rows { columns, rows: out })
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl Store for SqliteStore {
    async fn query(&self, stmt: &Statement) -> Result<Rows, StoreError> {
        run(&self.lock(), stmt)
    }

    async fn write(&self, stmts: &[Statement]) -> Result<Vec<Rows>, StoreError> {
        self.write_sync(stmts)
    }

    fn write_after_reads(
        &self,
        reads: &[Statement],
        then: &mut WriteBuilder<'_>,
    ) -> Result<Vec<Rows>, StoreError> {
        self.write_after_reads_sync(reads, then)
    }

    fn write_app(&self, ctx: AppContext<'_>, stmts: &[Statement]) -> Result<AppWrite, StoreError> {
        self.write_app_sync(ctx, stmts)
    }

    fn begin_app(&self, ctx: AppContext<'_>) -> Result<AppTx, StoreError> {
        self.begin_app_on(&self.lock(), ctx)
    }

    fn app_statement(&self, tx: &mut AppTx, stmt: &Statement) -> Result<(Rows, u64), StoreError> {
        self.app_statement_on(&self.lock(), tx, stmt)
    }

    fn commit_app(&self, tx: AppTx) -> Result<Vec<(String, Vec<i64>)>, StoreError> {
        commit_on(&self.lock(), tx)
    }

    fn rollback_app(&self, tx: AppTx) -> Result<(), StoreError> {
        let conn = self.lock();
        let open = check_open(&conn, &tx);
        rollback_on(&conn);
        open
    }

    fn query_app(&self, protected: &[String], stmt: &Statement) -> Result<Rows, StoreError> {
        self.query_app_sync(protected, stmt)
    }

    fn columns_read(&self, sql: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.columns_read_sync(sql)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn try_lock_sync(&self) -> Result<Option<SyncGuard>, StoreError> {
        let Some(path) = &self.sync_lock_path else {
            return Ok(Some(SyncGuard::single_owner()));
        };
        let io = |e: std::io::Error| {
            StoreError::new(
                StoreErrorKind::Other,
                format!("sync lock file {}: {e}", path.display()),
            )
        };
        let mut options = std::fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        // Owner-only, and never through a symbolic link: a link planted at
        // `<file>-erth-sync` cannot make this process create or lock a file
        // elsewhere (the open fails, ELOOP).
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        }
        let file = options.open(path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(SyncGuard::holding(Box::new(file)))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance_in_memory() {
        let store = SqliteStore::memory().unwrap();
        super::super::conformance::run(&store).await;
    }

    #[tokio::test]
    async fn conformance_on_file_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            super::super::conformance::run(&store).await;
        }
        let store = SqliteStore::open(&path).unwrap();
        let rows = store
            .query(&Statement::plain("SELECT count(*) FROM conf_r"))
            .await
            .unwrap();
        assert_eq!(rows.rows[0][0], SqlValue::Integer(3));
        let mode = store
            .query(&Statement::plain("PRAGMA journal_mode"))
            .await
            .unwrap();
        assert_eq!(mode.rows[0][0], SqlValue::from("wal"));
    }

    #[tokio::test]
    async fn two_connections_share_a_file_and_a_held_write_lock_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let first = SqliteStore::open(&path).unwrap();
        let second =
            SqliteStore::open_with_timeout(&path, std::time::Duration::from_millis(50)).unwrap();
        first
            .write(&[Statement::plain("CREATE TABLE t (x)")])
            .await
            .unwrap();
        second
            .write(&[Statement::plain("INSERT INTO t VALUES (1)")])
            .await
            .unwrap();
        let count = first
            .query(&Statement::plain("SELECT count(*) FROM t"))
            .await
            .unwrap();
        assert_eq!(count.rows[0][0], SqlValue::Integer(1));
        // The first holds the write lock (inside a write transaction) past
        // the second's busy timeout: the second gets Locked, not a hang.
        let e = first
            .write_after_reads(&[], &mut |_| {
                let e = second
                    .write_sync(&[Statement::plain("INSERT INTO t VALUES (2)")])
                    .expect_err("the write lock is held");
                Err(e)
            })
            .expect_err("passes the error on");
        assert!(e.is_locked(), "{e:?}");
        // Syncs: one holder at a time; the lock frees when its guard drops.
        let held = first.try_lock_sync().unwrap().expect("free");
        assert!(second.try_lock_sync().unwrap().is_none());
        drop(held);
        assert!(second.try_lock_sync().unwrap().is_some());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn replica_files_are_the_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let store = SqliteStore::open(&path).unwrap();
        store
            .write(&[Statement::plain("CREATE TABLE t (x)")])
            .await
            .unwrap();
        let _held = store.try_lock_sync().unwrap().expect("free");
        for suffix in ["", "-wal", "-shm", "-erth-sync"] {
            let file = dir.path().join(format!("r.db{suffix}"));
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "r.db{suffix} is {mode:o}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_sync_lock_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let store = SqliteStore::open(&path).unwrap();
        // Someone plants a link where the lock file goes, to a file of the
        // victim's (here: one that does not exist yet, which the open
        // would create).
        let target = dir.path().join("victim");
        std::os::unix::fs::symlink(&target, dir.path().join("r.db-erth-sync")).unwrap();
        let e = store.try_lock_sync().expect_err("followed the link");
        assert!(e.message.contains("erth-sync"), "{e}");
        assert!(!target.exists(), "the link was followed");
    }

    #[test]
    fn a_file_has_one_claim_per_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let first = FileClaim::take(&path).unwrap();
        // The same file by another path.
        let other = dir.path().join(".").join("r.db");
        let e = FileClaim::take(&other).expect_err("claimed");
        assert!(e.is_locked(), "{e:?}");
        assert!(FileClaim::take(&dir.path().join("s.db")).is_ok());
        drop(first);
        assert!(FileClaim::take(&other).is_ok());
    }

    #[test]
    fn native_files_keep_temporary_storage_in_memory() {
        // Statement journals of statements that run triggers (every app
        // write through a synced table's view) stay in memory instead of
        // spilling to a temporary file once one passes 64 KiB.
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("r.db")).unwrap();
        let conn = store.lock();
        let mode = run(&conn, &Statement::plain("PRAGMA temp_store")).unwrap();
        assert_eq!(mode.rows[0][0], SqlValue::Integer(2), "2 is MEMORY");
    }

    #[test]
    fn clock_functions_give_the_transaction_clock() {
        let store = SqliteStore::memory().unwrap();
        let now = Timestamp {
            hlc: 0x0190_0000_0000_0005,
            node: crate::hlc::NodeId(0xabc),
        };
        let select = |sql: &str, args: Vec<SqlValue>| {
            let conn = store.lock();
            run(&conn, &Statement::new(sql, args)).map(|r| r.rows[0][0].clone())
        };
        store.set_mode(Mode::Engine, Some(now));
        assert_eq!(
            select("SELECT erth_clock()", vec![]).unwrap(),
            SqlValue::Text(now.to_string())
        );
        assert_eq!(
            select("SELECT erth_now_ms()", vec![]).unwrap(),
            SqlValue::Integer(now.physical_ms() as i64)
        );
        // An older column clock takes the transaction's clock.
        let older = Timestamp {
            hlc: now.hlc - 1,
            node: crate::hlc::NodeId(u64::MAX),
        };
        assert_eq!(
            select("SELECT erth_clock_after(?)", vec![older.to_string().into()]).unwrap(),
            SqlValue::Text(now.to_string())
        );
        // A clock ahead of it (pulled past the drift bound) is passed by one.
        let ahead = Timestamp {
            hlc: now.hlc + 100,
            node: crate::hlc::NodeId(1),
        };
        let passed = Timestamp {
            hlc: ahead.hlc + 1,
            node: now.node,
        };
        assert_eq!(
            select("SELECT erth_clock_after(?)", vec![ahead.to_string().into()]).unwrap(),
            SqlValue::Text(passed.to_string())
        );
        let last = Timestamp {
            hlc: u64::MAX,
            node: crate::hlc::NodeId(0),
        };
        let e = select("SELECT erth_clock_after(?)", vec![last.to_string().into()]).unwrap_err();
        assert!(e.message.contains("largest clock"), "{e}");
        // A later transaction's clock replaces the text.
        let later = Timestamp {
            hlc: now.hlc + 1_000,
            node: now.node,
        };
        store.set_mode(Mode::Engine, Some(later));
        assert_eq!(
            select("SELECT erth_clock()", vec![]).unwrap(),
            SqlValue::Text(later.to_string())
        );
        // Outside a write there is no clock.
        store.set_mode(Mode::Engine, None);
        let e = select("SELECT erth_clock()", vec![]).unwrap_err();
        assert!(e.message.contains("only inside"), "{e}");
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_panic() {
        let store = SqliteStore::memory().unwrap();
        let conn = store.lock();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (CAST(X'ff00fe' AS TEXT));")
            .unwrap();
        let e = run(&conn, &Statement::plain("SELECT x FROM t")).unwrap_err();
        assert_eq!(e.kind, StoreErrorKind::Corrupt);
    }
}
