//! WebAssembly bindings of Erth Sync, the engine behind the npm package
//! `erth-sync`.
//!
//! This crate is thin: it reads options and SQL parameters from JS, hands
//! back the core's records as the core serializes them (the core's feature
//! `js`, which also generates their TypeScript types), maps core errors to
//! `ErthError` (an `Error` subclass with a `code`, defined in
//! `js/errors.js`), and wires the browser store (OPFS, in a dedicated
//! Worker), transport (`fetch`) and auto-sync from `erth-core`. Its
//! classes [`Replica`] and [`WriteTx`] (an open write transaction) are
//! what the package's worker script (`js/worker.js`) drives; apps use the Promise API of `js/index.js` on the main thread.
//!
//! Every export returns `Result<_, JsValue>`: errors become rejected
//! Promises, never panics. A panic (a bug) is reported on the console by the
//! hook installed at start-up; with `panic = "abort"` it then traps, which
//! the worker reports as an `Internal` error. No error or log ever contains
//! the auth token.
//!
//! On targets other than wasm32 the crate is empty.

#[cfg(target_arch = "wasm32")]
mod error;
#[cfg(target_arch = "wasm32")]
mod replica;
#[cfg(target_arch = "wasm32")]
mod transaction;
#[cfg(target_arch = "wasm32")]
mod values;

#[cfg(target_arch = "wasm32")]
pub use error::ErthError;
#[cfg(target_arch = "wasm32")]
pub use replica::{
    canonical_remote, canonical_schema, change_file_key, new_recovery_phrase, Replica,
    Subscription, Watch,
};
#[cfg(target_arch = "wasm32")]
pub use transaction::WriteTx;
