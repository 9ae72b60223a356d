//! Suite `kotlin`: the generated Kotlin bindings on the JVM. Builds the
//! release `liberth_mobile.so` (the x86-64 wheel's, [`crate::dist`]), generates `dev.erth.sync` (and the core's
//! `dev.erth.sync.core`) from it, compiles them with the hand-written
//! `bindings-mobile/kotlin/` sources and the JUnit 4 tests in
//! `bindings-mobile/tests/kotlin/` with kotlinc, and runs the tests against a
//! local tursodb (or `ERTH_TEST_HRANA_URL`; see [`mobile::start_server`]).
//!
//! Tools ([`crate::tools`]): kotlinc from the npm package `kotlin-compiler`
//! (a full JVM distribution with the stdlib and kotlinx-coroutines); a JRE,
//! JNA and JUnit 4 from Debian.

use super::counts::{self, number_after, Counts};
use super::{install_tursodb, mobile, Suite};
use crate::cargo::{self, repo_root};
use crate::tools::apt::{self, HAMCREST_JAR, JAVA_BIN, JNA_JAR, JUNIT_JAR};
use crate::tools::npm;
use crate::Result;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SUITE: Suite = Suite {
    name: "kotlin",
    about: "UniFFI Kotlin bindings: JUnit tests on the JVM against a local tursodb",
    install,
    run: run_suite,
};

fn install() -> Result<()> {
    install_tursodb()?;
    apt::ensure(&apt::JVM)?;
    // The library is the x86-64 wheel's build (maturin with zig).
    crate::tools::python::tools()?;
    let home = npm::kotlin_home()?;
    println!("kotlinc: {}", home.join("bin").join("kotlinc").display());
    Ok(())
}

fn run_suite() -> Result<()> {
    let kotlin = npm::kotlin_home()?;
    let built = {
        let wheels = tempfile::Builder::new()
            .prefix("erth-wheel-")
            .tempdir()
            .map_err(|e| format!("creating a work directory: {e}"))?;
        let (_wheel, library) = crate::dist::native_library(wheels.path())?;
        mobile::build("kotlin", &library)?
    };
    let work = built.work.path();

    let tests_dir = repo_root()
        .join("bindings-mobile")
        .join("tests")
        .join("kotlin");
    let tests = kotlin_files(&tests_dir)?;
    let classes: Vec<String> = tests
        .iter()
        .filter(|p| {
            p.file_stem()
                .is_some_and(|s| s.to_string_lossy().ends_with("Test"))
        })
        .filter_map(|p| {
            let rel = p.strip_prefix(&tests_dir).ok()?.with_extension("");
            Some(rel.to_string_lossy().replace('/', "."))
        })
        .collect();
    if classes.is_empty() {
        return Err(format!("no *Test.kt under {}", tests_dir.display()).into());
    }
    let jar = work.join("tests.jar");
    let run_cp = compile(
        &kotlin,
        &built.bindings,
        &tests,
        &[PathBuf::from(JUNIT_JAR), PathBuf::from(HAMCREST_JAR)],
        &jar,
    )?;

    let server = mobile::start_server(work)?;
    let (ok, output) = cargo::run_captured(
        Command::new(JAVA_BIN)
            .arg(format!("-Djna.library.path={}", built.lib_dir.display()))
            .args(["-cp", &run_cp, "org.junit.runner.JUnitCore"])
            .args(&classes)
            .envs(server.env()),
    )?;
    drop(server);
    counts::report("junit", ok, junit_counts(&output))
}

/// Counts from JUnitCore's closing line: `OK (7 tests)` or
/// `Tests run: 7,  Failures: 2`.
fn junit_counts(output: &str) -> Option<Counts> {
    if let Some(passed) = number_after(output, "\nOK (") {
        return Some(Counts { passed, failed: 0 });
    }
    let run = number_after(output, "Tests run:")?;
    let failed = number_after(output, "Failures:")?;
    Some(Counts {
        passed: run.saturating_sub(failed),
        failed,
    })
}

/// Compiles `sources` with the generated bindings in `bindings` and the
/// hand-written `bindings-mobile/kotlin/` sources into `jar`, by the
/// kotlinc in `kotlin` (its home), against JNA, kotlinx-coroutines and the
/// jars in `with`; returns the classpath that runs them (`java -cp`).
pub fn compile(
    kotlin: &Path,
    bindings: &Path,
    sources: &[PathBuf],
    with: &[PathBuf],
    jar: &Path,
) -> Result<String> {
    let generated = kotlin_files(bindings)?;
    let extras = kotlin_files(&repo_root().join("bindings-mobile").join("kotlin"))?;
    let lib = kotlin.join("lib");
    let mut compile_cp = vec![
        PathBuf::from(JNA_JAR),
        lib.join("kotlinx-coroutines-core-jvm.jar"),
    ];
    compile_cp.extend(with.iter().cloned());
    cargo::run(
        Command::new(kotlin.join("bin").join("kotlinc"))
            .args(["-cp", &join_paths(&compile_cp), "-d"])
            .arg(jar)
            .args(&generated)
            .args(&extras)
            .args(sources),
    )?;
    let mut run_cp = vec![jar.to_path_buf(), lib.join("kotlin-stdlib.jar")];
    run_cp.extend(compile_cp);
    Ok(join_paths(&run_cp))
}

/// Every `.kt` file under `dir`, sorted.
fn kotlin_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = fs::read_dir(&d).map_err(|e| format!("listing {}: {e}", d.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "kt") {
                found.push(path);
            }
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(format!("no .kt files under {}", dir.display()).into());
    }
    Ok(found)
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_junit_closing_lines() {
        assert_eq!(
            junit_counts("JUnit version 4.13.2\n...\nTime: 1\n\nOK (7 tests)\n"),
            Some(Counts {
                passed: 7,
                failed: 0
            })
        );
        assert_eq!(
            junit_counts("FAILURES!!!\nTests run: 7,  Failures: 2\n"),
            Some(Counts {
                passed: 5,
                failed: 2
            })
        );
        assert_eq!(junit_counts("Exception in thread main"), None);
    }
}
