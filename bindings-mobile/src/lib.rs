//! UniFFI bindings of Erth Sync for Kotlin (`dev.erth.sync`), Swift
//! (`ErthSync`) and Python (the `erth_sync` package in `python/`).
//!
//! A thin layer over [`erth_core`]: it forwards the core's own records and
//! enums (they carry UniFFI derives behind the core's feature `uniffi`;
//! [`types`] says what is defined here instead and why), maps the core error
//! to one flat [`ErthError`] a host can act on ([`error`]), runs every async
//! call on tokio ([`db`], through UniFFI's `async_runtime = "tokio"`), and
//! bridges change listeners and live queries to foreign callbacks
//! ([`events`]), starts the core's auto-sync when the config asks for
//! it ([`db`]), and forwards recovery phrases ([`recovery`]). No logic a second binding would also need lives here.
//!
//! Boundary rules:
//! - no panic crosses the FFI: every exported call runs inside
//!   [`error::guard`] / [`error::guard_sync`], which turn a panic into
//!   [`ErthError::Internal`];
//! - a foreign listener that throws never breaks the write or sync that
//!   triggered it, nor other listeners ([`events`]);
//! - the auth token never appears in `Debug`/`Display` output (also the
//!   Kotlin `toString()` and Swift `description` of [`ErthConfig`]) nor in
//!   errors.
//!
//! The generated Kotlin and Swift sources come from this crate's cdylib via
//! the workspace's `uniffi-bindgen` binary; names are set in `uniffi.toml`.

uniffi::setup_scaffolding!();

pub mod db;
pub mod error;
pub mod events;
pub mod recovery;
pub mod transaction;
pub mod types;

pub use db::ErthDb;
pub use error::ErthError;
pub use events::{ChangeListener, LiveQuery, LiveQueryListener, Subscription};
pub use recovery::{column_key_from_recovery_phrase, new_recovery_phrase};
pub use transaction::ErthWriteTransaction;
pub use types::{
    AutoSyncOptions, ChangeEvent, ChangeOrigin, ErrorKind, ErthConfig, ExecuteResult, Rows,
    SqlValue, Statement, SyncReport, SyncStatus, Todo,
};
