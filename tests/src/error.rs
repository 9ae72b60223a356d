//! The harness's error type. Messages say what failed and, where a person
//! can fix it, what to do.

use std::io;

/// Anything the harness can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file, process or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What the harness was doing.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A tool could not be installed into the cache.
    #[error("{0}")]
    Install(String),
    /// A server could not be started, or answered something unexpected.
    #[error("{0}")]
    Server(String),
    /// An HTTP request failed (connect, send or read).
    #[cfg(feature = "harness")]
    #[error("{what}: {source}")]
    Http {
        /// What the harness was doing.
        what: String,
        /// The underlying error.
        source: reqwest::Error,
    },
    /// The caller passed something invalid (e.g. a probability above 1).
    #[error("{0}")]
    InvalidInput(String),
}

/// The harness's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Builds a `map_err` adapter that wraps an [`io::Error`] with context.
pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
