//! The test suites `cargo xtask test` knows, in the order they run.
//!
//! A suite is a module exposing a [`Suite`]: an `install` step that puts the
//! tools it needs into the cache through [`crate::tools`] (idempotent) and a
//! `run` step. To add one, write the module and list it in [`SUITES`].
//! [`counts`] reads the runners' test counts; [`mobile`] is what the
//! `kotlin`, `swift` and `python` suites (and `crate::dist`) share.

mod core;
mod counts;
mod dist;
pub mod e2e;
mod faults;
pub mod kotlin;
pub mod mobile;
mod python;
pub mod swift;
mod wasm;

use crate::cargo::repo_root;
use crate::{tools, Result};
use std::fs;

/// One test suite.
#[derive(Debug)]
pub struct Suite {
    /// The name given on the command line.
    pub name: &'static str,
    /// One line on what it checks.
    pub about: &'static str,
    /// Installs the suite's tools; a failure skips `run`.
    pub install: fn() -> Result<()>,
    /// Runs the suite; an error means it failed.
    pub run: fn() -> Result<()>,
}

/// Every suite, in the order `cargo xtask test` runs them.
pub const SUITES: &[Suite] = &[
    core::SUITE,
    faults::SUITE,
    kotlin::SUITE,
    swift::SUITE,
    python::SUITE,
    wasm::SUITE,
    e2e::SUITE,
    dist::SUITE,
];

/// The package holding the harness and the cross-crate integration tests.
const HARNESS_PACKAGE: &str = "erth-tests";
/// Integration test targets with this prefix belong to the `faults` suite.
const FAULTS_PREFIX: &str = "faults_";

/// Names of the harness package's integration test targets, sorted: Cargo's
/// auto-discovered `tests/tests/<name>.rs` and `tests/tests/<name>/main.rs`.
fn harness_test_targets() -> Result<Vec<String>> {
    let dir = repo_root().join("tests").join("tests");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("listing {}: {e}", dir.display()).into()),
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let is_target = if path.is_dir() {
                path.join("main.rs").is_file()
            } else {
                path.extension().is_some_and(|e| e == "rs")
            };
            let stem = path.file_stem()?.to_str()?.to_string();
            is_target.then_some(stem)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Installs tursodb, the Hrana server the integration tests start.
fn install_tursodb() -> Result<()> {
    let bin = tools::tursodb()?;
    println!("tursodb: {}", bin.display());
    Ok(())
}
