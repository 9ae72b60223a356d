//! Suite `faults`: the fault-injection integration tests (erth-tests targets
//! named `faults_*`, and erth-cli's `faults_crash`, which kills the `erth`
//! binary, and `faults_pending`, which measures its peak RSS), run with
//! `--nocapture` so they print their figures.
//! `cargo xtask test faults --long` runs them 100x longer.

use super::{harness_test_targets, install_tursodb, Suite, FAULTS_PREFIX, HARNESS_PACKAGE};
use crate::cargo::{cargo, run};
use crate::Result;

pub const SUITE: Suite = Suite {
    name: "faults",
    about: "fault-injection tests (tests/tests/faults_*.rs) through the fault proxy",
    install: install_tursodb,
    run: run_suite,
};

fn run_suite() -> Result<()> {
    let targets: Vec<String> = harness_test_targets()?
        .into_iter()
        .filter(|t| t.starts_with(FAULTS_PREFIX))
        .collect();
    if targets.is_empty() {
        return Err(format!(
            "no fault-injection tests found: expected integration tests named \
             {FAULTS_PREFIX}* in tests/tests/ (package {HARNESS_PACKAGE}); \
             this suite cannot pass without them"
        )
        .into());
    }
    let mut args = vec!["test", "-p", HARNESS_PACKAGE];
    for target in &targets {
        args.extend(["--test", target.as_str()]);
    }
    args.extend(["--", "--nocapture"]);
    run(&mut cargo(&args))?;
    run(&mut cargo(&[
        "test",
        "-p",
        "erth-cli",
        "--test",
        "faults_crash",
        "--test",
        "faults_pending",
        "--",
        "--nocapture",
    ]))
}
