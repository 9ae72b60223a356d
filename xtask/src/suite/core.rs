//! Suite `core`: formatting, clippy and the native tests (unit, property
//! and integration tests against a real local tursodb, the `erth sql`
//! CLI tests), except the `faults_*` integration tests, which are the
//! `faults` suite's. xtask's own tests run here too, among them the
//! import-circle check of [`crate::circles`] for `core` and `xtask`.

use super::{harness_test_targets, install_tursodb, Suite, FAULTS_PREFIX, HARNESS_PACKAGE};
use crate::cargo::{cargo, run};
use crate::Result;

/// Packages clippy checks with `-D warnings` (all targets).
pub const CLIPPY_PACKAGES: &[&str] =
    &["erth-core", "erth-cli", "erth-tests", "erth-bench", "xtask"];
/// Packages whose tests run in full (the harness package is handled apart;
/// of erth-cli its unit tests, `sql_cli`, `shared_file` and `secrets_cli` run here:
/// `faults_crash` is the faults suite's).
pub const TEST_PACKAGES: &[&str] = &["erth-core", "erth-bench", "xtask"];

pub const SUITE: Suite = Suite {
    name: "core",
    about: "cargo fmt --check, clippy -D warnings, native unit and integration tests",
    install: install_tursodb,
    run: run_suite,
};

fn run_suite() -> Result<()> {
    let harness_targets: Vec<String> = harness_test_targets()?
        .into_iter()
        .filter(|t| !t.starts_with(FAULTS_PREFIX))
        .collect();
    let mut harness = vec!["test", "-p", HARNESS_PACKAGE, "--lib"];
    for target in &harness_targets {
        harness.extend(["--test", target.as_str()]);
    }
    let steps = [
        vec!["fmt", "--all", "--check"],
        [
            &["clippy"][..],
            &packages(CLIPPY_PACKAGES),
            &["--all-targets", "--", "-D", "warnings"],
        ]
        .concat(),
        [&["test"][..], &packages(TEST_PACKAGES)].concat(),
        vec![
            "test",
            "-p",
            "erth-cli",
            "--bins",
            "--test",
            "sql_cli",
            "--test",
            "shared_file",
            "--test",
            "secrets_cli",
        ],
        harness,
    ];
    // Run every step so one report shows all problems.
    let failed: Vec<String> = steps
        .iter()
        .filter_map(|step| run(&mut cargo(step)).err().map(|e| e.to_string()))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; ").into())
    }
}

/// `-p NAME` for each package.
fn packages(names: &[&'static str]) -> Vec<&'static str> {
    names.iter().flat_map(|name| ["-p", name]).collect()
}
