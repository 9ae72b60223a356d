//! [`ErthError`]: the one error Kotlin (`ErthException`), Swift
//! (`ErthError`) and Python (`ErthError`, wrapped by the package into one
//! class with a `kind` and a `server_code`) see, one case per
//! [`erth_core::ErrorKind`] plus [`ErthError::Internal`] for bugs (a caught
//! panic, a listener that failed in an unexpected way). Each case carries
//! the core's message, which never contains the auth token; `Server` also
//! carries the server's Hrana error code when it sent one (the npm face's
//! `serverCode`).
//!
//! Not shared with the core as its records are: the core's
//! [`erth_core::Error`] carries sources (`StoreError`, `TransportError`) and
//! structured fields that are no FFI types, and hosts want one case per
//! thing they can do, plus `Internal`, which the core has no reason to know.
//! The mapping is by [`erth_core::ErrorKind`] (exhaustive: a new kind fails
//! to compile here); the cases are named as the kinds
//! ([`erth_core::ErrorKind::as_str`], checked by a test).
//!
//! The fields are `message` (Swift `case server(message:code:)`, Python
//! `e.message`); Kotlin names it `detail` (`uniffi.toml`), because a
//! Kotlin exception's own `message` cannot be redeclared, and reads the
//! whole text from `message` as for any exception.
//!
//! [`guard`] and [`guard_sync`] run every exported call and catch panics, so
//! none unwinds into foreign code.

use erth_core::ErrorKind;
use futures::FutureExt;
use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Why an Erth Sync call failed. Every case has a human-readable message;
/// the case says what the host can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum ErthError {
    /// The caller passed something unusable (empty title, bad URL, bad id): fix the input.
    #[error("{message}")]
    InvalidInput { message: String },
    /// The schema passed at open changes the database in a way that is not
    /// additive (a dropped, renamed or retyped column or table): nothing was changed.
    #[error("{message}")]
    SchemaChange { message: String },
    /// An SQL statement failed (syntax, constraint, a statement Erth Sync
    /// cannot sync): nothing was changed; the message is SQLite's or the engine's.
    #[error("{message}")]
    Sql { message: String },
    /// No live todo with that id (unknown or deleted): refresh the list.
    #[error("{message}")]
    NotFound { message: String },
    /// The local database failed (disk full, corrupt file, permissions).
    #[error("{message}")]
    Storage { message: String },
    /// Another process (or another open handle) holds the database file:
    /// close it first. Or a write transaction of this handle stayed open
    /// past `ErthConfig.lock_timeout_ms`: retry once it ends.
    #[error("{message}")]
    DatabaseLocked { message: String },
    /// The server could not be reached or the connection broke: retry later (local data is safe).
    #[error("{message}")]
    Network { message: String },
    /// The server refused the credentials: set a valid token with `setAuthToken`.
    #[error("{message}")]
    Auth { message: String },
    /// The server reported an error: `code` is its Hrana error code
    /// (`SQLITE_BUSY`, `SQLITE_CONSTRAINT`, ...) when it sent one, `None`
    /// for an HTTP error status (which the message names).
    #[error("{message}")]
    Server {
        message: String,
        code: Option<String>,
    },
    /// The server's answer did not follow the protocol (wrong URL or incompatible server).
    #[error("{message}")]
    Protocol { message: String },
    /// `sync()` on a database without a server URL: set one with `setRemote`.
    #[error("{message}")]
    NoRemote { message: String },
    /// A key the app gave is wrong or missing: the file key of an encrypted
    /// local file (`ErthConfig.fileKey`; the file is untouched), or the
    /// column key that sealed a pulled value (nothing was applied). Ask for
    /// the key (or recovery phrase) again.
    #[error("{message}")]
    WrongKey { message: String },
    /// A bug in Erth Sync (a caught panic) or a listener that failed unexpectedly; please report it.
    #[error("{message}")]
    Internal { message: String },
}

