//! The one rich error of the core, with sources, and its coarse [`ErrorKind`]
//! that bindings map to their small public errors.
//!
//! No variant ever holds the auth token or the encryption key: transport
//! errors are built from status codes and server bodies, never from request
//! headers, and every text that comes from the server (a Hrana error's
//! message, an HTTP body, a malformed answer) is clipped and stripped of
//! anything shaped like a credential ([`crate::redact`]) before it enters
//! an error; the Hrana client also removes its own token and key from them
//! ([`Error::scrubbed`]).

use crate::store::error::StoreError;
use crate::transport::TransportError;

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Erth Sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller passed something unusable (bad id, bad URL, bad table definition).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A table definition breaks the naming or type rules (see [`crate::schema`]).
    #[error("invalid schema: table {table}{}: {reason}", column.as_ref().map(|c| format!(", column {c}")).unwrap_or_default())]
    InvalidSchema {
        table: String,
        column: Option<String>,
        reason: String,
    },
    /// The declared schema differs from the database's in a way that is not
    /// additive (a dropped, renamed or retyped column or table, NOT NULL
    /// without a default). Nothing was changed.
    #[error("schema change refused: table {table}{}: {reason}", column.as_ref().map(|c| format!(", column {c}")).unwrap_or_default())]
    SchemaChange {
        table: String,
        column: Option<String>,
        reason: String,
    },
    /// An app's SQL statement failed (syntax, constraint, a statement the
    /// engine cannot sync); SQLite's or the engine's message. Nothing was changed.
    #[error("SQL error: {message}")]
    Sql { message: String },
    /// A read-only call (a query, a live query) got a statement that
    /// writes; nothing ran. `call` is the call as the app made it: the
    /// core's own (`query()`, `watch()`), or a face's name for it
    /// ([`Error::for_call`]).
    #[error("{call} runs read-only statements; use execute() to write")]
    WriteInReadOnlyCall { call: String },
    /// No live row with that id.
    #[error("not found: no row {id} in table {table}")]
    NotFound { table: String, id: String },
    /// A subscription was refused (see `Database::add_subscription`):
    /// its name, or its filter and why. Nothing was changed.
    #[error("subscription {name:?} refused: {reason}")]
    InvalidSubscription { name: String, reason: String },
    /// No subscription with that name.
    #[error("no subscription named {name:?}")]
    UnknownSubscription { name: String },
    /// The local database failed.
    #[error("local storage error: {0}")]
    Storage(#[source] StoreError),
    /// The local database is held elsewhere: [`LockHolder`] says where, and
    /// so what the app can do (share its own handle, or wait for the other
    /// process or tab).
    #[error("{0}")]
    DatabaseLocked(LockHolder),
    /// The server could not be reached, or the connection broke.
    #[error("network error: {0}")]
    Network(#[source] TransportError),
    /// The server refused the credentials (HTTP 401 or 403).
    #[error("authentication failed: the server answered HTTP {status}; set a valid token")]
    Auth { status: u16 },
    /// The server executed the request and reported an error with a Hrana code.
    #[error("server error {code}: {message}")]
    Server { code: String, message: String },
    /// The server answered with an HTTP error status.
    #[error("server answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    /// The server answered with a redirect (HTTP 3xx). Hrana servers never
    /// redirect, so the URL is wrong (`http://` for an `https://` server?)
    /// or something between here and the server redirects; the request (its
    /// token, key and body) was not sent again anywhere.
    #[error("the server answered HTTP {status}, a redirect: Hrana servers do not redirect, so check the URL (https://?); nothing was sent to the address it named")]
    Redirected { status: u16 },
    /// The server's answer does not follow the Hrana protocol.
    #[error("malformed server response: {0}")]
    Protocol(String),
    /// A row from the server breaks the row layout (types, ids, clocks).
    #[error("invalid row from server in table {table}: {reason}")]
    InvalidRemoteRow { table: String, reason: String },
    /// A sync ran past `Config::sync_timeout_ms` and stopped; what it
    /// committed stays (pages and batches are committed whole) and the next
    /// sync resumes from there.
    #[error("the sync took longer than its limit ({ms} ms) and stopped; the next sync resumes where it stopped")]
    SyncTimeout { ms: u64 },
    /// A sync was cancelled (its future dropped) before it finished; what it
    /// committed stays.
    #[error("the sync was cancelled before it finished; the next sync resumes where it stopped")]
    SyncCancelled,
    /// The server's history was purged again and again while one sync
    /// caught up with it; what the sync committed stays, and the next sync
    /// goes on (see [`crate::purge`]).
    #[error("the server purged history {times} times during this sync; the next sync catches up")]
    PurgedDuringSync { times: usize },
    /// A pulled value of an encrypted column was sealed with a key this
    /// replica was not given (a wrong or missing key): the sync stopped
    /// before writing anything, and works once the key is given.
    #[error("table {table}: a value is sealed with column key {key_id}, which this replica does not have (a wrong or missing key)")]
    UnknownColumnKey { table: String, key_id: String },
    /// The replica's file is encrypted at rest and the file key given at
    /// open ([`crate::Config::file_key`]) is wrong or missing, or a key was
    /// given for a plain file. Nothing was written: the file's bytes are as
    /// they were, and opening with the right key works.
    #[error("the replica's file does not open: {reason}")]
    WrongFileKey { reason: String },
    /// `sync()` was called on a database that has no remote.
    #[error("no remote configured: the database is local-only until a URL is set")]
    NoRemote,
}

/// What a host can act on; bindings expose one error case per kind. The
/// variant names are the kinds' names on every face (the npm `code`, the
/// CLI's JSON `kind`, the mobile error's cases): [`ErrorKind::as_str`] gives
/// them, [`ErrorKind::ALL`] lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[cfg_attr(feature = "js", derive(serde::Serialize, tsify::Tsify))]
pub enum ErrorKind {
    InvalidInput,
    SchemaChange,
    Sql,
    NotFound,
    Storage,
    DatabaseLocked,
    Network,
    Auth,
    Server,
    Protocol,
    NoRemote,
    /// A key the app gave is wrong or missing: the file key of an encrypted
    /// replica file, or the column key that sealed a pulled value.
    WrongKey,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::InvalidInput,
        ErrorKind::SchemaChange,
        ErrorKind::Sql,
        ErrorKind::NotFound,
        ErrorKind::Storage,
        ErrorKind::DatabaseLocked,
        ErrorKind::Network,
        ErrorKind::Auth,
        ErrorKind::Server,
        ErrorKind::Protocol,
        ErrorKind::NoRemote,
        ErrorKind::WrongKey,
    ];

    /// The kind's name, as every face spells it (`"DatabaseLocked"`): the
    /// variant's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "InvalidInput",
            ErrorKind::SchemaChange => "SchemaChange",
            ErrorKind::Sql => "Sql",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::Storage => "Storage",
            ErrorKind::DatabaseLocked => "DatabaseLocked",
            ErrorKind::Network => "Network",
            ErrorKind::Auth => "Auth",
            ErrorKind::Server => "Server",
            ErrorKind::Protocol => "Protocol",
            ErrorKind::NoRemote => "NoRemote",
            ErrorKind::WrongKey => "WrongKey",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// The coarse kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidInput(_)
            | Error::InvalidSchema { .. }
            | Error::InvalidSubscription { .. } => ErrorKind::InvalidInput,
            Error::UnknownColumnKey { .. } | Error::WrongFileKey { .. } => ErrorKind::WrongKey,
            Error::SchemaChange { .. } => ErrorKind::SchemaChange,
            Error::Sql { .. } | Error::WriteInReadOnlyCall { .. } => ErrorKind::Sql,
            Error::NotFound { .. } | Error::UnknownSubscription { .. } => ErrorKind::NotFound,
            Error::Storage(_) => ErrorKind::Storage,
            Error::DatabaseLocked(_) => ErrorKind::DatabaseLocked,
            Error::Network(_)
            | Error::SyncTimeout { .. }
            | Error::SyncCancelled
            | Error::PurgedDuringSync { .. } => ErrorKind::Network,
            Error::Auth { .. } => ErrorKind::Auth,
            Error::Server { .. } | Error::Http { .. } | Error::Redirected { .. } => {
                ErrorKind::Server
            }
            Error::Protocol(_) | Error::InvalidRemoteRow { .. } => ErrorKind::Protocol,
            Error::NoRemote => ErrorKind::NoRemote,
        }
    }

    /// Worth retrying after a pause: network faults, overload, busy databases,
    /// garbled (e.g. truncated) responses. Auth and SQL errors are not.
    pub fn is_transient(&self) -> bool {
        match self {
            // The same answer would come again, as large.
            Error::Network(TransportError::ResponseTooLarge { .. }) => false,
            Error::Network(_) | Error::Protocol(_) | Error::PurgedDuringSync { .. } => true,
            Error::Http { status, .. } => matches!(status, 408 | 429 | 500..=599),
            Error::Server { code, .. } => is_contention_code(code) || code == "STREAM_EXPIRED",
            _ => false,
        }
    }

    /// The server could not take a transaction because of other writers: a
    /// busy or locked database, or an MVCC commit conflict. The transaction
    /// rolled back, so running it again is safe (and, with backoff, the way
    /// it lands).
    pub fn is_contention(&self) -> bool {
        matches!(self, Error::Server { code, .. } if is_contention_code(code))
    }

    /// The request took longer than the transport's timeout: the caller may
    /// ask for less (a smaller page or batch) instead of the same again.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Network(TransportError::Timeout))
    }

    /// The server refused a statement because of the rows it carries (a
    /// constraint or trigger, a value it will not take, a row it cannot
    /// merge), as opposed to the network, contention, or a fault of the
    /// whole database ([`WHOLE_DATABASE_CODES`]) or of the credentials
    /// (HTTP 401/403 are [`Error::Auth`]). Decided by the Hrana error code
    /// only; a server that reports one generic code for every failed step
    /// (tursodb: `BATCH_STEP_ERROR`) counts as refusing rows, which the
    /// push verifies by narrowing the batch down (see [`crate::sync`]).
    pub fn is_row_refusal(&self) -> bool {
        match self {
            Error::Server { code, .. } => {
                !is_contention_code(code)
                    && !WHOLE_DATABASE_CODES.contains(&code.as_str())
                    && !self.is_table_refusal()
            }
            _ => false,
        }
    }

    /// The server's authorizer refused a statement on a table (`SQLITE_AUTH`:
    /// a token restricted per table): every row of that table is refused
    /// alike, so the push skips the table instead of narrowing row by row.
    pub fn is_table_refusal(&self) -> bool {
        matches!(self, Error::Server { code, .. } if code == "SQLITE_AUTH")
    }

    /// This error as a face reports it for its own name of the call that
    /// failed: a [`Error::WriteInReadOnlyCall`] names `call` (`getAll()`
    /// for the npm package's `getAll`); any other error is unchanged.
    pub fn for_call(self, call: &str) -> Error {
        match self {
            Error::WriteInReadOnlyCall { .. } => Error::WriteInReadOnlyCall {
                call: call.to_owned(),
            },
            other => other,
        }
    }

    /// This error with every occurrence of `secrets` (the token and key the
    /// caller holds) removed from the texts that came from the server
    /// ([`crate::redact::scrub`]): a server that echoes a credential back
    /// cannot put it into an error, the status or a stored record.
    pub fn scrubbed(self, secrets: &[&str]) -> Error {
        if secrets.is_empty() {
            return self;
        }
        let s = |t: String| crate::redact::scrub(&t, secrets);
        match self {
            Error::Server { code, message } => Error::Server {
                code: s(code),
                message: s(message),
            },
            Error::Http { status, body } => Error::Http {
                status,
                body: s(body),
            },
            Error::Protocol(text) => Error::Protocol(s(text)),
            Error::InvalidRemoteRow { table, reason } => Error::InvalidRemoteRow {
                table,
                reason: s(reason),
            },
            Error::Network(TransportError::Connect(t)) => {
                Error::Network(TransportError::Connect(s(t)))
            }
            Error::Network(TransportError::Io(t)) => Error::Network(TransportError::Io(s(t))),
            other => other,
        }
    }

    /// The server's Hrana error code, if the server reported one.
    pub fn server_code(&self) -> Option<&str> {
        match self {
            Error::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Hrana codes of contention: sqld's `SQLITE_BUSY` / `SQLITE_LOCKED` (an MVCC
/// `BEGIN CONCURRENT` commit conflict is SQLite's extended
/// `SQLITE_BUSY_SNAPSHOT`, which sqld reports by its primary code
/// `SQLITE_BUSY`: `sqlite_error_code` in libsql-server/src/hrana/stmt.rs;
/// `SQLITE_BUSY_SNAPSHOT` is accepted too for servers that report extended
/// codes), and sqld's own `TRANSACTION_BUSY` / `TRANSACTION_TIMEOUT`
/// (`StmtError::code`, same file).
fn is_contention_code(code: &str) -> bool {
    matches!(
        code,
        "SQLITE_BUSY"
            | "SQLITE_BUSY_SNAPSHOT"
            | "SQLITE_LOCKED"
            | "TRANSACTION_BUSY"
            | "TRANSACTION_TIMEOUT"
    )
}

/// Hrana codes that are about the whole server database, not the rows of a
/// statement (sqld's `StmtError::code` / `sqlite_error_code`,
/// libsql-server/src/hrana/stmt.rs): read-only or blocked database, full
/// disk, I/O, corruption, memory, an interrupted statement, a replica that
/// cannot reach its primary.
pub const WHOLE_DATABASE_CODES: &[&str] = &[
    "SQLITE_READONLY",
    "BLOCKED",
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_CORRUPT",
    "SQLITE_NOTADB",
    "SQLITE_CANTOPEN",
    "SQLITE_NOMEM",
    "SQLITE_INTERRUPT",
    "SQLITE_PERM",
    "PROXY_ERROR",
    "STREAM_EXPIRED",
    "RESPONSE_TOO_LARGE",
];

/// Where a local database is held when it cannot be had
/// ([`Error::DatabaseLocked`]); its `Display` is the error's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockHolder {
    /// Another process kept the file's write or sync lock past the timeout
    /// (native).
    OtherProcess,
    /// This process already has the file open: a second
    /// `Database::open_native` of the same file (by any path).
    ThisProcess { path: String },
    /// Another tab or worker of this origin holds the database (browser).
    OtherTab,
    /// This tab (this worker) already has the database `name` open.
    ThisTab { name: String },
    /// A write transaction of this replica
    /// ([`crate::Database::write_transaction`]) stayed open longer than
    /// the lock timeout (`Config::lock_timeout_ms`, in ms) this call waited.
    WriteTransaction { waited_ms: u64 },
}

impl LockHolder {
    /// Another holder of the platform's kind: a process natively, a tab
    /// or worker in the browser.
    pub fn other() -> LockHolder {
        if cfg!(target_arch = "wasm32") {
            LockHolder::OtherTab
        } else {
            LockHolder::OtherProcess
        }
    }
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockHolder::OtherProcess => f.write_str(
                "the local database is locked by another process, which kept it past the \
                 timeout; retry later",
            ),
            LockHolder::ThisProcess { path } => write!(
                f,
                "{path} is already open in this process: share that handle instead of \
                 opening the file again (one open handle per file in a process)"
            ),
            LockHolder::OtherTab => {
                f.write_str("the local database is held by another tab or worker of this origin")
            }
            LockHolder::WriteTransaction { waited_ms } => write!(
                f,
                "a write transaction of this database stayed open longer than the lock timeout \
                 ({waited_ms} ms): end transactions promptly (commit or roll back)"
            ),
            LockHolder::ThisTab { name } => write!(
                f,
                "database \"{name}\" is already open in this tab: share that handle instead \
                 of opening it again"
            ),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        if e.is_locked() {
            Error::DatabaseLocked(LockHolder::other())
        } else if e.kind == crate::store::error::StoreErrorKind::WrongKey {
            Error::WrongFileKey { reason: e.message }
        } else {
            Error::Storage(e)
        }
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        Error::Network(e)
    }
}

