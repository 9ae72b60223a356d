//! Suite `python`: the `erth_sync` package (`bindings-mobile/python/`).
//! Runs the mobile crate's clippy and Rust tests, builds the wheel that
//! ships for Linux x86-64 (manylinux2014: maturin with zig, `bindings =
//! "uniffi"`, the same library as the Kotlin and Swift bindings; see
//! [`crate::dist`]), installs it into a fresh `python3 -m venv` the way a
//! backend would, and runs the pytest tests against a local tursodb (or
//! `ERTH_TEST_HRANA_URL`; see [`mobile::start_server`]), mypy's included.
//! The `dist` suite runs the same tests on the oldest Python the package
//! supports ([`run_pytest`]).
//!
//! Tools ([`crate::tools::python`]): maturin with zig, and the wheels of
//! pytest and mypy, and of SQLModel and SQLAlchemy for the dialect's tests,
//! from which each run's fresh venv installs them without going to PyPI
//! again.

use super::counts::{self, Counts};
use super::{install_tursodb, mobile, Suite};
use crate::cargo::{self, repo_root};
use crate::tools::python::{self, python_in, PIP};
use crate::tools::{GREENLET, MATURIN, PYTEST, SQLALCHEMY, SQLMODEL, ZIGLANG};
use crate::Result;
use std::path::Path;
use std::process::Command;

pub const SUITE: Suite = Suite {
    name: "python",
    about: "erth_sync Python package (maturin + UniFFI): pytest against a local tursodb",
    install,
    run: run_suite,
};

fn install() -> Result<()> {
    install_tursodb()?;
    let tools = python::tools()?;
    let sqlmodel = python::sqlmodel_wheels()?;
    println!(
        "maturin {MATURIN} with ziglang {ZIGLANG}, pytest {PYTEST} wheels: {}; \
         sqlmodel {SQLMODEL} and sqlalchemy {SQLALCHEMY} wheels: {}",
        tools.venv().display(),
        sqlmodel.display()
    );
    Ok(())
}

fn run_suite() -> Result<()> {
    let tools = python::tools()?;
    let sqlmodel = python::sqlmodel_wheels()?;
    mobile::check()?;
    let work = tempfile::Builder::new()
        .prefix("erth-python-")
        .tempdir()
        .map_err(|e| format!("creating a work directory: {e}"))?;
    let (wheel, _library) = crate::dist::native_library(work.path())?;
    let size = std::fs::metadata(&wheel)
        .map_err(|e| format!("reading {}: {e}", wheel.display()))?
        .len();
    println!(
        "wheel: {} ({:.2} MiB)",
        wheel.display(),
        size as f64 / (1024.0 * 1024.0)
    );
    run_pytest(
        Path::new("python3"),
        &wheel,
        &[tools.test_wheels(), sqlmodel],
        &[
            format!("pytest=={PYTEST}"),
            format!("mypy=={}", crate::tools::MYPY),
            format!("sqlmodel=={SQLMODEL}"),
            format!("sqlalchemy=={SQLALCHEMY}"),
            format!("greenlet=={GREENLET}"),
        ],
        &[],
        work.path(),
    )
}

/// What a backend does: a fresh venv of `interpreter`, `pip install` of
/// the wheel (and, from the local folders of wheels `test_wheels`,
/// `test_packages`), then the package's pytest tests against the test
/// server, from `work` so that the sources next to the tests cannot shadow
/// the installed wheel. `leave_out`: pytest arguments (`--ignore=…`,
/// `--deselect …`) naming tests this interpreter cannot run, printed.
pub fn run_pytest(
    interpreter: &Path,
    wheel: &Path,
    test_wheels: &[std::path::PathBuf],
    test_packages: &[String],
    leave_out: &[String],
    work: &Path,
) -> Result<()> {
    let venv = work.join("venv");
    let python = python_in(&venv);
    cargo::run(Command::new(interpreter).args(["-m", "venv"]).arg(&venv))?;
    cargo::run(
        Command::new(&python)
            .args(PIP)
            .args(["install", "--no-index"])
            .args(
                test_wheels
                    .iter()
                    .flat_map(|dir| [std::ffi::OsStr::new("--find-links"), dir.as_os_str()]),
            )
            .args(test_packages)
            .arg(wheel),
    )?;
    if !leave_out.is_empty() {
        println!(
            "left out on {}: {}",
            interpreter.display(),
            leave_out.join(" ")
        );
    }
    let server = mobile::start_server(work)?;
    let (ok, output) = cargo::run_captured(
        Command::new(&python)
            .args(["-m", "pytest", "-p", "no:cacheprovider", "-v"])
            .args(leave_out)
            .arg(
                repo_root()
                    .join("bindings-mobile")
                    .join("python")
                    .join("tests"),
            )
            .current_dir(work)
            // No __pycache__ next to the tests in the repository.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .envs(server.env()),
    )?;
    drop(server);
    counts::report("pytest", ok, pytest_counts(&output))
}

/// Counts from pytest's closing line (`==== 9 passed, 1 failed in 3.1s ====`).
fn pytest_counts(output: &str) -> Option<Counts> {
    let last = output
        .lines()
        .rev()
        .find(|l| l.contains(" passed") || l.contains(" failed") || l.contains(" error"))?;
    let count = |word: &str| {
        let words: Vec<&str> = last.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        words
            .windows(2)
            .filter(|w| w[1].starts_with(word))
            .filter_map(|w| w[0].parse::<u64>().ok())
            .sum::<u64>()
    };
    Some(Counts {
        passed: count("passed"),
        failed: count("failed") + count("error"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pytest_closing_lines() {
        assert_eq!(
            pytest_counts("collected 9 items\n...\n========= 9 passed in 3.10s =========\n"),
            Some(Counts {
                passed: 9,
                failed: 0
            })
        );
        assert_eq!(
            pytest_counts("== 7 passed, 1 failed, 1 error in 2.00s ==\n"),
            Some(Counts {
                passed: 7,
                failed: 2
            })
        );
        assert_eq!(pytest_counts("ModuleNotFoundError: no module"), None);
    }
}
