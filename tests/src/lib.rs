//! Erth Sync's integration-test harness.
//!
//! - [`cache`]: the shared on-disk cache (`$ERTH_CACHE` or `~/.cache/erth`),
//!   a cross-process lock, idempotent installs.
//! - [`tools`]: installs the pinned `tursodb` binary from npm into the cache.
//! - [`launch`]: a local `tursodb --sync-server` process (synchronous, used by
//!   xtask too).
//! - [`server`]: [`TestServer`], the Hrana server a test talks to (local, or
//!   the external one named by `ERTH_TEST_HRANA_URL`).
//! - [`proxy`]: [`FaultProxy`] and [`AuthProxy`], an HTTP/1.1 reverse proxy
//!   that injects network faults or checks a bearer token.
//! - [`hrana`]: a tiny raw `POST /v2/pipeline` helper for setup and checks.
//! - [`recorder`]: [`Recorder`], a tiny HTTP server that records what
//!   reaches it and answers as scripted (a redirect, an oversized body).
//!
//! Everything behind the default `harness` feature needs a tokio runtime; the
//! rest is plain blocking code.

// Native-only: it starts processes and binds sockets. Empty on wasm32, so
// workspace-wide wasm commands work from the repository root.
#![cfg(not(target_arch = "wasm32"))]

pub mod cache;
mod error;
pub mod launch;
pub mod tools;

#[cfg(feature = "harness")]
pub mod hrana;
#[cfg(feature = "harness")]
pub mod proxy;
#[cfg(feature = "harness")]
pub mod recorder;
#[cfg(feature = "harness")]
pub mod server;

pub use error::{Error, Result};
#[cfg(feature = "harness")]
pub use proxy::{AuthProxy, FaultProxy, FaultStats, Faults, Oversize, PageFault, Rewrite};
#[cfg(feature = "harness")]
pub use recorder::{Answer, Recorded, Recorder};
#[cfg(feature = "harness")]
pub use server::TestServer;
