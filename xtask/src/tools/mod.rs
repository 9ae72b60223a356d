//! Every tool the suites, the demo and the benchmarks install, and every
//! version they pin: suites only call these functions.
//!
//! Installs are idempotent and land in the cache (`$ERTH_CACHE`, default
//! `~/.cache/erth`; see `erth_tests::cache`), staged and renamed into place
//! under a cross-process lock, so concurrent runs wait for each other and an
//! interrupted install leaves nothing half-done. Nothing here downloads a
//! browser, a driver or a toolchain: they come from Debian ([`apt`]), npm
//! ([`npm`]), PyPI ([`python`]) or are compiled from crates.io ([`rust`]).
//!
//! - [`apt`]: Debian packages (clang, Node.js, Chromium, Firefox ESR,
//!   WebKitGTK's driver, Xvfb, a JRE with JNA and JUnit, mmdebstrap,
//!   binutils for aarch64).
//! - [`rust`]: the wasm32, aarch64 and musl rustup targets, `wasm-bindgen-cli` (at the version
//!   the root `Cargo.toml` pins the `wasm-bindgen` crate to) and
//!   `geckodriver`, built with `cargo install`.
//! - [`npm`]: `binaryen` (wasm-opt), `playwright-core`, the bundlers and
//!   TypeScript, `kotlin-compiler`, the benchmarks' Node baselines.
//! - [`python`]: maturin with zig, twine and wheel, and the wheels of
//!   pytest and mypy, for the `python` and `dist` suites and `cargo xtask
//!   dist`; the oldest Python this machine has; the benchmarks' Python
//!   baselines.
//! - [`swift`]: the Debian trixie chroot with `swiftlang`, and its mounts.
//! - [`tursodb`]: the Hrana server, installed by the test harness
//!   (`erth_tests::tools`), which the integration tests also use without
//!   xtask; its pin is there.
//!
//! Crates used both as a library and as a CLI (the wasm-bindgen family,
//! uniffi) are pinned once, in the root `Cargo.toml`'s
//! `[workspace.dependencies]`; the pins below are for everything else.

pub mod apt;
pub mod npm;
pub mod python;
pub mod rust;
pub mod swift;

use crate::Result;
use std::path::PathBuf;

// ---- npm ----

/// `wasm-opt` (Debian's binaryen is too old for the package's features).
pub const BINARYEN: &str = "132.0.0";
/// Drives Debian's Chromium (never Playwright's own browser download).
pub const PLAYWRIGHT_CORE: &str = "1.65.1";
/// The bundlers the packed npm package is built with (the package README's
/// recipes): Vite 8 (Rolldown), Vite 5 (Rollup; installed as `vite5`),
/// esbuild, Rollup with its node-resolve plugin, webpack; and TypeScript,
/// which type-checks an app against the package's `index.d.ts`.
pub const VITE: &str = "8.4.0";
pub const VITE_5: &str = "5.4.21";
pub const ESBUILD: &str = "0.28.2";
pub const ROLLUP: &str = "4.68.8";
pub const ROLLUP_NODE_RESOLVE: &str = "16.0.3";
pub const WEBPACK: &str = "5.113.0";
pub const TYPESCRIPT: &str = "7.0.2";
/// The frameworks of the package's `erth-sync/react` and `erth-sync/vue`
/// (peer dependencies), for the Vite + React and Vite + Vue apps of the
/// bundler test: React and ReactDOM with their types, and Vue.
pub const REACT: &str = "19.3.1";
pub const TYPES_REACT: &str = "19.3.3";
pub const TYPES_REACT_DOM: &str = "19.3.0";
pub const VUE: &str = "3.5.47";
/// `kotlinc` with the stdlib and kotlinx-coroutines (npm `kotlin-compiler`).
pub const KOTLIN: &str = "2.4.20";
/// Turso Sync for Node (`@tursodatabase/sync` and its packages, all at this
/// version), a benchmark baseline.
pub const TURSO_SYNC: &str = "0.7.2";
/// The browser benchmark's floor: the official SQLite WASM build, the same
/// SQLite (3.54.1) that sqlite-wasm-rs 0.6.3 compiles into the package.
pub const SQLITE_WASM: &str = "3.54.1-build1";

// ---- PyPI ----

pub const MATURIN: &str = "1.16.0";
/// Zig as maturin's C compiler and linker (`maturin build --zig`): the wheels
/// for manylinux2014 (glibc 2.17) x86-64 and aarch64 and musllinux_1_2, and
/// the portable `erth` binary, cross-built here (PyPI `ziglang`).
pub const ZIGLANG: &str = "0.15.2";
/// `twine check` of the wheels and the sdist (what PyPI's upload checks).
pub const TWINE: &str = "7.0.0";
/// Unpacks and repacks a wheel (its RECORD rewritten) after its library is stripped.
pub const WHEEL: &str = "0.48.0";
pub const PYTEST: &str = "9.2.0";
/// pytest for the oldest CPython the package supports (3.9; pytest 9 needs 3.10).
pub const PYTEST_OLDEST: &str = "8.4.2";
/// What pytest [`PYTEST_OLDEST`] also needs on Python 3.9 (markers
/// `python_version < "3.11"`, and exceptiongroup's own).
pub const PYTEST_OLDEST_BACKPORTS: [&str; 3] = [
    "exceptiongroup==1.3.0",
    "tomli==2.2.1",
    "typing_extensions==4.15.0",
];
/// Type-checks an app against the installed package (`test_package.py`).
pub const MYPY: &str = "2.4.1";
/// The original Python design, a benchmark baseline.
pub const SQLMODEL: &str = "0.0.50";
/// SQLModel's SQLAlchemy, pinned: the `python` suite runs the
/// `sqlite+erth://` dialect under both.
pub const SQLALCHEMY: &str = "2.1.9";
/// SQLAlchemy's asyncio extension needs it: the `sqlite+erth_async://`
/// dialect's tests run on it.
pub const GREENLET: &str = "3.5.6";
/// Turso Sync for Python, a benchmark baseline.
pub const PYTURSO: &str = "0.8.3";

// ---- crates.io (CLI-only crates) ----

/// Firefox's WebDriver server.
pub const GECKODRIVER: &str = "0.37.1";

/// The pinned `tursodb` binary (the test harness's installer).
pub fn tursodb() -> Result<PathBuf> {
    Ok(erth_tests::tools::tursodb()?)
}
