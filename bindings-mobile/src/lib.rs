//! UniFFI bindings of Erth Sync for Kotlin (`dev.erth.sync`) and Swift
//! (`ErthSync`).
//!
//! A thin layer over [`erth_core`]: it converts types ([`types`]), maps the
//! core error to one flat [`ErthError`] a host can act on ([`error`]), runs
//! every async call on tokio ([`db`], through UniFFI's `async_runtime =
//! "tokio"`), and bridges change listeners to foreign callbacks
//! ([`events`]). No logic a second binding would also need lives here.
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
pub mod types;

pub use db::ErthDb;
pub use error::ErthError;
pub use events::{ChangeListener, Subscription};
pub use types::{ChangeEvent, ChangeOrigin, ErthConfig, SyncReport, SyncStatus, Todo};
