//! `erth`: inspect, edit and sync an Erth Sync replica (see [`native`]).
//! The CLI is native-only; on wasm32 it builds as an empty program so that
//! workspace-wide commands (`cargo clippy --target wasm32-unknown-unknown`)
//! work from the repository root.

#[cfg(not(target_arch = "wasm32"))]
mod native;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    native::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}
