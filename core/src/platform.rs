//! Marker traits that are `Send`/`Sync` on native targets and empty on wasm.
//!
//! The browser is single-threaded and its futures (`fetch`, OPFS) are not
//! `Send`; native hosts move work between threads. Traits and bounds in this
//! crate use these markers (the pattern of matrix-rust-sdk) so one code base
//! serves both without blanket `Send` bounds on wasm.

/// `Send` outside wasm, nothing on wasm.
#[cfg(not(target_arch = "wasm32"))]
pub trait SendOutsideWasm: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + ?Sized> SendOutsideWasm for T {}

/// `Send` outside wasm, nothing on wasm.
#[cfg(target_arch = "wasm32")]
pub trait SendOutsideWasm {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> SendOutsideWasm for T {}

/// `Sync` outside wasm, nothing on wasm.
#[cfg(not(target_arch = "wasm32"))]
pub trait SyncOutsideWasm: Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Sync + ?Sized> SyncOutsideWasm for T {}

/// `Sync` outside wasm, nothing on wasm.
#[cfg(target_arch = "wasm32")]
pub trait SyncOutsideWasm {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> SyncOutsideWasm for T {}