impl From<erth_core::Error> for ErthError {
    fn from(e: erth_core::Error) -> Self {
        let message = e.to_string();
        let code = e.server_code().map(str::to_owned);
        match e.kind() {
            ErrorKind::InvalidInput => ErthError::InvalidInput { message },
            ErrorKind::SchemaChange => ErthError::SchemaChange { message },
            ErrorKind::Sql => ErthError::Sql { message },
            ErrorKind::NotFound => ErthError::NotFound { message },
            ErrorKind::Storage => ErthError::Storage { message },
            ErrorKind::DatabaseLocked => ErthError::DatabaseLocked { message },
            ErrorKind::Network => ErthError::Network { message },
            ErrorKind::Auth => ErthError::Auth { message },
            ErrorKind::Server => ErthError::Server { message, code },
            ErrorKind::Protocol => ErthError::Protocol { message },
            ErrorKind::NoRemote => ErthError::NoRemote { message },
            ErrorKind::WrongKey => ErthError::WrongKey { message },
        }
    }
}

/// What a foreign callback threw when it was not an `ErthError` (any Kotlin
/// exception, any Swift error).
impl From<uniffi::UnexpectedUniFFICallbackError> for ErthError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        ErthError::Internal {
            message: format!("callback failed: {}", e.reason),
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_owned());
    format!("internal error (panic): {what}")
}

/// Runs a core future, mapping its error and turning a panic into
/// [`ErthError::Internal`].
pub(crate) async fn guard<T, F>(future: F) -> Result<T, ErthError>
where
    F: Future<Output = Result<T, erth_core::Error>>,
{
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(result) => result.map_err(ErthError::from),
        Err(payload) => Err(ErthError::Internal {
            message: panic_message(payload.as_ref()),
        }),
    }
}

/// [`guard`] for synchronous calls.
pub(crate) fn guard_sync<T>(f: impl FnOnce() -> Result<T, ErthError>) -> Result<T, ErthError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(ErthError::Internal {
            message: panic_message(payload.as_ref()),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_future_becomes_an_internal_error() {
        let err = guard(async {
            if "x".len() == 1 {
                panic!("boom in a future");
            }
            Ok(())
        })
        .await
        .expect_err("the panic must become an error");
        assert_eq!(
            err,
            ErthError::Internal {
                message: "internal error (panic): boom in a future".into()
            }
        );
    }

    #[test]
    fn a_panicking_call_becomes_an_internal_error() {
        let err = guard_sync::<()>(|| panic!("boom {}", 42)).expect_err("panic");
        assert_eq!(err.to_string(), "internal error (panic): boom 42");
    }

    #[test]
    fn every_core_kind_maps_to_its_own_case() {
        let cases = [
            (erth_core::Error::InvalidInput("bad".into()), "InvalidInput"),
            (
                erth_core::Error::NotFound {
                    table: "todos".into(),
                    id: "x".into(),
                },
                "NotFound",
            ),
            (
                erth_core::Error::DatabaseLocked(erth_core::LockHolder::OtherProcess),
                "DatabaseLocked",
            ),
            (erth_core::Error::Auth { status: 401 }, "Auth"),
            (
                erth_core::Error::Server {
                    code: "SQLITE_ERROR".into(),
                    message: "no such table".into(),
                },
                "Server",
            ),
            (
                erth_core::Error::Http {
                    status: 500,
                    body: "oops".into(),
                },
                "Server",
            ),
            (erth_core::Error::Protocol("garbage".into()), "Protocol"),
            (erth_core::Error::NoRemote, "NoRemote"),
            (
                erth_core::Error::WrongFileKey {
                    reason: "wrong key".into(),
                },
                "WrongKey",
            ),
        ];
        for (core, case) in cases {
            let text = core.to_string();
            assert_eq!(core.kind().as_str(), case, "cases are named as the kinds");
            let mapped = ErthError::from(core);
            let debug = format!("{mapped:?}");
            assert!(debug.starts_with(case), "{debug} should be {case}");
            assert_eq!(mapped.to_string(), text);
        }
    }

    #[test]
    fn a_server_error_keeps_the_servers_code() {
        let busy = erth_core::Error::Server {
            code: "SQLITE_BUSY".into(),
            message: "database is locked".into(),
        };
        let text = busy.to_string();
        assert_eq!(
            ErthError::from(busy),
            ErthError::Server {
                message: text,
                code: Some("SQLITE_BUSY".into())
            }
        );
        let http = erth_core::Error::Http {
            status: 502,
            body: "bad gateway".into(),
        };
        assert!(matches!(
            ErthError::from(http),
            ErthError::Server { code: None, .. }
        ));
    }
}