/// A server-provided text, fit for an error message, the status or a
/// stored record: anything shaped like a credential removed
/// ([`crate::redact::secrets`]), then shortened to about `max` bytes.
pub(crate) fn clip(text: &str, max: usize) -> String {
    let text = &crate::redact::secrets(text);
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn server(code: &str) -> Error {
        Error::Server {
            code: code.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn kinds_are_named_by_their_variants_once_each() {
        let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        for (kind, name) in ErrorKind::ALL.iter().zip(&names) {
            assert_eq!(format!("{kind:?}"), *name);
            assert_eq!(kind.to_string(), *name);
        }
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn server_codes_are_classified_by_code() {
        // Rows at fault: constraints and triggers (sqld), values the server
        // will not take, tursodb's one code for every failed step.
        for code in [
            "SQLITE_CONSTRAINT",
            "SQLITE_TOOBIG",
            "ARGS_INVALID",
            "BATCH_STEP_ERROR",
        ] {
            let e = server(code);
            assert!(e.is_row_refusal(), "{code}");
            assert!(!e.is_contention() && !e.is_transient() && !e.is_table_refusal());
        }
        // Contention: retried, never a refusal.
        for code in [
            "SQLITE_BUSY",
            "SQLITE_BUSY_SNAPSHOT",
            "SQLITE_LOCKED",
            "TRANSACTION_BUSY",
            "TRANSACTION_TIMEOUT",
        ] {
            let e = server(code);
            assert!(e.is_contention() && e.is_transient(), "{code}");
            assert!(!e.is_row_refusal());
        }
        // The whole database, or the table: not the rows.
        for code in WHOLE_DATABASE_CODES {
            assert!(!server(code).is_row_refusal(), "{code}");
        }
        assert!(server("SQLITE_AUTH").is_table_refusal());
        assert!(!server("SQLITE_AUTH").is_row_refusal());
        // Not server answers at all.
        assert!(!Error::Auth { status: 403 }.is_row_refusal());
        assert!(!Error::Network(TransportError::Timeout).is_row_refusal());
        assert!(Error::Network(TransportError::Timeout).is_timeout());
        assert!(!Error::Network(TransportError::Io("x".into())).is_timeout());
    }
}
