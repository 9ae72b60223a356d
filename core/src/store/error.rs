//! [`StoreError`]: why a local store operation failed, classified by
//! SQLite's result code. A leaf module: the engine's [`crate::error::Error`]
//! wraps it, and every store returns it.

/// Why a store operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// Another connection holds the database (SQLITE_BUSY / SQLITE_LOCKED, a Web Lock).
    Locked,
    /// The file is not a database or is damaged.
    Corrupt,
    /// A constraint failed (NOT NULL, CHECK, ...).
    Constraint,
    /// The engine refused an app statement (see [`crate::access::check_access`]).
    Refused,
    /// A read-only call (a query, a live query) got a statement that writes.
    NotReadOnly,
    /// The file is encrypted and the key given at open (or its absence)
    /// does not open it, or a key was given for a file that is not
    /// encrypted (SQLCipher reports both as SQLITE_NOTADB on the first
    /// read). Nothing was written.
    WrongKey,
    /// Anything else (I/O, misuse, full disk).
    Other,
}

/// A failed store operation, with the SQLite message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub message: String,
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
        }
    }

    /// Classifies an SQLite primary result code.
    pub fn from_sqlite_code(code: i32, message: impl Into<String>) -> Self {
        let kind = match code & 0xff {
            5 | 6 => StoreErrorKind::Locked,
            11 | 26 => StoreErrorKind::Corrupt,
            19 => StoreErrorKind::Constraint,
            _ => StoreErrorKind::Other,
        };
        StoreError::new(kind, message)
    }

    pub fn is_locked(&self) -> bool {
        self.kind == StoreErrorKind::Locked
    }
}
