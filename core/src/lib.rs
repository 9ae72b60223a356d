//! Erth Sync core: everything that is not a binding.
//!
//! A local-first sync engine: every read and write hits a local SQLite store
//! first; [`Database::sync`] exchanges changes with a remote libSQL server over
//! Hrana-over-HTTP. The layers, bottom up (a file imports only from the
//! layers below it and from files of its own directory; `cargo xtask test
//! core` checks that no file imports another in a circle):
//!
//! 1. [`platform`], [`value`], [`events`], [`redact`], [`store::error`],
//!    [`autosync::schedule`]: markers, SQL values, change events, secrets
//!    out of the texts shown or stored, the store's errors, the auto-sync
//!    scheduler;
//! 2. [`transport`] (the trait), `js`, `autosync::link`: HTTP behind a
//!    trait, the npm shapes, the auto-sync driver's inbox;
//! 3. [`error`]: the one rich engine error;
//! 4. [`ids`], [`hlc`], [`schema`], [`endpoint`], [`status`],
//!    `transport::native` / `transport::browser`: UUIDv7 ids, hybrid
//!    logical clocks, declared tables and the DDL/DML generated from them,
//!    where the server is, status records, the transports;
//! 5. [`hrana`], [`page`], [`row`], [`access`]: the Hrana client, pull pages
//!    as one JSON cell, validated rows, the rules for the app's own SQL;
//! 6. [`store`], [`merge`], [`config`]: the local store behind its trait,
//!    the conflict rules as SQL (and their pure-Rust oracle), a replica's
//!    settings;
//! 7. `shared_store`: the store's turns (one interactive writer at a time);
//! 8. `state`: the replica's bookkeeping in its own file;
//! 9. `migrate`: opening a replica file (schema checks, formats, backfills);
//! 10. [`sync`]: the sync engine (bootstrap, push, pull, the planner), run
//!     on a borrowing `Syncer`;
//! 11. [`db`]: [`Database`], one replica, and its sync entry point;
//! 12. the public API on [`Database`]: [`rows`], [`todos`], [`sql`],
//!     [`watch`], [`rejected`]; and [`autosync`], syncing by itself
//!     (debounced after writes, on an interval, paused offline);
//! 13. [`write_transaction`]: interactive write transactions (built on
//!     [`sql`]).
//!
//! With feature `js`, [`js`] gives SQL values and rows their npm shape.
//!
//! See `ARCHITECTURE.md` at the repository root for the diagram and the rules.

// wasm is single-threaded and its JS values are not `Send`: the `Arc`s that
// natively share state between threads hold `!Send` values there, harmlessly
// (see `platform`).
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

// With feature `uniffi`, this crate is a UniFFI component of its own (namespace
// `erth_core`): its records and enums (see the feature in Cargo.toml) appear
// in the Kotlin, Swift and Python bindings built by `erth-mobile`.
#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!();

pub mod access;
pub mod autosync;
pub mod config;
pub mod db;
pub mod encrypted;
pub mod endpoint;
pub mod error;
pub mod events;
pub mod file_key;
pub mod hlc;
pub mod hrana;
pub mod ids;
#[cfg(feature = "js")]
mod js;
pub mod merge;
mod migrate;
pub mod page;
pub mod platform;
pub mod purge;
pub mod recovery;
pub mod redact;
pub mod rejected;
pub mod row;
pub mod rows;
pub mod schema;
mod shared_store;
pub mod sql;
mod state;
pub mod status;
pub mod store;
pub mod subscribe;
pub mod subscription;
pub mod sync;
pub mod todos;
pub mod transport;
pub mod value;
pub mod watch;
pub mod write_transaction;

pub use autosync::{AutoSync, AutoSyncOptions};
pub use config::Config;
pub use db::Database;
pub use endpoint::{AuthToken, Endpoint};
pub use error::{Error, ErrorKind, LockHolder, Result};
pub use events::{ChangeEvent, ChangeOrigin, Subscription};
pub use hlc::{Clock, NodeId, SystemClock, Timestamp};
pub use purge::{PurgeReport, TablePurge};
pub use schema::json::Schema;
pub use schema::{ColumnDef, SqlType, TableDef};
pub use sql::ExecuteResult;
pub use status::{QuarantinedRow, RejectedRow, SyncProgress, SyncReport, SyncStatus, TableRefusal};
pub use subscription::SyncSubscription;
pub use todos::Todo;
pub use value::{Rows, SqlValue, Statement};
pub use watch::{LiveQuery, RowsListener};
pub use write_transaction::WriteTransaction;
