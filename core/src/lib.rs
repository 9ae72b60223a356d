//! Erth Sync core: everything that is not a binding.
//!
//! A local-first sync engine: every read and write hits a local SQLite store
//! first; [`Database::sync`] exchanges changes with a remote libSQL server over
//! Hrana-over-HTTP. The layers, bottom up:
//!
//! - [`value`]: SQL values, statements and result rows shared by stores and the
//!   Hrana client;
//! - [`ids`], [`hlc`]: UUIDv7 row ids and hybrid logical clocks;
//! - [`schema`]: declared tables ([`TableDef`]) and the DDL/DML generated from them;
//! - [`row`]: a full, validated row as it travels between replicas;
//! - [`merge`]: the conflict rules as SQL, plus a pure-Rust oracle of the same rules;
//! - [`page`]: pull pages and size probes as one JSON cell, and their decoder;
//! - [`store`], [`transport`]: the only I/O, each behind a small trait;
//! - [`endpoint`], [`hrana`]: where the server is and how to talk to it;
//! - [`sync`]: push, pull, bootstrap and retries;
//! - [`rejected`]: rows the server refused (listed, retried, discarded);
//! - [`migrate`]: opening a replica file (schema checks, local formats, backfills);
//! - [`db`], [`todos`]: the public API (generic rows, and the typed todo API);
//! - [`autosync`]: syncing by itself (debounced after writes, on an
//!   interval, paused offline);
//! - [`sql`], [`watch`]: the app's plain SQL and live queries.
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

pub mod autosync;
pub mod db;
pub mod endpoint;
pub mod error;
pub mod events;
pub mod hlc;
pub mod hrana;
pub mod ids;
#[cfg(feature = "js")]
mod js;
pub mod merge;
mod migrate;
pub mod page;
pub mod platform;
pub mod rejected;
mod restored;
pub mod row;
pub mod schema;
pub mod sql;
mod state;
pub mod store;
pub mod sync;
pub mod todos;
pub mod transport;
pub mod value;
pub mod watch;

pub use autosync::{AutoSync, AutoSyncOptions};
pub use db::{Config, Database, SyncReport, SyncStatus};
pub use endpoint::{AuthToken, Endpoint};
pub use error::{Error, ErrorKind, Result};
pub use events::{ChangeEvent, ChangeOrigin, Subscription};
pub use hlc::{Clock, NodeId, SystemClock, Timestamp};
pub use rejected::{RejectedRow, TableRefusal};
pub use schema::{ColumnDef, Schema, SqlType, TableDef};
pub use sql::ExecuteResult;
pub use todos::Todo;
pub use value::{Rows, SqlValue, Statement};
pub use watch::{LiveQuery, RowsListener};
